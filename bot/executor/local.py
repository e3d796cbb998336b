"""The default backend: a pool of long-lived worker processes on this machine, one per GPU or one on CPU.

The scheduling (fair queue, batching, cancel, crash handling) is `_pool.PoolExecutor`'s; this module
only says how a local worker is made: a spawned process (`_process.WorkerProcess`) that talks over
two pipes and takes cancel requests through shared flags.
"""

from __future__ import annotations

import multiprocessing

from ._devices import resolve_devices, threads_per_worker
from ._pool import PoolExecutor
from ._process import WorkerProcess
from ._wire import WorkerConfig

__all__ = ["LocalProcessExecutor"]


class LocalProcessExecutor(PoolExecutor):
    """Runs jobs in `workers` spawned processes on this machine; the arguments are `PoolExecutor`'s."""

    async def _open_backend(self) -> list[str]:
        devices = resolve_devices(self._requested_workers, self._device)
        self._threads_per_worker = threads_per_worker(len(devices))  # together, no more threads than cores
        return devices

    def _new_worker(self, slot: int, config: WorkerConfig, max_batch: int) -> WorkerProcess:
        # Never fork: the bot process may hold threads (and torch may hold CUDA state) a fork would copy half-alive.
        return WorkerProcess(multiprocessing.get_context("spawn"), name=f"dreambot-worker-{slot}", config=config, max_batch=max_batch)
