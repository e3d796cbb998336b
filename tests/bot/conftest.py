"""The executor backends the executor's contract tests run on: each test that takes `make_executor`
runs once on local worker processes and once on Ray actors."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bot.cli import main
from bot.executor import LocalProcessExecutor, PoolExecutor, RayExecutor

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def ray_instance() -> Iterator[None]:
    """One Ray on this machine for the whole session, with room for two one-CPU actors.

    Its workers get the repository on their path, so they can import the fake runners of `tests`.
    """
    import ray

    from bot.executor.ray_actors import loopback_only

    with loopback_only():
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


# -- the CLI, run in-process (test_cli.py, test_cli_video.py) ---------------------------------------


@pytest.fixture
def run(capsys):
    """dreambot in-process: (exit code, stdout, stderr); a usage error's SystemExit becomes its code."""

    def call(*argv: str) -> tuple[int, str, str]:
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = capsys.readouterr()
        return code, out, err

    return call


@pytest.fixture
def fails(run):
    """Run a command that must fail; returns its one stderr line."""

    def call(*argv: str) -> str:
        code, out, err = run(*argv)
        assert code != 0, (out, err)
        assert "Traceback" not in out + err
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].strip(), err
        assert err.endswith("\n")
        return lines[0]

    return call
