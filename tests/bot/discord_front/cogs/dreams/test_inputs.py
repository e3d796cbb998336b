"""A user's photo or clip, got safely (bot/discord_front/cogs/dreams/inputs.py): screened by its
metadata before a byte is read, taken from Discord's own CDN only, and downloaded with a byte cap
(from the declared size, and again while reading) and a timeout.

The functions are checked on their own (downloads from the fake Discord's CDN), and through the bot
against the local fake Discord: with the real engine, and with the fake runner where no job is the point."""

from __future__ import annotations

from types import SimpleNamespace

import aiohttp
import discord
import pytest
import pytest_asyncio

from bot.discord_front.client import CDN_HOSTS
from bot.discord_front.cogs.dreams.inputs import (
    ImageSource,
    InputRefused,
    check_attachment,
    download,
    find_image_urls,
    first_photo_of,
)
from bot.store import RateLimits
from tests.bot.discord_front.helpers import (
    SMALL,
    STAND_INS,
    bot_said,
    decoded,
)
from tests.bot.discord_world import open_world
from tests.fake_discord import FakeDiscord

pytestmark = pytest.mark.asyncio(loop_scope="module")
MIB = 1024 * 1024


@pytest_asyncio.fixture(loop_scope="module")
async def world(tmp_path, executor):
    async with open_world(tmp_path, executor, RateLimits(user_burst=10, max_active_jobs=5)) as world:
        yield world


@pytest_asyncio.fixture(loop_scope="module")
async def quick(tmp_path, fake_runner):
    """A world whose jobs the fake runner makes: start its bot with `quick.bot(**STAND_INS)`."""
    async with open_world(tmp_path, fake_runner, RateLimits(user_burst=10, max_active_jobs=5)) as world:
        yield world


@pytest.fixture
def photo(photo_bytes):
    return photo_bytes("chelsea.png", (144, 96))


# -- through the bot -------------------------------------------------------------------------------------


async def test_bad_attachments_are_refused_before_downloading(world):
    fake = world.fake
    async with world.bot():
        await fake.dispatch_message("!dream", attachments=[fake.add_attachment(b"just text", "notes.txt", "text/plain")])
        await bot_said(fake, "'notes.txt' is 'text/plain', not a photo")
        huge = fake.add_attachment(b"\x89PNG" + bytes(100), "huge.png", "image/png", declared_size=40 * 1024 * 1024)
        await fake.dispatch_message("!dream", attachments=[huge])
        await bot_said(fake, "'huge.png' is 40 MiB; the limit is 25 MiB")
        await fake.dispatch_message("!dream https://example.com/cat.png")
        await bot_said(fake, "Discord's own CDN only")
        await fake.dispatch_message("!dream", attachments=[fake.add_attachment(b"GIF89a-broken", "broken.png", "image/png")])
        await bot_said(fake, "the file is not an image Pillow can read")  # refused when compiled: no job, no token
        await fake.dispatch_message("!dreem")
        await bot_said(fake, "unknown command 'dreem' (did you mean !dream?)")
        await fake.dispatch_message("!dream octaves:99", attachments=[fake.add_attachment(b"x", "a.png", "image/png")])
        await bot_said(fake, "octaves must be between 1 and 8")
    assert all(r.path.endswith("broken.png") for r in fake.cdn_requests), "refused files are never downloaded"
    assert not any("Traceback" in m["content"] for m in fake.messages)
    assert (await world.store.gallery.stats()).jobs == 0, "nothing that was refused left a job row"


async def test_dream_on_the_photo_of_the_message_replied_to_and_on_a_cdn_link(world, photo):
    fake = world.fake
    async with world.bot():
        original = await fake.dispatch_message("look at this", attachments=[fake.add_attachment(photo, "cat.png")])
        await fake.dispatch_message(f"!dream {SMALL}", reply_to=original)
        first = await fake.wait_for_upload()
        assert decoded(first.data).size == (96, 64)
        link = original["attachments"][0]["url"]
        await fake.dispatch_message(f"!dream {SMALL} {link}")
        second = await fake.wait_for_upload(start=1)
        assert decoded(second.data).size == (96, 64)


