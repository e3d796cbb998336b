"""A throwaway PostgreSQL server for the tests: its own data folder, port and socket, gone afterwards.

The tests never rely on a server someone started by hand. `PostgresServer.running()` runs initdb
into a temporary folder, starts the server on 127.0.0.1 only, and stops and deletes it on exit;
`create_database()` hands each test an empty database of its own.

initdb and the server refuse to run as root, so as root (CI, containers) every server command runs
as the `postgres` system user that Debian's package creates, and the folder is handed to it.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["PostgresServer", "find_bindir"]

# Connections the tests may hold at once: several engines with pools of 20, plus their overflow.
MAX_CONNECTIONS = 300

_SETTINGS = (
    # Durability is worthless for a database deleted after the run; without it, tests run faster.
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    # Timestamps written as text by the tests mean the same instant on every machine.
    "timezone=UTC",
)

_SERVER_USER = "postgres"
_COMMAND_TIMEOUT_S = 60


def find_bindir() -> Path:
    """The folder holding initdb and pg_ctl: pg_config's answer, else Debian's newest version."""
    candidates: list[str] = []
    if shutil.which("pg_config"):
        bindir = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False).stdout.strip()
        candidates.append(bindir)
    # Debian keeps the server programs out of PATH, one folder per major version.
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_major_version, reverse=True)
    for folder in candidates:
        if (Path(folder) / "initdb").is_file() and (Path(folder) / "pg_ctl").is_file():
            return Path(folder)
    raise RuntimeError(
        "PostgreSQL server programs (initdb, pg_ctl) not found; `make test` installs them "
        "(or: apt-get install -y postgresql)"
    )


class PostgresServer:
    """A running server; use `PostgresServer.running()` rather than this constructor."""

    def __init__(self, bindir: Path, root: Path, port: int) -> None:
        self.bindir = bindir
        self.root = root  # holds the data folder, the log and the unix socket
        self.port = port
        self._database_numbers = itertools.count(1)

    @classmethod
    @contextmanager
    def running(cls) -> Iterator[PostgresServer]:
        bindir = find_bindir()
        root = Path(tempfile.mkdtemp(prefix="dreambot-pg-"))
        server: PostgresServer | None = None
        try:
            if os.geteuid() == 0:
                account = pwd.getpwnam(_SERVER_USER)
                os.chown(root, account.pw_uid, account.pw_gid)
            server = cls(bindir, root, port=0)
            server._initdb()
            server._start()
            yield server
        finally:
            if server is not None:
                server._stop()
            shutil.rmtree(root, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://{_SERVER_USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; returns its async SQLAlchemy URL."""
        name = f"test_{next(self._database_numbers)}"
        self.sql(f"CREATE DATABASE {name}")
        return self.url(name)

    def sql(self, statement: str, database: str = "postgres") -> str:
        """Run one statement through psql as the superuser; returns its unaligned output."""
        result = self._run(
            [str(self.bindir / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-h", "127.0.0.1", "-p", str(self.port), "-U", _SERVER_USER, "-d", database, "-c", statement],
            as_server_user=False,
        )  # fmt: skip
        return result.stdout.strip()

    def _initdb(self) -> None:
        self._run(
            [str(self.bindir / "initdb"), "-D", str(self._data), "-U", _SERVER_USER, "--auth=trust",
             "--encoding=UTF8", "--locale=C", "--no-sync"],
            as_server_user=True,
        )  # fmt: skip

    def _start(self) -> None:
        # A free port can be taken by someone else between our check and the server's bind: retry.
        for attempt in range(5):
            self.port = _free_port()
            options = [f"-h 127.0.0.1 -p {self.port} -k {self.root} -c max_connections={MAX_CONNECTIONS}"]
            options += [f"-c {setting}" for setting in _SETTINGS]
            started = self._run(
                [str(self.bindir / "pg_ctl"), "-D", str(self._data), "-l", str(self._log), "-w",
                 "-t", str(_COMMAND_TIMEOUT_S), "-o", " ".join(options), "start"],
                as_server_user=True,
                check=False,
            )  # fmt: skip
            if started.returncode == 0:
                return
        log = self._log.read_text(errors="replace")[-2000:] if self._log.exists() else ""
        raise RuntimeError(f"PostgreSQL did not start after {attempt + 1} tries:\n{started.stderr}\n{log}")

    def _stop(self) -> None:
        if not (self._data / "postmaster.pid").exists():
            return
        for mode in ("fast", "immediate"):
            stopped = self._run(
                [str(self.bindir / "pg_ctl"), "-D", str(self._data), "-m", mode, "-w", "stop"],
                as_server_user=True,
                check=False,
            )
            if stopped.returncode == 0:
                return

    @property
    def _data(self) -> Path:
        return self.root / "data"

    @property
    def _log(self) -> Path:
        return self.root / "server.log"

    def _run(self, command: list[str], *, as_server_user: bool, check: bool = True) -> subprocess.CompletedProcess[str]:
        if as_server_user and os.geteuid() == 0:
            command = ["runuser", "-u", _SERVER_USER, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=_COMMAND_TIMEOUT_S, check=False)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr.strip()}")
        return result


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _major_version(bindir: str) -> int:
    version = Path(bindir).parent.name  # /usr/lib/postgresql/15/bin -> "15"
    return int(version) if version.isdigit() else 0
