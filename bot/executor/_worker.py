"""The worker process: build one runner, warm its models, then run jobs one at a time until told to stop.

This is the only code of the executor that runs in the child. It is started with the "spawn" method,
so it imports everything afresh and shares no threads or CUDA state with the bot process.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
from multiprocessing.connection import Connection
from typing import Any, Callable

from core.jobs import JobSpec, ProgressEvent

from ._wire import ErrorInfo

__all__ = ["worker_main", "load_factory"]

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
    runner_factory: str,
    device: str,
    warm_models: tuple[str, ...],
    num_threads: int,
    tasks: Connection,
    results: Connection,
    cancel_flag: Any,  # a shared byte (multiprocessing RawValue) the parent sets to ask for a stop
) -> None:
    # Ctrl-C in a terminal reaches the whole process group; the parent decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    limit_threads = not any(name in os.environ for name in _THREAD_VARIABLES)  # an explicit setting wins
    if limit_threads:
        # Read by torch's thread pools when torch is imported, which may happen lazily inside the runner.
        os.environ["OMP_NUM_THREADS"] = str(num_threads)
    try:
        try:
            runner = load_factory(runner_factory)(device=device)
            if limit_threads and "torch" in sys.modules:
                sys.modules["torch"].set_num_threads(num_threads)
            for name in warm_models:
                runner.warm(name)
        except Exception as exc:
            results.send(("start_failed", ErrorInfo.from_exception(exc)))
            return
        results.send(("ready",))
        while (task := tasks.recv()) is not None:
            job_id, spec = task
            _run_job(runner, job_id, spec, results, lambda: bool(cancel_flag.value))
    except (EOFError, BrokenPipeError):
        return  # the bot process went away: nobody is left to report to


def _run_job(runner: Any, job_id: str, spec: JobSpec, results: Connection, should_cancel: Callable[[], bool]) -> None:
    def progress(event: ProgressEvent) -> None:
        results.send(("progress", job_id, event))

    try:
        result = runner.run(spec, progress=progress, should_cancel=should_cancel)
    except BrokenPipeError:
        raise
    except Exception as exc:
        results.send(("error", job_id, ErrorInfo.from_exception(exc)))
        return
    try:
        results.send(("result", job_id, result))
    except BrokenPipeError:
        raise
    except Exception as exc:  # the result did not pickle; send() pickles before writing, so the pipe is intact
        results.send(("error", job_id, ErrorInfo.from_exception(exc)))
