"""``FakeDiscord``: the REST API, gateway and CDN of a fake Discord on one 127.0.0.1 port."""

from __future__ import annotations

import asyncio
import copy
import mimetypes
import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from aiohttp import web

from ._gateway import Gateway, Intents, Op
from ._records import Edit, InteractionResponse, Upload
from ._rest import API_PREFIX, Rest, _Interaction
from ._world import World, image_size

__all__ = ["FakeDiscord"]

T = TypeVar("T")

# GATEWAY_PRESENCE_LIMITED | GATEWAY_GUILD_MEMBERS_LIMITED | GATEWAY_MESSAGE_CONTENT_LIMITED:
# what an unverified bot with all three privileged intents switched on in the portal reports.
_APPLICATION_FLAGS = (1 << 13) | (1 << 15) | (1 << 19)


class FakeDiscord:
    """A local Discord for discord.py: REST under ``/api/v10``, gateway at ``/gateway``, CDN at
    ``/attachments/``. Start it, point discord.py at it with ``patch_discord_urls``, drive it with
    the ``dispatch_*`` hooks and assert on the recorded lists (or await the ``wait_for_*`` helpers).

    The world starts with a bot user (id == application id), users ``owner``, ``alice``, ``bob``, and
    one guild with one text channel ``general`` that everyone is a member of.

    Sharded clients work as on Discord: each shard's session sees only its own guilds (a guild's
    shard is ``(guild_id >> 22) % shard_count``; ``add_guild(shard=)`` picks it) and DMs arrive
    on shard 0. Several processes can tell themselves apart with ``patch_discord_urls(client_label=)``;
    the fake then records which client sent each request (``requests``, ``sent_by``) and opened
    each gateway session.
    """

    def __init__(
        self,
        *,
        token: str | None = "fake-token",
        application_id: int | None = None,
        bot_name: str = "dreambot",
        guild_name: str = "Fake Guild",
        upload_limit: int | None = None,
        premium_tier: int = 0,
        heartbeat_interval: float = 41.25,
        interaction_timeout: float | None = 3.0,
        privileged_intents: int = Intents.PRIVILEGED,
        application_flags: int = _APPLICATION_FLAGS,
        echo_bot_events: bool = True,
        default_timeout: float = 5.0,
        shard_count: int = 1,
    ) -> None:
        """
        token: the bot token REST and IDENTIFY must carry (None accepts any).
        upload_limit: bytes per message for the default guild; bigger uploads get HTTP 413. None:
            its boost tier's (`premium_tier`), which discord.py's Guild.filesize_limit also reports.
        heartbeat_interval: seconds, sent in HELLO.
        interaction_timeout: seconds within which an interaction must get its first callback
            (Discord's 3 s); later callbacks get 404 "Unknown interaction". None disables.
        privileged_intents: the privileged intents "enabled in the portal"; others close with 4014.
        echo_bot_events: dispatch MESSAGE_CREATE/UPDATE/DELETE and reactions for the bot's own
            REST actions back over the gateway, as Discord does.
        default_timeout: seconds the ``wait_for*`` helpers wait when not told.
        shard_count: the shards ``GET /gateway/bot`` recommends, which an ``AutoShardedClient``
            given no shard_count runs.
        """
        assert shard_count >= 1, "Discord recommends at least one shard"
        self.token = token
        self.heartbeat_interval = heartbeat_interval
        self.interaction_timeout = interaction_timeout
        self.privileged_intents = privileged_intents
        self.application_flags = application_flags
        self.echo_bot_events = echo_bot_events
        self.default_timeout = default_timeout
        self.shard_count = shard_count
        self.world = World(application_id=application_id, bot_name=bot_name, guild_name=guild_name,
                           upload_limit=upload_limit, premium_tier=premium_tier)
        self.gateway = Gateway(self)
        self.rest = Rest(self)

        # Records, oldest first. Messages are the stored dicts, so later edits show in them.
        self.requests: list = []  # RequestRecord, every HTTP request
        self.unknown_routes: list = []  # RequestRecord, routes the fake does not implement (404)
        self.messages: list[dict[str, Any]] = []  # messages the bot created (channel, interaction, followup)
        # message id -> label of the client that created it through REST (None: unlabelled, or sent
        # through an interaction callback or webhook, which discord.py sends without its User-Agent)
        self.sent_by: dict[int, str | None] = {}
        self.followups: list[dict[str, Any]] = []  # messages created or filled through interaction webhooks
        self.edits: list[Edit] = []
        self.uploads: list[Upload] = []
        self.rejected_uploads: list = []  # RejectedUpload
        self.deleted: list[int] = []  # message ids
        self.reactions: list = []  # Reaction (the bot's REST reactions)
        self.typing: list = []  # Typing
        self.interaction_responses: list[InteractionResponse] = []
        self.command_syncs: list = []  # CommandSync
        self.refused_command_syncs: list[dict[str, Any]] = []  # the error trees of bulk overwrites Discord would refuse
        self.deduplicated_posts: list[int] = []  # ids of messages returned again for a repeated enforced nonce
        self.refused_bodies: list[dict[str, Any]] = []  # (path, error tree) of any other body refused with 50035
        self.cdn_requests: list = []  # CdnRequest
        self.gateway_connections: list = []  # GatewayConnection
        self.identifies: list[dict[str, Any]] = []  # IDENTIFY "d" payloads
        self.resumes: list[dict[str, Any]] = []  # RESUME "d" payloads
        self.invalid_sessions: list[dict[str, Any]] = []  # RESUMEs answered with INVALIDATE_SESSION
        self.heartbeats: list[int | None] = []  # the sequence number each heartbeat carried
        self.presence_updates: list[Any] = []
        self.voice_state_updates: list[Any] = []

        self._forced_upload_failures = 0
        self._upload_answers: asyncio.Event | None = None  # see hold_upload_answers
        self._held_uploads_left: int | None = None  # how many more uploads to hold; None: all
        self._forced_upload_status = 413
        self._waiters: set[asyncio.Future[None]] = set()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> FakeDiscord:
        app = web.Application(middlewares=[self.rest.middleware], client_max_size=1 << 30)
        self.rest.add_routes(app)
        app.router.add_get("/gateway", self.gateway.handle)
        app.router.add_get("/", self.gateway.handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        # Bind first so the ephemeral port is known without reaching into aiohttp's internals.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        return self

    async def close(self) -> None:
        if self._runner is None:
            return
        await self.gateway.close()
        await self._runner.cleanup()
        self._runner = None
        for waiter in self._waiters:
            if not waiter.done():
                waiter.cancel()

    async def __aenter__(self) -> FakeDiscord:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def port(self) -> int:
        assert self._port is not None, "FakeDiscord is not started; await fake.start() first"
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """What ``discord.http.Route.BASE`` must be."""
        return self.base_url + API_PREFIX

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    def cdn_url(self, path: str) -> str:
        return f"{self.base_url}/attachments/{path.lstrip('/')}"

    # -- the world --------------------------------------------------------------------------------

    @property
    def application_id(self) -> int:
        return self.world.application_id

    @property
    def bot_user(self) -> dict[str, Any]:
        return self.world.user_payload(self.world.application_id)

    @property
    def owner(self) -> dict[str, Any]:
        return copy.deepcopy(self.world.owner)

    @property
    def alice(self) -> dict[str, Any]:
        return copy.deepcopy(self.world.alice)

    @property
    def bob(self) -> dict[str, Any]:
        return copy.deepcopy(self.world.bob)

    @property
    def guild_id(self) -> int:
        return self.world.guild.id

    @property
    def channel_id(self) -> int:
        return int(self.world.channel["id"])

    @property
    def commands(self) -> dict[int | None, list[dict[str, Any]]]:
        """Registered application commands by guild id (None: global), as last overwritten."""
        return copy.deepcopy(self.rest.commands)

    def add_user(self, username: str, *, bot: bool = False) -> dict[str, Any]:
        """A new user, member of every guild. Add users before the bot connects."""
        return self.world.add_user(username, bot=bot)

    def add_guild(self, name: str, *, shard: tuple[int, int] | None = None, guild_id: int | None = None,
                  owner: dict[str, Any] | int | None = None, icon: str | None = None) -> int:
        """A new guild everyone is a member of, without channels; returns its id. Add guilds before
        the bot connects.

        shard: ``(shard_id, shard_count)``: give the guild an id on that shard. guild_id: choose the
        id yourself (``(n << 22) | 1`` is on shard ``n % shard_count``). Default: a fresh snowflake.
        """
        world = self.world
        if shard is not None:
            shard_id, shard_count = shard
            assert 0 <= shard_id < shard_count, f"shard {shard_id} is not one of {shard_count}"
            # Creation times near Discord's epoch: far below the fake's own ids, so never one of them.
            step = 1
            while (guild_id := ((shard_count * step + shard_id) << 22) | 1) in world.guilds:
                step += 1
        guild = world.add_guild(name, owner_id=world.user_id(owner, world.owner), guild_id=guild_id)
        guild.icon = icon  # the icon's hash, as Discord gives it
        return guild.id

    def open_dm(self, user: dict[str, Any] | int | None = None) -> dict[str, Any]:
        """The DM channel between the bot and ``user`` (default alice); pass it as ``channel=``."""
        world = self.world
        return world.add_dm_channel(world.user_id(user, world.alice))

    def add_text_channel(self, name: str, *, guild_id: int | None = None) -> dict[str, Any]:
        """A new text channel. Add channels before the bot connects."""
        return self.world.add_text_channel(guild_id or self.guild_id, name)

    def set_upload_limit(self, limit: int, *, guild_id: int | None = None) -> None:
        """Bytes per message a guild accepts; larger uploads get HTTP 413 (code 40005). Unlike its
        boost tier, a limit set here is not in the guild's data: only interactions announce it (as
        `attachment_size_limit`), so a bot posting a prefix command's result learns it from a 413."""
        self.world.guilds[guild_id or self.guild_id].upload_limit = limit

    def fail_next_upload(self, times: int = 1, *, status: int = 413) -> None:
        """Answer the next ``times`` requests that carry files with HTTP ``status`` (413: too large,
        whatever their size; 503: an outage)."""
        self._forced_upload_failures += times
        self._forced_upload_status = status

    def hold_upload_answers(self, times: int | None = None) -> asyncio.Event:
        """From now on a message with files (the next ``times`` such messages; None: all) is
        created at once (it shows in ``messages`` and ``uploads``) but its HTTP answer waits until
        the returned event is set: a slow network between Discord and the bot, whose post is in
        Discord before the bot knows it."""
        self._upload_answers, self._held_uploads_left = asyncio.Event(), times
        return self._upload_answers

    async def _answer_upload(self) -> None:
        """Wait, when a test holds answers to uploads (hold_upload_answers)."""
        if self._upload_answers is None or self._held_uploads_left == 0:
            return
        if self._held_uploads_left is not None:
            self._held_uploads_left -= 1
        await self._upload_answers.wait()

    async def update_guild(self, guild_id: int, *, name: str | None = None, icon: str | None = None) -> None:
        """An admin renames the guild or changes its icon (`icon`: the new image's hash): GUILD_UPDATE
        is dispatched with the guild as it now is, without its channels and members, as Discord does."""
        guild = self.world.guilds[guild_id]
        guild.name = name if name is not None else guild.name
        guild.icon = icon if icon is not None else guild.icon
        await self.gateway.dispatch("GUILD_UPDATE", self.world.guild_payload(guild, full=False))

    async def delete_channel(self, channel: dict[str, Any] | int) -> None:
        """The channel is deleted: CHANNEL_DELETE is dispatched, and REST answers 404 Unknown Channel for it."""
        world = self.world
        cid = world.channel_id(channel)
        guild = world.guild_of_channel(cid)
        if guild is not None:
            guild.channel_ids.remove(cid)
        await self.gateway.dispatch("CHANNEL_DELETE", world.channels.pop(cid))

    async def delete_message(self, message: dict[str, Any] | int) -> None:
        """Someone deletes a message (a user's, or the bot's): MESSAGE_DELETE is dispatched, and
        REST answers 404 Unknown Message for it; a reply to it needs fail_if_not_exists=False."""
        stored = self.world.messages.get(int(message["id"]) if isinstance(message, dict) else int(message))
        assert stored is not None, f"the fake has no message {message!r}"
        await self.rest._delete_message(stored)

    def close_dms(self, user: dict[str, Any] | int) -> None:
        """The user takes no direct messages from the bot: sending one gets 403 (code 50007)."""
        self.world.closed_dms.add(self.world.user_id(user, self.world.alice))

    def serve_file(
        self,
        path: str,
        data: bytes,
        content_type: str = "application/octet-stream",
        *,
        delay: float = 0.0,
        chunk_delay: float = 0.0,
        chunk_size: int = 64 * 1024,
        send_content_length: bool = True,
        status: int = 200,
    ) -> str:
        """Serve ``data`` at ``cdn_url(path)`` and return that URL.

        delay: seconds before the response starts; chunk_delay: seconds between chunks (a slow
        drip); send_content_length=False streams chunked with no length up front; status: answer
        with this HTTP status instead of the bytes.
        """
        path = path.lstrip("/")
        self.rest.cdn_files[path] = {"data": bytes(data), "content_type": content_type, "delay": delay,
                                     "chunk_delay": chunk_delay, "chunk_size": max(1, chunk_size),
                                     "send_content_length": send_content_length, "status": status}
        return self.cdn_url(path)

    def add_attachment(
        self,
        data: bytes,
        filename: str = "image.png",
        content_type: str | None = None,
        *,
        declared_size: int | None = None,
        width: int | None = None,
        height: int | None = None,
        **serve: Any,
    ) -> dict[str, Any]:
        """An attachment payload whose URL the fake CDN serves; pass it to ``dispatch_message``.

        declared_size: the ``size`` Discord claims (default ``len(data)``); make it smaller than the
        data to test a download cap that must not trust metadata. Other keywords go to
        ``serve_file`` (delay, chunk_delay, send_content_length, status).
        """
        aid = self.world.snowflake()
        content_type = content_type or mimetypes.guess_type(filename)[0] or "application/octet-stream"
        url = self.serve_file(f"{self.channel_id}/{aid}/{filename}", data, content_type, **serve)
        attachment: dict[str, Any] = {"id": str(aid), "filename": filename, "size": len(data) if declared_size is None
                                      else declared_size, "url": url, "proxy_url": url, "content_type": content_type}
        size = (width, height) if width is not None and height is not None else image_size(data)
        if size is not None:
            attachment["width"], attachment["height"] = size
        return attachment

    def set_avatar(self, user: dict[str, Any] | int, data: bytes) -> str:
        """Give ``user`` an avatar the fake CDN serves (``/avatars/<id>/<hash>.png``, any ``?size=``);
        returns its URL. Set it before the bot connects, so the bot sees it."""
        world = self.world
        uid = world.user_id(user, world.alice)
        avatar_hash = f"{world.snowflake():x}"
        world.users[uid]["avatar"] = avatar_hash
        url = self.serve_file(f"avatars/{uid}/{avatar_hash}.png", data, "image/png")
        return url.replace("/attachments/avatars/", "/avatars/")

    def uploads_for(self, message: dict[str, Any] | int) -> list[Upload]:
        mid = int(message["id"]) if isinstance(message, dict) else int(message)
        return [u for u in self.uploads if u.message_id == mid]

    # -- gateway hooks ----------------------------------------------------------------------------

    async def dispatch(self, event: str, data: dict[str, Any]) -> int:
        """Send a raw dispatch to every connected session that should see it (intents, shards)."""
        return await self.gateway.dispatch(event, data)

    async def dispatch_message(
        self,
        content: str = "",
        *,
        author: dict[str, Any] | int | None = None,
        channel: dict[str, Any] | int | None = None,
        attachments: Sequence[dict[str, Any]] = (),
        embeds: Sequence[dict[str, Any]] = (),
        reply_to: dict[str, Any] | int | None = None,
    ) -> dict[str, Any]:
        """A user posts a message (MESSAGE_CREATE). Returns the stored message payload."""
        world = self.world
        reference = None
        if reply_to is not None:
            ref_id = int(reply_to["id"]) if isinstance(reply_to, dict) else int(reply_to)
            reference = {"message_id": ref_id, "channel_id": world.channel_id(channel)}
        message = world.message_payload(
            channel_id=world.channel_id(channel), author_id=world.user_id(author, world.alice), content=content,
            attachments=[copy.deepcopy(a) for a in attachments], embeds=[copy.deepcopy(e) for e in embeds],
            reference=reference)
        await self.gateway.dispatch("MESSAGE_CREATE", world.gateway_message(message))
        return copy.deepcopy(message)

    def _interaction_base(self, kind: int, user: dict[str, Any] | int | None,
                          channel: dict[str, Any] | int | None) -> dict[str, Any]:
        world = self.world
        channel_id = world.channel_id(channel)
        guild = world.guild_of_channel(channel_id)
        assert guild is not None, "the fake only dispatches interactions in guild channels"
        iid = world.snowflake()
        return {
            "id": str(iid), "application_id": str(world.application_id), "type": kind,
            "token": world.new_token("interaction"), "version": 1, "guild_id": str(guild.id),
            "guild": {"id": str(guild.id), "locale": "en-US", "features": []},
            "channel_id": str(channel_id), "channel": world.channel_payload(channel_id),
            "member": world.member_payload(guild, world.user_id(user, world.alice), with_permissions=True),
            "app_permissions": str(world.permissions(guild, world.application_id)), "locale": "en-US",
            "guild_locale": "en-US", "entitlements": [], "entitlement_sku_ids": [],
            "authorizing_integration_owners": {"0": str(guild.id)}, "context": 0,
            "attachment_size_limit": guild.upload_limit,
        }

    async def _send_interaction(self, payload: dict[str, Any]) -> dict[str, Any]:
        interaction = _Interaction(payload, time.monotonic())
        self.rest.interactions[interaction.id] = interaction
        self.rest.interactions_by_token[payload["token"]] = interaction
        await self.gateway.dispatch("INTERACTION_CREATE", payload)
        return copy.deepcopy(payload)

    async def dispatch_slash_command(
        self,
        name: str,
        options: Mapping[str, Any] | Sequence[dict[str, Any]] | None = None,
        *,
        user: dict[str, Any] | int | None = None,
        channel: dict[str, Any] | int | None = None,
        resolved: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A user runs ``/name`` (INTERACTION_CREATE type 2). Returns the interaction payload.

        options: ``{"name": value}`` (str, int, float, bool, or an ``add_attachment`` payload for an
        attachment option), or Discord's raw option list (then pass ``resolved`` yourself).
        The command's id and guild scope come from what the bot registered, if it did.
        """
        payload = self._interaction_base(2, user, channel)
        guild_id = int(payload["guild_id"])
        registered = self.rest.commands
        command = next((c for c in registered.get(guild_id, []) if c["name"] == name and c["type"] == 1), None)
        scoped = command is not None
        command = command or next((c for c in registered.get(None, []) if c["name"] == name and c["type"] == 1), None)
        data: dict[str, Any] = {"id": command["id"] if command else str(self.world.snowflake()), "name": name, "type": 1}
        if scoped:
            data["guild_id"] = str(guild_id)
        resolved = copy.deepcopy(resolved) if resolved else {}
        if isinstance(options, Mapping):
            data["options"] = [self._option(key, value, resolved) for key, value in options.items()]
        elif options:
            data["options"] = copy.deepcopy(list(options))
        if resolved:
            data["resolved"] = resolved
        payload["data"] = data
        return await self._send_interaction(payload)

    async def dispatch_autocomplete(
        self,
        name: str,
        focused: str,
        current: str,
        options: Mapping[str, Any] | None = None,
        *,
        user: dict[str, Any] | int | None = None,
        channel: dict[str, Any] | int | None = None,
    ) -> dict[str, Any]:
        """A user types ``current`` into option ``focused`` of ``/name`` (INTERACTION_CREATE type 4);
        ``options`` are the other options filled in so far. The bot answers with callback type 8,
        whose ``data["choices"]`` ``wait_for_interaction_response`` returns."""
        payload = self._interaction_base(4, user, channel)
        registered = self.rest.commands
        command = next((c for scope in (int(payload["guild_id"]), None) for c in registered.get(scope, [])
                        if c["name"] == name and c["type"] == 1), None)
        filled = [self._option(key, value, {}) for key, value in (options or {}).items()]
        typed = {"name": focused, "type": 3, "value": current, "focused": True}
        payload["data"] = {"id": command["id"] if command else str(self.world.snowflake()), "name": name, "type": 1,
                           "options": filled + [typed]}
        return await self._send_interaction(payload)

    async def dispatch_context_menu(
        self,
        name: str,
        target: dict[str, Any],
        *,
        user: dict[str, Any] | int | None = None,
        channel: dict[str, Any] | int | None = None,
    ) -> dict[str, Any]:
        """A user picks Apps > ``name`` on a message (a stored message payload: a message command,
        type 3) or on a user (a user payload: a user command, type 2). INTERACTION_CREATE type 2."""
        world = self.world
        payload = self._interaction_base(2, user, channel)
        is_message = "author" in target
        stored = world.messages[int(target["id"])] if is_message else None
        data: dict[str, Any] = {"id": str(world.snowflake()), "name": name, "type": 3 if is_message else 2,
                                "target_id": target["id"]}
        if stored is not None:
            data["resolved"] = {"messages": {target["id"]: copy.deepcopy(stored)}}
        else:
            guild = world.guilds[int(payload["guild_id"])]
            member = world.member_payload(guild, int(target["id"]), with_user=False)
            data["resolved"] = {"users": {target["id"]: world.user_payload(int(target["id"]))},
                                "members": {target["id"]: member}}
        payload["data"] = data
        return await self._send_interaction(payload)

    @staticmethod
    def _option(name: str, value: Any, resolved: dict[str, Any]) -> dict[str, Any]:
        if isinstance(value, dict) and "url" in value and "filename" in value:
            resolved.setdefault("attachments", {})[value["id"]] = copy.deepcopy(value)
            return {"name": name, "type": 11, "value": value["id"]}
        if isinstance(value, bool):
            return {"name": name, "type": 5, "value": value}
        if isinstance(value, int):
            return {"name": name, "type": 4, "value": value}
        if isinstance(value, float):
            return {"name": name, "type": 10, "value": value}
        return {"name": name, "type": 3, "value": str(value)}

    async def dispatch_button(
        self,
        custom_id: str,
        *,
        message: dict[str, Any] | int | None = None,
        user: dict[str, Any] | int | None = None,
        component_type: int = 2,
        values: Iterable[str] | None = None,
    ) -> dict[str, Any]:
        """A user presses a button (INTERACTION_CREATE type 3; select menus: component_type and values).

        message: the message carrying the component; default the newest stored message that has a
        component with this custom_id, else a new bot message with such a button.
        """
        world = self.world
        stored: dict[str, Any] | None
        if message is None:
            stored = next((m for _, m in sorted(world.messages.items(), reverse=True)
                           if custom_id in _custom_ids(m.get("components", []))), None)
            if stored is None:
                stored = world.message_payload(
                    channel_id=self.channel_id, author_id=world.application_id, content="",
                    components=[{"type": 1, "components": [{"type": 2, "style": 1, "label": custom_id,
                                                            "custom_id": custom_id}]}])
        else:
            stored = world.messages.get(int(message["id"]) if isinstance(message, dict) else int(message))
            assert stored is not None, f"the fake has no message {message!r}"
        payload = self._interaction_base(3, user, int(stored["channel_id"]))
        payload["message"] = copy.deepcopy(stored)
        payload["data"] = {"custom_id": custom_id, "component_type": component_type}
        if values is not None:
            payload["data"]["values"] = list(values)
        return await self._send_interaction(payload)

    async def dispatch_reaction(
        self,
        message: dict[str, Any] | int,
        emoji: str = "\N{THUMBS UP SIGN}",
        *,
        user: dict[str, Any] | int | None = None,
    ) -> dict[str, Any]:
        """A user reacts to a message (MESSAGE_REACTION_ADD). ``emoji``: unicode or ``name:id``."""
        return await self._dispatch_reaction(message, emoji, user, added=True)

    async def dispatch_reaction_removal(
        self,
        message: dict[str, Any] | int,
        emoji: str = "\N{THUMBS UP SIGN}",
        *,
        user: dict[str, Any] | int | None = None,
    ) -> dict[str, Any]:
        """A user takes their reaction back (MESSAGE_REACTION_REMOVE, which carries no member or author)."""
        return await self._dispatch_reaction(message, emoji, user, added=False)

    async def _dispatch_reaction(self, message: dict[str, Any] | int, emoji: str, user: dict[str, Any] | int | None,
                                 *, added: bool) -> dict[str, Any]:
        world = self.world
        stored = world.messages.get(int(message["id"]) if isinstance(message, dict) else int(message))
        assert stored is not None, f"the fake has no message {message!r}"
        uid = world.user_id(user, world.alice)
        name, _, eid = emoji.partition(":")
        data: dict[str, Any] = {"user_id": str(uid), "channel_id": stored["channel_id"], "message_id": stored["id"],
                                "emoji": {"id": eid or None, "name": name}, "burst": False, "type": 0}
        if added:
            data["message_author_id"] = stored["author"]["id"]
        if stored.get("guild_id"):
            data["guild_id"] = stored["guild_id"]
            if added:
                data["member"] = world.member_payload(world.guilds[int(stored["guild_id"])], uid)
        await self.gateway.dispatch("MESSAGE_REACTION_ADD" if added else "MESSAGE_REACTION_REMOVE", data)
        return data

    async def disconnect(self, code: int = 4000) -> int:
        """Close the gateway socket(s) with ``code``; the session stays resumable (discord.py RESUMEs
        for any code but 1000-by-itself, 4004, 4010-4014). Events dispatched until the client is
        back are replayed on RESUME. Returns how many sockets were closed."""
        return await self.gateway.disconnect(code)

    async def request_reconnect(self) -> int:
        """Send op 7 RECONNECT; the client closes and RESUMEs."""
        return await self.gateway.send_op(Op.RECONNECT, None)

    async def invalidate_session(self, resumable: bool = False) -> int:
        """Send op 9 INVALIDATE_SESSION; with resumable=False the client must IDENTIFY again."""
        return await self.gateway.invalidate_sessions(resumable)

    @property
    def connected(self) -> bool:
        """Whether some identified session has a live socket."""
        return any(s.conn is not None for s in self.gateway.sessions.values())

    # -- waiting ----------------------------------------------------------------------------------

    def _record(self, records: list[T], item: T) -> None:
        records.append(item)
        self._notify()

    def _notify(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def wait_for(self, predicate: Callable[[], T], timeout: float | None = None, *, what: str = "") -> T:
        """Return ``predicate()`` once it is truthy, re-checking whenever the fake records something
        and every 20 ms (so predicates over the bot's own state work too).

        Raises ``TimeoutError`` naming ``what`` after ``timeout`` seconds (default_timeout).
        """
        loop = asyncio.get_running_loop()
        timeout = self.default_timeout if timeout is None else timeout
        deadline = loop.time() + timeout
        while True:
            result = predicate()
            if result:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"fake Discord: no {what or 'match'} within {timeout:.1f}s "
                                   f"({len(self.messages)} bot messages, {len(self.unknown_routes)} unknown routes)")
            waiter = loop.create_future()
            self._waiters.add(waiter)
            try:
                await asyncio.wait_for(waiter, min(remaining, 0.02))
            except TimeoutError:
                pass
            finally:
                self._waiters.discard(waiter)

    async def _wait_in(self, records: list[T], predicate: Callable[[T], Any] | None, start: int,
                       timeout: float | None, what: str) -> T:
        def found() -> T | None:
            return next((r for r in records[start:] if predicate is None or predicate(r)), None)

        return await self.wait_for(found, timeout, what=what)

    async def wait_for_message(self, predicate: Callable[[dict[str, Any]], Any] | None = None, *,
                               start: int = 0, timeout: float | None = None) -> dict[str, Any]:
        """The first bot message (from index ``start`` of ``messages``) matching ``predicate``."""
        return await self._wait_in(self.messages, predicate, start, timeout, "bot message")

    async def wait_for_edit(self, predicate: Callable[[Edit], Any] | None = None, *,
                            start: int = 0, timeout: float | None = None) -> Edit:
        return await self._wait_in(self.edits, predicate, start, timeout, "edit")

    async def wait_for_upload(self, predicate: Callable[[Upload], Any] | None = None, *,
                              start: int = 0, timeout: float | None = None) -> Upload:
        return await self._wait_in(self.uploads, predicate, start, timeout, "upload")

    async def wait_for_interaction_response(self, interaction: dict[str, Any] | int | None = None, *,
                                            timeout: float | None = None) -> InteractionResponse:
        """The first callback for ``interaction`` (payload or id), or for any interaction."""
        iid = None if interaction is None else int(interaction["id"] if isinstance(interaction, dict) else interaction)
        return await self._wait_in(self.interaction_responses,
                                   lambda r: iid is None or r.interaction_id == iid, 0, timeout, "interaction response")

    async def wait_for_resume(self, count: int = 1, *, timeout: float | None = None) -> None:
        """Until ``count`` RESUMEs were accepted (sent RESUMED) and a socket is live again."""
        def resumed() -> bool:
            accepted = len(self.resumes) - len(self.invalid_sessions)
            return accepted >= count and self.connected

        await self.wait_for(resumed, timeout, what=f"{count} accepted RESUME(s)")

    async def wait_until_connected(self, *, timeout: float | None = None) -> None:
        await self.wait_for(lambda: self.connected, timeout, what="identified gateway session")


def _custom_ids(rows: list[dict[str, Any]]) -> set[str]:
    found = set()
    for row in rows:
        for item in row.get("components", []):
            if item.get("custom_id"):
                found.add(item["custom_id"])
    return found
