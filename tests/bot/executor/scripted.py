"""A backend without processes, for the pool's own logic: each worker is a `ScriptedWorker` handle
that records what the pool asks of it and reports only what the test (or its script) says.

`ScriptedPool` is a `PoolExecutor` over such handles, one per device given; `handles` lists every
handle it made, replacements included, in the order it made them. By default a handle reports
("ready",) as soon as it starts and exits (code 0) when told to stop, terminate or kill; set
`start_with`, `obeys` on the pool to script other workers.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any, Callable, Iterable

from bot.executor import PoolExecutor
from bot.executor._wire import ErrorInfo, WorkerConfig
from core.jobs import JobResult, JobSpec, ProgressEvent

__all__ = ["ScriptedPool", "ScriptedWorker"]

_PIDS = itertools.count(50_000)


class ScriptedWorker:
    """A worker handle the test drives.

    start_with: "ready" (report ready at once), None (report nothing: the test calls `ready`), or an
        exception (report it as ("start_failed", ...), then exit with code 1).
    obeys: which of "stop", "terminate", "kill" make it exit (with codes 0, -15, -9).
    """

    def __init__(self, slot: int, config: WorkerConfig, max_batch: int, *, start_with: Any = "ready",
                 obeys: Iterable[str] = ("stop", "terminate", "kill")):
        self.slot = slot
        self.config = config
        self.device = config.device
        self.max_batch = max_batch
        self.pid: int | None = next(_PIDS)
        self.start_with = start_with
        self.obeys = set(obeys)
        self.sent: list[list[tuple[str, JobSpec]]] = []  # each send_batch's jobs
        self.cancels: list[int] = []  # indexes passed to request_cancel
        self.calls: list[str] = []  # "start", "stop", "terminate", "kill", "release", "join_threads", in order
        self.call_times: dict[str, float] = {}  # the loop's time of each call's first occurrence
        self.exit_code: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_message: Callable[[tuple[Any, ...]], None] | None = None
        self._on_exit: Callable[[int | None], None] | None = None

    # -- the pool's side (WorkerHandle) --------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop, on_message: Callable[[tuple[Any, ...]], None],
              on_exit: Callable[[int | None], None]) -> None:
        self._loop, self._on_message, self._on_exit = loop, on_message, on_exit
        self._record("start")
        if self.start_with == "ready":
            loop.call_soon(on_message, ("ready",))
        elif isinstance(self.start_with, BaseException):
            loop.call_soon(on_message, ("start_failed", ErrorInfo.from_exception(self.start_with)))
            loop.call_soon(self.exit, 1)

    def send_batch(self, jobs: list[tuple[str, JobSpec]]) -> None:
        assert 1 <= len(jobs) <= self.max_batch, f"a batch of {len(jobs)} for max_batch {self.max_batch}"
        self.sent.append(list(jobs))

    def request_cancel(self, index: int = 0) -> None:
        self.cancels.append(index)

    def stop(self) -> None:
        self._signal("stop", 0)

    def terminate(self) -> None:
        self._signal("terminate", -15)

    def kill(self) -> None:
        self._signal("kill", -9)

    def release(self) -> None:
        self._record("release")

    def join_threads(self, timeout: float) -> None:
        self._record("join_threads")

    # -- the test's side -----------------------------------------------------------------------------

    def ready(self) -> None:
        self._send(("ready",))

    def progress(self, job_id: str, step: int = 1, total: int = 1) -> None:
        self._send(("progress", job_id, ProgressEvent("step", step, total, step / total)))

    def result(self, job_id: str, data: bytes = b"done", **metadata: Any) -> None:
        self._send(("result", job_id, JobResult(data, "image/png", metadata=metadata)))

    def error(self, job_id: str, exc: BaseException) -> None:
        self._send(("error", job_id, ErrorInfo.from_exception(exc)))

    def exit(self, code: int | None) -> None:
        """The worker is gone (a crash when it had work): reported once, as a real handle does."""
        if self.exit_code is not None or self._on_exit is None:
            return
        self.exit_code = code if code is not None else -1
        self._on_exit(code)

    @property
    def exited(self) -> bool:
        return self.exit_code is not None

    def _send(self, message: tuple[Any, ...]) -> None:
        assert self._on_message is not None, "start the worker first"
        self._on_message(message)

    def _record(self, call: str) -> None:
        self.calls.append(call)
        if self._loop is not None:
            self.call_times.setdefault(call, self._loop.time())

    def _signal(self, how: str, code: int) -> None:
        self._record(how)
        if how in self.obeys and self._loop is not None:
            self._loop.call_soon(self.exit, code)


class ScriptedPool(PoolExecutor):
    """A PoolExecutor whose workers are ScriptedWorkers, one per device in `devices`."""

    def __init__(self, devices: Iterable[str] = ("cpu",), **kwargs: Any):
        kwargs.setdefault("runner_factory", "tests.bot.fake_runners:FakeRunner")  # never imported: no worker runs it
        self.slot_devices = list(devices)
        super().__init__(workers=len(self.slot_devices), **kwargs)
        self.handles: list[ScriptedWorker] = []
        self.start_with: Any = "ready"  # for the handles made from now on
        self.obeys: Iterable[str] = ("stop", "terminate", "kill")

    async def _open_backend(self) -> list[str]:
        self._threads_per_worker = self._requested_threads or 1
        return list(self.slot_devices)

    def _new_worker(self, slot: int, config: WorkerConfig, max_batch: int) -> ScriptedWorker:
        handle = ScriptedWorker(slot, config, max_batch, start_with=self.start_with, obeys=self.obeys)
        self.handles.append(handle)
        return handle

    def handle_of(self, job_id: str) -> ScriptedWorker:
        """The handle the job was last sent to."""
        for handle in reversed(self.handles):
            if any(sent_id == job_id for batch in handle.sent for sent_id, _ in batch):
                return handle
        raise AssertionError(f"job {job_id!r} was sent to no worker")
