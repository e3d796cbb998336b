"""Results never lost: a finished job's result that Discord refused stays "finished, not posted"
in the store, and is offered again, with a growing wait between tries, until it is posted, sent to
its requester by DM, or recorded as undeliverable. The state is in the store, so a result refused
before a restart is posted by the next start, by whichever process holds its server.
"""

from __future__ import annotations

import time
from dataclasses import replace

from ..results import ResultStore
from ..store import JobRecord, Store
from .leases import Owns

__all__ = ["Delivery", "RETRY_MAX_SECONDS"]

RETRY_MAX_SECONDS = 3600.0  # a result Discord keeps refusing is still tried every hour


class Delivery:
    """retry_seconds: the wait before posting a refused result again, doubled at each further refusal."""

    def __init__(self, *, store: Store, results: ResultStore, retry_seconds: float = 30.0) -> None:
        self.store, self.results, self.retry_seconds = store, results, retry_seconds
        self.closing = False

    def retry_delay(self, attempts: int) -> float:
        """Seconds to wait after the `attempts`-th try at posting a result before the next one."""
        return min(self.retry_seconds * 2 ** max(0, attempts - 1), RETRY_MAX_SECONDS)

    async def due(self, owns: Owns = lambda record: True, *, now: float | None = None) -> list[JobRecord]:
        """Results still to post whose wait since their last try is over, for the front that `owns`
        them; each is claimed for this process (another sweeping at once skips it), and the front
        tries once more, then reports `failed` or `ended`, or JobService.posted."""
        now = time.time() if now is None else now
        claimed = []
        for record in await self.store.deliveries.pending():
            waited = now - (record.delivery_tried_at or 0.0)
            if self.closing or not owns(record) or waited < self.retry_delay(record.delivery_attempts):
                continue
            if await self.store.deliveries.claim(record.id, record.delivery_attempts, now=now):
                claimed.append(replace(record, delivery_attempts=record.delivery_attempts + 1, delivery_tried_at=now))
        return claimed

    async def failed(self, job_id: int, reason: str) -> float:
        """A try at posting a result failed (say, Discord answered 503); returns the seconds until the next."""
        return self.retry_delay(await self.store.deliveries.failed(job_id, reason))

    async def ended(self, job_id: int, *, by_dm: bool, reason: str) -> None:
        """A result cannot reach its channel (`reason`): it was sent to its requester by DM, or nowhere."""
        await self.store.deliveries.end(job_id, "sent_by_dm" if by_dm else "undeliverable", reason)

    async def result(self, record: JobRecord) -> tuple[bytes, str] | None:
        """A finished job's result bytes and media type; None when its file is gone."""
        if record.result_location is None or record.result_type is None:
            return None
        data = await self.results.read(record.result_location)
        return (data, record.result_type) if data is not None else None
