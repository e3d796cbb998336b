"""`dreambot run` in a process of its own against a running FakeDiscord, for tests with several bots.

    python -m tests.bot.run_on_fake_discord http://127.0.0.1:PORT --label shard-0 [--job-seconds 0.2] [--stdin-lifeline]

Settings come from the environment and `.env` exactly as for `dreambot run` (DISCORD_TOKEN,
DATABASE_URL, SHARD_COUNT, SHARD_IDS, ...), and the bot starts and stops the same way (SIGTERM).
Two things differ: discord.py talks to the fake at the given URL, labelling its requests so the
fake records which process sent what, and the worker runs `PacedRunner` instead of the engine.
With --stdin-lifeline the bot also stops, as on SIGTERM, once its stdin closes: a test that starts
it with a pipe leaves no bot behind even if the test process itself is killed.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from typing import Any, Callable

from core.errors import JobCancelled
from core.jobs import JobResult, JobSpec, ProgressEvent
from tests.bot.fake_runners import FakeRunner

__all__ = ["PacedRunner", "main"]

PACED_RUNNER = "tests.bot.run_on_fake_discord:PacedRunner"  # by module name: run with -m, this module is __main__


class PacedRunner(FakeRunner):
    """The fake runner with a fixed time per job (`job_seconds`, a runner option), so that a test
    can catch a job in flight. Real specs are fine: FakeRunner reads what it needs with defaults."""

    def __init__(self, device: str = "cpu", *, job_seconds: float = 0.0, **options: Any):
        super().__init__(device, **options)
        self.job_seconds = job_seconds

    def run(
        self,
        spec: JobSpec,
        progress: Callable[[ProgressEvent], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
    ) -> JobResult:
        deadline = time.monotonic() + self.job_seconds
        while time.monotonic() < deadline:  # in slices, so that a stopping bot's cancel is seen
            if should_cancel is not None and should_cancel():
                raise JobCancelled("cancelled")
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        return super().run(spec, progress, should_cancel)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="run_on_fake_discord", description=__doc__.splitlines()[0])
    parser.add_argument("fake_url", help="the fake's base_url, http://127.0.0.1:PORT")
    parser.add_argument("--label", required=True, help="one word naming this process in the fake's records")
    parser.add_argument("--job-seconds", type=float, default=0.0, help="how long each job takes")
    parser.add_argument("--stdin-lifeline", action="store_true", help="stop when stdin closes")
    args = parser.parse_args(argv)
    if args.stdin_lifeline:
        threading.Thread(target=_stop_when_stdin_closes, name="stdin-lifeline", daemon=True).start()

    from bot import cli, wiring
    from bot.executor import LocalProcessExecutor
    from bot.settings import Settings
    from tests.fake_discord import patch_discord_urls

    def paced_executor(settings: Settings) -> LocalProcessExecutor:
        return LocalProcessExecutor(workers=1, device="cpu", runner_factory=PACED_RUNNER,
                                    warm_models=(settings.dream_model,), runner_options={"job_seconds": args.job_seconds})

    assert callable(getattr(wiring, "build_executor", None)), \
        "bot.wiring.build_executor(settings) is where the launcher swaps in the paced runner; update the launcher"
    wiring.build_executor = paced_executor  # type: ignore[assignment]
    with patch_discord_urls(args.fake_url, client_label=args.label):
        return cli.main(["run"])


def _stop_when_stdin_closes() -> None:
    # The raw descriptor: a daemon thread blocked in sys.stdin's buffered reader holds its lock and
    # aborts the interpreter's exit.
    while os.read(sys.stdin.fileno(), 4096):
        pass
    os.kill(os.getpid(), signal.SIGTERM)  # the bot's own clean shutdown path


if __name__ == "__main__":
    sys.exit(main())
