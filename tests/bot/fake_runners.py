"""Stand-ins for core.runner.JobRunner, imported by dotted name inside spawned executor workers.

`FakeRunner.run` does what `spec.params` asks:
    steps, sleep     emit `steps` progress events, sleeping `sleep` seconds before each (default 1, 0)
    crash_at         os._exit(1) just before that step, as a segfault or the OOM killer would
    fail             raise InvalidParameter(fail)
    unknown_model    raise UnknownModel(unknown_model, ["inception"])
    bug              raise RuntimeError(bug), an error outside the engine's family
    ignore_cancel    never look at should_cancel
and raises InvalidImage when `spec.image` is b"not an image".
The result's metadata tells the test which process and device ran it, what was warmed, and when;
`call` numbers the runner's calls of `run` and `run_batch`, and `via` says which one ran the job.

`FakeRunner.run_batch` runs its specs as one shared loop of the first good spec's steps: every job
gets each step's progress, the loop stops early only when all jobs are cancelled, and a job whose
own flag is set by the end gets JobCancelled. Its results add `batch_size` (how many specs came),
`batch_index` and `batch_cancelled` (how many of them ended cancelled).
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Sequence

from core.errors import InvalidImage, InvalidParameter, JobCancelled, ModelUnavailable, UnknownModel
from core.jobs import JobResult, JobSpec, ProgressEvent

__all__ = ["FakeRunner", "UnwarmableRunner"]


class FakeRunner:
    def __init__(self, device: str = "cpu"):
        self.device = device
        self.warmed: list[str] = []
        self.calls = 0

    def warm(self, model_name: str) -> None:
        self.warmed.append(model_name)

    def run(
        self,
        spec: JobSpec,
        progress: Callable[[ProgressEvent], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
    ) -> JobResult:
        self.calls += 1
        started = time.time()
        _check(spec)
        _steps(spec.params, [progress], lambda: should_cancel is not None and should_cancel())
        return self._result(spec, started, via="run")

    def run_batch(
        self,
        specs: Sequence[JobSpec],
        progress: Sequence[Callable[[ProgressEvent], None] | None] | None = None,
        should_cancel: Sequence[Callable[[], bool] | None] | None = None,
        *,
        on_outcome: Callable[[int, Any], None] | None = None,
    ) -> list[JobResult | Exception]:
        self.calls += 1
        started = time.time()
        count = len(specs)
        progress = list(progress or [None] * count)
        checks = list(should_cancel or [None] * count)
        outcomes: list[Any] = [None] * count

        def settle(index: int, outcome: Any) -> None:
            outcomes[index] = outcome
            if on_outcome is not None:
                on_outcome(index, outcome)

        def cancelled(index: int) -> bool:
            check = checks[index]
            return check is not None and check()

        live = []
        for index, spec in enumerate(specs):
            try:
                _check(spec)
                live.append(index)
            except Exception as exc:
                settle(index, exc)
        if live:
            try:
                _steps(specs[live[0]].params, [progress[i] for i in live], lambda: all(cancelled(i) for i in live))
            except JobCancelled as exc:
                for index in live:
                    settle(index, exc)
                return outcomes
            dropped = [index for index in live if cancelled(index)]
            for index in live:
                if index in dropped:
                    settle(index, JobCancelled("cancelled"))
                else:
                    settle(index, self._result(specs[index], started, via="run_batch", batch_size=count,
                                               batch_index=index, batch_cancelled=len(dropped)))
        return outcomes

    def _result(self, spec: JobSpec, started: float, **extra: Any) -> JobResult:
        metadata = {"pid": os.getpid(), "device": self.device, "warmed": list(self.warmed), "started": started,
                    "finished": time.time(), "call": self.calls, "seed": spec.seed, **extra}
        return JobResult(b"ok:" + spec.kind.encode(), "image/png", metadata=metadata)


def _check(spec: JobSpec) -> None:
    params = spec.params
    if spec.image == b"not an image":
        raise InvalidImage("the file is not an image")
    if "fail" in params:
        raise InvalidParameter(params["fail"])
    if "unknown_model" in params:
        raise UnknownModel(params["unknown_model"], ["inception"])
    if "bug" in params:
        raise RuntimeError(params["bug"])


def _steps(params: dict[str, Any], progress: list[Callable[[ProgressEvent], None] | None], cancelled: Callable[[], bool]) -> None:
    steps = int(params.get("steps", 1))
    for step in range(1, steps + 1):
        if params.get("crash_at") == step:
            os._exit(1)
        time.sleep(float(params.get("sleep", 0.0)))
        if cancelled() and not params.get("ignore_cancel"):
            raise JobCancelled("cancelled")
        for callback in progress:
            if callback is not None:
                callback(ProgressEvent("step", step, steps))


class UnwarmableRunner(FakeRunner):
    def warm(self, model_name: str) -> None:
        raise ModelUnavailable(f"weights for {model_name} cannot be found")
