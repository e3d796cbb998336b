"""What an operator watches: Prometheus metrics (prometheus_client) and the health check.

Two sources, on purpose:
- counts kept in this process as things happen: job seconds (a histogram), admissions refused by
  reason, uploads retried, result files expired and the bytes freed (and kept, at the last sweep). Each bot process serves its own, as Prometheus expects of a fleet.
- counts read from the database at scrape time: jobs by kind and status, the queue length. They
  are the same whichever process serves them, so `dreambot web` alone shows them too.
Live workers come from this process's executor when it has one.
"""

from __future__ import annotations

from typing import Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ..store import Store

__all__ = ["Metrics", "REFUSAL_REASONS"]

# Why an admission was refused, as the label of dreambot_admissions_refused_total.
REFUSAL_REASONS = ("invalid_request", "over_time_cap", "active_jobs", "user_rate", "server_rate", "stopping")

# Job seconds from a fraction of a second (a small dream on a GPU) to the default cap and beyond.
_SECONDS_BUCKETS = (0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)


class _Workers(Protocol):
    def live_workers(self) -> int: ...


class Metrics:
    """The bot's metrics in a registry of their own (so tests and several services never collide).

    store: where job counts are read at scrape time. workers: this process's executor, or None
    (`dreambot web` alone), in which case the health check does not judge workers.
    """

    def __init__(self, store: Store, workers: _Workers | None = None) -> None:
        self.store = store
        self.workers = workers
        self.registry = CollectorRegistry()
        self._jobs = Gauge("dreambot_jobs", "Jobs in the database, by kind and status", ["kind", "status"], registry=self.registry)
        self._queue = Gauge("dreambot_queue_length", "Jobs waiting for a worker, across all bot processes", registry=self.registry)
        self._live = Gauge("dreambot_live_workers", "Workers of this process able to take a job", registry=self.registry)
        # Counted as things happen in this process: `metrics.job_seconds.labels(kind).observe(s)`,
        # `metrics.refusals.labels(reason).inc()` (reason one of REFUSAL_REASONS), `metrics.uploads_retried.inc()`.
        self.job_seconds = Histogram("dreambot_job_seconds", "Seconds a finished job ran on its worker", ["kind"],
                                     buckets=_SECONDS_BUCKETS, registry=self.registry)
        self.refusals = Counter("dreambot_admissions_refused", "Job requests refused before they ran, by reason", ["reason"],
                                registry=self.registry)
        self.uploads_retried = Counter("dreambot_uploads_retried",
                                       "Result uploads sent again smaller after Discord refused their size", registry=self.registry)
        # The retention sweep (retention.py): result files it deleted and their bytes, counted by the
        # process that deleted each; and what the results folder held at this process's last sweep.
        self.results_expired = Counter("dreambot_results_expired", "Result files deleted by the retention sweep",
                                       registry=self.registry)
        self.result_bytes_freed = Counter("dreambot_result_bytes_freed", "Bytes freed by deleting expired result files",
                                          registry=self.registry)
        self.results_kept = Gauge("dreambot_results_kept", "Result files in RESULTS_DIR at this process's last sweep",
                                  registry=self.registry)
        self.result_bytes_kept = Gauge("dreambot_result_bytes_kept", "Bytes of the result files in RESULTS_DIR at this "
                                       "process's last sweep", registry=self.registry)
        for reason in REFUSAL_REASONS:  # every series exists from the start, at zero
            self.refusals.labels(reason)

    # -- what the web front serves ---------------------------------------------------------------------

    async def exposition(self) -> tuple[bytes, str]:
        """The body and content type of /metrics, with the database counts read now."""
        counts = await self.store.jobs.counts()
        self._jobs.clear()
        for (kind, status), n in counts.items():
            self._jobs.labels(kind, status).set(n)
        self._queue.set(sum(n for (_, status), n in counts.items() if status == "queued"))
        self._live.set(self.workers.live_workers() if self.workers is not None else 0)
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    async def health(self) -> tuple[bool, dict[str, str]]:
        """Whether this process can do its work, with one line per check (for /healthz)."""
        checks: dict[str, str] = {}
        try:
            await self.store.ping()
            checks["database"] = "ok"
        except Exception as exc:  # any failure to reach it is the finding, not a crash of the check
            checks["database"] = f"unreachable: {type(exc).__name__}"
        if self.workers is None:
            checks["workers"] = "none in this process"
        else:
            live = self.workers.live_workers()
            checks["workers"] = f"{live} live" if live else "no live worker"
        healthy = checks["database"] == "ok" and not checks["workers"].startswith("no ")
        return healthy, checks
