"""A waiting line served round-robin across users, and across servers within a round, instead of first come first served.

One user queueing fifty dreams must not make everybody else wait for all fifty. Each waiting item gets the
sort key `(round, guild_rank, arrival)`:

- `round`, fixed when the item is pushed: one more than the owner's previous item's round, but never
  before the round now being served (start-time fair queueing, with one turn per job). A user's jobs
  take consecutive rounds, so nobody's job waits behind more than one job per round of any other
  single user; a user who was just served goes to the back of the round, and a user who comes back
  after a pause joins the current round without credit for the time away.
- `guild_rank`: within one round, the earlier-arriving items of the same server. Servers alternate inside
  a round, so one busy server does not fill a round before a quiet one gets a turn. A job without a
  server (a DM or the console) counts as its user's own server, so DM users are not lumped together.
- `arrival`: a monotonic counter that breaks the remaining ties.

The class is pure and synchronous: the executor owns the locking and the dispatching, this only orders.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Generic, Hashable, TypeVar

__all__ = ["FairQueue"]

T = TypeVar("T")

# A server, or ("user", id) for a job without one, so that each DM user is a group of their own.
_GroupKey = tuple[str, str]


@dataclass(eq=False, slots=True)
class _Entry(Generic[T]):
    item: T
    user: str
    group: _GroupKey
    seq: int
    round: int


class FairQueue(Generic[T]):
    """Waiting items in fair service order, plus which users have items running.

    Items are tracked by identity (`id()`), not equality: two equal but distinct objects are two jobs,
    and unhashable items are fine. The executor's jobs are `eq=False` dataclasses, for which the two
    agree. The queue holds a reference to every waiting or running item, so an id cannot be reused
    while it is tracked.
    """

    def __init__(self) -> None:
        self._waiting: dict[int, _Entry[T]] = {}
        self._running: dict[int, _Entry[T]] = {}
        self._running_per_user: Counter[str] = Counter()
        self._seq = itertools.count()
        self._serving = 0  # the round of the last item started
        self._next_round: dict[str, int] = {}  # per user: the round their next pushed item gets
        # The service order is recomputed lazily: many reads (positions for every waiting user) follow one change.
        self._order: list[_Entry[T]] | None = None
        self._index: dict[int, int] | None = None

    # -- changes ---------------------------------------------------------------------------------------

    def push(self, item: T, *, user: str, guild: str | None) -> None:
        """Queue `item` for `user`, from server `guild` (None for a DM or the console).

        Raises ValueError when the item is already waiting or running: pushing twice is a caller bug.
        """
        key = id(item)
        if key in self._waiting or key in self._running:
            raise ValueError(f"{item!r} is already in the queue; push each job once")
        group: _GroupKey = ("user", user) if guild is None else ("guild", guild)
        turn = max(self._serving, self._next_round.get(user, 0))
        self._next_round[user] = turn + 1
        self._waiting[key] = _Entry(item, user, group, next(self._seq), turn)
        self._invalidate()

    def remove(self, item: T) -> bool:
        """Drop a waiting item (its job was cancelled); False when it is not waiting (running, done or unknown)."""
        entry = self._waiting.pop(id(item), None)
        if entry is None:
            return False
        # The user's later items move up a round: a cancelled job does not cost its owner a turn.
        for other in self._waiting.values():
            if other.user == entry.user and other.round > entry.round:
                other.round -= 1
        self._next_round[entry.user] -= 1
        self._invalidate()
        return True

    def started(self, item: T) -> None:
        """Move a waiting item to running: it leaves the line and counts toward its user's rounds.

        Raises KeyError when the item is not waiting.
        """
        entry = self._waiting.pop(id(item), None)
        if entry is None:
            raise KeyError(f"{item!r} is not waiting; only a pushed, not yet started item can start")
        self._running[id(item)] = entry
        self._running_per_user[entry.user] += 1
        self._serving = max(self._serving, entry.round)
        self._invalidate()

    def finished(self, item: T) -> None:
        """Forget a running item: its user no longer has it in progress.

        Raises KeyError when the item is not running (finished twice, or never started).
        """
        entry = self._running.pop(id(item), None)
        if entry is None:
            raise KeyError(f"{item!r} is not running; call finished() once per started item")
        self._running_per_user[entry.user] -= 1
        if not self._running_per_user[entry.user]:
            del self._running_per_user[entry.user]
        self._invalidate()

    def pop(self) -> T:
        """Take the first item in service order and mark it running. Raises IndexError when nothing waits."""
        order = self._ordered_entries()
        if not order:
            raise IndexError("pop from an empty FairQueue")
        item = order[0].item
        self.started(item)
        return item

    def take_batch(self, limit: int, same: Callable[[T], Hashable | None]) -> list[T]:
        """Take the head and up to `limit - 1` later waiting items that may run with it, all marked running.

        `same(item)` is the batch key: items join the head when their key equals the head's, scanned in
        service order; a None key means "runs alone". Items passed over stay waiting; their order is
        recomputed by the same rule, so a user whose later job rode along has used one of their turns.
        Raises IndexError when nothing waits and ValueError when `limit < 1`.
        """
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        order = self._ordered_entries()
        if not order:
            raise IndexError("take_batch from an empty FairQueue")
        head = order[0].item
        batch = [head]
        key = same(head)
        if key is not None:
            for entry in order[1:]:
                if len(batch) >= limit:
                    break
                if same(entry.item) == key:
                    batch.append(entry.item)
        for item in batch:
            self.started(item)
        return batch

    # -- reads -----------------------------------------------------------------------------------------

    def ordered(self) -> list[T]:
        """Waiting items in service order, the next to run first."""
        return [entry.item for entry in self._ordered_entries()]

    def position(self, item: T) -> int | None:
        """0-based place of `item` in `ordered()`, or None when it is not waiting."""
        if id(item) not in self._waiting:
            return None
        if self._index is None:
            self._index = {id(entry.item): i for i, entry in enumerate(self._ordered_entries())}
        return self._index[id(item)]

    def round_of(self, item: T) -> int:
        """The round a waiting item was given (see the module's docstring); KeyError when not waiting."""
        return self._waiting[id(item)].round

    @property
    def serving_round(self) -> int:
        """The round of the last item started: no item waits in an earlier one."""
        return self._serving

    def running_count(self, user: str | None = None) -> int:
        """Items started and not yet finished: all of them, or only `user`'s."""
        if user is None:
            return len(self._running)
        return self._running_per_user[user]

    def __len__(self) -> int:
        """Number of waiting items (running ones are not counted)."""
        return len(self._waiting)

    def __bool__(self) -> bool:
        return bool(self._waiting)

    def __contains__(self, item: object) -> bool:
        """Whether `item` is waiting (not whether it is running)."""
        return id(item) in self._waiting

    # -- internals -------------------------------------------------------------------------------------

    def _invalidate(self) -> None:
        self._order = None
        self._index = None

    def _ordered_entries(self) -> list[_Entry[T]]:
        if self._order is not None:
            return self._order
        by_arrival = sorted(self._waiting.values(), key=lambda e: e.seq)
        group_turns: Counter[tuple[int, _GroupKey]] = Counter()
        keyed: list[tuple[int, int, int, _Entry[T]]] = []
        for entry in by_arrival:
            guild_rank = group_turns[entry.round, entry.group]
            group_turns[entry.round, entry.group] += 1
            keyed.append((entry.round, guild_rank, entry.seq, entry))
        # seq is unique, so the sort never compares entries themselves.
        keyed.sort(key=lambda k: k[:3])
        self._order = [k[3] for k in keyed]
        return self._order
