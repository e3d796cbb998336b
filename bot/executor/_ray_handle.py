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
from ._wire import BatchTask, ErrorInfo, WorkerConfig
from .errors import WorkerStartFailed

__all__ = ["RayWorkerHandle"]

logger = logging.getLogger(__name__)

_PULL_SECONDS = 5.0  # how long one pull waits for a message; a death ends it at once whatever this is
_RETRY_SECONDS = 0.2  # pause before pulling again from an actor that is unreachable for now, or being killed
# Pulls wait in one thread of the actor while its other methods (run, cancel, stop) need another.
_ACTOR_THREADS = 4


class RayWorkerHandle:
    """Start with `start()`; `on_message(msg)` and, last, `on_exit(None)` are then called on `loop`.

    resources: Ray's actor options that pin it, e.g. {"num_cpus": 1, "num_gpus": 0.5}.
    place_timeout: seconds Ray has to find the actor a node with those resources free; past them
        the worker reports a start failure that says what it needs and what the cluster has, and
        exits. None: wait as long as it takes.
    """

    def __init__(self, *, name: str, config: WorkerConfig, max_batch: int = 1, resources: dict[str, float],
                 place_timeout: float | None = None):
        self.device = config.device
        self.max_batch = max_batch
        self.pid: int | None = None
        self._name = name
        self._config = config
        self._resources = dict(resources)
        self._place_timeout = place_timeout
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
            try:
                # The first answer comes once Ray has placed the actor and built it.
                self.pid = await asyncio.wait_for(self._actor.pid.remote(), self._place_timeout)
            except TimeoutError:
                why = await asyncio.to_thread(_not_placed, demand(self._resources), self._place_timeout)
                loop.call_soon(on_message, ("start_failed", ErrorInfo.from_exception(WorkerStartFailed(why))))
                self.kill()  # or it would wait for its place for ever
                loop.call_soon(on_exit, None)
                return
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


def demand(resources: dict[str, float]) -> dict[str, float]:
    """What an actor with these options holds on its node, in Ray's resource names: {"CPU": 1.0, "GPU": 0.5}."""
    names = {"num_cpus": "CPU", "num_gpus": "GPU"}
    held = {names.get(key, key): float(amount) for key, amount in resources.items() if key in names}
    return {name: amount for name, amount in held.items() if amount > 0}


def never_fits(need: dict[str, float], device: str, nodes: list[dict[str, float]]) -> str | None:
    """Why no node among `nodes` (each node's total resources) can ever hold an actor that needs
    `need`, as one line; None when one can. An actor lives on one node, so the cluster's totals are
    not enough."""
    if any(all(node.get(name, 0.0) + 1e-9 >= amount for name, amount in need.items()) for node in nodes):
        return None
    if need.get("GPU") and not any(node.get("GPU") for node in nodes):
        return f"the Ray cluster has no GPU; device {device} needs {need['GPU']:g} per worker"
    offers = "; ".join(_amounts({name: node.get(name, 0.0) for name in need}) for node in nodes[:5]) or "none"
    return f"no node of the Ray cluster can hold a {device} worker, which needs {_amounts(need)} (its nodes have: {offers})"


def _not_placed(need: dict[str, float], timeout: float | None) -> str:
    """Why an actor still has no node after `timeout` seconds, from what the cluster has now."""
    import ray

    nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
    total, free = ray.cluster_resources(), ray.available_resources()
    has = ", ".join(f"{name} {total.get(name, 0.0):g} ({free.get(name, 0.0):g} free)" for name in need)
    busy = "the nodes that could hold it are busy" if never_fits(need, "", nodes) is None else "no node can hold it now"
    return f"Ray found no place for the worker within {timeout:g}s: it needs {_amounts(need)}, the cluster has {has}; {busy}"


def _amounts(resources: dict[str, float]) -> str:
    return ", ".join(f"{name} {amount:g}" for name, amount in resources.items())


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


@functools.cache
def _remote_worker_class() -> Any:
    import ray

    # Restarts and retries are the pool's decision: a dead actor fails its jobs once and is replaced.
    return ray.remote(max_restarts=0, max_task_retries=0, max_concurrency=_ACTOR_THREADS)(RayWorker)
