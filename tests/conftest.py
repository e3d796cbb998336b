"""Shared fixtures: real photos from scikit-image's bundled data folder, and one warm runner."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import skimage
from PIL import Image

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
