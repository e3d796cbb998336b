"""The Ray backend: the same pool of warm workers, each a Ray actor pinned to a GPU (or a share of one) or to CPUs.

The scheduling is `_pool.PoolExecutor`'s, exactly as for local processes; only the worker differs
(`_ray_handle.RayWorkerHandle`). Jobs and results travel as plain data through Ray's object store,
so the cluster needs no shared disk, but every node needs this package installed (`dreambot[ray]`)
to import the actor and the runner.

Ray is imported when the executor starts, so the local backend never needs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from typing import Any

from ._devices import resolve_devices
from ._pool import PoolExecutor
from ._ray_handle import RayWorkerHandle, demand, never_fits
from ._wire import WorkerConfig
from .errors import WorkerStartFailed

__all__ = ["RayExecutor"]

logger = logging.getLogger(__name__)

_NO_RAY = "EXECUTOR=ray needs the ray package: pip install 'dreambot[ray]'"


class RayExecutor(PoolExecutor):
    """Runs jobs on `workers` Ray actors, each holding one runner built by `runner_factory`.

    address: "" starts a private Ray instance on this machine (no dashboard, loopback address);
        "auto" joins the cluster this machine belongs to, "ray://host:port" one through Ray Client.
        When Ray is already initialised in this process it is used as it is, and left running.
    cpus_per_actor: CPUs each actor holds on its node (and the torch threads it uses).
    gpus_per_actor: the share of a GPU each GPU actor holds, e.g. 0.5 for two actors per GPU.
    start_timeout: seconds to reach the cluster (or start the private instance), and again for Ray
        to find each actor a node with its resources free; past either, `start` fails with one line
        saying what was asked and what the cluster has. Actors that no node of the cluster can ever
        hold are refused at once.
    workers, device: as for `PoolExecutor`, where "one per GPU" counts the GPU shares of the cluster;
        a GPU actor's device is "cuda", the GPU Ray gave it.
    The other arguments are `PoolExecutor`'s.
    """

    def __init__(self, *pool_args: Any, address: str = "", cpus_per_actor: float = 1.0, gpus_per_actor: float = 1.0,
                 start_timeout: float = 60.0, **pool_options: Any):
        super().__init__(*pool_args, **pool_options)
        if start_timeout <= 0:
            raise ValueError(f"start_timeout must be a positive number of seconds, not {start_timeout}")
        if cpus_per_actor <= 0:
            raise ValueError(f"cpus_per_actor must be positive, not {cpus_per_actor}")
        if not 0 < gpus_per_actor <= 1:
            raise ValueError(f"gpus_per_actor must be a share of one GPU, above 0 and at most 1, not {gpus_per_actor}")
        self._address = address
        self._cpus_per_actor = cpus_per_actor
        self._gpus_per_actor = gpus_per_actor
        self._start_timeout = start_timeout
        self._owns_ray = False  # whether close() shuts down the Ray that start() began
        self._ray_ended = threading.Event()  # lets the thread that began it end (see _connect_within)

    async def _open_backend(self) -> list[str]:
        try:
            import ray
        except ImportError:
            raise WorkerStartFailed(_NO_RAY) from None
        if not ray.is_initialized():
            await _connect_within(self._start_timeout, ray, self._address, self._ray_ended)
            self._owns_ray = True

        def gpu_slots() -> int:  # how many actors the cluster's GPUs hold (3 / 0.3 is 10.000000000000002)
            return int(ray.cluster_resources().get("GPU", 0) / self._gpus_per_actor + 1e-9)

        devices = resolve_devices(self._requested_workers, self._device, cuda_device_count=gpu_slots)
        self._threads_per_worker = self._requested_threads or max(1, int(self._cpus_per_actor))  # the CPUs Ray gives each actor
        # Ray shows each GPU actor only its own GPU(s), so "cuda" is right on whichever it was given.
        devices = ["cuda" if device.startswith("cuda") else device for device in devices]
        nodes = await asyncio.to_thread(lambda: [node["Resources"] for node in ray.nodes() if node.get("Alive")])
        for device in sorted(set(devices)):
            # Ray would keep such an actor pending for ever, however long start() waited.
            if (why := never_fits(demand(self._actor_resources(device)), device, nodes)) is not None:
                raise WorkerStartFailed(why)
        return devices

    def _actor_resources(self, device: str) -> dict[str, float]:
        return {"num_cpus": self._cpus_per_actor, "num_gpus": self._gpus_per_actor if device == "cuda" else 0}

    def _new_worker(self, slot: int, config: WorkerConfig, max_batch: int) -> RayWorkerHandle:
        return RayWorkerHandle(name=f"dreambot-actor-{slot}", config=config, max_batch=max_batch,
                               resources=self._actor_resources(config.device), place_timeout=self._start_timeout)

    async def _close_backend(self) -> None:
        if self._owns_ray:
            import ray

            await asyncio.to_thread(ray.shutdown)
            self._owns_ray = False
            self._ray_ended.set()


async def _connect_within(timeout: float, ray: Any, address: str, ended: threading.Event) -> None:
    """`_connect`, failing with one line when it fails or takes more than `timeout` seconds.

    ray.init blocks for seconds while it starts Ray or reaches the cluster, and Ray Client retries
    an unreachable address for about 30 s; it runs in a daemon thread, so that one given up on
    does not hold the process at exit. The thread lives on until `ended` is set: the processes of
    a private instance are killed when the thread that started them ends (Ray sets their
    PR_SET_PDEATHSIG, which follows the thread, not the process)."""
    what = f"could not reach the Ray cluster at {address}" if address else "could not start a private Ray instance"
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def settle(error: BaseException | None) -> None:
        def on_loop() -> None:
            if not done.done():
                done.set_result(None) if error is None else done.set_exception(error)
        try:
            loop.call_soon_threadsafe(on_loop)
        except RuntimeError:  # the loop is closed: start() gave up long ago
            pass

    def connect() -> None:
        try:
            _connect(ray, address)
        except BaseException as error:  # handed to the loop, which raises it in start()
            settle(error)
            return
        settle(None)
        ended.wait()

    threading.Thread(target=connect, name="dreambot-ray-init", daemon=True).start()
    try:
        await asyncio.wait_for(asyncio.shield(done), timeout)
    except TimeoutError:
        raise WorkerStartFailed(f"{what} within {timeout:g}s") from None
    except Exception as error:
        text = str(error).strip()
        raise WorkerStartFailed(f"{what}: {text.splitlines()[0] if text else type(error).__name__}") from error


# While a private instance starts: Ray takes its node's address from this variable (read when
# ray_constants is imported, so the module's copy is set too). "0" makes it 127.0.0.1, and Ray then
# binds every server of the node (GCS, raylet, workers, agents) to loopback instead of all addresses.
_LOOPBACK_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
# The autoscaler's metrics port is fixed (44217) unless this says otherwise; 0 picks a free one, so
# two bots (or a test and a bot) on one machine do not collide.
_METRICS_PORT = "AUTOSCALER_METRIC_PORT"


def _connect(ray: Any, address: str) -> None:
    if address:
        ray.init(address=address, logging_level=logging.WARNING)
        return
    with loopback_only():
        # "local" rather than None: never let a RAY_ADDRESS in the environment send us elsewhere.
        ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, _node_ip_address="127.0.0.1",
                 logging_level=logging.WARNING)


@contextlib.contextmanager
def loopback_only() -> Iterator[None]:
    """While a private Ray instance starts inside this block, its servers listen on loopback only.

    The processes Ray starts inherit the environment; it is restored afterwards, so that nothing
    else this process starts does. The test suite's own Ray starts the same way."""
    from ray._private import ray_constants

    saved = {name: os.environ.get(name) for name in (_LOOPBACK_ONLY, _METRICS_PORT)}
    saved_cluster = ray_constants.ENABLE_RAY_CLUSTER
    os.environ[_LOOPBACK_ONLY] = "0"
    os.environ.setdefault(_METRICS_PORT, "0")
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_cluster
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
