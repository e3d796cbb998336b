"""Each server's gallery: likes (a button or a ⭐ reaction), featuring, withdrawal when a result's
message is deleted, and what the web gallery may show of it.

Likes: one per member, never the requester's own; a result reaching its server's threshold is
featured in the gallery channel once, however often likes are taken back and given again.

The web's view (`PublicGallery`) is read-only and limited to what servers published.

A server's gallery is public only while its admins keep `public_gallery` on. That is read from the
store on every call, never cached, so turning it off hides the server's pages and files at once. A
result is public while its gallery entry is (its Discord message has not been deleted) and its
server's gallery is public; who asked for it is shown only where the server also turned
`public_names` on. A result's file is found by the result's id: the job record names the file, and
only that name is looked up, inside RESULTS_DIR, so no request can reach any other file.

Listings (the web's and `!gallery`'s, through `servable`) show only results that can be shown: an
expired result (its file deleted by the retention sweep, retention.py) is listed as expired, and a
result whose file is gone for another reason (deleted by hand) is left out, and recorded as missing
by the first front that finds it so, so that later listings skip it in the database.

The web front reaches the store only through this module; the addresses of its pages are built here
too, so the Discord front links to the same pages the web front serves.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..results import ResultStore
from ..store import MAX_ID, ORDERS, GalleryItem, GuildSettings, LikeResult, NotFound, Order, Store
from .jobs import Denied

__all__ = [
    "Gallery", "GalleryPage", "Order", "ORDERS", "PublicGallery", "PublicResult", "ResultFile",
    "GALLERY_PATH", "RESULT_PATH", "RESULT_FILE_PATH", "RESULT_THUMBNAIL_PATH", "gallery_page_url", "result_page_url",
    "servable",
]

log = logging.getLogger(__name__)

# Where each thing lives on the web gallery, relative to PUBLIC_URL.
GALLERY_PATH = "/servers/{guild_id}"
RESULT_PATH = "/results/{job_id}"
RESULT_FILE_PATH = "/results/{job_id}/file"
RESULT_THUMBNAIL_PATH = "/results/{job_id}/thumbnail"


class Gallery:
    """Likes, featuring and withdrawal of posted results, on every front that shows them."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def like(self, job_id: int, message_link: str, *, channel_id: str | None, user_id: str) -> LikeResult | Denied:
        """A like of a posted result, by its button or a ⭐ reaction: one per user, never the requester's own."""
        try:
            entry_id = await self.store.gallery.add(job_id, message_link, channel_id=channel_id)
        except NotFound:
            return Denied("that result is no longer known")
        item = await self.store.gallery.item(job_id)
        if item is not None and item.user_id == user_id:
            return Denied("you cannot like your own result")
        return await self.store.gallery.like(entry_id, user_id)

    async def unlike(self, job_id: int, user_id: str) -> LikeResult | None:
        """Take back a like (a ⭐ reaction removed); None when the result is in no gallery."""
        item = await self.store.gallery.item(job_id)
        return await self.store.gallery.unlike(item.id, user_id) if item is not None else None

    async def claim_feature(self, message_link: str) -> bool:
        """Whether to feature the result posted in this message in the gallery channel now: True once per result."""
        return await self.store.gallery.claim_feature(message_link)

    async def job_posted_in(self, message_link: str) -> int | None:
        """The job whose result a message carries, None for any other message."""
        return await self.store.gallery.job_of_post(message_link)

    async def withdraw(self, message_links: list[str]) -> int:
        """Results whose Discord messages were deleted leave the gallery, here and on the web; returns how many."""
        return await self.store.gallery.remove(message_links)


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
    expired: bool = False  # its file was deleted after RESULT_RETENTION_DAYS: shown as expired, no file to serve
    size: tuple[int, int] | None = None  # width and height in pixels; read for a result's own page only
    server_name: str | None = None  # as the bot last saw it; None: not seen since this was recorded

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
    server_name: str | None = None  # as the bot last saw it
    server_icon: str | None = None  # the address of its icon on Discord's CDN; None: it has none


@dataclass(frozen=True)
class ResultFile:
    path: Path
    mime_type: str


