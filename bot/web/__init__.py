"""The web front: a read-only gallery of what servers publish, its JSON API, /healthz and /metrics (aiohttp)."""

from __future__ import annotations

from .app import Monitor, make_app
from .connections import ConnectionLimits
from .ratelimit import ClientLimit, ClientLimiter
from .server import gallery_app, run_web, serving

__all__ = ["ClientLimit", "ClientLimiter", "ConnectionLimits", "Monitor", "gallery_app", "make_app", "run_web", "serving"]
