"""What crosses between the executor and a worker (pipes, or Ray calls): plain, picklable data.

    parent -> worker   WorkerConfig                       at start: the runner to build and warm
                       (job_id, JobSpec)                  run this job; its cancel flag is flag 0
                       BatchTask                          run these jobs together (`runner.run_batch`);
                                                          job i's cancel flag is flag i
                       None                               finish and exit
    worker -> parent   ("ready",)                         runner built and models warm
                       ("start_failed", ErrorInfo)        could not build the runner or warm a model
                       ("progress", job_id, ProgressEvent)
                       ("result", job_id, JobResult)
                       ("error", job_id, ErrorInfo)

Every job sent gets exactly one "result" or "error", a batch's jobs each their own, in any order;
a worker is free again once all of them have come back.

Exceptions travel as `ErrorInfo` rather than pickled: engine errors such as `UnknownName` build
their message in `__init__`, so unpickling them (which calls `__init__` with the message) would
garble it.
"""

from __future__ import annotations

import importlib
import pickle
import traceback
from dataclasses import dataclass, field
from typing import Any

from core.errors import DreamError
from core.jobs import JobSpec

__all__ = ["WorkerConfig", "BatchTask", "ErrorInfo"]


@dataclass(frozen=True)
class WorkerConfig:
    """What a worker starts with: it builds its runner as `factory(device=..., **runner_options)`,
    warms `warm_models` before it reports ready, and lets its torch use `num_threads` CPU threads."""

    runner_factory: str  # "package.module:Callable"
    device: str
    runner_options: dict[str, Any]
    warm_models: tuple[str, ...]
    num_threads: int


@dataclass(frozen=True)
class BatchTask:
    """Jobs for one worker to run together: (job_id, JobSpec) pairs, in the order of their cancel flags."""

    jobs: tuple[tuple[str, JobSpec], ...]


@dataclass(frozen=True)
class ErrorInfo:
    module: str
    qualname: str
    message: str
    attributes: dict[str, Any] = field(default_factory=dict)  # the exception's picklable instance attributes
    traceback: str = ""

    @property
    def type_name(self) -> str:
        return f"{self.module}.{self.qualname}"

    @classmethod
    def from_exception(cls, exc: BaseException) -> ErrorInfo:
        kind = type(exc)
        return cls(
            module=kind.__module__,
            qualname=kind.__qualname__,
            message=str(exc),
            attributes={key: value for key, value in vars(exc).items() if _picklable(value)},
            traceback="".join(traceback.format_exception(exc)),
        )

    def rebuild(self) -> DreamError | None:
        """The same DreamError subclass with the same message and attributes, or None for any other exception."""
        try:
            found: Any = importlib.import_module(self.module)
            for part in self.qualname.split("."):
                found = getattr(found, part)
        except (ImportError, AttributeError):
            return None
        if not (isinstance(found, type) and issubclass(found, DreamError)):
            return None
        # BaseException.__new__ sets args (hence str()) without running an __init__ whose signature varies.
        error = found.__new__(found, self.message)
        error.__dict__.update(self.attributes)
        return error


def _picklable(value: Any) -> bool:
    try:
        pickle.dumps(value)
    except Exception:
        return False
    return True
