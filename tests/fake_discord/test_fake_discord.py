"""The fake Discord in tests/fake_discord against the real discord.py client stack.

A plain ``commands.Bot`` defined here logs in, connects through the gateway (zlib-stream), and is
driven by the fake's hooks: prefix commands, uploads, edits, a forced 413, a slash command, a
persistent button, a gateway drop with RESUME, and an attachment read from the fake CDN. Sharded
clients (``AutoShardedBot``) get only their own shards' guilds, and DMs on shard 0.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import AsyncIterator

import aiohttp
import discord
import pytest
from discord.ext import commands
from PIL import Image

from tests.fake_discord import FakeDiscord, Intents, patch_discord_urls, running_bot, shard_of

pytestmark = pytest.mark.timeout(30)

LIMIT = 10.0  # seconds any single wait may take before the test fails instead of hanging


def png(size: tuple[int, int] = (8, 6), color: tuple[int, int, int] = (200, 40, 90)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


class AgainView(discord.ui.View):
    """A persistent view: timeout=None and a fixed custom_id, registered with ``bot.add_view``."""

    def __init__(self, pressed: list[int]) -> None:
        super().__init__(timeout=None)
        self.pressed = pressed

    @discord.ui.button(label="Dream again", custom_id="dream:again", style=discord.ButtonStyle.primary)
    async def again(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        self.pressed.append(interaction.user.id)
        await interaction.response.send_message("again!", ephemeral=True)

    @discord.ui.button(label="Stop", custom_id="dream:stop", style=discord.ButtonStyle.danger)
    async def stop_(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await interaction.response.edit_message(content="stopped", view=None)


class FakeTestBot(commands.Bot):
    def __init__(self, *, message_content: bool = True) -> None:
        intents = discord.Intents.default()
        intents.message_content = message_content
        # guild_ready_timeout: on_ready waits this long after the last GUILD_CREATE (default 2 s).
        super().__init__(command_prefix="!", intents=intents, guild_ready_timeout=0.05, help_command=None)
        self.pressed: list[int] = []
        self.upload_errors: list[discord.HTTPException] = []
        self.interaction_errors: list[discord.HTTPException] = []
        self.resumed = asyncio.Event()
        self.ready_guilds: list[discord.Guild] = []

        @self.command()
        async def ping(ctx: commands.Context) -> None:
            await ctx.reply("pong")

        @self.command()
        async def upload(ctx: commands.Context, width: int = 8) -> None:
            try:
                await ctx.send("here", file=discord.File(io.BytesIO(png((width, 6))), "dream.png"))
            except discord.HTTPException as exc:
                self.upload_errors.append(exc)
                await ctx.send(f"upload failed: {exc.status} {exc.code}")

        @self.command()
        async def progress(ctx: commands.Context) -> None:
            message = await ctx.send("step 0")
            for step in range(1, 4):
                message = await message.edit(content=f"step {step}")

        @self.command()
        async def size(ctx: commands.Context) -> None:
            attachment = ctx.message.attachments[0]
            data = await attachment.read()
            await ctx.send(f"{attachment.filename} {len(data)} {hashlib.sha256(data).hexdigest()[:16]}")

        @self.tree.command(name="dream", description="Dream on an image")
        async def dream(interaction: discord.Interaction, strength: int = 1,
                        image: discord.Attachment | None = None) -> None:
            name = image.filename if image else "nothing"
            await interaction.response.send_message(f"dreaming {name} at {strength}", view=AgainView(self.pressed))

        @self.tree.command(name="slowdream", description="Defer, then answer with a file")
        async def slowdream(interaction: discord.Interaction) -> None:
            await interaction.response.defer(thinking=True)
            await interaction.followup.send("done", file=discord.File(io.BytesIO(png()), "slow.png"))
            await interaction.edit_original_response(content="done!")

        @self.tree.command(name="late", description="Answer after Discord's deadline")
        async def late(interaction: discord.Interaction) -> None:
            await asyncio.sleep(0.3)
            try:
                await interaction.response.send_message("too late")
            except discord.HTTPException as exc:
                self.interaction_errors.append(exc)

    async def setup_hook(self) -> None:
        self.add_view(AgainView(self.pressed))

    async def on_ready(self) -> None:
        self.ready_guilds = list(self.guilds)

    async def on_resumed(self) -> None:
        self.resumed.set()


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    server = await asyncio.wait_for(FakeDiscord(default_timeout=LIMIT).start(), LIMIT)
    try:
        yield server
    finally:
        await asyncio.wait_for(server.close(), LIMIT)
    assert server.unknown_routes == [], f"the bot called routes the fake lacks: {server.unknown_routes}"


@pytest.fixture
async def bot(fake: FakeDiscord) -> AsyncIterator[FakeTestBot]:
    client = FakeTestBot()
    async with running_bot(fake, client, timeout=LIMIT):
        yield client


def replying_to(message: dict, content: str):
    def match(sent: dict) -> bool:
        ref = sent.get("message_reference") or {}
        return sent["content"] == content and ref.get("message_id") == message["id"]

    return match


async def test_bot_logs_in_and_sees_the_guild(fake: FakeDiscord, bot: FakeTestBot) -> None:
    assert bot.user is not None and bot.user.id == fake.application_id
    assert [g.id for g in bot.ready_guilds] == [fake.guild_id]
    guild = bot.get_guild(fake.guild_id)
    assert guild is not None and guild.member_count == 4 and guild.me is not None
    channel = guild.get_channel(fake.channel_id)
    assert isinstance(channel, discord.TextChannel) and channel.permissions_for(guild.me).attach_files
    (connection,) = fake.gateway_connections
    assert connection.query["v"] == "10" and connection.compression == "zlib-stream"
    assert len(fake.identifies) == 1 and fake.identifies[0]["intents"] & Intents.MESSAGE_CONTENT
    await fake.wait_for(lambda: fake.heartbeats, LIMIT, what="first heartbeat")


async def test_prefix_command_replies(fake: FakeDiscord, bot: FakeTestBot) -> None:
    sent = await fake.dispatch_message("!ping", author=fake.bob)
    reply = await fake.wait_for_message(replying_to(sent, "pong"))
    assert reply["author"]["id"] == str(fake.application_id) and reply["channel_id"] == str(fake.channel_id)
    assert reply["type"] == 19 and reply["referenced_message"]["content"] == "!ping"


async def test_file_upload_is_recorded_and_served(fake: FakeDiscord, bot: FakeTestBot) -> None:
    await fake.dispatch_message("!upload")
    upload = await fake.wait_for_upload()
    assert upload.data == png() and upload.filename == "dream.png" and upload.field == "files[0]"
    assert upload.content_type == "application/octet-stream"  # what discord.py sends for every file
    (message,) = fake.messages
    (attachment,) = message["attachments"]
    assert message["content"] == "here" and attachment["content_type"] == "image/png"
    assert (attachment["width"], attachment["height"]) == (8, 6) and attachment["size"] == len(png())
    async with aiohttp.ClientSession() as session, session.get(attachment["url"]) as response:
        assert await response.read() == png()


async def test_edits_are_recorded_in_order(fake: FakeDiscord, bot: FakeTestBot) -> None:
    await fake.dispatch_message("!progress")
    await fake.wait_for(lambda: len(fake.edits) == 3, what="three edits")
    (message,) = fake.messages
    assert [e.payload["content"] for e in fake.edits] == ["step 1", "step 2", "step 3"]
    assert {e.message_id for e in fake.edits} == {int(message["id"])}
    assert fake.edits[0].at <= fake.edits[1].at <= fake.edits[2].at
    assert message["content"] == "step 3" and message["edited_timestamp"] == fake.edits[-1].timestamp


async def test_upload_too_large_surfaces_as_413(fake: FakeDiscord, bot: FakeTestBot) -> None:
    fake.fail_next_upload()
    await fake.dispatch_message("!upload")
    await fake.wait_for_message(lambda m: m["content"].startswith("upload failed"))
    (error,) = bot.upload_errors
    assert error.status == 413 and error.code == 40005 and "Request entity too large" in str(error)
    assert fake.rejected_uploads[0].forced and fake.uploads == []

    fake.set_upload_limit(len(png((8, 6))) + 10)  # the guild's limit, not a forced failure
    await fake.dispatch_message("!upload 400")
    await fake.wait_for(lambda: len(bot.upload_errors) == 2, what="second 413")
    assert not fake.rejected_uploads[1].forced and fake.rejected_uploads[1].total_size > fake.rejected_uploads[1].limit

    await fake.dispatch_message("!upload")  # under the limit: accepted
    await fake.wait_for_upload()


async def test_slash_command_gets_a_response(fake: FakeDiscord, bot: FakeTestBot) -> None:
    await asyncio.wait_for(bot.tree.sync(), LIMIT)
    (sync,) = fake.command_syncs
    assert sync.guild_id is None and {c["name"] for c in sync.commands} == {"dream", "slowdream", "late"}

    image = fake.add_attachment(png(), "cat.png")
    interaction = await fake.dispatch_slash_command("dream", {"strength": 3, "image": image})
    response = await fake.wait_for_interaction_response(interaction)
    assert response.type == 4 and response.data["content"] == "dreaming cat.png at 3"
    assert response.data["components"][0]["components"][0]["custom_id"] == "dream:again"
    message = await fake.wait_for_message(lambda m: m["id"] == str(response.message_id))
    assert message["interaction_metadata"]["id"] == interaction["id"]


async def test_deferred_slash_command_followup_and_edit(fake: FakeDiscord, bot: FakeTestBot) -> None:
    interaction = await fake.dispatch_slash_command("slowdream")
    response = await fake.wait_for_interaction_response(interaction)
    assert response.type == 5
    await fake.wait_for(lambda: any(e.payload.get("content") == "done!" for e in fake.edits), what="@original edit")
    (message,) = fake.messages  # the followup filled the deferred "thinking" message
    assert message["content"] == "done!" and message["flags"] == 0
    (upload,) = fake.uploads
    assert upload.via == "webhook" and upload.data == png() and fake.followups[0]["id"] == message["id"]


async def test_interaction_answered_too_late_is_unknown(fake: FakeDiscord, bot: FakeTestBot) -> None:
    fake.interaction_timeout = 0.1
    await fake.dispatch_slash_command("late")
    await fake.wait_for(lambda: bot.interaction_errors, what="late interaction error")
    (error,) = bot.interaction_errors
    assert isinstance(error, discord.NotFound) and error.code == 10062
    assert fake.interaction_responses == []


async def test_persistent_button_invokes_its_callback(fake: FakeDiscord, bot: FakeTestBot) -> None:
    # No message from this bot run carries the button: only the persistent registration can match.
    interaction = await fake.dispatch_button("dream:again", user=fake.bob)
    response = await fake.wait_for_interaction_response(interaction)
    assert bot.pressed == [int(fake.bob["id"])]
    assert response.type == 4 and response.data["content"] == "again!" and response.data["flags"] == 64


async def test_button_updates_the_message_it_is_on(fake: FakeDiscord, bot: FakeTestBot) -> None:
    answered = await fake.wait_for_interaction_response(await fake.dispatch_slash_command("dream"))
    interaction = await fake.dispatch_button("dream:stop")  # finds the /dream answer carrying it
    response = await fake.wait_for_interaction_response(interaction)
    assert response.type == 7 and response.message_id == answered.message_id
    (edit,) = fake.edits
    assert edit.via == "interaction" and edit.message_id == answered.message_id
    (message,) = fake.messages
    assert message["content"] == "stopped" and message["components"] == []


async def test_gateway_drop_resumes_and_replays(fake: FakeDiscord, bot: FakeTestBot) -> None:
    await fake.disconnect(code=4000)
    missed = await fake.dispatch_message("!ping")  # sent while the bot is away: replayed on RESUME
    await fake.wait_for_resume()
    await asyncio.wait_for(bot.resumed.wait(), LIMIT)
    await fake.wait_for_message(replying_to(missed, "pong"))
    after = await fake.dispatch_message("!ping")
    await fake.wait_for_message(replying_to(after, "pong"))

    assert len(fake.identifies) == 1 and len(fake.resumes) == 1 and fake.invalid_sessions == []
    (session,) = fake.gateway.sessions.values()
    assert fake.resumes[0]["session_id"] == session.id
    assert [frame["s"] for frame in session.log] == list(range(1, session.seq + 1))
    await fake.wait_for(lambda: bot.ws.sequence == session.seq, what="client to catch up on sequence numbers")
    assert [c.query.get("compress") for c in fake.gateway_connections] == ["zlib-stream", "zlib-stream"]


async def test_bot_reads_attachment_from_fake_cdn(fake: FakeDiscord, bot: FakeTestBot) -> None:
    data = png((32, 32))
    attachment = fake.add_attachment(data, "photo.png")
    sent = await fake.dispatch_message("!size", attachments=[attachment])
    expected = f"photo.png {len(data)} {hashlib.sha256(data).hexdigest()[:16]}"
    await fake.wait_for_message(lambda m: m["content"] == expected)
    (request,) = fake.cdn_requests
    assert request.completed and request.bytes_sent == len(data) and request.path.endswith("/photo.png")
    assert sent["attachments"][0]["url"] == fake.cdn_url(request.path)


async def test_cdn_variants_lie_about_size_and_drip(fake: FakeDiscord) -> None:
    big = bytes(200_000)
    lying = fake.add_attachment(big, "small.png", "image/png", declared_size=1_000, send_content_length=False)
    slow = fake.add_attachment(big, "slow.png", "image/png", chunk_size=1_000, chunk_delay=0.05)
    assert lying["size"] == 1_000
    async with aiohttp.ClientSession() as session:
        async with session.get(lying["url"]) as response:
            assert response.content_length is None and len(await response.read()) == len(big)
        with pytest.raises(asyncio.TimeoutError):
            async with session.get(slow["url"], timeout=aiohttp.ClientTimeout(total=0.3)) as response:
                await response.read()
    record = await fake.wait_for(lambda: next((r for r in fake.cdn_requests if r.path.endswith("slow.png")), None))
    assert not record.completed and 0 < record.bytes_sent < len(big)


async def test_without_message_content_intent_content_is_empty(fake: FakeDiscord) -> None:
    client = FakeTestBot(message_content=False)
    seen: list[str] = []

    async def on_message(message: discord.Message) -> None:
        seen.append(message.content)

    client.add_listener(on_message)
    async with running_bot(fake, client, timeout=LIMIT):
        await fake.dispatch_message("!ping")
        await fake.dispatch_message(f"<@{fake.application_id}> hello")
        await fake.wait_for(lambda: len(seen) == 2, what="two messages seen by the bot")
    assert seen == ["", f"<@{fake.application_id}> hello"] and fake.messages == []


async def test_wrong_token_fails_login_fast(fake: FakeDiscord) -> None:
    with pytest.raises(RuntimeError) as info:
        async with running_bot(fake, FakeTestBot(), token="not-the-token", timeout=LIMIT):
            pass
    assert isinstance(info.value.__cause__, discord.LoginFailure)


# -- shards ------------------------------------------------------------------------------------------


class ShardTestBot(commands.AutoShardedBot):
    """discord.py's sharded bot with one command, `!ping`, that says which shard answered."""

    def __init__(self, **shards: object) -> None:
        intents = discord.Intents.default()
        intents.message_content = True
        super().__init__(command_prefix="!", intents=intents, guild_ready_timeout=0.05, help_command=None, **shards)

        @self.command()
        async def ping(ctx: commands.Context) -> None:
            shard = ctx.guild.shard_id if ctx.guild is not None else 0
            await ctx.reply(f"pong from shard {shard}")

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        pass  # discord.py waits 5 s between IDENTIFYs (Discord's rate limit); the fake has none


