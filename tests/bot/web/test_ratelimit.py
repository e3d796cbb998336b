"""The web gallery's per-client limit: a token bucket per address, in bounded memory."""

from __future__ import annotations

import pytest

from bot.web import ClientLimit, ClientLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_is_admitted_then_one_request_per_refill():
    clock = Clock()
    limiter = ClientLimiter(ClientLimit(burst=3, per_second=0.5), clock=clock)
    assert [limiter.retry_after("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.retry_after("a") == pytest.approx(2.0)
    assert limiter.retry_after("b") == 0.0, "each address has its own bucket"
    clock.now += 2.0
    assert limiter.retry_after("a") == 0.0
    assert limiter.retry_after("a") == pytest.approx(2.0)


def test_refused_requests_do_not_use_up_the_bucket():
    clock = Clock()
    limiter = ClientLimiter(ClientLimit(burst=1, per_second=1.0), clock=clock)
    assert limiter.retry_after("a") == 0.0
    for _ in range(100):
        assert limiter.retry_after("a") > 0
    clock.now += 1.0
    assert limiter.retry_after("a") == 0.0, "a client hammering while refused is admitted once refilled"


def test_memory_is_bounded_by_forgetting_the_least_recently_seen():
    clock = Clock()
    limiter = ClientLimiter(ClientLimit(burst=1, per_second=0.001, max_clients=100), clock=clock)
    assert limiter.retry_after("steady") == 0.0
    for i in range(10_000):
        limiter.retry_after(f"10.0.{i // 256}.{i % 256}")
        if i % 50 == 0:
            assert limiter.retry_after("steady") > 0, "a client seen recently is remembered"
    assert len(limiter) == 100
