"""The executor backends the executor's contract tests run on: each test that takes `make_executor`
runs once on local worker processes and once on Ray actors."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bot.executor import LocalProcessExecutor, PoolExecutor, RayExecutor

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def ray_instance() -> Iterator[None]:
    """One Ray on this machine for the whole session, with room for two one-CPU actors.

    Its workers get the repository on their path, so they can import the fake runners of `tests`.
    """
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
             logging_level=logging.WARNING, runtime_env={"env_vars": {"PYTHONPATH": str(REPO_ROOT)}})
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(params=["local", "ray"])
def make_executor(request: pytest.FixtureRequest) -> Callable[..., PoolExecutor]:
    """The executor class of one backend; both take the same arguments."""
    if request.param == "ray":
        request.getfixturevalue("ray_instance")
        return RayExecutor
    return LocalProcessExecutor
