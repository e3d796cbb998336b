"""The Ray backend's own promises (`ray_actors`), beside the contract every backend keeps (test_pool.py and
the rest run on Ray too): the private instance it starts listens on loopback only; a cluster that
can never hold a worker is refused at once, one that is only busy after RAY_START_TIMEOUT; a Ray
Client address reaches ray.init as it is, and an unreachable one fails start with one line in
bounded time.

Ray Client cannot be served in this sandbox (its server does not start: ray-project/ray#63202), so
a reachable `ray://` cluster is not tested here; the address and the failure are."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from bot.executor import RayExecutor, WorkerStartFailed
from bot.executor.ray_actors import _connect, _connect_within
from bot.settings import ConfigError, load_settings
from tests.bot.executor.running import FAKE
from tests.bot.waiting import LIMIT

REPO_ROOT = Path(__file__).resolve().parents[3]

# A bot process that starts the executor's private Ray with one fake worker, says "up", and closes
# the executor when told to.
_PRIVATE_RAY = f"""
import asyncio, sys
from bot.executor import RayExecutor

async def main():
    async with RayExecutor(workers=1, device="cpu", runner_factory={FAKE!r}, warm_models=("inception",)):
        print("up", flush=True)
        await asyncio.to_thread(sys.stdin.readline)

asyncio.run(main())
print("closed", flush=True)
"""

# A bot process whose executor is given a Ray Client address and a short start timeout.
_CLIENT = f"""
import asyncio, sys
from bot.executor import RayExecutor, WorkerStartFailed

async def main():
    executor = RayExecutor(workers=1, device="cpu", runner_factory={FAKE!r}, address=sys.argv[1], start_timeout=2)
    try:
        await executor.start()
    except WorkerStartFailed as error:
        print(error, flush=True)

asyncio.run(main())
"""


def _bot_process(script: str, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    env.pop("RAY_ADDRESS", None)
    return subprocess.Popen([sys.executable, "-c", script, *args], cwd=REPO_ROOT, env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)


def _process_tree(root: int) -> dict[int, str]:
    """{pid: command name} of `root` and every process below it."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, grew = {root}, True
    while grew:
        below = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= below
        grew = bool(below)
    names = {}
    for pid in tree:
        try:
            names[pid] = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            pass
    return names


def _decode(hex_address: str) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]:
    """An address of /proc/net/tcp*: the host in 32-bit words of this machine's (little) byte order."""
    host, port = hex_address.split(":")
    raw = b"".join(bytes.fromhex(host[i:i + 8])[::-1] for i in range(0, len(host), 8))
    return ipaddress.ip_address(raw), int(port, 16)


def listening_sockets(processes: dict[int, str]) -> list[tuple[str, str]]:
    """(process name, "address:port") of every TCP socket listening, and UDP socket bound, in `processes`."""
    owners: dict[str, str] = {}  # socket inode -> process name
    for pid, name in processes.items():
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                owners[target[len("socket:["):-1]] = name
    found = []
    for table, listening in (("tcp", "0A"), ("tcp6", "0A"), ("udp", "07"), ("udp6", "07")):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == listening and fields[9] in owners:
                host, port = _decode(fields[1])
                found.append((owners[fields[9]], f"{host}:{port}"))
    return found


def _loopback(address: str) -> bool:
    host = ipaddress.ip_address(address.rsplit(":", 1)[0])
    mapped = getattr(host, "ipv4_mapped", None)
    return host.is_loopback or (mapped is not None and mapped.is_loopback)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.timeout(180)
def test_the_private_ray_instance_listens_on_loopback_only() -> None:
    bot = _bot_process(_PRIVATE_RAY)
    try:
        assert bot.stdout is not None and bot.stdin is not None
        assert bot.stdout.readline().strip() == "up", "the executor did not start"
        processes = _process_tree(bot.pid)
        sockets = listening_sockets(processes)
        bot.stdin.write("\n")
        bot.stdin.flush()
        assert bot.stdout.readline().strip() == "closed"
        assert bot.wait(LIMIT) == 0
    finally:
        bot.kill()
        bot.wait()
    names = {name for name, _ in sockets}
    assert {"gcs_server", "raylet"} <= names, f"Ray's servers were not found among {sorted(processes.values())}"
    assert len(sockets) >= 4, sockets
    open_to_others = [(name, address) for name, address in sockets if not _loopback(address)]
    assert open_to_others == [], "listening beyond this machine"


