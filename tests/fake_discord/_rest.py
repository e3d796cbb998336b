"""The fake REST API (``/api/v10``), the interaction callback and webhook routes, and the CDN.

Errors use Discord's JSON body ``{"message": ..., "code": ...}`` so discord.py raises the same
``HTTPException`` subclasses with the same ``.status`` and ``.code`` it would against Discord.
"""

from __future__ import annotations

import asyncio
import copy
import json
import mimetypes
import re
import time
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from aiohttp import web

from ._records import (
    CdnRequest,
    CommandSync,
    Edit,
    InteractionResponse,
    Reaction,
    RejectedUpload,
    RequestRecord,
    Typing,
    Upload,
    UploadedFile,
)
from ._limits import autocomplete_errors, command_count_error, command_list_errors, message_errors
from ._world import GuildState, image_size, iso_now

if TYPE_CHECKING:
    from ._server import FakeDiscord

__all__ = ["API_PREFIX", "CLIENT_LABEL", "Rest", "client_label", "discord_error"]

API_PREFIX = "/api/v10"
# A word in a request's User-Agent that names the client process, for tests that run several bot
# processes against one fake: "fake-client/shard-0". Discord itself cannot tell them apart.
CLIENT_LABEL = "fake-client/"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# How long Discord remembers an enforced nonce: "a few minutes" (create-message docs); the exact
# window is not documented, so the fake keeps it for five.
NONCE_WINDOW = 300.0
MESSAGE_FLAG_EPHEMERAL = 1 << 6
MESSAGE_FLAG_LOADING = 1 << 7


def json_response(data: Any, *, status: int = 200) -> web.Response:
    """JSON with Content-Type exactly ``application/json``: discord.py's ``json_or_text`` compares
    the header verbatim, so aiohttp's default ``; charset=utf-8`` would hand it a str."""
    return web.Response(body=json.dumps(data).encode(), status=status, headers={"Content-Type": "application/json"})


def discord_error(status: int, code: int, message: str, errors: dict[str, Any] | None = None) -> web.Response:
    body: dict[str, Any] = {"message": message, "code": code}
    if errors:
        body["errors"] = errors
    return json_response(body, status=status)


def _form_error(field_name: str, code: str, message: str) -> web.Response:
    return discord_error(400, 50035, "Invalid Form Body", {field_name: {"_errors": [{"code": code, "message": message}]}})


