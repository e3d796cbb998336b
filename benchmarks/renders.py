"""`make bench`, class renders: how natural the default renders look, how well they are seen, how long they take.

    python -m benchmarks.renders [--device cpu|cuda] [--classes banana,starfish] [--seed 0] [--out PATH] [--save DIR]

The nine classes the Inceptionism post rendered from noise are rendered at the defaults in both
styles (natural, the default, and vivid), with one runner in one run, and compared with five colour
photos from scikit-image (benchmarks.image_measures.REFERENCE_PHOTOS). Reported, as the mean over
the classes:
  colourfulness   Hasler-Suesstrunk; natural target 35-75 (photos: about 56)
  blown out       share of channel values <= 2 or >= 253; natural target <= 0.08
  saturation      mean HSV saturation; natural target <= 0.55
  seen            classes whose render the rendering network puts first with p >= 0.5 (natural
                  target: 8 of 9); vivid promises p >= 0.9 for all nine
  time ratio      mean seconds of a natural render / a vivid render; target <= 4
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.image_measures import REFERENCE_PHOTOS, blown_out_share, colourfulness, mean_saturation, reference_photo
from core.images import decode_image
from core.runner import JobRunner
from core.spec import compile_job

POST_CLASSES = ("hartebeest", "measuring cup", "ant", "starfish", "anemone fish", "banana", "parachute", "screw", "dumbbell")
TARGETS = {"colourfulness": (35.0, 75.0), "blown_out": 0.08, "saturation": 0.55, "seen": 8, "time_ratio": 4.0}


def looks(image) -> dict[str, float]:
    return {"colourfulness": colourfulness(image), "blown_out": blown_out_share(image), "saturation": mean_saturation(image)}


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    return {key: float(np.mean([row[key] for row in rows])) for key in rows[0]}


def render_all(runner: JobRunner, style: str, classes: tuple[str, ...], seed: int, save: Path | None = None) -> list[dict]:
    rows = []
    for name in classes:
        started = time.perf_counter()
        result = runner.run(compile_job("visualize", {"target": name, "style": style}, seed=seed))
        took = time.perf_counter() - started
        meta = result.metadata
        if save is not None:
            save.mkdir(parents=True, exist_ok=True)
            (save / f"{style}-{name.replace(' ', '_')}.png").write_bytes(result.data)
        rows.append({"class": name, "seconds": took, "p": meta["probability"], "top1": meta["top1_name"],
                     **looks(decode_image(result.data).rgb)})
        print(f"  {style:7s} {name:14s} p={meta['probability']:.3f} top-1 {meta['top1_name']:16s} "
              f"colourfulness {rows[-1]['colourfulness']:5.1f}  blown {rows[-1]['blown_out']:.3f}  "
              f"saturation {rows[-1]['saturation']:.3f}  {took:5.1f} s", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--classes", default=",".join(POST_CLASSES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    parser.add_argument("--save", type=Path, help="also keep the renders (PNG) in this folder")
    args = parser.parse_args()
    classes = tuple(name.strip() for name in args.classes.split(","))
    runner = JobRunner(args.device, allow_download=False)
    runner.warm("efficientnet-lite0")
    photos = _mean([looks(reference_photo(name)) for name in REFERENCE_PHOTOS])
    rows = {style: render_all(runner, style, classes, args.seed, args.save) for style in ("natural", "vivid")}
    summary = {}
    for style, style_rows in rows.items():
        seen = sum(1 for row in style_rows if row["top1"] == row["class"] and row["p"] >= 0.5)
        summary[style] = {**_mean([{k: row[k] for k in ("colourfulness", "blown_out", "saturation", "seconds")} for row in style_rows]),
                          "seen": seen, "classes": len(style_rows)}
    ratio = summary["natural"]["seconds"] / summary["vivid"]["seconds"]
    print(f"\nmean over {len(classes)} classes   colourfulness  blown out  saturation  seen (p>=0.5)  s/render")
    print(f"photos ({len(REFERENCE_PHOTOS)})              {photos['colourfulness']:6.1f}      {photos['blown_out']:.3f}      {photos['saturation']:.3f}")
    for style, s in summary.items():
        print(f"{style:7s} renders            {s['colourfulness']:6.1f}      {s['blown_out']:.3f}      {s['saturation']:.3f}"
              f"      {s['seen']}/{s['classes']}       {s['seconds']:6.1f}")
    lo, hi = TARGETS["colourfulness"]
    natural = summary["natural"]
    checks = {
        f"colourfulness in {lo:g}-{hi:g}": lo <= natural["colourfulness"] <= hi,
        f"blown out <= {TARGETS['blown_out']}": natural["blown_out"] <= TARGETS["blown_out"],
        f"saturation <= {TARGETS['saturation']}": natural["saturation"] <= TARGETS["saturation"],
        f"seen >= {TARGETS['seen']} of 9": natural["seen"] >= TARGETS["seen"] * len(classes) / 9,
        f"natural/vivid time <= {TARGETS['time_ratio']:g}": ratio <= TARGETS["time_ratio"],
    }
    print(f"natural / vivid time: {ratio:.2f}")
    for name, ok in checks.items():
        print(f"  {'ok  ' if ok else 'MISS'} {name}")
    if args.out:
        args.out.write_text(json.dumps({"photos": photos, "summary": summary, "time_ratio": ratio, "renders": rows}, indent=2))


if __name__ == "__main__":
    main()
