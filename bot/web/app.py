"""The web gallery as an aiohttp application: pages, a small JSON API, result files, health and metrics.

`make_app(gallery, monitor)` builds it. Handlers parse the request once (ids by route pattern,
order and page from the query), ask `PublicGallery` for data and nothing else, and render a
template or JSON; the rules every response follows live in `safety`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from importlib import resources
from typing import Any, Protocol

import jinja2
from aiohttp import web
from aiohttp.typedefs import Handler

from ..service.gallery import (
    GALLERY_PATH,
    ORDERS,
    RESULT_FILE_PATH,
    RESULT_PATH,
    RESULT_THUMBNAIL_PATH,
    GalleryPage,
    Order,
    PublicGallery,
    PublicResult,
    ResultFile,
)
from .clients import LOOPBACK, ClientAddresses, Network, client_address, parse_address, within
from .connections import ConnectionGuard, ConnectionLimits
from .ratelimit import ClientLimit, ClientLimiter
from .safety import FILE_CACHE, NO_STORE, PAGE_CACHE, STATIC_CACHE, harden, only_reading, rate_limited

__all__ = ["make_app", "Monitor", "STYLESHEET_PATH", "CONNECTION_GUARD"]

log = logging.getLogger(__name__)

STYLESHEET_PATH = "/static/gallery.css"
_MAX_PAGE = 10_000  # deeper pages of a gallery are not worth an unbounded OFFSET
# Route patterns: an id is digits (Discord snowflakes for servers), so anything else is a 404 here.
_GUILD = "{guild_id:[0-9]{1,20}}"
_JOB = "{job_id:[0-9]{1,12}}"
# The app's connection caps and timeouts, for the site that serves it (`serving`).
CONNECTION_GUARD = web.AppKey("connection_guard", ConnectionGuard)


class Monitor(Protocol):
    """What /metrics and /healthz show (bot.metrics.Metrics)."""

    async def exposition(self) -> tuple[bytes, str]: ...

    async def health(self) -> tuple[bool, dict[str, str]]: ...


def make_app(gallery: PublicGallery, monitor: Monitor, *, limit: ClientLimit = ClientLimit(),
             connections: ConnectionLimits = ConnectionLimits(), trusted_proxies: Sequence[Network] = (),
             metrics_allow: Sequence[Network] = LOOPBACK, public_url: str | None = None) -> web.Application:
    """The web gallery over `gallery` (what may be shown) and `monitor` (metrics and health).

    limit: requests per client address (burst, refill, how many addresses are tracked).
    connections: caps and timeouts for the site that serves the app (`serving`).
    trusted_proxies: peers whose X-Forwarded-For names the client (`clients`).
    metrics_allow: the client addresses that may read /metrics.
    public_url: the gallery's address as others reach it (PUBLIC_URL): a result page's Open Graph
    and Twitter-card tags need absolute URLs, so without it they name no picture.
    """
    pages = _Pages(gallery, monitor, _templates(public_url), metrics_allow=metrics_allow)
    clients = ClientAddresses(trusted_proxies)
    guard = ConnectionGuard(connections, is_proxy=clients.is_proxy)
    # Outermost first: every error, a refusal by the limit included, becomes a page or JSON; the
    # limit counts the client, which a trusted proxy names.
    app = web.Application(middlewares=[_errors_as(pages), client_address(clients, guard), rate_limited(ClientLimiter(limit)),
                                       only_reading])
    app[CONNECTION_GUARD] = guard
    app.on_response_prepare.append(harden)
    app.add_routes([
        web.get("/", pages.index),
        web.get(GALLERY_PATH.format(guild_id=_GUILD), pages.gallery),
        web.get(RESULT_PATH.format(job_id=_JOB), pages.result),
        web.get(RESULT_FILE_PATH.format(job_id=_JOB), pages.result_file),
        web.get(RESULT_THUMBNAIL_PATH.format(job_id=_JOB), pages.thumbnail),
        web.get("/api" + GALLERY_PATH.format(guild_id=_GUILD), pages.gallery_json),
        web.get("/api" + RESULT_PATH.format(job_id=_JOB), pages.result_json),
        web.get(STYLESHEET_PATH, pages.stylesheet),
        web.get("/favicon.ico", pages.no_icon),
        web.get("/healthz", pages.healthz),
        web.get("/metrics", pages.metrics),
    ])
    return app


def _templates(public_url: str | None = None) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("bot.web", "templates"),
        autoescape=True,  # every value from the store is text to show, never markup
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(
        stylesheet=STYLESHEET_PATH,
        gallery_url=_gallery_url,
        result_url=lambda job_id: RESULT_PATH.format(job_id=job_id),
        file_url=lambda job_id: RESULT_FILE_PATH.format(job_id=job_id),
        thumbnail_url=lambda job_id: RESULT_THUMBNAIL_PATH.format(job_id=job_id),
        public_url=public_url,
    )
    env.filters["when"] = lambda moment: moment.strftime("%Y-%m-%d %H:%M UTC")
    return env


def _gallery_url(guild_id: str, order: Order = "recent", page: int = 1) -> str:
    query = "&".join(part for part in (f"order={order}" if order != "recent" else "", f"page={page}" if page > 1 else "") if part)
    return GALLERY_PATH.format(guild_id=guild_id) + (f"?{query}" if query else "")


class _Pages:
    """The handlers; each asks the public gallery, never the store."""

    def __init__(self, gallery: PublicGallery, monitor: Monitor, templates: jinja2.Environment, *,
                 metrics_allow: Sequence[Network]) -> None:
        self.published = gallery
        self.monitor = monitor
        self.metrics_allow = tuple(metrics_allow)
        self.templates = templates
        self._stylesheet = (resources.files("bot.web") / "static" / "gallery.css").read_bytes()

    def render(self, template: str, *, status: int = 200, cache: str = PAGE_CACHE, headers: dict[str, str] | None = None,
               **context: Any) -> web.Response:
        html = self.templates.get_template(template).render(**context)
        return web.Response(text=html, status=status, content_type="text/html", charset="utf-8",
                            headers={"Cache-Control": cache, **(headers or {})})

    # -- pages ----------------------------------------------------------------------------------

    async def index(self, request: web.Request) -> web.Response:
        return self.render("index.html")

    async def gallery(self, request: web.Request) -> web.Response:
        page = await self._gallery_page(request)
        return self.render("gallery.html", page=page, orders=ORDERS)

    async def result(self, request: web.Request) -> web.Response:
        return self.render("result.html", result=await self._result(request))

    async def result_file(self, request: web.Request) -> web.FileResponse:
        return self._file(await self.published.result_file(_job_id(request)))

    async def thumbnail(self, request: web.Request) -> web.FileResponse:
        return self._file(await self.published.thumbnail_file(_job_id(request)))

    @staticmethod
    def _file(found: ResultFile | None) -> web.FileResponse:
        if found is None:
            raise web.HTTPNotFound()
        # The type the result was made as, not a guess from the name; ETag and Last-Modified come
        # with FileResponse, so a browser revalidating gets a 304.
        return web.FileResponse(found.path, headers={"Content-Type": found.mime_type, "Cache-Control": FILE_CACHE})

    async def stylesheet(self, request: web.Request) -> web.Response:
        return web.Response(body=self._stylesheet, content_type="text/css", charset="utf-8",
                            headers={"Cache-Control": STATIC_CACHE})

    async def no_icon(self, request: web.Request) -> web.Response:
        # Browsers ask every site for one; an empty answer they keep spares a 404 on every visit.
        return web.Response(status=204, headers={"Cache-Control": STATIC_CACHE})

    # -- the JSON API -----------------------------------------------------------------------------

    async def gallery_json(self, request: web.Request) -> web.Response:
        page = await self._gallery_page(request)
        return web.json_response({
            "server": page.guild_id,
            "order": page.order,
            "page": page.page,
            "next_page": page.page + 1 if page.has_next else None,
            "results": [_as_json(result) for result in page.results],
        }, headers={"Cache-Control": PAGE_CACHE})

    async def result_json(self, request: web.Request) -> web.Response:
        return web.json_response(_as_json(await self._result(request)), headers={"Cache-Control": PAGE_CACHE})

    # -- operations -----------------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        healthy, checks = await self.monitor.health()
        return web.json_response({"status": "ok" if healthy else "failing", "checks": checks},
                                 status=200 if healthy else 503, headers={"Cache-Control": NO_STORE})

    async def metrics(self, request: web.Request) -> web.Response:
        if not within(parse_address(request.remote or ""), self.metrics_allow):
            raise web.HTTPForbidden(reason="Metrics are for the operator (METRICS_ALLOW)")
        body, content_type = await self.monitor.exposition()
        return web.Response(body=body, headers={"Content-Type": content_type, "Cache-Control": NO_STORE})

    # -- shared by the page and its JSON twin --------------------------------------------------------

    async def _gallery_page(self, request: web.Request) -> GalleryPage:
        order, page = _gallery_query(request)
        found = await self.published.gallery(request.match_info["guild_id"], order, page)
        if found is None:  # not public: as if it did not exist
            raise web.HTTPNotFound()
        return found

    async def _result(self, request: web.Request) -> PublicResult:
        found = await self.published.result(_job_id(request))
        if found is None:
            raise web.HTTPNotFound()
        return found


def _job_id(request: web.Request) -> int:
    return int(request.match_info["job_id"])  # digits, by the route's pattern


def _gallery_query(request: web.Request) -> tuple[Order, int]:
    order = request.query.get("order", "recent")
    if order not in ORDERS:
        raise web.HTTPBadRequest(reason=f"order must be {' or '.join(ORDERS)}")
    return order, _query_number(request, "page", default=1, most=_MAX_PAGE)  # type: ignore[return-value]


def _query_number(request: web.Request, name: str, *, default: int, most: int) -> int:
    """A whole number from 1 to `most` in the query, else 400. ASCII digits only, no longer than
    `most`'s: str.isdigit also takes "²" and "①", which int() refuses, and int() refuses
    thousands of digits too."""
    text = request.query.get(name, str(default))
    if not (text.isascii() and text.isdigit() and len(text) <= len(str(most)) and 1 <= int(text) <= most):
        raise web.HTTPBadRequest(reason=f"{name} must be a whole number from 1 to {most}")
    return int(text)


def _as_json(result: PublicResult) -> dict[str, Any]:
    return {
        "id": result.job_id,
        "server": result.guild_id,
        "kind": result.kind,
        "media_type": result.mime_type,
        "animation": result.is_animation,
        "params": result.params,
        "command": result.command,
        "likes": result.likes,
        "posted_at": result.posted_at.isoformat(),
        "author_id": result.author_id,  # null unless the server shows who made its results
        "discord_message": result.message_link,
        "page": RESULT_PATH.format(job_id=result.job_id),
        "expired": result.expired,  # its file was deleted after the retention period: no file to fetch
        "file": None if result.expired else RESULT_FILE_PATH.format(job_id=result.job_id),
        "thumbnail": None if result.expired else RESULT_THUMBNAIL_PATH.format(job_id=result.job_id),
    }


# Headers of an error that the page made from it must keep.
_KEPT_HEADERS = ("Allow", "Retry-After")


def _errors_as(pages: _Pages):
    """Middleware: an error becomes a short page, or JSON under /api, with the headers it needs."""

    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            status, reason = exc.status, exc.reason
            headers = {name: exc.headers[name] for name in _KEPT_HEADERS if name in exc.headers}
        except Exception:
            log.exception("web request %s %s failed", request.method, request.path)
            status, reason, headers = 500, "Internal Server Error", {}
        if request.path.startswith("/api/"):
            return web.json_response({"error": reason}, status=status, headers={"Cache-Control": NO_STORE, **headers})
        return pages.render("error.html", status=status, cache=NO_STORE, headers=headers, status_code=status, reason=reason)

    return errors
