"""The package as a user gets it: the sdist, a wheel built from it, installed without -e into a
fresh environment, run from a folder that has nothing of the checkout. Dependencies are reused from
this environment (a path entry, so its editable install of dreambot is not seen)."""

from __future__ import annotations

import os
import site
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.census import REPO_ROOT

pytestmark = pytest.mark.slow

# What the product reads at run time besides its Python modules.
RUN_TIME_FILES = [
    "core/natural_spectrum.npz",
    "core/models/imagenet_classes.txt",
    "bot/web/templates/gallery.html",
    "bot/web/templates/result.html",
    "bot/web/static/gallery.css",
    "bot/store/migrations/env.py",
    "bot/store/migrations/script.py.mako",
    "bot/store/migrations/versions/0001_initial.py",
    "bot/store/migrations/versions/0009_times_in_epoch_seconds.py",
]


def _run(command: list[str], **options) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, **options)
    assert done.returncode == 0, f"{' '.join(map(str, command))} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    """(the sdist, a wheel built from that sdist): a wheel that works proves the sdist complete too."""
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", str(out), str(REPO_ROOT)])
    [sdist] = out.glob("dreambot-*.tar.gz")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(out), str(sdist)])
    [wheel] = out.glob("dreambot-*.whl")
    return sdist, wheel


@pytest.fixture(scope="module")
def installed(built, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """(the fresh environment's bin folder, an environment for its commands)."""
    venv = tmp_path_factory.mktemp("venv")
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    [packages] = (venv / "lib").glob("python3*/site-packages")
    (packages / "dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--no-deps", "--no-index",
          str(built[1])])
    data = tmp_path_factory.mktemp("data")
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "DATABASE_URL", "RESULTS_DIR")}
    env |= {"DATABASE_URL": f"sqlite+aiosqlite:///{data / 'dreambot.db'}", "RESULTS_DIR": str(data / "results"),
            "DEVICE": "cpu", "OFFLINE": "1", "WORKERS": "1"}
    return venv / "bin", env


def test_the_wheel_and_the_sdist_carry_every_run_time_file(built):
    sdist, wheel = built
    in_wheel = set(zipfile.ZipFile(wheel).namelist())
    missing = [name for name in RUN_TIME_FILES if name not in in_wheel]
    assert missing == [], f"the wheel lacks {missing}"
    print("\nnon-Python files in the wheel:", sorted(n for n in in_wheel if not n.endswith(".py") and ".dist-info/" not in n))
    in_sdist = {name.split("/", 1)[1] for name in tarfile.open(sdist).getnames() if "/" in name}
    for name in ["migrations/env.py", "migrations/script.py.mako", "migrations/versions/0009_times_in_epoch_seconds.py",
                 "core/natural_spectrum.npz", "core/models/imagenet_classes.txt", "bot/web/static/gallery.css"]:
        assert name in in_sdist, f"the sdist lacks {name}"


def test_the_installed_package_runs_from_any_folder(installed, tmp_path, photo_bytes):
    bin_dir, env = installed
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = _run([str(bin_dir / "python"), "-c", "import bot, core; print(bot.__file__, core.__file__)"], cwd=work, env=env)
    assert str(REPO_ROOT) not in where.stdout and "site-packages" in where.stdout, where.stdout

    dreambot = str(bin_dir / "dreambot")
    upgraded = _run([dreambot, "db", "upgrade"], cwd=work, env=env)
    newest = max(path.name.split("_")[0] for path in (REPO_ROOT / "migrations" / "versions").glob("[0-9]*.py"))
    assert f"at revision {newest}" in upgraded.stdout + upgraded.stderr, "the installed package has every migration of the checkout"
    (work / "cat.png").write_bytes(photo_bytes("chelsea.png", (64, 48)))
    _run([dreambot, "dream", "cat.png", "-o", "dream.png", "--steps", "1", "--octaves", "1", "--max-side", "64"],
         cwd=work, env=env)
    _run([dreambot, "visualize", "banana", "-o", "banana.png", "--steps", "10", "--size", "64"], cwd=work, env=env)
    _run([dreambot, "zoom", "-o", "zoom.gif", "--frames", "2", "--size", "64", "--steps", "1", "--octaves", "1"],
         cwd=work, env=env)
    for name, magic in [("dream.png", b"\x89PNG"), ("banana.png", b"\x89PNG"), ("zoom.gif", b"GIF8")]:
        assert (work / name).read_bytes().startswith(magic), name


def test_the_installed_web_front_answers_its_health_check(installed, tmp_path):
    bin_dir, env = installed
    with socket.socket() as probe:  # a free port on loopback
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([str(bin_dir / "dreambot"), "web", "--port", str(port)], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, f"dreambot web exited: {server.stdout.read() if server.stdout else ''}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
                    assert answer.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, "dreambot web did not answer /healthz within 2 minutes"
                time.sleep(0.5)
    finally:
        server.terminate()
        server.wait(timeout=30)
