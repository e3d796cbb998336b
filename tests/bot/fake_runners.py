"""Stand-ins for core.runner.JobRunner, imported by dotted name inside spawned executor workers.

`FakeRunner.run` does what `spec.params` asks:
    steps, sleep     emit `steps` progress events, sleeping `sleep` seconds before each (default 1, 0)
    crash_at         os._exit(1) just before that step, as a segfault or the OOM killer would
    fail             raise InvalidParameter(fail)
    unknown_model    raise UnknownModel(unknown_model, ["inception"])
    bug              raise RuntimeError(bug), an error outside the engine's family
    ignore_cancel    never look at should_cancel
The result's metadata tells the test which process and device ran it, what was warmed, and when.
"""

from __future__ import annotations

import os
import time
from typing import Callable

from core.errors import InvalidParameter, JobCancelled, ModelUnavailable, UnknownModel
from core.jobs import JobResult, JobSpec, ProgressEvent

__all__ = ["FakeRunner", "UnwarmableRunner"]


class FakeRunner:
    def __init__(self, device: str = "cpu"):
        self.device = device
        self.warmed: list[str] = []

    def warm(self, model_name: str) -> None:
        self.warmed.append(model_name)

    def run(
        self,
        spec: JobSpec,
        progress: Callable[[ProgressEvent], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
    ) -> JobResult:
        params = spec.params
        started = time.time()
        if "fail" in params:
            raise InvalidParameter(params["fail"])
        if "unknown_model" in params:
            raise UnknownModel(params["unknown_model"], ["inception"])
        if "bug" in params:
            raise RuntimeError(params["bug"])
        steps = int(params.get("steps", 1))
        for step in range(1, steps + 1):
            if params.get("crash_at") == step:
                os._exit(1)
            time.sleep(float(params.get("sleep", 0.0)))
            if should_cancel is not None and should_cancel() and not params.get("ignore_cancel"):
                raise JobCancelled("cancelled")
            if progress is not None:
                progress(ProgressEvent("step", step, steps))
        metadata = {"pid": os.getpid(), "device": self.device, "warmed": list(self.warmed), "started": started, "finished": time.time()}
        return JobResult(b"ok:" + spec.kind.encode(), "image/png", metadata=metadata)


class UnwarmableRunner(FakeRunner):
    def warm(self, model_name: str) -> None:
        raise ModelUnavailable(f"weights for {model_name} cannot be found")
