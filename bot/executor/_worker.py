"""A worker's side: build one runner, warm its models, then run jobs (or batches of jobs) until told to stop.

This is the only code of the executor that runs away from the bot: in a process started with the
"spawn" method (`worker_main`, so it imports everything afresh and shares no threads or CUDA state
with the bot process), or in a thread of a Ray actor (`serve`, through `_ray_actor`).
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
from multiprocessing.connection import Connection
from typing import Any, Callable

from core.jobs import JobResult, JobSpec, ProgressEvent

from ._wire import BatchTask, ErrorInfo, WorkerConfig

__all__ = ["worker_main", "serve", "load_factory"]

_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def load_factory(path: str) -> Callable[..., Any]:
    """Resolve a "package.module:attribute" string to the object it names."""
    module_name, sep, attribute = path.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"runner factory must look like 'package.module:Callable', not {path!r}")
    found: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        found = getattr(found, part)
    return found


def worker_main(
    config: WorkerConfig,
    tasks: Connection,
    results: Connection,
    cancel_flags: Any,  # shared bytes (multiprocessing RawArray): the parent sets flag i to stop job i of a batch
) -> None:
    """The worker process's entry point: `serve` over the two pipes."""
    # Ctrl-C in a terminal reaches the whole process group; the parent decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    serve(config, tasks, results, cancel_flags)


def serve(config: WorkerConfig, tasks: Any, results: Any, cancel_flags: Any) -> None:
    """Build the runner, report ("ready",) or ("start_failed", ...), then run tasks until None comes.

    tasks: `recv()` returns the next task of `_wire` (or None), raising EOFError once the bot is gone.
    results: `send(message)` pickles the message before delivering it, raising BrokenPipeError once
        the bot is gone.
    cancel_flags: `cancel_flags[i]` is true once job i of the current task should stop.
    """
    limit_threads = not any(name in os.environ for name in _THREAD_VARIABLES)  # an explicit setting wins
    if limit_threads:
        # Read by torch's thread pools when torch is imported, which may happen lazily inside the runner.
        os.environ["OMP_NUM_THREADS"] = str(config.num_threads)
    try:
        try:
            runner = load_factory(config.runner_factory)(device=config.device, **config.runner_options)
            if limit_threads and "torch" in sys.modules:
                sys.modules["torch"].set_num_threads(config.num_threads)
            for name in config.warm_models:
                runner.warm(name)
        except Exception as exc:
            results.send(("start_failed", ErrorInfo.from_exception(exc)))
            return
        results.send(("ready",))
        while (task := tasks.recv()) is not None:
            if isinstance(task, BatchTask):
                _run_batch(runner, task.jobs, results, cancel_flags)
            else:
                job_id, spec = task
                _run_job(runner, job_id, spec, results, _flag(cancel_flags, 0))
    except (EOFError, BrokenPipeError):
        return  # the bot process went away: nobody is left to report to


def _die_with_parent() -> None:
    """Ask Linux to kill this worker when the bot process dies, even by SIGKILL.

    Otherwise an orphaned worker would finish its job for nobody while another bot process, having
    adopted the job once the dead one's lease ran out, runs it again. (Linux sends the signal when
    the spawning thread ends: the event loop's, which lives as long as the bot.) Elsewhere the
    worker still exits when it next reads its closed pipe.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    try:
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before the request took effect
        os._exit(1)


def _flag(cancel_flags: Any, index: int) -> Callable[[], bool]:
    return lambda: bool(cancel_flags[index])


def _progress(results: Connection, job_id: str) -> Callable[[ProgressEvent], None]:
    return lambda event: results.send(("progress", job_id, event))


def _run_job(runner: Any, job_id: str, spec: JobSpec, results: Connection, should_cancel: Callable[[], bool]) -> None:
    try:
        outcome = runner.run(spec, progress=_progress(results, job_id), should_cancel=should_cancel)
    except BrokenPipeError:
        raise
    except Exception as exc:
        outcome = exc
    _send_outcome(results, job_id, outcome)


def _run_batch(runner: Any, jobs: tuple[tuple[str, JobSpec], ...], results: Connection, cancel_flags: Any) -> None:
    """Run `jobs` through `runner.run_batch` and send each job's outcome as soon as it is known.

    A runner without `run_batch` runs them one after the other. Whatever happens short of the
    process dying, every job gets its one "result" or "error": the parent waits for all of them.
    """
    run_batch = getattr(runner, "run_batch", None)
    if run_batch is None:
        for index, (job_id, spec) in enumerate(jobs):
            _run_job(runner, job_id, spec, results, _flag(cancel_flags, index))
        return
    sent = [False] * len(jobs)

    def report(index: int, outcome: JobResult | BaseException) -> None:
        if not sent[index]:
            sent[index] = True
            _send_outcome(results, jobs[index][0], outcome)

    try:
        outcomes: list[Any] = list(run_batch(
            [spec for _, spec in jobs],
            [_progress(results, job_id) for job_id, _ in jobs],
            [_flag(cancel_flags, index) for index in range(len(jobs))],
            on_outcome=report,
        ))
    except BrokenPipeError:
        raise
    except Exception as exc:
        outcomes = [exc] * len(jobs)
    for index in range(len(jobs)):
        if index < len(outcomes):
            report(index, outcomes[index])
        else:
            report(index, RuntimeError(f"the runner's run_batch returned {len(outcomes)} outcomes for {len(jobs)} jobs"))


def _send_outcome(results: Connection, job_id: str, outcome: JobResult | BaseException) -> None:
    if isinstance(outcome, BaseException):
        results.send(("error", job_id, ErrorInfo.from_exception(outcome)))
        return
    try:
        results.send(("result", job_id, outcome))
    except BrokenPipeError:
        raise
    except Exception as exc:  # the result did not pickle; send() pickles before writing, so the pipe is intact
        results.send(("error", job_id, ErrorInfo.from_exception(exc)))
