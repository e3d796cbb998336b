"""The worker's side on Ray: an actor that serves jobs in a thread and buffers its messages for the bot to pull.

The actor is threaded (several methods may run at once), so the bot can pull messages in a long
poll while it sends jobs and cancel requests. Ray does not keep the order of calls to such an actor,
hence two rules:

- every task comes with its batch number, and a cancel request names the batch and the job's index
  in it, so a request that overtakes its task (or arrives after it) still reaches the right job;
- messages are numbered, and each pull says how many the bot already has: a pull whose answer was
  lost is simply asked again, and nothing is delivered twice or dropped.

This module imports no Ray: the bot side (`_ray_handle`) wraps `RayWorker` with `ray.remote`.
"""

from __future__ import annotations

import os
import pickle
import queue
import threading
from typing import Any

from ._wire import WorkerConfig
from ._process import serve

__all__ = ["RayWorker"]


class RayWorker:
    """One warm runner in a Ray worker process; its serving thread starts with the actor."""

    def __init__(self, config: WorkerConfig):
        self._flags = _CancelFlags()
        self._tasks = _Tasks(self._flags)
        self._outbox = _Outbox()
        self._thread = threading.Thread(target=self._serve, args=(config,), name="dreambot-runner", daemon=True)
        self._thread.start()

    def pid(self) -> int:
        return os.getpid()

    def run(self, batch: int, task: Any) -> None:
        """Queue a task of `_wire` (one job or a BatchTask) as batch number `batch`."""
        self._tasks.put(batch, task)

    def cancel(self, batch: int, index: int) -> None:
        self._flags.request(batch, index)

    def stop(self) -> None:
        """Cancel what runs and end the serving thread once it is done."""
        self._flags.stop()
        self._tasks.put(0, None)

    def pull(self, seen: int, timeout: float) -> tuple[list[bytes], bool]:
        """Messages after the first `seen` (pickled), waiting up to `timeout` seconds for one; and
        whether the serving thread has ended, so that no more will come."""
        return self._outbox.pull(seen, timeout)

    def _serve(self, config: WorkerConfig) -> None:
        try:
            serve(config, self._tasks, self._outbox, self._flags)
        finally:
            self._outbox.close()


class _CancelFlags:
    """`flags[i]`: whether job i of the batch being run should stop. Read by the serving thread only."""

    def __init__(self) -> None:
        self._batch = 0
        self._requested: set[tuple[int, int]] = set()  # (batch, index); set.add is atomic under the GIL
        self._stopping = False

    def begin(self, batch: int) -> None:
        self._batch = batch

    def request(self, batch: int, index: int) -> None:
        self._requested.add((batch, index))

    def stop(self) -> None:
        self._stopping = True

    def __getitem__(self, index: int) -> bool:
        return self._stopping or (self._batch, index) in self._requested


class _Tasks:
    """The serving thread's inbox; taking a task makes its batch the one the cancel flags speak of."""

    def __init__(self, flags: _CancelFlags):
        self._queue: queue.SimpleQueue[tuple[int, Any]] = queue.SimpleQueue()
        self._flags = flags

    def put(self, batch: int, task: Any) -> None:
        self._queue.put((batch, task))

    def recv(self) -> Any:
        batch, task = self._queue.get()
        self._flags.begin(batch)
        return task


class _Outbox:
    """Messages from the serving thread, kept until the bot confirms it has them."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._messages: list[bytes] = []
        self._dropped = 0  # messages before `_messages[0]`, already confirmed
        self._closed = False

    def send(self, message: tuple[Any, ...]) -> None:
        # Pickled here, as a pipe would: a result that cannot travel fails in the serving thread, as
        # that job's error, instead of failing a later pull.
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        with self._changed:
            self._messages.append(data)
            self._changed.notify_all()

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def pull(self, seen: int, timeout: float) -> tuple[list[bytes], bool]:
        with self._changed:
            del self._messages[: max(0, seen - self._dropped)]
            self._dropped = max(self._dropped, seen)
            self._changed.wait_for(lambda: self._messages or self._closed, timeout)
            return list(self._messages), self._closed
