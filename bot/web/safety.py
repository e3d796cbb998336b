"""The web gallery's rules for every response: read-only methods, a per-client rate limit, hardening
headers with a strict Content-Security-Policy, and a cache policy that errs on the side of no-store.

The pages load nothing but their own stylesheet and images and run no script, so the policy can
forbid everything else; templates must keep it that way (no inline style or script).
"""

from __future__ import annotations

import math

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from .ratelimit import ClientLimiter

__all__ = [
    "CONTENT_SECURITY_POLICY", "SECURITY_HEADERS", "PAGE_CACHE", "FILE_CACHE", "STATIC_CACHE", "NO_STORE",
    "READ_METHODS", "only_reading", "rate_limited", "harden",
]

CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'none'",
    "img-src 'self' https://cdn.discordapp.com",  # results, and servers' icons where Discord keeps them
    "media-src 'self'",  # dreamt clips
    "style-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
))
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",  # a result is shown only as the type it is served as
    "X-Frame-Options": "DENY",  # for browsers without frame-ancestors
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    "Server": "dreambot",  # not aiohttp's version
}

# Pages and the JSON API change with every like, and must vanish soon after a server turns its
# gallery off or a result's message is deleted: caches keep them briefly. A result's file never
# changes, but must vanish too, so caches keep it for an hour, not for ever.
PAGE_CACHE = "public, max-age=30"
FILE_CACHE = "public, max-age=3600"
STATIC_CACHE = "public, max-age=86400"
NO_STORE = "no-store"  # errors, refusals, health and metrics: always asked again

READ_METHODS = ("GET", "HEAD")


@web.middleware
async def only_reading(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The gallery is read-only (likes stay on Discord): any other method is refused, whatever the path."""
    if request.method not in READ_METHODS:
        raise web.HTTPMethodNotAllowed(request.method, READ_METHODS)
    return await handler(request)


def rate_limited(limiter: ClientLimiter) -> Middleware:
    """Refuse a client past its limit with 429 and Retry-After (whole seconds, rounded up)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        # The peer's address; behind a reverse proxy that is the proxy's (see the README).
        wait = limiter.retry_after(request.remote or "unknown")
        if wait > 0:
            raise web.HTTPTooManyRequests(headers={"Retry-After": str(max(1, math.ceil(wait)))})
        return await handler(request)

    return middleware


async def harden(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every response, errors and files included, gets the headers; one whose
    handler chose no cache policy is not stored."""
    response.headers.update(SECURITY_HEADERS)
    response.headers.setdefault("Cache-Control", NO_STORE)
