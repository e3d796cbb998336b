"""The bot-side handle of one worker on Ray: a `_ray_actor.RayWorker` actor and the task that pulls its messages.

The handle has the interface of `_process.WorkerProcess`, so `PoolExecutor` schedules both alike.
Calls to the actor are fire-and-forget; everything comes back through one long poll running as an
asyncio task on the bot's loop. When a call fails with `RayActorError` the actor is gone (killed,
crashed, out of memory, its node lost): that is its exit. Ray never restarts it; the pool decides.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import pickle
from typing import Any, Callable

from core.jobs import JobSpec

from ._ray_actor import RayWorker
from ._wire import BatchTask, WorkerConfig

__all__ = ["RayWorkerHandle"]

logger = logging.getLogger(__name__)

_PULL_SECONDS = 5.0  # how long one pull waits for a message; a death ends it at once whatever this is
_RETRY_SECONDS = 0.2  # pause before pulling again from an actor that is unreachable for now, or being killed
# Pulls wait in one thread of the actor while its other methods (run, cancel, stop) need another.
_ACTOR_THREADS = 4


class RayWorkerHandle:
    """Start with `start()`; `on_message(msg)` and, last, `on_exit(None)` are then called on `loop`.

    resources: Ray's actor options that pin it, e.g. {"num_cpus": 1, "num_gpus": 0.5}.
    """

    def __init__(self, *, name: str, config: WorkerConfig, max_batch: int = 1, resources: dict[str, float]):
        self.device = config.device
        self.max_batch = max_batch
        self.pid: int | None = None
        self._name = name
        self._config = config
        self._resources = dict(resources)
        self._actor: Any = None
        self._killed = False  # whether its end was our doing, not news worth a warning
        self._puller: asyncio.Task[None] | None = None
        self._batch = 0  # number of the last task sent; cancel requests name it

    def start(self, loop: asyncio.AbstractEventLoop, on_message: Callable[[tuple[Any, ...]], None], on_exit: Callable[[int | None], None]) -> None:
        self._actor = _remote_worker_class().options(**self._resources).remote(self._config)
        self._puller = loop.create_task(self._pull_loop(on_message, on_exit), name=f"{self._name}-puller")

    def send_batch(self, jobs: list[tuple[str, JobSpec]]) -> None:
        """Send (job_id, spec) pairs to run together; job i is cancelled with `request_cancel(i)`."""
        assert 1 <= len(jobs) <= self.max_batch, f"a batch holds 1 to {self.max_batch} jobs (max_batch), not {len(jobs)}"
        self._batch += 1
        self._actor.run.remote(self._batch, jobs[0] if len(jobs) == 1 else BatchTask(tuple(jobs)))

    def request_cancel(self, index: int = 0) -> None:
        self._actor.cancel.remote(self._batch, index)

    def stop(self) -> None:
        """Ask the actor to cancel its job and exit once it has ended."""
        self._actor.stop.remote()

    def terminate(self) -> None:
        # An actor has no polite signal that interrupts a running job: both ways end it at once.
        self.kill()

    def kill(self) -> None:
        import ray

        self._killed = True
        ray.kill(self._actor, no_restart=True)

    def release(self) -> None:
        """Stop pulling; call once the actor has exited."""
        if self._puller is not None and not self._puller.done():
            self._puller.cancel()

    def join_threads(self, timeout: float) -> None:
        """Nothing to join: the puller is an asyncio task, not a thread."""

    async def _pull_loop(self, on_message: Callable[[tuple[Any, ...]], None], on_exit: Callable[[int | None], None]) -> None:
        from ray.exceptions import ActorUnavailableError, RayActorError

        loop = asyncio.get_running_loop()
        seen = 0
        try:
            self.pid = await self._actor.pid.remote()
            while True:
                try:
                    messages, over = await self._actor.pull.remote(seen, _PULL_SECONDS)
                except ActorUnavailableError:  # a passing network fault: the actor may still be there
                    await asyncio.sleep(_RETRY_SECONDS)
                    continue
                seen += len(messages)
                for data in messages:
                    loop.call_soon(on_message, pickle.loads(data))
                if over:
                    # Its runner has ended (stopped, or could not start): free its CPUs or GPU. Until
                    # the kill lands each pull answers at once; after it, the pull fails as for any death.
                    self.kill()
                    await asyncio.sleep(_RETRY_SECONDS)
        except RayActorError as death:
            level = logging.DEBUG if self._killed else logging.WARNING
            logger.log(level, "ray actor %s (pid %s) is gone: %s", self._name, self.pid, _first_line(death))
        except Exception:
            logger.exception("pulling messages from ray actor %s failed; stopping it", self._name)
            self.kill()
        # Scheduled like the messages, so it comes after them, and outside this task (which it releases).
        loop.call_soon(on_exit, None)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


@functools.cache
def _remote_worker_class() -> Any:
    import ray

    # Restarts and retries are the pool's decision: a dead actor fails its jobs once and is replaced.
    return ray.remote(max_restarts=0, max_task_retries=0, max_concurrency=_ACTOR_THREADS)(RayWorker)
