"""Fake runners only the executor's tests use, imported by dotted name where a worker runs them
(see tests/bot/fake_runners.py for the common ones)."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import replace
from typing import Any, Callable, Sequence

from core.jobs import JobResult, JobSpec, ProgressEvent
from tests.bot.fake_runners import FakeRunner

__all__ = ["OneByOneRunner", "BrokenBatchRunner", "ShortBatchRunner", "UnpicklableResultRunner", "ThreadsRunner", "BusyRunner"]

UNPICKLABLE_SEED = 13


class OneByOneRunner:
    """A runner without `run_batch`: a worker must run a batch's jobs through `run`, one after the other."""

    def __init__(self, device: str = "cpu", **options: Any):
        self._runner = FakeRunner(device, **options)

    def warm(self, model_name: str) -> None:
        self._runner.warm(model_name)

    def run(self, spec: JobSpec, progress: Callable[[ProgressEvent], None] | None = None,
            should_cancel: Callable[[], bool] | None = None) -> JobResult:
        return self._runner.run(spec, progress, should_cancel)


class BrokenBatchRunner(FakeRunner):
    """`run_batch` settles the first job through `on_outcome`, then raises: a bug halfway through a batch."""

    def run_batch(self, specs: Sequence[JobSpec], progress: Any = None, should_cancel: Any = None, *,
                  on_outcome: Callable[[int, Any], None] | None = None) -> list[JobResult | Exception]:
        if on_outcome is not None:
            on_outcome(0, self.run(specs[0]))
        raise RuntimeError("the batch fell over")


class ShortBatchRunner(FakeRunner):
    """`run_batch` returns the first job's outcome only, however many jobs came."""

    def run_batch(self, specs: Sequence[JobSpec], progress: Any = None, should_cancel: Any = None, *,
                  on_outcome: Callable[[int, Any], None] | None = None) -> list[JobResult | Exception]:
        return [self.run(specs[0])]


class UnpicklableResultRunner(FakeRunner):
    """A FakeRunner whose result cannot be pickled for a job of seed 13 (say, one holding a lock)."""

    def _result(self, spec: JobSpec, started: float, **extra: Any) -> JobResult:
        result = super()._result(spec, started, **extra)
        if spec.seed == UNPICKLABLE_SEED:
            return replace(result, metadata={**result.metadata, "lock": threading.Lock()})
        return result


class ThreadsRunner(FakeRunner):
    """A FakeRunner whose results say how many threads the worker's torch was given."""

    def _result(self, spec: JobSpec, started: float, **extra: Any) -> JobResult:
        import torch

        return super()._result(spec, started, omp_num_threads=os.environ.get("OMP_NUM_THREADS"),
                               torch_threads=torch.get_num_threads(), **extra)


class BusyRunner(FakeRunner):
    """Works for a minute without a word once a job starts: no progress, no look at its cancel flag,
    no read of its pipe. Meanwhile it holds a lock on the file named by its option `lock_file`, which
    the system lets go of only once the process has ended."""

    def run(self, spec: JobSpec, progress: Any = None, should_cancel: Any = None) -> JobResult:
        import fcntl

        with open(self.options["lock_file"], "a") as held:
            fcntl.flock(held, fcntl.LOCK_EX)
            time.sleep(60)
        return self._result(spec, time.time())
