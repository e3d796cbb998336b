"""The bot-side handle of one worker process: the process, its two pipes, and the threads that use them.

Each pipe has one writer and one reader, so a worker killed in the middle of a message can corrupt
nothing but its own pipe (a shared multiprocessing.Queue could be left locked for everyone). The
blocking reads and writes happen in two small threads per worker; the event loop only ever receives
whole messages through `call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import multiprocessing.connection
import queue
import threading
from multiprocessing.context import SpawnContext
from typing import Any, Callable

from core.jobs import JobSpec

from ._wire import BatchTask, WorkerConfig
from ._worker import worker_main

__all__ = ["WorkerProcess"]

_STOP_WRITER = object()


class WorkerProcess:
    """Start with `start()`; `on_message(msg)` and, last, `on_exit(exitcode)` are then called on `loop`."""

    def __init__(
        self,
        ctx: SpawnContext,
        *,
        name: str,
        config: WorkerConfig,
        max_batch: int = 1,
    ):
        self.device = config.device
        self.max_batch = max_batch
        self._task_reader, self._task_writer = ctx.Pipe(duplex=False)
        self._result_reader, self._result_writer = ctx.Pipe(duplex=False)
        # One flag per job of a batch. Lock-free: a worker killed mid-read cannot leave it locked.
        self._cancel_flags = ctx.RawArray("b", max(1, max_batch))
        self._process = ctx.Process(
            target=worker_main,
            name=name,
            args=(config, self._task_reader, self._result_writer, self._cancel_flags),
            daemon=True,  # killed with the bot process should it exit without closing the executor
        )
        self._outbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self.pid: int | None = None

    def start(self, loop: asyncio.AbstractEventLoop, on_message: Callable[[tuple[Any, ...]], None], on_exit: Callable[[int | None], None]) -> None:
        try:
            self._process.start()
        finally:
            # The child has its own copies now; without ours, each side sees end-of-file when the other dies.
            self._task_reader.close()
            self._result_writer.close()
        self.pid = self._process.pid
        name = self._process.name
        self._threads = [
            threading.Thread(target=self._read_loop, args=(loop, on_message, on_exit), name=f"{name}-reader", daemon=True),
            threading.Thread(target=self._write_loop, name=f"{name}-writer", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def send_job(self, job_id: str, spec: JobSpec) -> None:
        self._set_flags(0)  # before the job is sent, so the worker can never see a stale request
        self._outbox.put((job_id, spec))

    def send_batch(self, jobs: list[tuple[str, JobSpec]]) -> None:
        """Send (job_id, spec) pairs to run together; job i is cancelled with `request_cancel(i)`."""
        assert 1 <= len(jobs) <= len(self._cancel_flags), f"a batch holds 1 to {len(self._cancel_flags)} jobs (max_batch), not {len(jobs)}"
        if len(jobs) == 1:
            self.send_job(*jobs[0])
            return
        self._set_flags(0)
        self._outbox.put(BatchTask(tuple(jobs)))

    def request_cancel(self, index: int = 0) -> None:
        self._cancel_flags[index] = 1

    def stop(self) -> None:
        """Ask the worker to exit once its current job (or batch) ends."""
        self._set_flags(1)
        self._outbox.put(None)

    def _set_flags(self, value: int) -> None:
        for index in range(len(self._cancel_flags)):
            self._cancel_flags[index] = value

    def terminate(self) -> None:
        self._process.terminate()

    def kill(self) -> None:
        self._process.kill()

    def release(self) -> None:
        """Let the writer thread end; call once the worker has exited."""
        self._outbox.put(_STOP_WRITER)

    def join_threads(self, timeout: float) -> None:
        for thread in self._threads:
            thread.join(timeout)

    def _write_loop(self) -> None:
        try:
            while (message := self._outbox.get()) is not _STOP_WRITER:
                try:
                    self._task_writer.send(message)
                except OSError:
                    return  # the worker is gone; the reader reports its exit
                if message is None:
                    return
        finally:
            self._task_writer.close()

    def _read_loop(self, loop: asyncio.AbstractEventLoop, on_message: Callable[[tuple[Any, ...]], None], on_exit: Callable[[int | None], None]) -> None:
        conn, sentinel = self._result_reader, self._process.sentinel
        try:
            while True:
                ready = multiprocessing.connection.wait([conn, sentinel])
                if conn not in ready:
                    break  # exited, and everything it sent has been read
                try:
                    message = conn.recv()
                except (EOFError, OSError):  # OSError: killed halfway through writing a message
                    break
                if not _post(loop, on_message, message):
                    return
            self._process.join()
        finally:
            conn.close()
        _post(loop, on_exit, self._process.exitcode)


def _post(loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: Any) -> bool:
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:  # the loop is closed: nobody is listening any more
        return False
    return True
