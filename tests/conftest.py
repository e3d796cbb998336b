"""Shared fixtures: real photos from scikit-image's bundled data folder, one warm runner, and an
empty database of each kind the store supports (SQLite, and PostgreSQL on a throwaway server)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import skimage
from PIL import Image

from tests.pg_server import PostgresServer

PHOTOS = Path(skimage.__file__).parent / "data"


@pytest.fixture(scope="session")
def photo_path():
    def get(name: str) -> Path:
        path = PHOTOS / name
        assert path.exists(), f"scikit-image's data folder has no {name}; reinstall scikit-image"
        return path

    return get


@pytest.fixture(scope="session")
def photo_bytes(photo_path):
    def get(name: str, size: tuple[int, int] | None = None) -> bytes:
        if size is None:
            return photo_path(name).read_bytes()
        out = io.BytesIO()
        Image.open(photo_path(name)).convert("RGB").resize(size, Image.LANCZOS).save(out, "PNG")
        return out.getvalue()

    return get


@pytest.fixture(scope="session")
def runner():
    from core.runner import JobRunner

    return JobRunner("cpu", allow_download=False)


@pytest.fixture(scope="session")
def lite0(runner):
    return runner.network("efficientnet-lite0")


@pytest.fixture(scope="session")
def postgres_server():
    """One PostgreSQL server for the session, started on first use (so SQLite-only runs never start it)."""
    with PostgresServer.running() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """An empty database as an async SQLAlchemy URL: each test that takes it runs once per database."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("postgres_server").create_database()
