"""A per-client request limit for the web gallery, kept in memory with a bound on the clients tracked.

Each client (an IP address) has a token bucket, stored as one number by the same GCRA arithmetic
the store uses for job admissions. Only `max_clients` buckets are kept: past that, the client seen
least recently is forgotten. Forgetting is mostly free, since an idle client's bucket has refilled
anyway; at worst a client among very many others starts again with a full bucket, which is the price
of memory that a flood of addresses cannot grow.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from ..store import gcra_decide

__all__ = ["ClientLimit", "ClientLimiter"]


@dataclass(frozen=True)
class ClientLimit:
    burst: int = 60  # requests at once: a gallery page and all its images
    per_second: float = 2.0  # refill rate after that
    max_clients: int = 10_000  # buckets kept in memory at most


class ClientLimiter:
    """`retry_after(client)`: 0 when the request may go ahead (and it is counted), else seconds to wait."""

    def __init__(self, limit: ClientLimit = ClientLimit(), *, clock: Callable[[], float] = time.monotonic) -> None:
        assert limit.burst >= 1 and limit.per_second > 0 and limit.max_clients >= 1, f"a limit that admits nobody: {limit}"
        self.limit = limit
        self._clock = clock
        self._tats: OrderedDict[str, float] = OrderedDict()  # least recently seen first

    def __len__(self) -> int:
        return len(self._tats)

    def retry_after(self, client: str) -> float:
        tat, retry_after = gcra_decide(self._tats.get(client), self._clock(), burst=self.limit.burst,
                                       interval=1.0 / self.limit.per_second)
        self._tats[client] = tat
        self._tats.move_to_end(client)
        while len(self._tats) > self.limit.max_clients:
            self._tats.popitem(last=False)
        return retry_after
