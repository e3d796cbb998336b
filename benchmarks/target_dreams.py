"""`make bench`, class-guided dreams: does the class emerge in the photo while the photo stays recognisable?

    python -m benchmarks.target_dreams [--device cpu|cuda] [--photos chelsea,astronaut,coffee]
                                       [--classes banana,starfish] [--seed 0] [--out PATH]

Each photo from scikit-image is dreamt toward each of the nine classes the Inceptionism post
rendered (`!dream target:CLASS` at the defaults), and the result is judged as the user gets it,
the 8-bit PNG:
  seen        the rendering network's top-1 is the target; target: 8 of 9 per photo
  correlation of the 8x block-averaged luminance with the photo's; target >= 0.5 for every dream
  change      mean absolute change per channel value, 0-255 scale; target >= 6 for every dream
  transfer    the share of 32 random test-time views (crops, mirror, 0.8x, JPEG q70; benchmarks/transfer.py)
              in which the class is still top-1; issue 26's target: >= 0.8 for 25 of the 27 dreams
"""

from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.image_measures import luminance_correlation, mean_change, reference_photo
from benchmarks.renders import POST_CLASSES
from benchmarks.transfer import transfer_score
from core.models.classes import imagenet_classes
from core.images import decode_image, fit_longest_side
from core.runner import JobRunner
from core.spec import compile_job

PHOTOS = ("chelsea", "astronaut", "coffee")
TARGETS = {"seen": 8, "correlation": 0.5, "change": 6.0, "transfer": 0.8, "transferred": 25}


def png_bytes(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def dream_toward(runner: JobRunner, photo: str, target: str, seed: int) -> dict:
    """One `!dream target:...` on a scikit-image photo, with what the network and the measures say of the result."""
    source = reference_photo(photo)
    started = time.perf_counter()
    result = runner.run(compile_job("dream", {"target": target}, images=[png_bytes(source)], seed=seed))
    took = time.perf_counter() - started
    dreamt = decode_image(result.data).rgb
    reference = fit_longest_side(source, max(dreamt.size))  # the photo as the dream saw it
    meta = result.metadata
    transfer = transfer_score(runner.network(meta["model"]), dreamt, imagenet_classes().index(target))
    return {"photo": photo, "class": target, "seconds": took, "p": meta["probability"], "top1": meta["top1_name"],
            "seen": meta["top1_name"] == meta["class_name"], "correlation": luminance_correlation(dreamt, reference),
            "change": mean_change(dreamt, reference), "transfer": transfer, "size": list(dreamt.size)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--photos", default=",".join(PHOTOS))
    parser.add_argument("--classes", default=",".join(POST_CLASSES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    photos = tuple(name.strip() for name in args.photos.split(","))
    classes = tuple(name.strip() for name in args.classes.split(","))
    runner = JobRunner(args.device, allow_download=False)
    runner.warm("efficientnet-lite0")
    rows = []
    for photo in photos:
        for target in classes:
            row = dream_toward(runner, photo, target, args.seed)
            rows.append(row)
            print(f"  {photo:9s} {target:14s} p={row['p']:.3f} top-1 {row['top1']:16s} correlation {row['correlation']:.3f}  "
                  f"change {row['change']:5.1f}  transfer {row['transfer']:.2f}  {row['seconds']:5.1f} s", flush=True)
    print("\nphoto      seen (top-1)  correlation min/mean  change min/mean  s/dream")
    checks = {}
    for photo in photos:
        mine = [row for row in rows if row["photo"] == photo]
        seen = sum(row["seen"] for row in mine)
        correlations, changes = [row["correlation"] for row in mine], [row["change"] for row in mine]
        print(f"{photo:9s}  {seen}/{len(mine)}           {min(correlations):.3f} / {np.mean(correlations):.3f}        "
              f"{min(changes):5.1f} / {np.mean(changes):5.1f}   {np.mean([row['seconds'] for row in mine]):5.1f}")
        checks[f"{photo}: seen >= {TARGETS['seen']} of 9"] = seen >= TARGETS["seen"] * len(mine) / 9
        checks[f"{photo}: every correlation >= {TARGETS['correlation']}"] = min(correlations) >= TARGETS["correlation"]
        checks[f"{photo}: every change >= {TARGETS['change']:g}/255"] = min(changes) >= TARGETS["change"]
    transferred = sum(row["transfer"] >= TARGETS["transfer"] for row in rows)
    print(f"transfer >= {TARGETS['transfer']}: {transferred} of {len(rows)} dreams; "
          f"mean transfer {np.mean([row['transfer'] for row in rows]):.2f}")
    if len(rows) == 27:
        checks[f"transfer >= {TARGETS['transfer']} for {TARGETS['transferred']} of 27 (issue 26)"] = transferred >= TARGETS["transferred"]
    for name, ok in checks.items():
        print(f"  {'ok  ' if ok else 'MISS'} {name}")
    if args.out:
        args.out.write_text(json.dumps({"dreams": rows, "checks": checks}, indent=2))


if __name__ == "__main__":
    main()
