"""What the service's tests share: an executor that runs nothing (for answers, texts and admission),
the longest prefix and ids, and whether a text fits a Discord message."""

from __future__ import annotations

import asyncio

from bot.executor import ExecutorClosed, QueuePlace
from bot.service import Requester
from tests.fake_discord._limits import CONTENT_LIMIT, message_errors

__all__ = ["LONGEST_IDS", "LONGEST_PREFIX", "Workers", "fits"]

LONGEST_PREFIX = "!" * 16  # the longest a server may choose
LONGEST_IDS = Requester("1" * 20, guild_id="2" * 20, channel_id="3" * 20)  # who asks, with ids as long as Discord's


def fits(text: str) -> bool:
    return message_errors({"content": text}) == {} and len(text) <= CONTENT_LIMIT


class Workers:
    """The executor's face the service needs: prices and places, and jobs that wait until cancelled.
    By default a job is predicted to take 1e9 s, so a request that compiles meets the time cap's
    refusal at its longest.

    queued, running: the ids `queued()` and `running()` report (default: a million waiting, none
    running); places: what `place()` says of a job id (default: nothing)."""

    def __init__(self, predicted: float = 1.0e9, *, queued: tuple[str, ...] | None = None, running: tuple[str, ...] = (),
                 places: dict[str, QueuePlace] | None = None) -> None:
        self.predicted = predicted
        self._queued = queued
        self._running = running
        self.places = dict(places or {})
        self._cancelled: dict[str, asyncio.Event] = {}
        self.cancels: list[str] = []  # job ids asked to cancel, in order

    def predict(self, spec) -> float:
        return self.predicted

    def enqueue(self, job_id: str, spec, **who) -> None:
        self._cancelled[job_id] = asyncio.Event()

    async def wait(self, job_id: str, on_progress=None):
        await self._cancelled[job_id].wait()
        raise ExecutorClosed("closed")

    def place(self, job_id: str):
        return self.places.get(job_id)

    def queued(self) -> tuple[str, ...]:
        return self._queued if self._queued is not None else tuple(str(i) for i in range(10**6))

    def running(self) -> tuple[str, ...]:
        return self._running

    def live_workers(self) -> int:
        return 1

    async def cancel(self, job_id: str) -> bool:
        self.cancels.append(job_id)
        if job_id in self._cancelled:
            self._cancelled[job_id].set()
        return job_id in self._cancelled
