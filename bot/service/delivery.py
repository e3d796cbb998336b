"""Results never lost: a finished job's result that Discord refused stays "finished, not posted"
in the store, and is offered again, with a growing wait between tries, until it is posted, sent to
its requester by DM, or recorded as undeliverable. The state is in the store, so a result refused
before a restart is posted by the next start, by whichever process holds its server.

A try at posting holds the job's lease (as a running job does) for as long as the post takes:
`JobService.posting` marks it, and the lease heartbeat renews it, so another process sweeping
meanwhile never posts the same result beside a slow first post. The Discord front also gives
each post the job's nonce, so a post repeated all the same (its process died after Discord took
it, before the store heard of it) gets the message Discord already made.
"""

from __future__ import annotations

from dataclasses import replace

from ..results import ResultStore
from ..store import JobRecord, Store
from .leases import Owns

__all__ = ["Delivery", "RETRY_MAX_SECONDS"]

RETRY_MAX_SECONDS = 3600.0  # a result Discord keeps refusing is still tried every hour


class Delivery:
    """retry_seconds: the wait before posting a refused result again, doubled at each further refusal."""

    def __init__(self, *, store: Store, results: ResultStore, retry_seconds: float = 30.0, owner: str | None = None) -> None:
        self.store, self.results, self.retry_seconds, self.owner = store, results, retry_seconds, owner
        self.closing = False

    def retry_delay(self, attempts: int) -> float:
        """Seconds to wait after the `attempts`-th try at posting a result before the next one."""
        return min(self.retry_seconds * 2 ** max(0, attempts - 1), RETRY_MAX_SECONDS)

    async def due(self, owns: Owns = lambda record: True, *, now: float | None = None) -> list[JobRecord]:
        """Results still to post whose wait since their last try is over, for the front that `owns`
        them; each is claimed for this process (another sweeping at once skips it), and the front
        tries once more (`JobService.posting.holding` it), then reports `failed` or `ended`, or JobService.posted.

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
