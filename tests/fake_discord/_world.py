"""The fake's world: users, guilds, channels and messages, and the JSON shapes Discord sends.

Payload builders return fresh dicts in Discord API v10 shape, with just enough fields for
discord.py 2.x to build its models (``Guild._from_data``, ``Member``, ``Message``, ``Attachment``).
"""

from __future__ import annotations

import copy
import itertools
import re
import struct
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

__all__ = ["Permissions", "World", "image_size", "iso_now"]

DISCORD_EPOCH_MS = 1420070400000
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024  # discord.utils.DEFAULT_FILE_SIZE_LIMIT_BYTES
# Bytes per message by boost tier, as Discord sets them (and discord.py's Guild.filesize_limit reads them).
TIER_UPLOAD_LIMITS = {0: DEFAULT_UPLOAD_LIMIT, 1: DEFAULT_UPLOAD_LIMIT, 2: 50 * 1024 * 1024, 3: 100 * 1024 * 1024}


class Permissions:
    """Permission bits the fake hands out (Discord's numbering)."""

    ADD_REACTIONS = 1 << 6
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    MANAGE_MESSAGES = 1 << 13
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    USE_EXTERNAL_EMOJIS = 1 << 18
    USE_APPLICATION_COMMANDS = 1 << 31
    SEND_MESSAGES_IN_THREADS = 1 << 38

    EVERYONE = (
        ADD_REACTIONS | VIEW_CHANNEL | SEND_MESSAGES | EMBED_LINKS | ATTACH_FILES | READ_MESSAGE_HISTORY
        | USE_EXTERNAL_EMOJIS | USE_APPLICATION_COMMANDS | SEND_MESSAGES_IN_THREADS
    )
    BOT = EVERYONE | MANAGE_MESSAGES


def iso_now() -> str:
    return datetime.now(timezone.utc).isoformat()


