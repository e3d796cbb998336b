"""Results never lost: a finished job's result that Discord refused stays "finished, not posted"
in the store, and is offered again, with a growing wait between tries, until it is posted, sent to
its requester by DM, or recorded as undeliverable. The state is in the store, so a result refused
before a restart is posted by the next start, by whichever process holds its server.

A try at posting holds the job's lease (as a running job does) for as long as the post takes:
`holding` marks it, and the lease heartbeat renews it, so another process sweeping meanwhile
never posts the same result beside a slow first post. Each post also carries `post_nonce`, which
Discord's enforce_nonce turns into the existing message should a post be repeated all the same
(its process died after Discord took the post, before the store heard of it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

from ..results import ResultStore
from ..store import JobRecord, Store
from .leases import Owns

__all__ = ["Delivery", "RETRY_MAX_SECONDS", "post_nonce"]

RETRY_MAX_SECONDS = 3600.0  # a result Discord keeps refusing is still tried every hour


def post_nonce(job_id: int) -> str:
    """The nonce of every post of a job's result (at most 25 characters, as Discord allows): the
    same for each try, so Discord answers a repeated post with the message it already made."""
    return f"dreambot-job-{job_id}"


class Delivery:
    """retry_seconds: the wait before posting a refused result again, doubled at each further refusal."""

    def __init__(self, *, store: Store, results: ResultStore, retry_seconds: float = 30.0, owner: str | None = None) -> None:
        self.store, self.results, self.retry_seconds, self.owner = store, results, retry_seconds, owner
        self.closing = False
        self._posting: dict[int, int] = {}  # job id -> posts of it under way in this process

    def posting(self) -> list[int]:
        """The jobs whose result this process is posting now: their leases are renewed meanwhile."""
        return list(self._posting)

    @asynccontextmanager
    async def holding(self, job_id: int) -> AsyncIterator[None]:
        """Hold the job's lease (taken by finishing it or by `due`) while its result is posted here."""
        self._posting[job_id] = self._posting.get(job_id, 0) + 1
        try:
            yield
        finally:
            self._posting[job_id] -= 1
            if not self._posting[job_id]:
                del self._posting[job_id]

    def retry_delay(self, attempts: int) -> float:
        """Seconds to wait after the `attempts`-th try at posting a result before the next one."""
        return min(self.retry_seconds * 2 ** max(0, attempts - 1), RETRY_MAX_SECONDS)

    async def due(self, owns: Owns = lambda record: True, *, now: float | None = None) -> list[JobRecord]:
        """Results still to post whose wait since their last try is over, for the front that `owns`
        them; each is claimed for this process (another sweeping at once skips it), and the front
        tries once more (`holding` it), then reports `failed` or `ended`, or JobService.posted.

        Whether the wait is over, and whether another process still holds a try, is decided by the
        store on the database's clock; `now` is a test's fixed time."""
        claimed = []
        for record in await self.store.deliveries.pending():
            if self.closing or not owns(record):
                continue
            attempts = record.delivery_attempts
            if await self.store.deliveries.claim(record.id, attempts, owner=self.owner, after=self.retry_delay(attempts), now=now):
                tried_at = record.delivery_tried_at if now is None else now  # the database's time is not read back
                claimed.append(replace(record, delivery_attempts=attempts + 1, delivery_tried_at=tried_at, owner=self.owner))
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
