"""`make demo`: the console pipeline on the embedded defaults (bundled model, SQLite, no token).

Feeds a short scripted chat to `dreambot console`: a dream on a real photo, a class render, a zoom
(an animated WebP), then one job too many so the rate limit answers, and the quota and stats.
"""

from __future__ import annotations

import asyncio
import io
import shutil
import sys
from pathlib import Path

from .console import run_console
from .settings import load_settings

OUT = Path("demo-out")


def _photo(name: str) -> str:
    import skimage

    path = Path(skimage.__file__).parent / "data" / name
    if not path.exists():
        sys.exit(f"demo: the sample photo {path} is missing; reinstall scikit-image")
    return str(path)


def main() -> int:
    # A fresh store (so the rate limit starts full) and no results left from an earlier run.
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    settings = load_settings(
        database_url=f"sqlite+aiosqlite:///{OUT / 'dreambot.db'}",
        results_dir=OUT / "results",
        user_burst=3,
        user_refill_seconds=3600,  # so the fourth job is refused however long the first three took
        _env_file=None,
    )
    script = "\n".join(
        [
            "!models",
            f"!dream {_photo('chelsea.png')} layer:mid seed:1",
            "!visualize banana seed:1",
            "!zoom frames:12 size:256 seed:1",
            f"!dream {_photo('coffee.png')} layer:shallow",  # the fourth job in a minute: denied
            "!quota",
            "!stats",
        ]
    )
    for line in script.splitlines():
        print(f"> {line}")
    print()
    code = asyncio.run(run_console(settings, stdin=io.StringIO(script + "\n"), user="demo", wait=True))
    results = sorted((OUT / "results").glob("job-*"))
    print(f"\ndemo outputs ({len(results)} files) are in {(OUT / 'results').resolve()}:")
    for path in results:
        print(f"  {path}")
    return code


if __name__ == "__main__":
    sys.exit(main())
