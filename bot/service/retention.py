"""Disks that do not fill: result files older than RESULT_RETENTION_DAYS are deleted by a sweep.

Every bot process sweeps (each hour, and once soon after it starts), and `dreambot results prune`
sweeps once. Which files may go, and that each goes once, is the store's (store/retention.py): a
file still to post, featured, or in a public web gallery stays; the job row keeps its parameters
and command and records that its result expired, so the galleries say "expired" instead of showing
a broken file. A process deletes only the files its own call marked.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..results import ResultStore
from ..store import ResultFileRow, Store
from .metrics import Metrics

__all__ = ["Retention", "Pruned", "DAY_SECONDS", "SWEEP_SECONDS"]

log = logging.getLogger(__name__)

DAY_SECONDS = 86400.0
SWEEP_SECONDS = 3600.0  # files expire by the day: an hourly sweep is late by at most an hour
_BATCH = 500  # candidates marked in one transaction
# How far back a sweep looks for files marked expired but left behind by a process that died
# between the two: a day covers every hourly sweep of every process since.
LEFTOVER_SECONDS = DAY_SECONDS


@dataclass(frozen=True)
class Pruned:
    """What a sweep deleted, or would delete with `dry_run`: files and their bytes."""

    files: int
    bytes: int
    days: float
    dry_run: bool = False

    @property
    def summary(self) -> str:
        """One line for a person: "deleted 3 result files (1234567 bytes, 1.2 MB) older than 30 days"."""
        size = f"{self.bytes} bytes"
        for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
            if self.bytes >= scale:
                size += f", {self.bytes / scale:.1f} {unit}"
                break
        files = f"{self.files} result file{'' if self.files == 1 else 's'} ({size})"
        return f"{'would delete' if self.dry_run else 'deleted'} {files} older than {self.days:g} days"


class Retention:
    """days: RESULT_RETENTION_DAYS (0 keeps every result forever); metrics: counted where given;
    batch: candidates marked in one transaction."""

    def __init__(self, *, store: Store, results: ResultStore, days: float, metrics: Metrics | None = None,
                 sweep_seconds: float = SWEEP_SECONDS, batch: int = _BATCH) -> None:
        assert days >= 0, f"RESULT_RETENTION_DAYS is checked by Settings; got {days}"
        self.store, self.results, self.days, self.metrics = store, results, days, metrics
        self.sweep_seconds, self.batch = sweep_seconds, batch
        self._task: asyncio.Task[None] | None = None

    async def prune(self, *, days: float | None = None, dry_run: bool = False) -> Pruned:
        """Delete the result files older than `days` (default: the retention) that nothing needs;
        with `dry_run`, only count them. Safe with other processes pruning at once."""
        days = self.days if days is None else days
        assert days > 0, "a retention of 0 days keeps results forever; the caller says so instead of pruning"
        older_than = days * DAY_SECONDS
        files = freed = 0
        after = 0
        while batch := await self.store.retention.expirable(older_than, after=after, limit=self.batch):
            after = batch[-1].job_id
            if dry_run:
                sizes = await asyncio.to_thread(_each, self.results.size, batch)
            else:
                marked = await self.store.retention.expire(batch, older_than)
                sizes = await asyncio.to_thread(_each, self.results.remove, marked)
            found = [size for size in sizes if size is not None]  # a file already gone frees nothing
            files, freed = files + len(found), freed + sum(found)
        # Files a process marked expired and died before deleting (none, almost always).
        left = await self.store.retention.recently_expired(LEFTOVER_SECONDS)
        sizes = await asyncio.to_thread(_each, self.results.size if dry_run else self.results.remove, left)
        found = [size for size in sizes if size is not None]
        files, freed = files + len(found), freed + sum(found)
        if self.metrics is not None and not dry_run:
            self.metrics.results_expired.inc(files)
            self.metrics.result_bytes_freed.inc(freed)
        await self.count_kept()
        return Pruned(files, freed, days, dry_run)

    async def count_kept(self) -> None:
        """Set the metrics' gauges of the result files kept and their bytes, counted now."""
        if self.metrics is not None:
            kept, kept_bytes = await asyncio.to_thread(self.results.usage)
            self.metrics.results_kept.set(kept)
            self.metrics.result_bytes_kept.set(kept_bytes)

    # -- the sweep in a running bot -------------------------------------------------------------------

    def start(self) -> None:
        """Sweep now and then every `sweep_seconds`; where results are kept forever, or in a process
        that only serves the web gallery (days 0), only count what is kept, for the metrics."""
        if (self.days > 0 or self.metrics is not None) and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="result retention")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                if self.days <= 0:
                    await self.count_kept()
                elif (pruned := await self.prune()).files:
                    log.info("deleted %d result file(s) older than %g days (%d bytes)", pruned.files, self.days, pruned.bytes)
            except Exception:  # the store may be briefly away: the next sweep tries again
                log.exception("result retention sweep failed; trying again in %g s", self.sweep_seconds)
            await asyncio.sleep(self.sweep_seconds)


def _each(look: Callable[[str], int | None], rows: Sequence[ResultFileRow]) -> list[int | None]:
    return [look(row.location) for row in rows]
