"""The soak's worker runner: the fake runner's tiny jobs, with every execution logged.

Each line of the log is `start SEED PID TIME` or `end SEED PID TIME`, appended in one write (atomic
for lines this short), so the orchestrator can find busy workers to kill and check afterwards that
no job ran in two places at once.
"""

from __future__ import annotations

import os
import time
from typing import Any

from core.jobs import JobResult, JobSpec
from tests.bot.fake_runners import FakeRunner


class SoakRunner(FakeRunner):
    def __init__(self, device: str = "cpu", *, log_path: str, **options: Any):
        super().__init__(device, **options)
        self.log_path = log_path

    def run(self, spec: JobSpec, progress: Any = None, should_cancel: Any = None) -> JobResult:
        self._log("start", spec.seed)
        result = super().run(spec, progress, should_cancel)
        self._log("end", spec.seed)
        return result

    def _log(self, event: str, seed: int) -> None:
        line = f"{event} {seed} {os.getpid()} {time.time():.6f}\n".encode()
        fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
