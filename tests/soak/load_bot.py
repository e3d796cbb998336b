"""The load test's bot: `dreambot run --web` on a fake Discord, with fast fake jobs and its event loop watched.

    python -m tests.soak.load_bot http://127.0.0.1:PORT --lag-file LAG.json [--job-seconds 0.05]

Settings come from the environment only (DISCORD_TOKEN, DATABASE_URL, WORKERS, WEB_PORT, the rate
limits...), and the bot runs as `dreambot run --web` runs it (bot.discord_front.run.run_bot), web
gallery included, until SIGTERM or until its stdin closes. Two things differ: discord.py talks to
the fake Discord at the given URL, and each worker runs PacedRunner (`job_seconds` per job, no
engine) instead of the engine.

A watcher task sleeps 10 ms at a time on the bot's event loop and notes how late each wake-up
comes: a busy loop wakes it late. On exit the samples, `[[wall-clock time, seconds late], ...]`,
go to the lag file as JSON, so the load test can keep those taken while the load ran.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

TICK = 0.010  # seconds the watcher sleeps each time


async def watch_the_loop(samples: list[tuple[float, float]]) -> None:
    """Forever: sleep TICK, and note when the wake-up came and how late."""
    while True:
        before = time.perf_counter()
        await asyncio.sleep(TICK)
        samples.append((time.time(), time.perf_counter() - before - TICK))


async def watched(running: Awaitable[Any], lag_file: Path) -> Any:
    samples: list[tuple[float, float]] = []
    watcher = asyncio.create_task(watch_the_loop(samples), name="loop-lag-watcher")
    try:
        return await running
    finally:
        watcher.cancel()
        lag_file.write_text(json.dumps(samples))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.soak.load_bot", description=__doc__.splitlines()[0])
    parser.add_argument("fake_url", help="the fake's base_url, http://127.0.0.1:PORT")
    parser.add_argument("--lag-file", type=Path, required=True, help="where the loop-lag samples go on exit (JSON)")
    parser.add_argument("--job-seconds", type=float, default=0.05, help="how long each fake job takes")
    args = parser.parse_args(argv)
    threading.Thread(target=_stop_when_stdin_closes, name="stdin-lifeline", daemon=True).start()

    from bot import wiring
    from bot.discord_front.run import run_bot
    from bot.executor import LocalProcessExecutor
    from bot.settings import Settings, load_settings
    from tests.bot.run_on_fake_discord import PACED_RUNNER
    from tests.fake_discord import patch_discord_urls

    def paced_executor(settings: Settings) -> LocalProcessExecutor:
        return LocalProcessExecutor(workers=settings.workers or 1, device="cpu", runner_factory=PACED_RUNNER,
                                    warm_models=(settings.dream_model,), runner_options={"job_seconds": args.job_seconds})

    assert callable(getattr(wiring, "build_executor", None)), \
        "bot.wiring.build_executor(settings) is where the load bot swaps in the paced runner; update tests/soak/load_bot.py"
    wiring.build_executor = paced_executor  # type: ignore[assignment]
    settings = load_settings(_env_file=None)
    with patch_discord_urls(args.fake_url, client_label="load"):
        return asyncio.run(watched(run_bot(settings, web=True), args.lag_file))


def _stop_when_stdin_closes() -> None:
    # The raw descriptor: a daemon thread blocked in sys.stdin's buffered reader would hold its lock at exit.
    while os.read(sys.stdin.fileno(), 4096):
        pass
    os.kill(os.getpid(), signal.SIGTERM)  # the bot's own clean shutdown path


if __name__ == "__main__":
    sys.exit(main())
