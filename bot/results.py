"""Where finished jobs' results are kept: one place every process reads and writes them through.

A result is stored under its job's name (`job-12.png`); the job row keeps that location and the
media type. Beside it the store may keep the result's thumbnail (`job-12.thumb.webp`), found by the
result's location and removed with it. `LocalResults` keeps them in a folder (RESULTS_DIR), written
whole or not at all. The retention sweep (bot/service/retention.py) removes them; the store records
that they expired.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path, PurePath
from typing import Protocol

from core.jobs import FILE_EXTENSIONS

__all__ = ["ResultStore", "LocalResults", "result_name", "thumbnail_name"]

_THUMBNAIL_SUFFIX = ".thumb.webp"


def result_name(job_id: int, media_type: str) -> str:
    """A result's name in any store: the job's, with the extension of its type."""
    return f"job-{job_id}.{FILE_EXTENSIONS[media_type]}"


def thumbnail_name(location: str) -> str:
    """The name of the thumbnail kept beside the result at `location`."""
    return PurePath(location).stem + _THUMBNAIL_SUFFIX


class ResultStore(Protocol):
    async def save(self, job_id: int, data: bytes, media_type: str) -> str:
        """Keep a result; returns its location, which the job row records."""
        ...

    async def read(self, location: str) -> bytes | None:
        """A kept result's bytes; None when it is gone."""
        ...

    def path(self, location: str) -> Path | None:
        """The file holding a result, for a server that sends files as they are; None when gone."""
        ...

    def describe(self, location: str) -> str:
        """Where a result is, for a person: a file's path, or an object's address."""
        ...

    def size(self, location: str) -> int | None:
        """A kept result's size in bytes; None when it is gone."""
        ...

    def remove(self, location: str) -> int | None:
        """Delete a result, and its thumbnail; the bytes freed, or None when the result was already gone."""
        ...

    def usage(self) -> tuple[int, int]:
        """(results kept, their bytes with their thumbnails'), counted now."""
        ...

    async def save_thumbnail(self, location: str, data: bytes) -> None:
        """Keep the thumbnail (WebP) of the result at `location`."""
        ...

    def thumbnail_path(self, location: str) -> Path | None:
        """The file holding the thumbnail of the result at `location`; None when there is none (yet)."""
        ...


class LocalResults:
    """Results as files in `folder`. A location is a file name there; an older row's full path is
    read by its name only, so no location can reach outside the folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    async def save(self, job_id: int, data: bytes, media_type: str) -> str:
        name = result_name(job_id, media_type)
        await asyncio.to_thread(self._write, name, data)
        return name

    def _write(self, name: str, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=f".{name}.")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, self.folder / name)  # never a half-written result
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    async def read(self, location: str) -> bytes | None:
        path = self.path(location)
        if path is None:
            return None
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:  # removed between the look and the read
            return None

    def describe(self, location: str) -> str:
        return str(self.folder / PurePath(location).name)

    def path(self, location: str) -> Path | None:
        name = PurePath(location).name
        path = self.folder / name
        return path if name and not name.startswith(".") and path.is_file() else None

    def size(self, location: str) -> int | None:
        path = self.path(location)
        try:
            return path.stat().st_size if path is not None else None
        except FileNotFoundError:
            return None

    def remove(self, location: str) -> int | None:
        freed = self._unlink(self.path(location))
        if freed is not None:
            freed += self._unlink(self.thumbnail_path(location)) or 0
        return freed

    @staticmethod
    def _unlink(path: Path | None) -> int | None:
        if path is None:
            return None
        try:
            freed = path.stat().st_size
            path.unlink()  # of two processes unlinking one name, exactly one succeeds
        except FileNotFoundError:
            return None
        return freed

    def usage(self) -> tuple[int, int]:
        files = total = 0
        for entry in os.scandir(self.folder):
            if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
                continue  # a result being written, or not a result
            try:
                total += entry.stat(follow_symlinks=False).st_size
            except FileNotFoundError:
                continue
            files += not entry.name.endswith(_THUMBNAIL_SUFFIX)
        return files, total

    async def save_thumbnail(self, location: str, data: bytes) -> None:
        await asyncio.to_thread(self._write, thumbnail_name(location), data)

    def thumbnail_path(self, location: str) -> Path | None:
        return self.path(thumbnail_name(location))
