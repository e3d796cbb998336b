"""What the fake saw: plain frozen records that tests assert on.

Times are ``time.monotonic()`` seconds (``at``) so tests can measure rates; edits also carry the
ISO timestamp the fake wrote into the message (``timestamp``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CdnRequest",
    "CommandSync",
    "Edit",
    "GatewayConnection",
    "InteractionResponse",
    "Reaction",
    "RejectedUpload",
    "RequestRecord",
    "Typing",
    "UploadedFile",
    "Upload",
]


@dataclass(frozen=True)
class RequestRecord:
    """One HTTP request the fake received (every route, known or not)."""

    method: str
    path: str
    query: dict[str, str]
    at: float
    client: str | None = None  # the label of the client that sent it (``patch_discord_urls(client_label=)``)


@dataclass(frozen=True)
class UploadedFile:
    """A file part of a multipart request, before it is attached to anything."""

    field: str  # the form field name, e.g. "files[0]"
    filename: str
    content_type: str  # as the client sent it (discord.py always sends application/octet-stream)
    data: bytes = field(repr=False)

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class Upload:
    """A file that was accepted and attached to a message."""

    message_id: int
    channel_id: int
    guild_id: int | None
    field: str
    filename: str
    content_type: str  # as the client sent it
    data: bytes = field(repr=False)
    url: str = ""  # where the fake CDN now serves it
    via: str = "channel"  # "channel", "interaction", "webhook" or "edit"
    at: float = 0.0

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class RejectedUpload:
    """A request with files the fake refused (HTTP 413)."""

    path: str
    guild_id: int | None
    files: tuple[UploadedFile, ...]
    total_size: int
    limit: int
    forced: bool  # True when a test asked for it with ``fail_next_upload``
    at: float


@dataclass(frozen=True)
class Edit:
    """One accepted edit of a message, with the JSON payload the client sent."""

    message_id: int
    channel_id: int
    payload: dict[str, Any]
    uploads: tuple[Upload, ...]
    via: str  # "channel", "webhook" (followup or @original) or "interaction" (callback type 7)
    at: float
    timestamp: str


@dataclass(frozen=True)
class InteractionResponse:
    """One accepted ``POST /interactions/{id}/{token}/callback``."""

    interaction_id: int
    token: str
    type: int  # 4 message, 5 deferred message, 6 deferred update, 7 update, 8 autocomplete, 9 modal
    data: dict[str, Any] | None
    uploads: tuple[Upload, ...]
    message_id: int | None  # the message it created or updated, if any
    at: float


@dataclass(frozen=True)
class Reaction:
    """A reaction the bot added or removed through REST."""

    channel_id: int
    message_id: int
    emoji: str
    user_id: int
    added: bool
    at: float


@dataclass(frozen=True)
class Typing:
    channel_id: int
    at: float


@dataclass(frozen=True)
class CdnRequest:
    """One download from the fake CDN; ``completed`` is False when the client hung up early."""

    path: str
    status: int
    bytes_sent: int
    completed: bool
    at: float


@dataclass(frozen=True)
class CommandSync:
    """A bulk overwrite of application commands (``guild_id`` None for global)."""

    application_id: int
    guild_id: int | None
    commands: tuple[dict[str, Any], ...]
    at: float


@dataclass(frozen=True)
class GatewayConnection:
    """A websocket connection to the fake gateway, with the query the client used."""

    query: dict[str, str]
    compression: str | None  # "zlib-stream" when honoured, else None (plain text frames)
    at: float
    client: str | None = None  # the label of the client that opened it (``patch_discord_urls(client_label=)``)
