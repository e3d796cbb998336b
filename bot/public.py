"""What the web gallery may show: a read-only view of the store, limited to what servers published.

A server's gallery is public only while its admins keep `public_gallery` on. That is read from the
store on every call, never cached, so turning it off hides the server's pages and files at once. A
result is public while its gallery entry is (its Discord message has not been deleted) and its
server's gallery is public; who asked for it is shown only where the server also turned
`public_names` on. A result's file is found by the result's id: the job record names the file, and
only that name is looked up, inside RESULTS_DIR, so no request can reach any other file.

The web front reaches the store only through this module; the addresses of its pages are built here
too, so the Discord front links to the same pages the web front serves.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePath
from typing import Any, Literal

from core.errors import DreamError
from core.jobs import MIME_TYPES

from .commands import reproduce_stored_command
from .store import MAX_ID, GalleryItem, GuildSettings, Store

__all__ = [
    "GalleryPage", "Order", "ORDERS", "PublicGallery", "PublicResult", "ResultFile",
    "GALLERY_PATH", "RESULT_PATH", "RESULT_FILE_PATH", "gallery_page_url", "result_page_url",
]

Order = Literal["recent", "top"]
ORDERS: tuple[Order, ...] = ("recent", "top")

# Where each thing lives on the web gallery, relative to PUBLIC_URL.
GALLERY_PATH = "/servers/{guild_id}"
RESULT_PATH = "/results/{job_id}"
RESULT_FILE_PATH = "/results/{job_id}/file"


def gallery_page_url(public_url: str, guild_id: str | int) -> str:
    return public_url + GALLERY_PATH.format(guild_id=guild_id)


def result_page_url(public_url: str, job_id: int) -> str:
    return public_url + RESULT_PATH.format(job_id=job_id)


@dataclass(frozen=True)
class PublicResult:
    """One published result, with nothing in it that its server did not choose to show."""

    job_id: int
    guild_id: str
    kind: str  # dream, visualize, zoom
    mime_type: str  # of the file at RESULT_FILE_PATH
    params: dict[str, Any]  # every parameter the job ran with, resolved
    command: str | None  # the Discord command that makes it again; None if this version cannot say
    likes: int
    posted_at: datetime
    message_link: str  # the result's message on Discord (readable by the server's members only)
    author_id: str | None  # the Discord user who asked; None unless the server shows names

    @property
    def is_video(self) -> bool:
        return self.mime_type.startswith("video/")  # a dreamt clip or an MP4 zoom, shown in a <video> element

    @property
    def is_animation(self) -> bool:
        # Only zooms and clips are GIFs or WebPs: a dream or a render is always a PNG (core/runner.py).
        return self.mime_type in ("image/gif", "image/webp") or self.is_video


@dataclass(frozen=True)
class GalleryPage:
    guild_id: str
    order: Order
    page: int  # from 1
    results: tuple[PublicResult, ...]
    has_next: bool


@dataclass(frozen=True)
class ResultFile:
    path: Path
    mime_type: str


class PublicGallery:
    """Read-only access to the published part of the store, for the web front.

    results_dir: where the service saved result files (RESULTS_DIR). default_prefix: the bot's
    command prefix, used in reproduce commands of servers that did not choose their own.
    """

    def __init__(self, store: Store, *, results_dir: Path, default_prefix: str = "!", page_size: int = 24) -> None:
        self._store = store
        self._results_dir = Path(results_dir)
        self._default_prefix = default_prefix
        self.page_size = page_size

    async def gallery(self, guild_id: str, order: Order = "recent", page: int = 1) -> GalleryPage | None:
        """One page of a server's gallery; None unless the server's gallery is public."""
        assert order in ORDERS and page >= 1, f"the web front parses order ({order!r}) and page ({page}) first"
        settings = await self._store.get_guild_settings(guild_id)
        if not settings.public_gallery:
            return None
        # One more than a page, to know whether another page follows.
        items = await self._store.gallery(guild_id, order, limit=self.page_size + 1, offset=(page - 1) * self.page_size)
        shown = [self._public(item, settings) for item in items[: self.page_size]]
        return GalleryPage(guild_id, order, page, tuple(r for r in shown if r is not None), len(items) > self.page_size)

    async def result(self, job_id: int) -> PublicResult | None:
        """A published result; None when there is none: no such result, not in a gallery, its message
        deleted, or its server's gallery not public (the caller cannot tell which, on purpose)."""
        found = await self._published(job_id)
        return found[0] if found is not None else None

    async def result_file(self, job_id: int) -> ResultFile | None:
        """The file of a published result; None when the result is not public or its file is gone."""
        found = await self._published(job_id)
        if found is None:
            return None
        result, location = found
        # Only the name the job recorded, looked up in RESULTS_DIR: whatever the record says, no
        # other folder is reachable (and a web process with the folder mounted elsewhere still works).
        name = PurePath(location).name
        path = self._results_dir / name
        if name.startswith(".") or not await asyncio.to_thread(path.is_file):
            return None
        return ResultFile(path, result.mime_type)

    async def _published(self, job_id: int) -> tuple[PublicResult, str] | None:
        if not 1 <= job_id <= MAX_ID:
            return None
        item = await self._store.gallery_item(job_id)
        if item is None or item.guild_id is None or item.result_location is None:
            return None
        settings = await self._store.get_guild_settings(item.guild_id)
        result = self._public(item, settings) if settings.public_gallery else None
        return (result, item.result_location) if result is not None else None

    def _public(self, item: GalleryItem, settings: GuildSettings) -> PublicResult | None:
        mime_type = MIME_TYPES.get(PurePath(item.result_location or "").suffix.lstrip(".").lower())
        if mime_type is None or item.guild_id is None:
            return None  # no file a browser could show
        return PublicResult(
            job_id=item.job_id,
            guild_id=item.guild_id,
            kind=item.kind,
            mime_type=mime_type,
            params=dict(item.params),
            command=self._command(item, settings.prefix or self._default_prefix),
            likes=item.likes,
            posted_at=item.created_at,
            message_link=item.message_link,
            author_id=item.user_id if settings.public_names else None,
        )

    @staticmethod
    def _command(item: GalleryItem, prefix: str) -> str | None:
        try:
            return reproduce_stored_command(item.kind, item.params, item.seed, prefix)
        except (DreamError, KeyError, TypeError):  # a kind or model this version no longer has
            return None
