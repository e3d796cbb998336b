"""The Ray backend: the same pool of warm workers, each a Ray actor pinned to a GPU (or a share of one) or to CPUs.

The scheduling is `_pool.PoolExecutor`'s, exactly as for local processes; only the worker differs
(`_ray_handle.RayWorkerHandle`). Jobs and results travel as plain data through Ray's object store,
so the cluster needs no shared disk, but every node needs this package installed (`dreambot[ray]`)
to import the actor and the runner.

Ray is imported when the executor starts, so the local backend never needs it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from ._devices import resolve_devices
from ._pool import PoolExecutor
from ._ray_handle import RayWorkerHandle
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
    workers, device: as for `PoolExecutor`, where "one per GPU" counts the GPU shares of the cluster;
        a GPU actor's device is "cuda", the GPU Ray gave it.
    The other arguments are `PoolExecutor`'s.
    """

    def __init__(self, *pool_args: Any, address: str = "", cpus_per_actor: float = 1.0, gpus_per_actor: float = 1.0, **pool_options: Any):
        super().__init__(*pool_args, **pool_options)
        if cpus_per_actor <= 0:
            raise ValueError(f"cpus_per_actor must be positive, not {cpus_per_actor}")
        if not 0 < gpus_per_actor <= 1:
            raise ValueError(f"gpus_per_actor must be a share of one GPU, above 0 and at most 1, not {gpus_per_actor}")
        self._address = address
        self._cpus_per_actor = cpus_per_actor
        self._gpus_per_actor = gpus_per_actor
        self._owns_ray = False  # whether close() shuts down the Ray that start() began

    async def _open_backend(self) -> list[str]:
        try:
            import ray
        except ImportError:
            raise WorkerStartFailed(_NO_RAY) from None
        if not ray.is_initialized():
            # ray.init blocks for seconds while it starts or reaches the cluster.
            await asyncio.to_thread(_connect, ray, self._address)
            self._owns_ray = True

        def gpu_slots() -> int:  # how many actors the cluster's GPUs hold (3 / 0.3 is 10.000000000000002)
            return int(ray.cluster_resources().get("GPU", 0) / self._gpus_per_actor + 1e-9)

        devices = resolve_devices(self._requested_workers, self._device, cuda_device_count=gpu_slots)
        self._threads_per_worker = self._requested_threads or max(1, int(self._cpus_per_actor))  # the CPUs Ray gives each actor
        # Ray shows each GPU actor only its own GPU(s), so "cuda" is right on whichever it was given.
        return ["cuda" if device.startswith("cuda") else device for device in devices]

    def _new_worker(self, slot: int, config: WorkerConfig, max_batch: int) -> RayWorkerHandle:
        resources = {"num_cpus": self._cpus_per_actor, "num_gpus": self._gpus_per_actor if config.device == "cuda" else 0}
        return RayWorkerHandle(name=f"dreambot-actor-{slot}", config=config, max_batch=max_batch, resources=resources)

    async def _close_backend(self) -> None:
        if self._owns_ray:
            import ray

            await asyncio.to_thread(ray.shutdown)
            self._owns_ray = False


def _connect(ray: Any, address: str) -> None:
    if address:
        ray.init(address=address, logging_level=logging.WARNING)
        return
    # "local" rather than None: never let a RAY_ADDRESS in the environment send us elsewhere.
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, _node_ip_address="127.0.0.1",
             logging_level=logging.WARNING)