class PublicGallery:
    """Read-only access to the published part of the store, for the web front.

    results: where the service keeps result files. default_prefix: the bot's command prefix, shown
    in the commands of servers that did not choose their own.
    """

    def __init__(self, store: Store, *, results: ResultStore, default_prefix: str = "!", page_size: int = 24) -> None:
        self._store = store
        self._results = results
        self._default_prefix = default_prefix
        self.page_size = page_size

    async def gallery(self, guild_id: str, order: Order = "recent", page: int = 1) -> GalleryPage | None:
        """One page of a server's gallery; None unless the server's gallery is public."""
        assert order in ORDERS and page >= 1, f"the web front parses order ({order!r}) and page ({page}) first"
        settings = await self._store.guilds.get(guild_id)
        if not settings.public_gallery:
            return None
        # One more than a page, to know whether another page follows.
        items = await servable(self._store, self._results, guild_id, order, limit=self.page_size + 1,
                               offset=(page - 1) * self.page_size)
        shown = [self._public(item, settings) for item in items[: self.page_size]]
        return GalleryPage(guild_id, order, page, tuple(r for r in shown if r is not None), len(items) > self.page_size,
                           server_name=settings.name, server_icon=settings.icon_url)

    async def result(self, job_id: int) -> PublicResult | None:
        """A published result; None when there is none: no such result, not in a gallery, its message
        deleted, or its server's gallery not public (the caller cannot tell which, on purpose)."""
        found = await self._published(job_id)
        if found is None:
            return None
        result, location = found
        if result.expired:
            return result
        path = await asyncio.to_thread(self._results.path, location)
        if path is None:
            await self._store.retention.missing(job_id)  # gone by hand: no page with a broken image
            return None
        return replace(result, size=await asyncio.to_thread(media_size, path, result.mime_type))

    async def result_file(self, job_id: int) -> ResultFile | None:
        """The file of a published result; None when the result is not public or its file is gone."""
        found = await self._published(job_id)
        if found is None:
            return None
        result, location = found
        if result.expired:
            return None
        # The result store finds it by the name the job recorded: no other file is reachable.
        path = await asyncio.to_thread(self._results.path, location)
        return ResultFile(path, result.mime_type) if path is not None else None

    async def thumbnail_file(self, job_id: int) -> ResultFile | None:
        """The thumbnail of a published result (bot/thumbnails.py), made and kept on first asking;
        None when the result is not public, its file is gone, or no thumbnail can be made of it."""
        import av  # the web front's: not loaded by the bot's walk of a job

        from ..thumbnails import THUMBNAIL_TYPE, make_thumbnail

        found = await self._published(job_id)
        if found is None or found[0].expired:
            return None
        result, location = found
        path = await asyncio.to_thread(self._results.thumbnail_path, location)
        if path is None:
            data = await self._results.read(location)
            if data is None:
                return None
            try:
                thumbnail = await asyncio.to_thread(make_thumbnail, data, result.mime_type)
            except (OSError, ValueError, av.FFmpegError) as exc:  # a file that is not what its type says
                log.warning("no thumbnail of result %s: %s", job_id, exc)
                return None
            await self._results.save_thumbnail(location, thumbnail)
            path = await asyncio.to_thread(self._results.thumbnail_path, location)
        return ResultFile(path, THUMBNAIL_TYPE) if path is not None else None

    async def _published(self, job_id: int) -> tuple[PublicResult, str] | None:
        if not 1 <= job_id <= MAX_ID:
            return None
        item = await self._store.gallery.item(job_id)
        if item is None or item.guild_id is None or item.result_location is None or item.result_removed == "missing":
            return None
        settings = await self._store.guilds.get(item.guild_id)
        result = self._public(item, settings) if settings.public_gallery else None
        return (result, item.result_location) if result is not None else None

    def _public(self, item: GalleryItem, settings: GuildSettings) -> PublicResult | None:
        if item.result_type is None or item.guild_id is None:
            return None  # no file a browser could show
        prefix = settings.prefix or self._default_prefix
        return PublicResult(
            job_id=item.job_id,
            guild_id=item.guild_id,
            kind=item.kind,
            mime_type=item.result_type,
            params=dict(item.params),
            command=prefix + item.command if item.command else None,
            likes=item.likes,
            posted_at=datetime.fromtimestamp(item.created_at, timezone.utc),
            message_link=item.message_link,
            author_id=item.user_id if settings.public_names else None,
            expired=item.result_removed == "expired",
            server_name=settings.name,
        )


def media_size(path: Path, mime_type: str) -> tuple[int, int] | None:
    """A result file's width and height, from its header (a still or an animation) or its first
    video stream; None when the file cannot say (the page is shown without sizes, not refused)."""
    if mime_type.startswith("video/"):
        import av

        try:
            with av.open(str(path)) as container:
                context = container.streams.video[0].codec_context
                return context.width, context.height
        except (av.FFmpegError, OSError, IndexError):
            return None
    from PIL import Image

    try:
        with Image.open(path) as image:  # the header only: no pixels are decoded
            return image.size
    except (OSError, ValueError):  # PIL.UnidentifiedImageError is an OSError
        return None


_REREADS = 3  # a page read again after recording files found gone; more only under a storm of deletions


async def servable(store: Store, results: ResultStore, guild_id: str | None, order: Order, *, limit: int,
                   offset: int = 0) -> list[GalleryItem]:
    """A server's gallery entries that can be shown, in `order`: expired ones (shown as such) and those
    whose file is there. Entries whose file is found gone are recorded as missing and the page is read
    again, so that it stays full and the next pages do not shift."""
    gone: set[int] = set()
    for _ in range(_REREADS):
        items = await store.gallery.listing(guild_id, order, limit=limit, offset=offset)
        gone = await asyncio.to_thread(_gone, results, items)
        if not gone:
            return items
        for job_id in gone:
            await store.retention.missing(job_id)
    return [item for item in items if item.job_id not in gone]


def _gone(results: ResultStore, items: list[GalleryItem]) -> set[int]:
    """The jobs of `items` whose file should be there and is not."""
    return {item.job_id for item in items
            if item.result_removed is None and item.result_location is not None and results.path(item.result_location) is None}