async def test_an_attachment_larger_than_it_claims_is_refused_while_downloading(quick):
    fake = quick.fake
    quick.settings = quick.settings.model_copy(update={"max_input_bytes": 4096})
    data = b"\x89PNG" + bytes(10_000)
    async with quick.bot(**STAND_INS):
        # Discord's metadata says 100 bytes: it passes the check by metadata, and the download's own caps stop it.
        said = fake.add_attachment(data, "said.png", "image/png", declared_size=100)
        await fake.dispatch_message("!dream", attachments=[said])
        await bot_said(fake, "'said.png' is 10 KiB; the limit is 4 KiB")  # the length the CDN declares
        unsaid = fake.add_attachment(data, "unsaid.png", "image/png", declared_size=100, send_content_length=False)
        await fake.dispatch_message("!dream", attachments=[unsaid])
        await bot_said(fake, "'unsaid.png' is larger than the 4 KiB limit")  # counted while reading
    assert sorted(r.path.rsplit("/", 1)[1] for r in fake.cdn_requests) == ["said.png", "unsaid.png"]
    assert (await quick.store.gallery.stats()).jobs == 0, "nothing was admitted"


async def test_a_reply_dreams_on_the_first_photo_of_the_message_it_answers(quick):
    fake = quick.fake
    async with quick.bot(**STAND_INS):
        original = await fake.dispatch_message("my notes and my cat", attachments=[
            fake.add_attachment(b"just text", "notes.txt", "text/plain"),
            fake.add_attachment(b"\x89PNG a cat", "cat.png", "image/png"),
            fake.add_attachment(b"\x89PNG a dog", "dog.png", "image/png"),
        ])
        await fake.dispatch_message("!dream steps:1", reply_to=original)
        await fake.wait_for_upload()
        plain = await fake.dispatch_message("no photo here")
        await fake.dispatch_message("!dream steps:1", reply_to=plain)
        await bot_said(fake, "attach a photo (or reply to one, or give a Discord image link)")
    assert [r.path.rsplit("/", 1)[1] for r in fake.cdn_requests] == ["cat.png"]
    assert (await quick.store.jobs.get(1)).image == b"\x89PNG a cat"


# -- the checks by metadata --------------------------------------------------------------------------------


def attachment(filename: str, content_type: str | None, size: int) -> discord.Attachment:
    payload = {"id": "1", "filename": filename, "size": size, "url": f"https://cdn.discordapp.com/attachments/1/2/{filename}",
               "proxy_url": f"https://media.discordapp.net/attachments/1/2/{filename}"}
    if content_type is not None:
        payload["content_type"] = content_type
    return discord.Attachment(data=payload, state=SimpleNamespace(http=None))  # type: ignore[arg-type]


async def test_an_attachment_is_taken_by_its_declared_type_or_else_its_name():
    taken = check_attachment(attachment("cat.png", "image/PNG; charset=binary", 1000), 25 * MIB)
    assert taken == ImageSource("https://cdn.discordapp.com/attachments/1/2/cat.png", "cat.png", 1000, "image/png")
    assert check_attachment(attachment("clip.mov", "video/quicktime", 10), 25 * MIB).content_type == "video/quicktime"
    assert check_attachment(attachment("CAT.JPEG", None, 10), 25 * MIB).content_type is None, "no type: the name decides"
    with pytest.raises(InputRefused, match=r"^'notes.txt' is 'text/plain', not a photo \(PNG"):
        check_attachment(attachment("notes.txt", "text/plain", 10), 25 * MIB)
    with pytest.raises(InputRefused, match=r"^'cat.png' is 'application/pdf', not a photo"):
        check_attachment(attachment("cat.png", "application/pdf", 10), 25 * MIB)  # the type wins over the name
    with pytest.raises(InputRefused, match=r"^'cat.heic' does not look like a photo"):
        check_attachment(attachment("cat.heic", None, 10), 25 * MIB)


async def test_an_attachment_over_the_byte_cap_is_refused_by_its_declared_size():
    assert check_attachment(attachment("cat.png", "image/png", 25 * MIB), 25 * MIB).size == 25 * MIB, "the cap itself is taken"
    with pytest.raises(InputRefused) as refused:
        check_attachment(attachment("cat.png", "image/png", 25 * MIB + 1), 25 * MIB)
    assert str(refused.value) == "'cat.png' is 26,214,401 bytes; the limit is 26,214,400 bytes"