def guild_on_shard(fake: FakeDiscord, name: str, shard: int, shard_count: int = 2) -> tuple[int, dict]:
    """A new guild whose id puts it on `shard`, and its one text channel."""
    guild_id = fake.add_guild(name, shard=(shard, shard_count))
    assert shard_of(guild_id, shard_count) == shard
    return guild_id, fake.add_text_channel("general", guild_id=guild_id)


def guild_of_event(frame: dict) -> int | None:
    data = frame["d"]
    raw = data["id"] if frame["t"] == "GUILD_CREATE" else data.get("guild_id")
    return int(raw) if raw is not None else None


async def test_each_shard_sees_only_its_guilds_and_dms_come_on_shard_0(fake: FakeDiscord) -> None:
    even, even_channel = guild_on_shard(fake, "even", 0)
    odd, odd_channel = guild_on_shard(fake, "odd", 1)
    clients = {}
    for shard in (0, 1):
        with patch_discord_urls(fake, client_label=f"shard-{shard}"):  # labels the client made inside
            clients[shard] = ShardTestBot(shard_count=2, shard_ids=[shard])
    async with running_bot(fake, clients[0], timeout=LIMIT), running_bot(fake, clients[1], timeout=LIMIT):
        assert sorted([d["shard"] for d in fake.identifies]) == [[0, 2], [1, 2]]
        for shard, client in clients.items():
            expected = {g for g in fake.world.guilds if shard_of(g, 2) == shard}
            assert {g.id for g in client.guilds} == expected and {even, odd} & expected == {(even, odd)[shard]}

        asked = [await fake.dispatch_message("!ping", channel=channel) for channel in (even_channel, odd_channel)]
        asked.append(await fake.dispatch_message("!ping", channel=fake.open_dm(fake.bob), author=fake.bob))
        replies = [await fake.wait_for_message(lambda m, a=a: (m.get("message_reference") or {}).get("message_id") == a["id"])
                   for a in asked]
        assert [r["content"] for r in replies] == ["pong from shard 0", "pong from shard 1", "pong from shard 0"]
        assert [fake.sent_by[int(r["id"])] for r in replies] == ["shard-0", "shard-1", "shard-0"]

    sessions = {session.shard: session for session in fake.gateway.sessions.values()}
    # No waiting for a second answer that might come: each command reached exactly one session, so only one could.
    for message in asked:
        got_it = [shard for shard, session in sessions.items()
                  if any(frame["t"] == "MESSAGE_CREATE" and frame["d"]["id"] == message["id"] for frame in session.log)]
        assert len(got_it) == 1, f"message {message['content']!r} went to {got_it}"
    assert len(fake.messages) == 3
    assert {shard: session.client for shard, session in sessions.items()} == {(0, 2): "shard-0", (1, 2): "shard-1"}
    for (shard, count), session in sessions.items():
        seen = {guild_of_event(frame) for frame in session.log if frame["t"] in ("GUILD_CREATE", "MESSAGE_CREATE")}
        assert seen and all(shard_of(guild, count) == shard for guild in seen), f"shard {shard} saw {seen}"
    assert {r.client for r in fake.requests} == {"shard-0", "shard-1"}


async def test_an_auto_sharded_client_asks_the_gateway_how_many_shards_to_run() -> None:
    async with FakeDiscord(default_timeout=LIMIT, shard_count=2) as fake:
        guilds = [guild_on_shard(fake, f"guild {shard}", shard) for shard in (0, 1)]
        client = ShardTestBot()  # no shard_count: discord.py asks GET /gateway/bot
        async with running_bot(fake, client, timeout=LIMIT):
            assert client.shard_count == 2 and sorted(client.shards) == [0, 1]
            assert any(r.path.endswith("/gateway/bot") for r in fake.requests)
            assert sorted(d["shard"] for d in fake.identifies) == [[0, 2], [1, 2]]
            for shard, (guild_id, channel) in enumerate(guilds):
                asked = await fake.dispatch_message("!ping", channel=channel)
                await fake.wait_for_message(replying_to(asked, f"pong from shard {shard}"))
                assert client.get_guild(guild_id).shard_id == shard
        assert fake.unknown_routes == []