async def test_a_worker_no_node_can_hold_is_refused_at_once(ray_instance: None) -> None:
    # The session's Ray has 2 CPUs and no GPU. A start that waited would outlast LIMIT (start_timeout is an hour).
    async def start(**options: Any) -> str:
        executor = RayExecutor(workers=1, runner_factory=FAKE, start_timeout=3600, **options)
        with pytest.raises(WorkerStartFailed) as failure:
            async with asyncio.timeout(LIMIT):
                await executor.start()
        assert executor.running() == () and executor.live_workers() == 0
        return str(failure.value)

    assert await start(device="cuda") == "the Ray cluster has no GPU; device cuda needs 1 per worker"
    assert await start(device="cuda", gpus_per_actor=0.5) == "the Ray cluster has no GPU; device cuda needs 0.5 per worker"
    assert await start(device="cpu", cpus_per_actor=3) == (
        "no node of the Ray cluster can hold a cpu worker, which needs CPU 3 (its nodes have: CPU 2)")


@pytest.mark.timeout(120)
async def test_workers_the_cluster_has_no_room_for_yet_fail_start_after_the_timeout(ray_instance: None) -> None:
    # Three one-CPU workers on two CPUs: each could be held, but the third never gets its place.
    async def start() -> str:
        executor = RayExecutor(workers=3, device="cpu", runner_factory=FAKE, start_timeout=3)
        with pytest.raises(WorkerStartFailed) as failure:
            async with asyncio.timeout(LIMIT * 4):
                await executor.start()
        return str(failure.value)

    message = await start()
    assert "\n" not in message
    assert message.startswith("a dream worker on cpu could not start: Ray found no place for the worker within 3s: "
                              "it needs CPU 1, the cluster has CPU 2 ("), message
    assert message.endswith("; the nodes that could hold it are busy"), message


def test_a_ray_client_address_reaches_ray_init_unchanged() -> None:
    calls: list[dict[str, Any]] = []

    class FakeRay:
        def init(self, **options: Any) -> None:
            calls.append(options)

    _connect(FakeRay(), "ray://head.example:10001")
    _connect(FakeRay(), "10.0.0.5:6379")
    assert calls == [{"address": "ray://head.example:10001", "logging_level": logging.WARNING},
                     {"address": "10.0.0.5:6379", "logging_level": logging.WARNING}], \
        "a cluster's address goes to ray.init as given, without the private instance's options"


async def test_a_cluster_that_refuses_or_does_not_answer_fails_with_one_line() -> None:
    answer = threading.Event()

    class RefusingRay:
        def init(self, **options: Any) -> None:
            raise ConnectionError("ray client connection timeout\nsee the docs")

    class SilentRay:
        def init(self, **options: Any) -> None:
            answer.wait(LIMIT)

    async def connect(ray: Any, timeout: float) -> str:
        with pytest.raises(WorkerStartFailed) as failure:
            await _connect_within(timeout, ray, "ray://head.example:10001", threading.Event())
        return str(failure.value)

    try:
        assert await connect(RefusingRay(), LIMIT) == (
            "could not reach the Ray cluster at ray://head.example:10001: ray client connection timeout")
        assert await connect(SilentRay(), 0.2) == "could not reach the Ray cluster at ray://head.example:10001 within 0.2s"
    finally:
        answer.set()


@pytest.mark.timeout(120)
def test_an_unreachable_ray_client_address_fails_start_within_the_start_timeout() -> None:
    # Ray Client itself retries for about 30 s; the executor gives up after its 2.
    address = f"ray://127.0.0.1:{_free_port()}"
    bot = _bot_process(_CLIENT, address)
    output, _ = bot.communicate(timeout=100)
    assert output.splitlines() == [f"could not reach the Ray cluster at {address} within 2s"]


def test_the_start_timeout_is_a_positive_number_of_seconds() -> None:
    assert load_settings(_env_file=None).ray_start_timeout == 60.0
    assert load_settings(_env_file=None, ray_start_timeout="2.5").ray_start_timeout == 2.5
    with pytest.raises(ConfigError) as info:
        load_settings(_env_file=None, ray_start_timeout=0)
    assert str(info.value) == "RAY_START_TIMEOUT: must be > 0 (got 0)"
    with pytest.raises(ValueError, match="start_timeout must be a positive number of seconds"):
        RayExecutor(start_timeout=0)
