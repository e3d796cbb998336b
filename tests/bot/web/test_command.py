"""`dreambot web` as an operator runs it, and its settings."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from bot.settings import ConfigError, load_settings


def test_the_web_settings_have_safe_defaults_and_check_the_public_url():
    settings = load_settings(_env_file=None)
    assert (settings.web_host, settings.web_port, settings.public_url) == ("127.0.0.1", 8080, None)
    assert load_settings(_env_file=None, public_url="https://dreams.example.org/").public_url == "https://dreams.example.org"
    for bad in ("dreams.example.org", "ftp://dreams.example.org", "https://", "https://x.org/?a=1"):
        with pytest.raises(ConfigError, match=r"^PUBLIC_URL: must be the gallery's http\(s\) address"):
            load_settings(_env_file=None, public_url=bad)
    with pytest.raises(ConfigError, match="WEB_PORT: must be <= 65535"):
        load_settings(_env_file=None, web_port=70000)


def test_dreambot_web_serves_until_sigterm(tmp_path):
    env = {**os.environ, "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'web.db'}", "RESULTS_DIR": str(tmp_path / "r")}
    process = subprocess.Popen([sys.executable, "-m", "bot.cli", "web", "--port", "0"], env=env, cwd=tmp_path,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        address = None
        while address is None and time.monotonic() < deadline:
            line = process.stderr.readline()
            assert line or process.poll() is None, "dreambot web exited before it served"
            if found := re.search(r"web gallery at (http://\S+)", line):
                address = found[1]
        assert address is not None and address.startswith("http://127.0.0.1:"), "listens on loopback by default"
        with urllib.request.urlopen(f"{address}/healthz", timeout=10) as response:
            assert response.status == 200
            assert b'"database": "ok"' in response.read()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_port_in_use_is_one_line(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'web.db'}"}
        done = subprocess.run([sys.executable, "-m", "bot.cli", "web", "--port", str(port)], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == \
        f"dreambot: error: the web gallery cannot listen on 127.0.0.1:{port}: Address already in use"
