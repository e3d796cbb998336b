"""Worker threads: each worker's share of the cores this process may use, and results that depend on
the thread setting, not on the machine's core count."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

from bot.executor import available_cores, threads_per_worker
from tests.census import REPO_ROOT

# One dream through one local worker, in a process allowed only the cores given: prints the
# worker's torch threads and the sha256 of the result.
_ONE_DREAM = """
import asyncio, hashlib, io, json, os, sys
import skimage.data
from PIL import Image
from bot.executor import LocalProcessExecutor
from core.spec import compile_job

os.sched_setaffinity(0, set(json.loads(sys.argv[1])))
threads = json.loads(sys.argv[2])
photo = io.BytesIO()
Image.fromarray(skimage.data.chelsea()).resize((96, 72)).save(photo, "PNG")
spec = compile_job("dream", {"steps": 2, "octaves": 2, "max_side": 96}, images=[photo.getvalue()], seed=11)

async def main():
    async with LocalProcessExecutor(workers=1, device="cpu", threads_per_worker=threads) as executor:
        executor.enqueue("1", spec, user="u")
        result = await executor.wait("1")
        print(json.dumps({"threads": executor.threads_per_worker(), "sha": hashlib.sha256(result.data).hexdigest()}))

asyncio.run(main())
"""


def test_each_worker_gets_its_share_of_the_cores_it_may_use(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    assert available_cores() == 8
    assert [threads_per_worker(n) for n in (1, 2, 3, 4, 8, 16)] == [8, 4, 2, 2, 1, 1], \
        "workers x threads never exceeds the cores, and every worker has at least one"
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {5})  # a container or taskset allowing one core
    assert threads_per_worker(2) == 1


def _dream_on(cores: list[int], threads: int | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    done = subprocess.run([sys.executable, "-c", _ONE_DREAM, json.dumps(cores), json.dumps(threads)], cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores to compare one against two")
def test_the_same_seed_gives_the_same_bytes_whatever_the_core_count_with_the_same_threads_setting():
    one_core, two_cores = _dream_on([0], 1), _dream_on([0, 1], 1)
    assert one_core["threads"] == two_cores["threads"] == 1
    assert one_core["sha"] == two_cores["sha"], "THREADS_PER_WORKER fixed: the core count changes nothing"
    by_default = _dream_on([0], None)
    assert by_default["threads"] == 1, "unset, a worker on a one-core allowance gets one thread"
    assert by_default["sha"] == one_core["sha"]