async def test_links_are_taken_from_discords_cdn_only():
    words = ["layer:deep", "https://cdn.discordapp.com/attachments/1/2/cat.png", "<https://media.discordapp.net/a/b/dog.jpg>",
             "HTTP://CDN.DISCORDAPP.COM/attachments/3/4/", "strength:2"]
    rest, sources = find_image_urls(words)
    assert rest == ["layer:deep", "strength:2"]
    assert sources == [
        ImageSource("https://cdn.discordapp.com/attachments/1/2/cat.png", "cat.png", None, None),
        ImageSource("https://media.discordapp.net/a/b/dog.jpg", "dog.jpg", None, None),
        ImageSource("HTTP://CDN.DISCORDAPP.COM/attachments/3/4/", "image", None, None),
    ]
    for url in ("https://example.com/cat.png", "https://cdn.discordapp.com.example.org/cat.png",
                "http://127.0.0.1:8080/cat.png", "https://evil@example.com/cdn.discordapp.com/cat.png"):
        with pytest.raises(InputRefused, match=r"^images are taken from Discord's own CDN only \(cdn.discordapp.com, "):
            find_image_urls(["layer:deep", url])
    assert find_image_urls(["http://127.0.0.1:8080/cat.png"], ("127.0.0.1",))[1][0].filename == "cat.png"
    assert CDN_HOSTS == ("cdn.discordapp.com", "media.discordapp.net")


async def test_what_is_not_a_message_has_no_photo():
    assert first_photo_of(None) == [] and first_photo_of("not a message") == []


# -- downloads ---------------------------------------------------------------------------------------------


@pytest_asyncio.fixture(loop_scope="module")
async def cdn():
    """A CDN to download from (the fake Discord's), and a session to download with."""
    async with FakeDiscord() as fake, aiohttp.ClientSession() as session:
        yield fake, session


def source(url: str, filename: str = "cat.png") -> ImageSource:
    return ImageSource(url, filename, None, None)


async def test_a_download_within_the_cap_is_the_files_bytes(cdn):
    fake, session = cdn
    data = bytes(range(256)) * 1000
    url = fake.serve_file("a/cat.png", data, "image/png", chunk_size=1000)
    assert await download(session, source(url), max_bytes=len(data)) == data
    unsaid = fake.serve_file("a/unsaid.png", data, "image/png", chunk_size=1000, send_content_length=False)
    assert await download(session, source(unsaid), max_bytes=len(data)) == data


async def test_a_download_over_the_cap_is_refused_by_its_declared_length_or_while_reading(cdn):
    fake, session = cdn
    data = bytes(3 * 1024)
    url = fake.serve_file("b/big.png", data, "image/png")
    with pytest.raises(InputRefused) as declared:
        await download(session, source(url, "big.png"), max_bytes=2048)
    assert str(declared.value) == "'big.png' is 3 KiB; the limit is 2 KiB"
    unsaid = fake.serve_file("b/unsaid.png", data, "image/png", chunk_size=512, send_content_length=False)
    with pytest.raises(InputRefused) as reading:
        await download(session, source(unsaid, "unsaid.png"), max_bytes=2048)
    assert str(reading.value) == "'unsaid.png' is larger than the 2 KiB limit"


async def test_a_download_that_fails_or_is_slow_is_refused_in_one_line(cdn):
    fake, session = cdn
    missing = fake.serve_file("c/gone.png", b"", "image/png", status=404)
    with pytest.raises(InputRefused, match=r"^could not fetch 'gone.png' \(HTTP 404\)$"):
        await download(session, source(missing, "gone.png"), max_bytes=MIB)
    moved = fake.serve_file("c/moved.png", b"", "image/png", status=302)
    with pytest.raises(InputRefused, match=r"^could not fetch 'moved.png' \(HTTP 302\)$"):  # redirects are not followed
        await download(session, source(moved, "moved.png"), max_bytes=MIB)
    slow = fake.serve_file("c/slow.png", b"\x89PNG", "image/png", delay=30.0)
    with pytest.raises(InputRefused, match=r"^fetching 'slow.png' took longer than 1 s$"):
        await download(session, source(slow, "slow.png"), max_bytes=MIB, timeout=1.0)
    with pytest.raises(InputRefused, match=r"^could not fetch 'closed.png' \(Client\w+Error\)$"):
        await download(session, source("http://127.0.0.1:1/closed.png", "closed.png"), max_bytes=MIB)
