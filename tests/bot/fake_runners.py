"""Stand-ins for core.runner.JobRunner, imported by dotted name inside spawned executor workers.

Specs for them carry `FakeParams` (made directly, or by `fake_compile` in the service's place of
core.spec.compile_job). `FakeRunner.run` does what `spec.params` asks:
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
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

from core.errors import InvalidImage, InvalidParameter, JobCancelled, ModelUnavailable, UnknownModel
from core.jobs import JobResult, JobSpec, ProgressEvent

__all__ = ["FakeParams", "FakeRunner", "UnwarmableRunner", "fake_spec", "fake_compile", "fake_restore", "fake_describe"]


@dataclass(frozen=True)
class FakeParams:
    """What a fake job should do; frozen and hashable like real params, so equal ones batch."""

    model: str = "fake"
    steps: int = 1
    sleep: float = 0.0
    crash_at: int | None = None
    fail: str | None = None
    unknown_model: str | None = None
    bug: str | None = None
    ignore_cancel: bool = False


def fake_spec(kind: str = "dream", *, seed: int = 0, image: bytes | None = None, guide: bytes | None = None, **params: Any) -> JobSpec:
    return JobSpec(kind, FakeParams(**params), image=image, guide=guide, seed=seed)  # type: ignore[arg-type]


class FakeRunner:
    def __init__(self, device: str = "cpu", **options: Any):
        self.device = device
        self.options = options  # what the executor passed on from Settings (precision, allow_download...)
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
        metadata = {"pid": os.getpid(), "device": self.device, "options": self.options, "warmed": list(self.warmed), "started": started,
                    "finished": time.time(), "call": self.calls, "seed": spec.seed, **extra}
        return JobResult(b"ok:" + spec.kind.encode(), "image/png", metadata=metadata)


def _get(params: Any, name: str) -> Any:
    """A FakeParams field, or the default for real params (a recovered job is restored as real params)."""
    return getattr(params, name, getattr(FakeParams, name))


def _check(spec: JobSpec) -> None:
    params = spec.params
    if spec.image == b"not an image":
        raise InvalidImage("the file is not an image")
    if _get(params, "fail") is not None:
        raise InvalidParameter(_get(params, "fail"))
    if _get(params, "unknown_model") is not None:
        raise UnknownModel(_get(params, "unknown_model"), ["inception"])
    if _get(params, "bug") is not None:
        raise RuntimeError(_get(params, "bug"))


def _steps(params: Any, progress: list[Callable[[ProgressEvent], None] | None], cancelled: Callable[[], bool]) -> None:
    steps = int(_get(params, "steps"))
    for step in range(1, steps + 1):
        if _get(params, "crash_at") == step:
            os._exit(1)
        time.sleep(float(_get(params, "sleep")))
        if cancelled() and not _get(params, "ignore_cancel"):
            raise JobCancelled("cancelled")
        for callback in progress:
            if callback is not None:
                callback(ProgressEvent("step", step, steps, step / steps))


class UnwarmableRunner(FakeRunner):
    def warm(self, model_name: str) -> None:
        raise ModelUnavailable(f"weights for {model_name} cannot be found")


def fake_compile(kind: str, options: dict[str, Any] | None = None, *, images: Sequence[bytes] = (), seed: Any = None) -> JobSpec:
    """Stands in for core.spec.compile_job in service tests: the options become FakeParams, unpriced
    (so the executor predicts 0 s and only the cap bounds the job's time)."""
    image, guide = (list(images) + [None, None])[:2]
    return fake_spec(kind, seed=int(seed or 0), image=image, guide=guide, **dict(options or {}))


def fake_restore(kind: str, params: dict[str, Any], *, seed: int, image: bytes | None = None, guide: bytes | None = None) -> JobSpec:
    """Stands in for core.spec.restore_job: a stored fake job back as FakeParams."""
    return fake_spec(kind, seed=seed, image=image, guide=guide, **params)


def fake_describe(spec: JobSpec) -> str:
    """Stands in for the reproduce command: the fake params as options, and the seed."""
    options = " ".join(f"{name}:{value}" for name, value in vars(spec.params).items() if value != getattr(FakeParams(), name))
    return f"{spec.kind} {options} seed:{spec.seed}".replace("  ", " ")


class TimedRunner(FakeRunner):
    """A FakeRunner whose results report stage timings, as core.runner's do: each result's `timings`
    are the runner option `timings` (seconds by stage), so a batch's jobs all report the one shared
    "dream" time of their batch, as the real runner's do."""

    def __init__(self, device: str = "cpu", *, timings: dict[str, float] | None = None, **options: Any):
        super().__init__(device, **options)
        self.timings = dict(timings or {})

    def _result(self, spec: JobSpec, started: float, **extra: Any) -> JobResult:
        return replace(super()._result(spec, started, **extra), timings=dict(self.timings))
