"""The web front: a read-only gallery of what servers publish, its JSON API, /healthz and /metrics (aiohttp)."""

from __future__ import annotations

from .app import Monitor, make_app
from .ratelimit import ClientLimit, ClientLimiter
from .server import run_web, serving

__all__ = ["ClientLimit", "ClientLimiter", "Monitor", "make_app", "run_web", "serving"]
