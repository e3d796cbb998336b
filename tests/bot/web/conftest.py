"""A store with a published server and a private one, holding real result files made from
scikit-image photos, for the web gallery's tests (the service, the aiohttp app and the browser)."""

from __future__ import annotations

import io
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image

from bot.commands import reproduce_command
from bot.results import LocalResults
from bot.service import Metrics, PublicGallery
from bot.store import Store
from bot.web import ClientLimit, make_app, serving
from bot.web.app import CONNECTION_GUARD
from bot.web.connections import ConnectionGuard
from core.jobs import MIME_TYPES
from core.spec import compile_job
from tests.bot.rows import add_job

PUBLIC = "1001"  # publishes its gallery
PRIVATE = "2002"  # does not
CHANNEL = "3003"
GENEROUS = ClientLimit(burst=10_000, per_second=10_000.0)  # tests that are not about the limit never meet it


def message_link(guild_id: str, job_id: int) -> str:
    """The link Discord gives the message that carries a result (message ids: any unique number)."""
    return f"https://discord.com/channels/{guild_id}/{CHANNEL}/{900_000 + job_id}"


@dataclass
class Published:
    store: Store
    gallery: PublicGallery
    results_dir: Path
    jobs: dict[str, int] = field(default_factory=dict)  # a name in these tests -> the job (result) id

    async def publish(self, name: str, kind: str, options: dict, data: bytes, extension: str, *, guild_id: str = PUBLIC,
                      user_id: str = "424242424242", images: tuple[bytes, ...] = (), seed: int = 7, likes: int = 0) -> int:
        """A finished job whose result file is `data`, posted on Discord and in its server's gallery,
        recorded as the service records one (its command, the result's location and type)."""
        spec = compile_job(kind, options, images=list(images), seed=seed)
        job_id = await add_job(self.store, spec, user_id=user_id, guild_id=guild_id, channel_id=CHANNEL,
                               command=reproduce_command(spec, ""))
        location = f"job-{job_id}.{extension}"
        (self.results_dir / location).write_bytes(data)
        assert await self.store.jobs.finish(job_id, {"total": 1.0}, location, MIME_TYPES[extension])
        entry = await self.store.gallery.add(job_id, message_link(guild_id, job_id), channel_id=CHANNEL)
        for fan in range(likes):
            await self.store.gallery.like(entry, f"fan-{fan}")
        self.jobs[name] = job_id
        return job_id


def png_of(photo: bytes) -> bytes:
    out = io.BytesIO()
    Image.open(io.BytesIO(photo)).save(out, "PNG")
    return out.getvalue()


def gif_zooming_into(photo: bytes, frames: int = 4) -> bytes:
    """A small looping GIF that zooms into the photo, like a zoom result."""
    image = Image.open(io.BytesIO(photo)).convert("RGB")
    width, height = image.size
    shots = []
    for i in range(frames):
        inset = i * min(width, height) // (4 * frames)
        shots.append(image.crop((inset, inset, width - inset, height - inset)).resize((width, height)))
    out = io.BytesIO()
    shots[0].save(out, "GIF", save_all=True, append_images=shots[1:], duration=120, loop=0)
    return out.getvalue()


@pytest.fixture
async def published(tmp_path, photo_bytes):
    """Results on a public server (a dream, a zoom, a class render) and one on a private server.

    The public server's prefix is "?", so its reproduce commands start with "?". Likes: the
    render has most, then the dream; the zoom has none but is the newest.
    """
    results_dir = tmp_path / "results"
    results_dir.mkdir()
    async with Store.open(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}", upgrade=True) as store:
        world = Published(store, PublicGallery(store, results=LocalResults(results_dir), default_prefix="!"), results_dir)
        await store.guilds.change(PUBLIC, public_gallery=True, prefix="?")
        await store.guilds.change(PRIVATE, public_gallery=False)
        cat = photo_bytes("chelsea.png", (144, 96))
        await world.publish("banana", "visualize", {"target": "banana", "size": 64}, png_of(photo_bytes("coffee.png", (96, 64))),
                            "png", seed=1, likes=3)
        await world.publish("dream", "dream", {"layer": "deep", "strength": 2}, png_of(cat), "png", images=(cat,), likes=2)
        await world.publish("zoom", "zoom", {"frames": 4}, gif_zooming_into(photo_bytes("astronaut.png", (96, 96))), "gif", seed=3)
        await world.publish("secret", "dream", {}, png_of(cat), "png", guild_id=PRIVATE, images=(cat,), likes=9)
        yield world


@pytest.fixture
async def make_client(published):
    """Makes test clients of web apps over `published`; `limit` sets an app's per-client rate limit,
    other keyword arguments go to `make_app`."""
    clients: list[TestClient] = []

    async def make(limit: ClientLimit = GENEROUS, **options) -> TestClient:
        client = TestClient(TestServer(make_app(published.gallery, Metrics(published.store), limit=limit, **options)))
        await client.start_server()
        clients.append(client)
        return client

    try:
        yield make
    finally:
        for client in clients:
            await client.close()


@pytest.fixture
async def client(make_client):
    return await make_client()


@dataclass
class Served:
    port: int
    guard: ConnectionGuard  # the site's connection counts


@pytest.fixture
async def serve(published):
    """Serves web apps over `published` on loopback as `dreambot web` does (its own site, caps and
    timeouts), for raw sockets; keyword arguments go to `make_app`, a `monitor` replaces the metrics."""
    async with AsyncExitStack() as stack:
        async def start(monitor=None, **options) -> Served:
            options.setdefault("limit", GENEROUS)
            app = make_app(published.gallery, monitor or Metrics(published.store), **options)
            url = await stack.enter_async_context(serving(app, "127.0.0.1", 0))
            return Served(int(url.rsplit(":", 1)[1]), app[CONNECTION_GUARD])

        yield start
