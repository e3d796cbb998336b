"""The fake gateway: one websocket endpoint speaking Discord's v10 JSON protocol.

Sessions outlive connections: every dispatch gets the session's next sequence number and is kept
in the session's log, so a client that RESUMEs gets what it missed replayed, then RESUMED.
Dispatches are filtered by the intents the client identified with, the way Discord does
(MESSAGE_CREATE needs GUILD_MESSAGES; without MESSAGE_CONTENT, other people's messages arrive with
empty content unless they mention the bot).

A session that IDENTIFYs with ``shard: [id, count]`` is one shard: its READY and GUILD_CREATEs
list only the guilds of that shard, a guild's events reach only the session of the shard that owns
the guild, and events outside any guild (DMs) reach shard 0 only, as Discord routes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import time
import uuid
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from ._records import GatewayConnection
from ._rest import client_label

if TYPE_CHECKING:
    from ._server import FakeDiscord

__all__ = ["Gateway", "Intents", "Op", "shard_of"]


class Op:
    DISPATCH = 0
    HEARTBEAT = 1
    IDENTIFY = 2
    PRESENCE = 3
    VOICE_STATE = 4
    RESUME = 6
    RECONNECT = 7
    REQUEST_MEMBERS = 8
    INVALIDATE_SESSION = 9
    HELLO = 10
    HEARTBEAT_ACK = 11


class Intents:
    GUILDS = 1 << 0
    GUILD_MEMBERS = 1 << 1
    GUILD_PRESENCES = 1 << 8
    GUILD_MESSAGES = 1 << 9
    GUILD_MESSAGE_REACTIONS = 1 << 10
    GUILD_MESSAGE_TYPING = 1 << 11
    DIRECT_MESSAGES = 1 << 12
    DIRECT_MESSAGE_REACTIONS = 1 << 13
    MESSAGE_CONTENT = 1 << 15
    PRIVILEGED = GUILD_MEMBERS | GUILD_PRESENCES | MESSAGE_CONTENT
    ALL_VALID = (1 << 26) - 1


# event name -> (intent needed in a guild, intent needed in a DM); None: always sent
_EVENT_INTENTS: dict[str, tuple[int, int] | None] = {
    "MESSAGE_CREATE": (Intents.GUILD_MESSAGES, Intents.DIRECT_MESSAGES),
    "MESSAGE_UPDATE": (Intents.GUILD_MESSAGES, Intents.DIRECT_MESSAGES),
    "MESSAGE_DELETE": (Intents.GUILD_MESSAGES, Intents.DIRECT_MESSAGES),
    "MESSAGE_DELETE_BULK": (Intents.GUILD_MESSAGES, Intents.DIRECT_MESSAGES),
    "MESSAGE_REACTION_ADD": (Intents.GUILD_MESSAGE_REACTIONS, Intents.DIRECT_MESSAGE_REACTIONS),
    "MESSAGE_REACTION_REMOVE": (Intents.GUILD_MESSAGE_REACTIONS, Intents.DIRECT_MESSAGE_REACTIONS),
    "TYPING_START": (Intents.GUILD_MESSAGE_TYPING, 1 << 14),
    "GUILD_CREATE": (Intents.GUILDS, Intents.GUILDS),
    "GUILD_UPDATE": (Intents.GUILDS, Intents.GUILDS),
    "GUILD_DELETE": (Intents.GUILDS, Intents.GUILDS),
    "CHANNEL_CREATE": (Intents.GUILDS, Intents.GUILDS),
    "CHANNEL_UPDATE": (Intents.GUILDS, Intents.GUILDS),
    "CHANNEL_DELETE": (Intents.GUILDS, Intents.GUILDS),
    "GUILD_MEMBER_ADD": (Intents.GUILD_MEMBERS, Intents.GUILD_MEMBERS),
    "GUILD_MEMBER_REMOVE": (Intents.GUILD_MEMBERS, Intents.GUILD_MEMBERS),
    "GUILD_MEMBER_UPDATE": (Intents.GUILD_MEMBERS, Intents.GUILD_MEMBERS),
}
_CONTENT_FIELDS = {"content": "", "embeds": [], "attachments": [], "components": []}


def shard_of(guild_id: int | str | None, shard_count: int) -> int:
    """The shard whose session carries a guild's events: Discord's ``(guild_id >> 22) % count``;
    events without a guild go to shard 0.

    Written out here rather than imported from the bot, so that the fake checks the bot's own rule
    instead of agreeing with it.
    """
    return 0 if guild_id is None else (int(guild_id) >> 22) % shard_count


class _Connection:
    """One websocket; frames go out in order through one lock (the zlib stream is stateful)."""

    def __init__(self, ws: web.WebSocketResponse, compression: str | None, client: str | None) -> None:
        self.ws = ws
        self.compression = compression
        self.client = client
        self._zlib = zlib.compressobj() if compression == "zlib-stream" else None
        self.lock = asyncio.Lock()
        self.session: _Session | None = None

    async def send(self, payload: dict[str, Any]) -> bool:
        """Send one payload; False when the socket is gone (the frame then waits in the log)."""
        text = json.dumps(payload, separators=(",", ":"))
        async with self.lock:
            if self.ws.closed:
                return False
            try:
                if self._zlib is not None:
                    await self.ws.send_bytes(self._zlib.compress(text.encode()) + self._zlib.flush(zlib.Z_SYNC_FLUSH))
                else:
                    await self.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return False
        return True

    async def close(self, code: int, message: str = "") -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(code=code, message=message.encode()), timeout=5.0)


@dataclass
class _Session:
    id: str
    token: str
    user_id: int
    intents: int
    shard: tuple[int, int] | None  # (shard id, shard count) from IDENTIFY; None: unsharded, sees everything
    client: str | None = None  # the label of the client that identified (see CLIENT_LABEL)
    seq: int = 0
    log: list[dict[str, Any]] = field(default_factory=list)
    conn: _Connection | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def carries(self, guild_id: int | str | None) -> bool:
        """Whether events of this guild (None: outside guilds) go to this session."""
        if self.shard is None:
            return True
        shard_id, shard_count = self.shard
        return shard_of(guild_id, shard_count) == shard_id


class Gateway:
    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake
        self.sessions: dict[str, _Session] = {}
        self.connections: set[_Connection] = set()

    # -- dispatching ------------------------------------------------------------------------------

    async def dispatch(self, event: str, data: dict[str, Any]) -> int:
        """Send one event to every session that should get it; returns how many sessions did."""
        delivered = 0
        for session in list(self.sessions.values()):
            shaped = self._shape(session, event, data)
            if shaped is None:
                continue
            async with session.lock:
                await self._emit(session, event, shaped)
            delivered += 1
        return delivered

    async def _emit(self, session: _Session, event: str, data: dict[str, Any]) -> None:
        """Number, log and (if connected) send one dispatch. Caller holds ``session.lock``."""
        session.seq += 1
        frame = {"op": Op.DISPATCH, "t": event, "s": session.seq, "d": data}
        session.log.append(frame)
        if session.conn is not None:
            await session.conn.send(frame)

    def _shape(self, session: _Session, event: str, data: dict[str, Any]) -> dict[str, Any] | None:
        """The payload this session should see, or None when Discord would not send it."""
        guild_id = data.get("guild_id") if event not in ("GUILD_CREATE", "GUILD_UPDATE", "GUILD_DELETE") else data.get("id")
        needed = _EVENT_INTENTS.get(event)
        if needed is not None and not session.intents & needed[0 if guild_id else 1]:
            return None
        if session.shard is not None and not session.carries(guild_id):
            return None
        data = copy.deepcopy(data)
        if event in ("MESSAGE_CREATE", "MESSAGE_UPDATE") and guild_id and not session.intents & Intents.MESSAGE_CONTENT:
            author = (data.get("author") or {}).get("id")
            mentioned = any(int(u["id"]) == session.user_id for u in data.get("mentions", []))
            if author is not None and int(author) != session.user_id and not mentioned:
                data.update(copy.deepcopy(_CONTENT_FIELDS))
                data.pop("poll", None)
        return data

    # -- test hooks -------------------------------------------------------------------------------

    async def disconnect(self, code: int = 4000) -> int:
        """Close every live connection with ``code``; sessions stay resumable. Returns how many."""
        closing = []
        for session in self.sessions.values():
            async with session.lock:
                if session.conn is not None:
                    closing.append(session.conn)
                    session.conn = None  # later dispatches wait in the log for the RESUME
        closing.extend(c for c in self.connections if c.session is None and c not in closing)
        await asyncio.gather(*(c.close(code) for c in closing))
        return len(closing)

    async def send_op(self, op: int, d: Any) -> int:
        """Send a non-dispatch opcode (RECONNECT, INVALIDATE_SESSION, HEARTBEAT) to every session."""
        sent = 0
        for session in list(self.sessions.values()):
            conn = session.conn
            if conn is not None and await conn.send({"op": op, "d": d, "s": None, "t": None}):
                sent += 1
        return sent

    async def invalidate_sessions(self, resumable: bool) -> int:
        sent = await self.send_op(Op.INVALIDATE_SESSION, resumable)
        if not resumable:
            for session in list(self.sessions.values()):
                session.conn = None
            self.sessions.clear()
        return sent

    async def close(self) -> None:
        await asyncio.gather(*(c.close(1001) for c in list(self.connections)))

    # -- the websocket ----------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        query = dict(request.query)
        compression = "zlib-stream" if query.get("compress") == "zlib-stream" else None
        conn = _Connection(ws, compression, client_label(request))
        self.connections.add(conn)
        self.fake._record(self.fake.gateway_connections, GatewayConnection(query, compression, time.monotonic(), conn.client))
        try:
            if query.get("encoding", "json") != "json":
                await conn.close(4002, "fake Discord speaks JSON only")
                return ws
            await conn.send({"op": Op.HELLO, "d": {"heartbeat_interval": int(self.fake.heartbeat_interval * 1000),
                                                   "_trace": ["fake-discord"]}, "s": None, "t": None})
            async for msg in ws:
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    try:
                        payload = json.loads(msg.data)
                        op = payload["op"]
                    except (ValueError, TypeError, KeyError):
                        await conn.close(4002, "Error while decoding payload.")
                        break
                    if not await self._on_payload(conn, op, payload.get("d")):
                        break
                elif msg.type is WSMsgType.ERROR:
                    break
        finally:
            self.connections.discard(conn)
            session = conn.session
            if session is not None and session.conn is conn:
                session.conn = None
        return ws

    async def _on_payload(self, conn: _Connection, op: int, d: Any) -> bool:
        """Handle one client payload; False when the connection was closed."""
        fake = self.fake
        if op == Op.HEARTBEAT:
            fake._record(fake.heartbeats, d)
            await conn.send({"op": Op.HEARTBEAT_ACK, "d": None, "s": None, "t": None})
            return True
        if op == Op.IDENTIFY:
            return await self._identify(conn, d or {})
        if op == Op.RESUME:
            return await self._resume(conn, d or {})
        if conn.session is None:
            await conn.close(4003, "Not authenticated.")
            return False
        if op == Op.PRESENCE:
            fake._record(fake.presence_updates, d)
        elif op == Op.REQUEST_MEMBERS:
            await self._member_chunk(conn.session, d or {})
        elif op == Op.VOICE_STATE:
            fake._record(fake.voice_state_updates, d)
        else:
            await conn.close(4001, "Unknown opcode.")
            return False
        return True

    async def _identify(self, conn: _Connection, d: dict[str, Any]) -> bool:
        fake = self.fake
        fake._record(fake.identifies, d)
        if conn.session is not None:
            await conn.close(4005, "Already authenticated.")
            return False
        if fake.token is not None and d.get("token") != fake.token:
            await conn.close(4004, "Authentication failed.")
            return False
        intents = d.get("intents")
        if not isinstance(intents, int) or intents < 0 or intents & ~Intents.ALL_VALID:
            await conn.close(4013, "Invalid intent(s).")
            return False
        if intents & Intents.PRIVILEGED & ~fake.privileged_intents:
            await conn.close(4014, "Disallowed intent(s).")
            return False
        shard = d.get("shard")
        if shard is not None and (len(shard) != 2 or not 0 <= shard[0] < shard[1]):
            await conn.close(4010, "Invalid shard.")
            return False
        world = fake.world
        session = _Session(uuid.uuid4().hex, d["token"], world.application_id, intents,
                           tuple(shard) if shard is not None else None, conn.client)
        async with session.lock:
            session.conn = conn
            conn.session = session
            self.sessions[session.id] = session
            guilds = [g for g in world.guilds.values() if session.carries(g.id)]
            ready = {
                "v": 10, "user": {**world.user_payload(world.application_id), "verified": True, "mfa_enabled": False,
                                  "flags": 0, "email": None},
                "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
                "session_id": session.id, "session_type": "normal", "resume_gateway_url": fake.ws_url,
                "application": {"id": str(world.application_id), "flags": fake.application_flags},
                "private_channels": [], "relationships": [], "presences": [], "guild_join_requests": [],
                "geo_ordered_rtc_regions": [], "user_settings": {}, "_trace": ["fake-discord"],
            }
            if session.shard is not None:
                ready["shard"] = list(session.shard)
            await self._emit(session, "READY", ready)
            for guild in guilds:
                shaped = self._shape(session, "GUILD_CREATE", world.guild_payload(guild))
                if shaped is not None:
                    await self._emit(session, "GUILD_CREATE", shaped)
        return True

    async def _resume(self, conn: _Connection, d: dict[str, Any]) -> bool:
        fake = self.fake
        fake._record(fake.resumes, d)
        session = self.sessions.get(d.get("session_id", ""))
        if session is None or session.token != d.get("token"):
            # Discord answers an unknown session with "invalid session, not resumable".
            fake._record(fake.invalid_sessions, d)
            await conn.send({"op": Op.INVALIDATE_SESSION, "d": False, "s": None, "t": None})
            return True
        seq = d.get("seq") or 0
        if seq > session.seq:
            await conn.close(4007, "Invalid seq.")
            return False
        async with session.lock:
            old = session.conn
            session.conn = conn
            conn.session = session
            if old is not None and old is not conn:
                asyncio.ensure_future(old.close(4000))
            for frame in session.log:
                if frame["s"] > seq:
                    await conn.send(frame)
            await self._emit(session, "RESUMED", {"_trace": ["fake-discord"]})
        return True

    async def _member_chunk(self, session: _Session, d: dict[str, Any]) -> None:
        world = self.fake.world
        guild = world.guilds.get(int(d.get("guild_id", 0)))
        if guild is None:
            return
        wanted = {int(u) for u in d.get("user_ids") or []}
        query = (d.get("query") or "").lower()
        members = [world.member_payload(guild, uid) for uid in guild.members
                   if (not wanted or uid in wanted) and world.users[uid]["username"].lower().startswith(query)]
        limit = d.get("limit") or 0
        if limit:
            members = members[:limit]
        chunk = {"guild_id": str(guild.id), "members": members, "chunk_index": 0, "chunk_count": 1,
                 "not_found": [str(u) for u in wanted - set(guild.members)]}
        if d.get("nonce") is not None:
            chunk["nonce"] = d["nonce"]
        async with session.lock:
            await self._emit(session, "GUILD_MEMBERS_CHUNK", chunk)