def _new_file_index(item: dict[str, Any]) -> int | None:
    """The files[n] index an attachment entry refers to, or None for an existing attachment."""
    try:
        value = int(item.get("id"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return value if value < 10 else None


def client_label(request: web.Request) -> str | None:
    """The label a client put in its User-Agent (see ``CLIENT_LABEL``), or None."""
    for word in request.headers.get("User-Agent", "").split():
        if word.startswith(CLIENT_LABEL):
            return word[len(CLIENT_LABEL):]
    return None


def _focused_type(interaction: _Interaction) -> int:
    """The option type of the option an autocomplete interaction is about (3, text, by default)."""
    for option in interaction.payload.get("data", {}).get("options", []):
        if option.get("focused"):
            return int(option.get("type", 3))
    return 3


def _unknown(what: str, code: int) -> web.Response:
    return discord_error(404, code, f"Unknown {what}")


class _Interaction:
    """An interaction the fake dispatched, and what the bot has done with it so far."""

    def __init__(self, payload: dict[str, Any], created: float) -> None:
        self.payload = payload
        self.created = created
        self.response_type: int | None = None
        self.original_message_id: int | None = None

    @property
    def id(self) -> int:
        return int(self.payload["id"])

    @property
    def channel_id(self) -> int:
        return int(self.payload["channel_id"])

    @property
    def guild_id(self) -> int | None:
        return int(self.payload["guild_id"]) if self.payload.get("guild_id") else None


class Rest:
    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake
        self.world = fake.world
        self.interactions: dict[int, _Interaction] = {}
        self.interactions_by_token: dict[str, _Interaction] = {}
        self.commands: dict[int | None, list[dict[str, Any]]] = {}  # guild id (None: global) -> commands
        self.cdn_files: dict[str, dict[str, Any]] = {}  # path under /attachments/ -> bytes and behaviour
        self._nonces: dict[str, tuple[int, float]] = {}  # the bot's enforced nonces -> (message id, when sent)

    # -- app wiring -------------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        p = API_PREFIX
        r = app.router
        routes: list[tuple[str, str, Handler]] = [
            ("GET", "/gateway", self.get_gateway),
            ("GET", "/gateway/bot", self.get_gateway_bot),
            ("GET", "/users/@me", self.get_me),
            ("GET", "/users/{user_id}", self.get_user),
            ("POST", "/users/@me/channels", self.create_dm),
            ("GET", "/oauth2/applications/@me", self.get_application),
            ("GET", "/applications/@me", self.get_application),
            ("GET", "/applications/{app_id}/commands", self.get_commands),
            ("PUT", "/applications/{app_id}/commands", self.put_commands),
            ("POST", "/applications/{app_id}/commands", self.post_command),
            ("GET", "/applications/{app_id}/commands/{command_id}", self.get_command),
            ("DELETE", "/applications/{app_id}/commands/{command_id}", self.delete_command),
            ("GET", "/applications/{app_id}/guilds/{guild_id}/commands", self.get_commands),
            ("PUT", "/applications/{app_id}/guilds/{guild_id}/commands", self.put_commands),
            ("POST", "/applications/{app_id}/guilds/{guild_id}/commands", self.post_command),
            ("GET", "/applications/{app_id}/guilds/{guild_id}/commands/{command_id}", self.get_command),
            ("DELETE", "/applications/{app_id}/guilds/{guild_id}/commands/{command_id}", self.delete_command),
            ("GET", "/channels/{channel_id}", self.get_channel),
            ("GET", "/channels/{channel_id}/messages", self.get_messages),
            ("POST", "/channels/{channel_id}/messages", self.post_message),
            ("GET", "/channels/{channel_id}/messages/{message_id}", self.get_message),
            ("PATCH", "/channels/{channel_id}/messages/{message_id}", self.patch_message),
            ("DELETE", "/channels/{channel_id}/messages/{message_id}", self.delete_message),
            ("PUT", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me", self.put_reaction),
            ("DELETE", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/{user_id}", self.delete_reaction),
            ("DELETE", "/channels/{channel_id}/messages/{message_id}/reactions", self.delete_all_reactions),
            ("POST", "/channels/{channel_id}/typing", self.post_typing),
            ("GET", "/guilds/{guild_id}", self.get_guild),
            ("GET", "/guilds/{guild_id}/channels", self.get_guild_channels),
            ("GET", "/guilds/{guild_id}/members/{user_id}", self.get_member),
            ("POST", "/interactions/{interaction_id}/{token}/callback", self.post_callback),
            ("POST", "/webhooks/{app_id}/{token}", self.post_followup),
            ("GET", "/webhooks/{app_id}/{token}/messages/{message_id}", self.get_webhook_message),
            ("PATCH", "/webhooks/{app_id}/{token}/messages/{message_id}", self.patch_webhook_message),
            ("DELETE", "/webhooks/{app_id}/{token}/messages/{message_id}", self.delete_webhook_message),
        ]
        for method, path, handler in routes:
            r.add_route(method, p + path, handler)
        r.add_get("/attachments/{path:.+}", self.get_cdn_file)
        r.add_get("/avatars/{avatar:.+}", self.get_avatar)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        fake = self.fake
        record = RequestRecord(request.method, request.path, dict(request.query), time.monotonic(), client_label(request))
        fake._record(fake.requests, record)
        if request.match_info.http_exception is not None:
            fake._record(fake.unknown_routes, record)
            return discord_error(404, 0, "404: Not Found")
        path = request.path
        needs_auth = path.startswith(API_PREFIX) and not path.startswith(
            (API_PREFIX + "/interactions/", API_PREFIX + "/webhooks/", API_PREFIX + "/gateway"))
        if needs_auth and fake.token is not None and request.headers.get("Authorization") != f"Bot {fake.token}":
            return discord_error(401, 0, "401: Unauthorized")
        return await handler(request)

    # -- helpers ----------------------------------------------------------------------------------

    def _bot_id(self) -> int:
        return self.world.application_id

    async def _read_body(self, request: web.Request) -> tuple[dict[str, Any], list[UploadedFile]]:
        """JSON body, or multipart with ``payload_json`` and ``files[n]`` parts."""
        if request.content_type.startswith("multipart/"):
            payload: dict[str, Any] = {}
            files: list[UploadedFile] = []
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if part.name == "payload_json":
                    payload = json.loads(await part.text())
                else:
                    data = bytes(await part.read(decode=False))
                    content_type = part.headers.get("Content-Type", "application/octet-stream")
                    files.append(UploadedFile(part.name or "", part.filename or "", content_type, data))
            return payload, files
        if request.body_exists:
            raw = await request.read()
            return (json.loads(raw) if raw.strip() else {}), []
        return {}, []

    def _check_upload(self, request: web.Request, guild_id: int | None, files: list[UploadedFile]) -> web.Response | None:
        """HTTP 413 when a test forced it or the files exceed the guild's upload limit."""
        if not files:
            return None
        fake = self.fake
        total = sum(f.size for f in files)
        limit = self.world.upload_limit(guild_id)
        forced = fake._forced_upload_failures > 0
        if forced or total > limit:
            if forced:
                fake._forced_upload_failures -= 1
            fake._record(fake.rejected_uploads, RejectedUpload(request.path, guild_id, tuple(files), total, limit,
                                                               forced, time.monotonic()))
            if forced and fake._forced_upload_status != 413:
                return discord_error(fake._forced_upload_status, 0, "Service Unavailable")
            return discord_error(413, 40005, "Request entity too large")
        return None

    def _validate_message(self, request: web.Request, payload: dict[str, Any], files: list[UploadedFile], *,
                          creating: bool) -> web.Response | None:
        """Discord's limits on a message body (see _limits), then "Cannot send an empty message"."""
        if errors := message_errors(payload, len(files)):
            return self._refuse(request, errors)
        content = payload.get("content")
        if creating and not (content or payload.get("embeds") or files or payload.get("sticker_ids")
                             or payload.get("components") or payload.get("poll")):
            return discord_error(400, 50006, "Cannot send an empty message")
        return None

    def _refuse(self, request: web.Request, errors: dict[str, Any]) -> web.Response:
        """Discord's answer to a body that breaks its limits; recorded, so a test can say what broke."""
        self.fake._record(self.fake.refused_bodies, {"path": request.path, "errors": errors})
        return discord_error(400, 50035, "Invalid Form Body", errors)

    def _attach(self, files: list[UploadedFile], payload: dict[str, Any], channel_id: int, guild_id: int | None,
                message_id: int, via: str) -> tuple[list[dict[str, Any]], list[Upload]]:
        """Turn uploaded parts into attachment payloads served by the fake CDN, and record them."""
        # discord.py describes new files as {"id": <index>, "filename": ...}; kept ones carry snowflakes.
        described = {int(item["id"]): item for item in payload.get("attachments") or []
                     if _new_file_index(item) is not None}
        attachments, uploads = [], []
        for index, part in enumerate(files):
            meta = described.get(index, {})
            filename = meta.get("filename") or part.filename or f"file{index}"
            aid = self.world.snowflake()
            path = f"{channel_id}/{aid}/{filename}"
            guessed = mimetypes.guess_type(filename)[0] or part.content_type
            url = self.fake.serve_file(path, part.data, guessed)
            attachment = {"id": str(aid), "filename": filename, "size": part.size, "url": url, "proxy_url": url,
                          "content_type": guessed}
            if meta.get("description"):
                attachment["description"] = meta["description"]
            if size := image_size(part.data):
                attachment["width"], attachment["height"] = size
            attachments.append(attachment)
            uploads.append(Upload(message_id, channel_id, guild_id, part.field, filename, part.content_type, part.data,
                                  url, via, time.monotonic()))
        return attachments, uploads

    def _record_uploads(self, uploads: list[Upload]) -> None:
        for upload in uploads:
            self.fake._record(self.fake.uploads, upload)

    async def _create_bot_message(
        self, request: web.Request, channel_id: int, payload: dict[str, Any], files: list[UploadedFile], *,
        via: str, webhook: bool = False, flags: int = 0, extra: dict[str, Any] | None = None,
    ) -> tuple[dict[str, Any] | None, list[Upload], web.Response | None]:
        """Validate, store, record and (unless ephemeral) dispatch a message the bot sends."""
        world = self.world
        guild = world.guild_of_channel(channel_id)
        guild_id = guild.id if guild is not None else None
        if (error := self._check_upload(request, guild_id, files)) is not None:
            return None, [], error
        if (error := self._validate_message(request, payload, files, creating=not flags & MESSAGE_FLAG_LOADING)) is not None:
            return None, [], error
        reference = payload.get("message_reference")
        if reference is not None and int(reference["message_id"]) not in world.messages:
            if reference.get("fail_if_not_exists", True):
                return None, [], _form_error("message_reference", "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "Unknown message")
            reference = None
        flags |= int(payload.get("flags") or 0) & (MESSAGE_FLAG_EPHEMERAL | (1 << 2) | (1 << 12))
        message = world.message_payload(
            channel_id=channel_id, author_id=self._bot_id(), content=payload.get("content") or "",
            embeds=payload.get("embeds"), components=payload.get("components"), reference=reference, flags=flags,
            webhook_id=self._bot_id() if webhook else None, extra=extra,
        )
        mid = int(message["id"])
        message["attachments"], uploads = self._attach(files, payload, channel_id, guild_id, mid, via)
        if payload.get("tts"):
            message["tts"] = True
        # As Discord does: @everyone/@here and role or user mentions ping only where allowed_mentions lets them.
        allowed = payload.get("allowed_mentions")
        parse = None if allowed is None else set(allowed.get("parse") or ())
        content = message["content"]
        message["mention_everyone"] = ("@everyone" in content or "@here" in content) and (parse is None or "everyone" in parse)
        message["mention_roles"] = re.findall(r"<@&(\d+)>", content) if parse is None or "roles" in parse else []
        message["mentions"] = [{"id": uid} for uid in re.findall(r"<@!?(\d+)>", content)] if parse is None or "users" in parse else []
        self._record_uploads(uploads)
        self.fake.sent_by[mid] = client_label(request)
        self.fake._record(self.fake.messages, message)
        if self.fake.echo_bot_events and not flags & MESSAGE_FLAG_EPHEMERAL:
            await self.fake.gateway.dispatch("MESSAGE_CREATE", world.gateway_message(message))
        if uploads:
            await self.fake._answer_upload()
        return message, uploads, None

    async def _edit_message(
        self, request: web.Request, message: dict[str, Any], payload: dict[str, Any], files: list[UploadedFile], *,
        via: str,
    ) -> tuple[list[Upload], web.Response | None]:
        """Apply an edit the way Discord does: only fields present change; record it."""
        world = self.world
        channel_id = int(message["channel_id"])
        guild_id = int(message["guild_id"]) if message.get("guild_id") else None
        if (error := self._check_upload(request, guild_id, files)) is not None:
            return [], error
        if (error := self._validate_message(request, payload, files, creating=False)) is not None:
            return [], error
        mid = int(message["id"])
        for key in ("content", "embeds", "components"):
            if key in payload:
                message[key] = payload[key] if payload[key] is not None else ([] if key != "content" else "")
        if "content" in payload:
            message["mentions"] = world.mentions_in(message["content"], world.guilds.get(guild_id or 0))
        if "flags" in payload and payload["flags"] is not None:
            message["flags"] = (message["flags"] & ~(1 << 2)) | (int(payload["flags"]) & (1 << 2))
        message["flags"] &= ~MESSAGE_FLAG_LOADING
        uploads: list[Upload] = []
        if "attachments" in payload or files:
            keep = {str(a.get("id")) for a in payload.get("attachments") or [] if _new_file_index(a) is None}
            kept = [a for a in message["attachments"] if a["id"] in keep] if "attachments" in payload else message["attachments"]
            new, uploads = self._attach(files, payload, channel_id, guild_id, mid, via if via != "channel" else "edit")
            message["attachments"] = kept + new
        message["edited_timestamp"] = timestamp = iso_now()
        self._record_uploads(uploads)
        self.fake._record(self.fake.edits, Edit(mid, channel_id, copy.deepcopy(payload), tuple(uploads), via,
                                                time.monotonic(), timestamp))
        if self.fake.echo_bot_events and not message["flags"] & MESSAGE_FLAG_EPHEMERAL:
            await self.fake.gateway.dispatch("MESSAGE_UPDATE", world.gateway_message(message))
        return uploads, None

    async def _delete_message(self, message: dict[str, Any]) -> None:
        mid = int(message["id"])
        self.world.messages.pop(mid, None)
        self.fake._record(self.fake.deleted, mid)
        data = {"id": str(mid), "channel_id": message["channel_id"]}
        if message.get("guild_id"):
            data["guild_id"] = message["guild_id"]
        if self.fake.echo_bot_events:
            await self.fake.gateway.dispatch("MESSAGE_DELETE", data)

    def _message_in(self, request: web.Request) -> tuple[int, dict[str, Any] | None, web.Response | None]:
        channel_id = int(request.match_info["channel_id"])
        if channel_id not in self.world.channels:
            return channel_id, None, _unknown("Channel", 10003)
        message = self.world.messages.get(int(request.match_info["message_id"]))
        if message is None or int(message["channel_id"]) != channel_id:
            return channel_id, None, _unknown("Message", 10008)
        return channel_id, message, None

    # -- gateway, users, application --------------------------------------------------------------

    async def get_gateway(self, request: web.Request) -> web.Response:
        return json_response({"url": self.fake.ws_url})

    async def get_gateway_bot(self, request: web.Request) -> web.Response:
        return json_response({"url": self.fake.ws_url, "shards": self.fake.shard_count, "session_start_limit": {
            "total": 1000, "remaining": 999, "reset_after": 14400000, "max_concurrency": 1}})

    async def get_me(self, request: web.Request) -> web.Response:
        me = self.world.user_payload(self._bot_id())
        me.update({"verified": True, "mfa_enabled": False, "flags": 0, "email": None, "locale": "en-US"})
        return json_response(me)

    async def create_dm(self, request: web.Request) -> web.Response:
        recipient = int((await request.json())["recipient_id"])
        if recipient not in self.world.users:
            return _unknown("User", 10013)
        return json_response(self.world.add_dm_channel(recipient))

    async def get_user(self, request: web.Request) -> web.Response:
        uid = int(request.match_info["user_id"])
        if uid not in self.world.users:
            return _unknown("User", 10013)
        return json_response(self.world.user_payload(uid))

    async def get_application(self, request: web.Request) -> web.Response:
        world = self.world
        return json_response({
            "id": str(world.application_id), "name": world.users[world.application_id]["username"], "icon": None,
            "description": "", "summary": "", "rpc_origins": [], "bot_public": True, "bot_require_code_grant": False,
            "owner": world.user_payload(int(world.owner["id"])), "team": None, "verify_key": "0" * 64,
            "flags": self.fake.application_flags, "interactions_endpoint_url": None, "tags": [],
            "bot": world.user_payload(world.application_id), "approximate_guild_count": len(world.guilds),
        })

    # -- application commands ---------------------------------------------------------------------

    def _scope(self, request: web.Request) -> tuple[int | None, web.Response | None]:
        if int(request.match_info["app_id"]) != self.world.application_id:
            return None, discord_error(403, 50001, "Missing Access")
        guild_id = request.match_info.get("guild_id")
        if guild_id is not None and int(guild_id) not in self.world.guilds:
            return None, discord_error(403, 50001, "Missing Access")
        return (int(guild_id) if guild_id is not None else None), None

    def _store_command(self, scope: int | None, data: dict[str, Any], existing: list[dict[str, Any]]) -> dict[str, Any]:
        """The command as Discord stores it (checked already): an id kept across overwrites of the
        same name and type, and a context menu's description as the empty string."""
        kind = data.get("type", 1)
        name = data["name"]
        old = next((c for c in existing if c["name"] == name and c.get("type", 1) == kind), None)
        stored = copy.deepcopy(data)
        stored.update({
            "id": old["id"] if old else str(self.world.snowflake()), "application_id": str(self.world.application_id),
            "version": str(self.world.snowflake()), "type": kind, "description": data.get("description") or "",
            "options": stored.get("options") or [], "default_member_permissions": stored.get("default_member_permissions"),
            "nsfw": stored.get("nsfw", False),
        })
        if scope is not None:
            stored["guild_id"] = str(scope)
        return stored

    async def get_commands(self, request: web.Request) -> web.Response:
        scope, error = self._scope(request)
        return error or json_response(self.commands.get(scope, []))

    async def put_commands(self, request: web.Request) -> web.Response:
        scope, error = self._scope(request)
        if error is not None:
            return error
        body = await request.json()
        if not isinstance(body, list):
            return discord_error(400, 50035, "Invalid Form Body",
                                 {"_errors": [{"code": "BASE_TYPE_ARRAY", "message": "Must be an array."}]})
        # All or nothing, as on Discord: one bad command refuses the whole list.
        if errors := command_list_errors(body):
            self.fake._record(self.fake.refused_command_syncs, errors)
            return discord_error(400, 50035, "Invalid Form Body", errors)
        if (too_many := command_count_error(body)) is not None:
            return discord_error(400, 30032, too_many)
        existing = self.commands.get(scope, [])
        stored = [self._store_command(scope, data, existing) for data in body]
        self.commands[scope] = stored
        self.fake._record(self.fake.command_syncs, CommandSync(self.world.application_id, scope,
                                                               tuple(copy.deepcopy(stored)), time.monotonic()))
        return json_response(stored)

    async def post_command(self, request: web.Request) -> web.Response:
        scope, error = self._scope(request)
        if error is not None:
            return error
        existing = self.commands.setdefault(scope, [])
        data = await request.json()
        kind = data.get("type", 1) if isinstance(data, dict) else 1
        if not isinstance(data, dict):
            return discord_error(400, 50035, "Invalid Form Body",
                                 {"_errors": [{"code": "MODEL_TYPE_CONVERT", "message": "Only dictionaries may be used in a ModelType"}]})
        if errors := command_list_errors([data]):
            return discord_error(400, 50035, "Invalid Form Body", errors.get("0", errors))
        others = [c for c in existing if not (c["name"] == data["name"] and c.get("type", 1) == kind)]
        if (too_many := command_count_error(others + [data])) is not None:
            return discord_error(400, 30032, too_many)
        result = self._store_command(scope, data, existing)
        replaced = len(others) < len(existing)
        existing[:] = others + [result]
        return json_response(result, status=200 if replaced else 201)

    async def get_command(self, request: web.Request) -> web.Response:
        scope, error = self._scope(request)
        if error is not None:
            return error
        found = next((c for c in self.commands.get(scope, []) if c["id"] == request.match_info["command_id"]), None)
        return json_response(found) if found else _unknown("application command", 10063)

    async def delete_command(self, request: web.Request) -> web.Response:
        scope, error = self._scope(request)
        if error is not None:
            return error
        commands = self.commands.get(scope, [])
        kept = [c for c in commands if c["id"] != request.match_info["command_id"]]
        if len(kept) == len(commands):
            return _unknown("application command", 10063)
        self.commands[scope] = kept
        return web.Response(status=204)

    # -- channels and messages --------------------------------------------------------------------

    async def get_channel(self, request: web.Request) -> web.Response:
        channel_id = int(request.match_info["channel_id"])
        if channel_id not in self.world.channels:
            return _unknown("Channel", 10003)
        return json_response(self.world.channel_payload(channel_id))

    async def get_messages(self, request: web.Request) -> web.Response:
        channel_id = int(request.match_info["channel_id"])
        if channel_id not in self.world.channels:
            return _unknown("Channel", 10003)
        limit = min(int(request.query.get("limit", 50)), 100)
        before = int(request.query.get("before", 1 << 63))
        after = int(request.query.get("after", 0))
        found = [copy.deepcopy(m) for mid, m in self.world.messages.items()
                 if int(m["channel_id"]) == channel_id and after < mid < before]
        found.sort(key=lambda m: int(m["id"]), reverse=True)
        return json_response(found[:limit])

    async def post_message(self, request: web.Request) -> web.Response:
        channel_id = int(request.match_info["channel_id"])
        if channel_id not in self.world.channels:
            return _unknown("Channel", 10003)
        channel = self.world.channels[channel_id]
        if channel["type"] == 1 and int(channel["recipients"][0]["id"]) in self.world.closed_dms:
            return discord_error(403, 50007, "Cannot send messages to this user")
        payload, files = await self._read_body(request)
        nonce = payload.get("nonce") if payload.get("enforce_nonce") else None
        if nonce is not None and (earlier := self._nonces.get(str(nonce))) is not None \
                and time.monotonic() - earlier[1] < NONCE_WINDOW:
            # Discord's enforce_nonce: the same author's message with this nonce is returned, not made
            # again; gone since, it is 404 Unknown Message.
            self.fake._record(self.fake.deduplicated_posts, earlier[0])
            found = self.world.messages.get(earlier[0])
            return json_response(copy.deepcopy(found)) if found is not None else _unknown("Message", 10008)
        message, _, error = await self._create_bot_message(request, channel_id, payload, files, via="channel")
        if error is None and message is not None and nonce is not None:
            self._nonces[str(nonce)] = (int(message["id"]), time.monotonic())
        return error or json_response(copy.deepcopy(message))

    async def get_message(self, request: web.Request) -> web.Response:
        _, message, error = self._message_in(request)
        return error or json_response(copy.deepcopy(message))

    async def patch_message(self, request: web.Request) -> web.Response:
        _, message, error = self._message_in(request)
        if error is not None:
            return error
        assert message is not None
        payload, files = await self._read_body(request)
        if int(message["author"]["id"]) != self._bot_id():
            return discord_error(403, 50005, "Cannot edit a message authored by another user")
        _, error = await self._edit_message(request, message, payload, files, via="channel")
        return error or json_response(copy.deepcopy(message))

    async def delete_message(self, request: web.Request) -> web.Response:
        _, message, error = self._message_in(request)
        if error is not None:
            return error
        assert message is not None
        await self._delete_message(message)
        return web.Response(status=204)

    async def _react(self, request: web.Request, user_id: int, added: bool) -> web.Response:
        channel_id, message, error = self._message_in(request)
        if error is not None:
            return error
        assert message is not None
        emoji = request.match_info["emoji"]
        self.fake._record(self.fake.reactions, Reaction(channel_id, int(message["id"]), emoji, user_id, added,
                                                        time.monotonic()))
        if self.fake.echo_bot_events and user_id == self._bot_id():
            name, _, eid = emoji.partition(":")
            data = {"user_id": str(user_id), "channel_id": str(channel_id), "message_id": message["id"],
                    "emoji": {"id": eid or None, "name": name}, "burst": False, "type": 0}
            if message.get("guild_id"):
                data["guild_id"] = message["guild_id"]
            await self.fake.gateway.dispatch("MESSAGE_REACTION_ADD" if added else "MESSAGE_REACTION_REMOVE", data)
        return web.Response(status=204)

    async def put_reaction(self, request: web.Request) -> web.Response:
        return await self._react(request, self._bot_id(), True)

    async def delete_reaction(self, request: web.Request) -> web.Response:
        raw = request.match_info["user_id"]
        return await self._react(request, self._bot_id() if raw == "@me" else int(raw), False)

    async def delete_all_reactions(self, request: web.Request) -> web.Response:
        _, _, error = self._message_in(request)
        return error or web.Response(status=204)

    async def post_typing(self, request: web.Request) -> web.Response:
        channel_id = int(request.match_info["channel_id"])
        if channel_id not in self.world.channels:
            return _unknown("Channel", 10003)
        self.fake._record(self.fake.typing, Typing(channel_id, time.monotonic()))
        return web.Response(status=204)

    # -- guilds -------------------------------------------------------------------------------------

    def _guild(self, request: web.Request) -> GuildState | None:
        return self.world.guilds.get(int(request.match_info["guild_id"]))

    async def get_guild(self, request: web.Request) -> web.Response:
        guild = self._guild(request)
        if guild is None:
            return _unknown("Guild", 10004)
        return json_response(self.world.guild_payload(guild, full=False))

    async def get_guild_channels(self, request: web.Request) -> web.Response:
        guild = self._guild(request)
        if guild is None:
            return _unknown("Guild", 10004)
        return json_response([self.world.channel_payload(cid) for cid in guild.channel_ids])

    async def get_member(self, request: web.Request) -> web.Response:
        guild = self._guild(request)
        if guild is None:
            return _unknown("Guild", 10004)
        uid = int(request.match_info["user_id"])
        if uid not in guild.members:
            return _unknown("Member", 10007)
        return json_response(self.world.member_payload(guild, uid))

    # -- interactions and webhooks -----------------------------------------------------------------

    async def post_callback(self, request: web.Request) -> web.Response:
        fake = self.fake
        interaction = self.interactions.get(int(request.match_info["interaction_id"]))
        if interaction is None or interaction.payload["token"] != request.match_info["token"]:
            return _unknown("interaction", 10062)
        payload, files = await self._read_body(request)
        if interaction.response_type is not None:
            return discord_error(400, 40060, "Interaction has already been acknowledged.")
        if fake.interaction_timeout is not None and time.monotonic() - interaction.created > fake.interaction_timeout:
            return _unknown("interaction", 10062)
        kind = int(payload.get("type", 0))
        data = payload.get("data")
        is_component = interaction.payload["type"] in (3, 5)
        is_autocomplete = interaction.payload["type"] == 4
        if kind not in (4, 5, 6, 7, 8, 9) or (kind in (6, 7) and not is_component) or (kind == 8) != is_autocomplete:
            return discord_error(400, 50035, "Invalid Form Body",
                                 {"type": {"_errors": [{"code": "BASE_TYPE_CHOICES", "message": "Value must be one of"}]}})
        if kind == 8 and (errors := autocomplete_errors({"choices": (data or {}).get("choices")}, _focused_type(interaction))):
            return self._refuse(request, {"data": errors["data"]})
        uploads: list[Upload] = []
        message: dict[str, Any] | None = None
        meta = {"interaction_metadata": {"id": str(interaction.id), "type": interaction.payload["type"],
                                         "user": copy.deepcopy(interaction.payload["member"]["user"])
                                         if "member" in interaction.payload else interaction.payload.get("user")}}
        if kind in (4, 5):
            flags = MESSAGE_FLAG_LOADING if kind == 5 else 0
            flags |= int((data or {}).get("flags") or 0) & MESSAGE_FLAG_EPHEMERAL
            message, uploads, error = await self._create_bot_message(
                request, interaction.channel_id, data or {}, files, via="interaction", webhook=True, flags=flags,
                extra=meta)
            if error is not None:
                return error
            assert message is not None
            interaction.original_message_id = int(message["id"])
        elif kind in (6, 7):
            target = interaction.payload.get("message")
            stored = self.world.messages.get(int(target["id"])) if target else None
            if stored is not None:
                interaction.original_message_id = int(stored["id"])
                if kind == 7:
                    uploads, error = await self._edit_message(request, stored, data or {}, files, via="interaction")
                    if error is not None:
                        return error
                    message = stored
        interaction.response_type = kind
        fake._record(fake.interaction_responses, InteractionResponse(
            interaction.id, interaction.payload["token"], kind, copy.deepcopy(data), tuple(uploads),
            int(message["id"]) if message is not None else None, time.monotonic()))
        body: dict[str, Any] = {"interaction": {
            "id": str(interaction.id), "type": interaction.payload["type"],
            "response_message_loading": kind == 5,
            "response_message_ephemeral": bool(message and message["flags"] & MESSAGE_FLAG_EPHEMERAL),
        }}
        if message is not None:
            body["interaction"]["response_message_id"] = message["id"]
            body["resource"] = {"type": kind, "message": copy.deepcopy(message)}
        return json_response(body)

    def _webhook_interaction(self, request: web.Request) -> tuple[_Interaction | None, web.Response | None]:
        interaction = self.interactions_by_token.get(request.match_info["token"])
        if interaction is None or int(request.match_info["app_id"]) != self.world.application_id:
            return None, _unknown("Webhook", 10015)
        return interaction, None

    def _webhook_message(self, request: web.Request) -> tuple[_Interaction | None, dict[str, Any] | None, web.Response | None]:
        interaction, error = self._webhook_interaction(request)
        if error is not None:
            return None, None, error
        assert interaction is not None
        raw = request.match_info["message_id"]
        mid = interaction.original_message_id if raw == "@original" else int(raw)
        message = self.world.messages.get(mid) if mid is not None else None
        if message is None:
            return interaction, None, _unknown("Message", 10008)
        return interaction, message, None

    async def post_followup(self, request: web.Request) -> web.Response:
        interaction, error = self._webhook_interaction(request)
        if error is not None:
            return error
        assert interaction is not None
        if interaction.response_type is None:
            # Discord needs the interaction acknowledged before any followup.
            return _unknown("Webhook", 10015)
        payload, files = await self._read_body(request)
        flags = int(payload.get("flags") or 0) & MESSAGE_FLAG_EPHEMERAL
        if interaction.response_type == 5 and interaction.original_message_id is not None:
            original = self.world.messages.get(interaction.original_message_id)
            if original is not None and original["flags"] & MESSAGE_FLAG_LOADING:
                # The first followup after a deferral fills in the loading message.
                _, error = await self._edit_message(request, original, payload, files, via="webhook")
                if error is not None:
                    return error
                self.fake._record(self.fake.followups, original)
                return json_response(copy.deepcopy(original))
        message, _, error = await self._create_bot_message(
            request, interaction.channel_id, payload, files, via="webhook", webhook=True, flags=flags)
        if error is not None:
            return error
        self.fake._record(self.fake.followups, message)
        if request.query.get("wait") in ("1", "true", "True"):
            return json_response(copy.deepcopy(message))
        return web.Response(status=204)

    async def get_webhook_message(self, request: web.Request) -> web.Response:
        _, message, error = self._webhook_message(request)
        return error or json_response(copy.deepcopy(message))

    async def patch_webhook_message(self, request: web.Request) -> web.Response:
        _, message, error = self._webhook_message(request)
        if error is not None:
            return error
        assert message is not None
        payload, files = await self._read_body(request)
        _, error = await self._edit_message(request, message, payload, files, via="webhook")
        return error or json_response(copy.deepcopy(message))

    async def delete_webhook_message(self, request: web.Request) -> web.Response:
        interaction, message, error = self._webhook_message(request)
        if error is not None:
            return error
        assert message is not None and interaction is not None
        await self._delete_message(message)
        return web.Response(status=204)

    # -- CDN ----------------------------------------------------------------------------------------

    async def get_avatar(self, request: web.Request) -> web.StreamResponse:
        return await self.get_cdn_file(request, "avatars/" + request.match_info["avatar"])

    async def get_cdn_file(self, request: web.Request, path: str | None = None) -> web.StreamResponse:
        fake = self.fake
        path = path or request.match_info["path"]
        entry = self.cdn_files.get(path)
        if entry is None:
            fake._record(fake.cdn_requests, CdnRequest(path, 404, 0, True, time.monotonic()))
            return web.Response(status=404, text="Not Found")
        if entry["delay"]:
            await asyncio.sleep(entry["delay"])
        if entry["status"] != 200:
            fake._record(fake.cdn_requests, CdnRequest(path, entry["status"], 0, True, time.monotonic()))
            return web.Response(status=entry["status"], text="error")
        data: bytes = entry["data"]
        response = web.StreamResponse(status=200)
        response.content_type = entry["content_type"]
        if entry["send_content_length"]:
            response.content_length = len(data)
        sent = 0
        completed = False
        try:
            await response.prepare(request)
            step = entry["chunk_size"]
            for start in range(0, len(data), step):
                if entry["chunk_delay"] and start:
                    await asyncio.sleep(entry["chunk_delay"])
                await response.write(data[start:start + step])
                sent += len(data[start:start + step])
            await response.write_eof()
            completed = True
        except ConnectionError:
            pass  # the client hung up mid-body (a download cap at work): recorded, not an error
        finally:
            fake._record(fake.cdn_requests, CdnRequest(path, 200, sent, completed, time.monotonic()))
        return response