class SnowflakeFactory:
    """Time-based, strictly increasing ids, so ``created_at`` of fake objects is sensible."""

    def __init__(self) -> None:
        self._last = 0

    def __call__(self) -> int:
        value = (int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22
        value = max(value, self._last + 1)
        self._last = value
        return value


@dataclass
class GuildState:
    id: int
    name: str
    owner_id: int
    premium_tier: int
    upload_limit: int
    roles: list[dict[str, Any]]
    members: dict[int, dict[str, Any]] = field(default_factory=dict)  # user id -> member without "user"
    channel_ids: list[int] = field(default_factory=list)
    joined_at: str = field(default_factory=iso_now)
    icon: str | None = None  # the icon's hash, as Discord gives it; None: no icon


_MENTION = re.compile(r"<@!?(\d+)>")


class World:
    """Everything the fake knows; REST, gateway and hooks all read and write this one object."""

    def __init__(
        self,
        *,
        application_id: int | None,
        bot_name: str,
        guild_name: str,
        upload_limit: int | None,
        premium_tier: int,
    ) -> None:
        self.snowflake = SnowflakeFactory()
        self.users: dict[int, dict[str, Any]] = {}
        self.guilds: dict[int, GuildState] = {}
        self.channels: dict[int, dict[str, Any]] = {}  # full channel payloads, with guild_id
        self.messages: dict[int, dict[str, Any]] = {}  # every message the fake knows, by id
        self._tokens = itertools.count(1)
        self.closed_dms: set[int] = set()  # users who take no direct messages from the bot

        self.application_id = application_id or self.snowflake()
        # Discord gives a bot user the application's id.
        self.bot_user = self.add_user(bot_name, bot=True, user_id=self.application_id)
        self.owner = self.add_user("owner")
        self.alice = self.add_user("alice")
        self.bob = self.add_user("bob")
        self.guild = self.add_guild(guild_name, owner_id=int(self.owner["id"]), upload_limit=upload_limit,
                                    premium_tier=premium_tier)
        self.channel = self.add_text_channel(self.guild.id, "general")

    # -- building the world -------------------------------------------------------------------

    def add_user(self, username: str, *, bot: bool = False, user_id: int | None = None) -> dict[str, Any]:
        uid = user_id or self.snowflake()
        user = {
            "id": str(uid),
            "username": username,
            "discriminator": "0",
            "global_name": None if bot else username.title(),
            "avatar": None,
            "bot": bot,
            "system": False,
            "public_flags": 0,
        }
        self.users[uid] = user
        for guild in self.guilds.values():
            self._join(guild, uid)
        return copy.deepcopy(user)

    def add_guild(self, name: str, *, owner_id: int, upload_limit: int | None = None,
                  premium_tier: int = 0, guild_id: int | None = None) -> GuildState:
        """A guild everyone is a member of. guild_id: a chosen id (its bits from 22 up pick its shard).
        upload_limit: None takes its boost tier's, the limit Discord announces with the tier."""
        upload_limit = TIER_UPLOAD_LIMITS[premium_tier] if upload_limit is None else upload_limit
        gid = guild_id or self.snowflake()
        assert gid not in self.guilds, f"the fake already has a guild {gid}"
        everyone = {"id": str(gid), "name": "@everyone", "permissions": str(Permissions.EVERYONE), "position": 0,
                    "color": 0, "hoist": False, "managed": False, "mentionable": False, "flags": 0}
        bot_role = {"id": str(self.snowflake()), "name": "Dreambot", "permissions": str(Permissions.BOT),
                    "position": 1, "color": 0, "hoist": False, "managed": True, "mentionable": False, "flags": 0,
                    "tags": {"bot_id": str(self.application_id)}}
        guild = GuildState(gid, name, owner_id, premium_tier, upload_limit, [everyone, bot_role])
        self.guilds[gid] = guild
        for uid in self.users:
            self._join(guild, uid)
        return guild

    def _join(self, guild: GuildState, uid: int) -> None:
        roles = [guild.roles[1]["id"]] if uid == self.application_id and len(guild.roles) > 1 else []
        guild.members[uid] = {"roles": roles, "joined_at": iso_now(), "nick": None, "avatar": None,
                              "premium_since": None, "deaf": False, "mute": False, "flags": 0, "pending": False,
                              "communication_disabled_until": None}

    def add_text_channel(self, guild_id: int, name: str) -> dict[str, Any]:
        guild = self.guilds[guild_id]
        cid = self.snowflake()
        channel = {"id": str(cid), "type": 0, "guild_id": str(guild_id), "name": name, "position": len(guild.channel_ids),
                   "permission_overwrites": [], "nsfw": False, "topic": None, "parent_id": None,
                   "rate_limit_per_user": 0, "last_message_id": None, "flags": 0}
        self.channels[cid] = channel
        guild.channel_ids.append(cid)
        return copy.deepcopy(channel)

    def add_dm_channel(self, user_id: int) -> dict[str, Any]:
        """The direct-message channel between the bot and a user (Discord keeps one per user)."""
        for channel in self.channels.values():
            if channel["type"] == 1 and int(channel["recipients"][0]["id"]) == user_id:
                return copy.deepcopy(channel)
        cid = self.snowflake()
        channel = {"id": str(cid), "type": 1, "recipients": [self.user_payload(user_id)], "last_message_id": None,
                   "flags": 0}
        self.channels[cid] = channel
        return copy.deepcopy(channel)

    def new_token(self, prefix: str) -> str:
        return f"{prefix}-{next(self._tokens)}-{self.snowflake()}"

    # -- lookups --------------------------------------------------------------------------------

    def user_id(self, user: int | str | dict[str, Any] | None, default: dict[str, Any]) -> int:
        if user is None:
            return int(default["id"])
        if isinstance(user, dict):
            return int(user["id"])
        return int(user)

    def channel_id(self, channel: int | str | dict[str, Any] | None) -> int:
        if channel is None:
            return int(self.channel["id"])
        if isinstance(channel, dict):
            return int(channel["id"])
        return int(channel)

    def guild_of_channel(self, channel_id: int) -> GuildState | None:
        channel = self.channels.get(channel_id)
        if channel is None or channel.get("guild_id") is None:
            return None
        return self.guilds.get(int(channel["guild_id"]))

    def upload_limit(self, guild_id: int | None) -> int:
        guild = self.guilds.get(guild_id) if guild_id is not None else None
        return guild.upload_limit if guild is not None else DEFAULT_UPLOAD_LIMIT

    def permissions(self, guild: GuildState, uid: int) -> int:
        if uid == guild.owner_id:
            return (1 << 53) - 1  # all bits, as Discord sends for the owner
        member = guild.members.get(uid, {"roles": []})
        value = int(guild.roles[0]["permissions"])
        for role in guild.roles[1:]:
            if role["id"] in member["roles"]:
                value |= int(role["permissions"])
        return value

    # -- payloads -------------------------------------------------------------------------------

    def user_payload(self, uid: int) -> dict[str, Any]:
        return copy.deepcopy(self.users[uid])

    def member_payload(self, guild: GuildState, uid: int, *, with_user: bool = True,
                       with_permissions: bool = False) -> dict[str, Any]:
        member = copy.deepcopy(guild.members[uid])
        if with_user:
            member["user"] = self.user_payload(uid)
        if with_permissions:
            member["permissions"] = str(self.permissions(guild, uid))
        return member

    def channel_payload(self, channel_id: int) -> dict[str, Any]:
        return copy.deepcopy(self.channels[channel_id])

    def guild_payload(self, guild: GuildState, *, full: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(guild.id), "name": guild.name, "icon": guild.icon, "splash": None, "discovery_splash": None,
            "banner": None, "description": None, "owner_id": str(guild.owner_id), "region": None,
            "afk_channel_id": None, "afk_timeout": 300, "verification_level": 0, "default_message_notifications": 0,
            "explicit_content_filter": 0, "mfa_level": 0, "nsfw_level": 0, "premium_tier": guild.premium_tier,
            "premium_subscription_count": 0, "preferred_locale": "en-US", "features": [], "roles": copy.deepcopy(guild.roles),
            "emojis": [], "stickers": [], "system_channel_id": str(guild.channel_ids[0]) if guild.channel_ids else None,
            "system_channel_flags": 0, "rules_channel_id": None, "public_updates_channel_id": None,
            "vanity_url_code": None, "application_id": None, "max_members": 500000, "premium_progress_bar_enabled": False,
        }
        if full:
            channels = []
            for cid in guild.channel_ids:
                channel = self.channel_payload(cid)
                channel.pop("guild_id", None)  # GUILD_CREATE channels come without it
                channels.append(channel)
            data.update({
                "joined_at": guild.joined_at, "large": False, "unavailable": False, "member_count": len(guild.members),
                "members": [self.member_payload(guild, uid) for uid in guild.members], "channels": channels,
                "threads": [], "voice_states": [], "presences": [], "stage_instances": [],
                "guild_scheduled_events": [], "soundboard_sounds": [],
            })
        return data

    def mentions_in(self, content: str, guild: GuildState | None) -> list[dict[str, Any]]:
        found = []
        for raw in dict.fromkeys(_MENTION.findall(content or "")):
            uid = int(raw)
            if uid in self.users:
                user = self.user_payload(uid)
                if guild is not None and uid in guild.members:
                    user["member"] = self.member_payload(guild, uid, with_user=False)
                found.append(user)
        return found

    def message_payload(
        self,
        *,
        channel_id: int,
        author_id: int,
        content: str = "",
        attachments: list[dict[str, Any]] | None = None,
        embeds: list[dict[str, Any]] | None = None,
        components: list[dict[str, Any]] | None = None,
        reference: dict[str, Any] | None = None,
        flags: int = 0,
        webhook_id: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Build, store and return a message (the stored dict; callers copy before sending)."""
        guild = self.guild_of_channel(channel_id)
        mid = self.snowflake()
        message: dict[str, Any] = {
            "id": str(mid), "channel_id": str(channel_id), "type": 0, "content": content or "",
            "author": self.user_payload(author_id), "attachments": attachments or [], "embeds": embeds or [],
            "components": components or [], "mentions": self.mentions_in(content, guild), "mention_roles": [],
            "mention_everyone": False, "pinned": False, "tts": False, "timestamp": iso_now(),
            "edited_timestamp": None, "flags": flags, "reactions": [],
        }
        if guild is not None:
            message["guild_id"] = str(guild.id)
        if webhook_id is not None:
            message["webhook_id"] = str(webhook_id)
            message["application_id"] = str(self.application_id)
        if reference is not None:
            ref_id = int(reference["message_id"])
            message["type"] = 19  # REPLY
            message["message_reference"] = {"type": 0, "message_id": str(ref_id),
                                            "channel_id": str(reference.get("channel_id") or channel_id)}
            if guild is not None:
                message["message_reference"]["guild_id"] = str(guild.id)
            referenced = self.messages.get(ref_id)
            message["referenced_message"] = copy.deepcopy(referenced) if referenced is not None else None
            if message["referenced_message"] is not None:
                message["referenced_message"].pop("referenced_message", None)
        if extra:
            message.update(extra)
        self.messages[mid] = message
        channel = self.channels.get(channel_id)
        if channel is not None:
            channel["last_message_id"] = str(mid)
        return message

    def gateway_message(self, message: dict[str, Any]) -> dict[str, Any]:
        """The MESSAGE_CREATE / MESSAGE_UPDATE shape: the message plus the author's partial member."""
        data = copy.deepcopy(message)
        guild = self.guilds.get(int(data["guild_id"])) if data.get("guild_id") else None
        author_id = int(data["author"]["id"])
        if guild is not None and author_id in guild.members and "webhook_id" not in data:
            data["member"] = self.member_payload(guild, author_id, with_user=False)
        return data


def image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height of a PNG, GIF or JPEG from its header, or None."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return struct.unpack("<HH", data[6:10])
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                return None
            marker = data[i + 1]
            length = struct.unpack(">H", data[i + 2:i + 4])[0]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                height, width = struct.unpack(">HH", data[i + 5:i + 9])
                return width, height
            i += 2 + length
    return None
