"""The web gallery over HTTP (aiohttp's test client): what is public, files by id, headers, limits."""

from __future__ import annotations

import asyncio
import io
import logging
import re

import pytest
from PIL import Image, ImageSequence
from sqlalchemy import update

from bot.results import LocalResults
from bot.service import Retention
from bot.store.models import Job
from bot.web import ClientLimit, make_app
from bot.web.safety import CONTENT_SECURITY_POLICY, FILE_CACHE, NO_STORE, PAGE_CACHE, STATIC_CACHE
from tests.bot.web.conftest import PRIVATE, PUBLIC, gif_zooming_into, message_link
from tests.bot.web.raw_http import exchange, get


async def text_of(response) -> str:
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    return await response.text()


def shown_results(html: str) -> list[int]:
    """Result ids in the order a gallery page links them (each card links its result twice)."""
    return list(dict.fromkeys(int(i) for i in re.findall(r'href="/results/(\d+)"', html)))


# -- what is public -----------------------------------------------------------------------------------


async def test_a_public_gallery_lists_its_results_newest_first_or_most_liked_first(client, published):
    jobs = published.jobs
    recent = await client.get(f"/servers/{PUBLIC}")
    assert recent.status == 200
    assert shown_results(await text_of(recent)) == [jobs["zoom"], jobs["dream"], jobs["banana"]]
    top = await client.get(f"/servers/{PUBLIC}?order=top")
    assert shown_results(await text_of(top)) == [jobs["banana"], jobs["dream"], jobs["zoom"]]
    assert jobs["secret"] not in shown_results(await text_of(top))


@pytest.mark.parametrize("path", [f"/servers/{PRIVATE}", f"/api/servers/{PRIVATE}", "/servers/5005", "/api/servers/5005",
                                  "/servers/not-a-number", "/servers/1001x"])
async def test_a_server_that_does_not_publish_its_gallery_is_not_found(client, path):
    response = await client.get(path)
    assert response.status == 404
    assert response.headers["Cache-Control"] == NO_STORE


async def test_a_private_servers_results_and_files_are_not_found(client, published):
    secret = published.jobs["secret"]
    for path in (f"/results/{secret}", f"/results/{secret}/file", f"/api/results/{secret}"):
        assert (await client.get(path)).status == 404, path


async def test_a_result_page_shows_the_image_kind_command_likes_and_date(client, published):
    dream = published.jobs["dream"]
    html = await text_of(await client.get(f"/results/{dream}"))
    assert f'<img id="result" src="/results/{dream}/file"' in html
    assert "dream, an image (image/png)" in html
    assert "?dream layer:block13 strength:2.0 octaves:7 seed:7" in html, "the server's own prefix and what differs from the defaults"
    assert re.search(r"<dt>Likes</dt><dd>2</dd>", html)
    assert re.search(r"<time datetime=\"\d{4}-\d\d-\d\dT[^\"]+\">\d{4}-\d\d-\d\d \d\d:\d\d UTC</time>", html)
    assert message_link(PUBLIC, dream) in html
    zoom = await text_of(await client.get(f"/results/{published.jobs['zoom']}"))
    assert "zoom, an animation (image/gif)" in zoom and "?zoom frames:4 seed:3" in zoom


async def test_no_user_id_is_shown_unless_the_server_allows_names(client, published):
    user = "424242424242"
    pages = [f"/servers/{PUBLIC}", f"/results/{published.jobs['dream']}", f"/api/servers/{PUBLIC}",
             f"/api/results/{published.jobs['dream']}"]
    for path in pages:
        assert user not in await (await client.get(path)).text(), path
    assert (await (await client.get(f"/api/results/{published.jobs['dream']}")).json())["author_id"] is None
    await published.store.guilds.change(PUBLIC, public_names=True)
    assert f"https://discord.com/users/{user}" in await (await client.get(f"/results/{published.jobs['dream']}")).text()
    assert (await (await client.get(f"/api/results/{published.jobs['dream']}")).json())["author_id"] == user


async def test_text_from_the_store_is_escaped(client, published):
    await published.store.guilds.change(PUBLIC, prefix="<i>")
    html = await (await client.get(f"/results/{published.jobs['dream']}")).text()
    assert "&lt;i&gt;dream layer:block13" in html and "<i>dream" not in html


# -- files by result id ---------------------------------------------------------------------------


async def test_a_result_file_is_served_by_id_with_its_type_and_a_cache_policy(client, published):
    for name, mime in (("dream", "image/png"), ("zoom", "image/gif")):
        job = published.jobs[name]
        response = await client.get(f"/results/{job}/file")
        assert response.status == 200
        assert response.headers["Content-Type"] == mime
        assert response.headers["Cache-Control"] == FILE_CACHE
        assert await response.read() == next(published.results_dir.glob(f"job-{job}.*")).read_bytes()
        etag = response.headers["ETag"]
        again = await client.get(f"/results/{job}/file", headers={"If-None-Match": etag})
        assert again.status == 304, "a browser revalidating gets no body"
    head = await client.head(f"/results/{published.jobs['dream']}/file")
    assert head.status == 200 and head.headers["Content-Type"] == "image/png" and await head.read() == b""


# Sent as written: an HTTP client library would resolve the dots before sending.
TRAVERSALS = [
    "/results/999999/file", "/results/99999999999/file", "/results/0/file", "/results/job-{dream}.png",
    "/files/../store.db", "/results/../store.db", "/results/{dream}/../../store.db", "/results/{dream}/file/../../../store.db",
    "/static/../store.db", "/static/../../store.db", "/static/gallery.css/../../store.db", "/static/..%2f..%2fstore.db",
    "/results/%2e%2e/%2e%2e/store.db", "/results/..%2F..%2Fstore.db/file", "/results/%2E%2E/file",
    "/results/{dream}/file%2f..%2f..%2fstore.db", "/%2e%2e/store.db", "/static/%2e%2e%2f%2e%2e%2fstore.db",
    "/static/..%252f..%252fstore.db", "/results/{dream}%2f..%2f..%2fstore.db", "/static/..\\..\\store.db",
    "/static/%5c..%5c..%5cstore.db", "/results/..\\..\\outside.png", "{root}/store.db", "//{root}/outside.png",
    "/results/{dream}/file/{root}/outside.png", "/static/{root}/outside.png", "/etc/passwd", "/static//etc/passwd",
    "/static/../../../../../../../../etc/passwd", "http://gallery.test/../store.db", "http://gallery.test/static/../outside.png",
    "/static/gallery.css%00/../../store.db", "/results/{dream}%00/file", "/results/{dream}/file%00.db", "/files/..%00/store.db",
    "/results/{dream}/file;/../../store.db", "/static/.%2e/.%2e/store.db", "/results/{dream}/file?/../../store.db",
]


async def test_no_request_target_reaches_a_file_outside_the_published_results(serve, published, tmp_path):
    (tmp_path / "outside.png").write_bytes(b"OUTSIDE-THE-RESULTS-FOLDER")
    served = await serve()
    dream = published.jobs["dream"]
    published_file = next(published.results_dir.glob(f"job-{dream}.*")).read_bytes()
    leaks = []
    for pattern in TRAVERSALS:
        target = pattern.format(dream=dream, root=tmp_path).encode("utf-8")
        for sent in dict.fromkeys((target, target.replace(b"%00", b"\x00"))):  # NUL encoded, and as the byte
            answer = await exchange(served.port, get(sent))
            refused = answer.status in (400, 404) and not answer.headers.get("content-type", "").startswith("image/")
            if not (refused or answer.status == 200 and answer.body == published_file) or b"SQLite format 3" in answer.raw \
                    or b"OUTSIDE-THE" in answer.raw or b"root:" in answer.raw:
                leaks.append((sent, answer.raw[:80]))
    assert leaks == [], "served something other than a refusal or the published file"
    assert (await exchange(served.port, get(f"/results/{dream}/file"))).status == 200, "the published file itself is served"


async def test_only_the_name_the_job_recorded_is_looked_up_and_only_in_the_results_folder(client, published, tmp_path):
    (tmp_path / "outside.png").write_bytes(b"not for the web")
    (published.results_dir / ".hidden.png").write_bytes(b"half-written")
    dream = published.jobs["dream"]
    for location in (str(tmp_path / "outside.png"), f"{published.results_dir}/../outside.png", "../outside.png",
                     str(tmp_path / "store.db"), "/etc/passwd", str(published.results_dir / ".hidden.png")):
        await _set_location(published, dream, location)
        response = await client.get(f"/results/{dream}/file")
        assert response.status == 404, location
    await _set_location(published, dream, f"/elsewhere/results/job-{dream}.png")
    assert (await client.get(f"/results/{dream}/file")).status == 200, "the recorded name, found in RESULTS_DIR"


async def _set_location(published, job_id: int, location: str) -> None:
    from sqlalchemy import update

    from bot.store.models import Job

    async with published.store.database.engine.begin() as connection:  # a forged record, which no service writes
        await connection.execute(update(Job).where(Job.id == job_id).values(result_location=location))


# -- headers and methods ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", f"/servers/{PUBLIC}", "/results/1", "/results/1/file", "/api/results/1",
                                  "/static/gallery.css", "/healthz", "/metrics", "/nowhere", f"/servers/{PRIVATE}"])
async def test_every_response_carries_the_strict_policy_and_hardening_headers(client, path):
    response = await client.get(path)
    headers = response.headers
    assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "default-src 'none'" in CONTENT_SECURITY_POLICY and "script-src" not in CONTENT_SECURITY_POLICY
    assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Server"] == "dreambot", "no software version"
    assert "Cache-Control" in headers


async def test_pages_use_no_inline_script_or_style(client, published):
    for path in ("/", f"/servers/{PUBLIC}", f"/results/{published.jobs['dream']}", "/nowhere"):
        html = (await (await client.get(path)).text()).lower()
        assert "<script" not in html and "<style" not in html and " style=" not in html and " on" + "load=" not in html


async def test_content_types_and_cache_policies(client, published):
    page = await client.get(f"/servers/{PUBLIC}")
    assert (page.headers["Content-Type"], page.headers["Cache-Control"]) == ("text/html; charset=utf-8", PAGE_CACHE)
    api = await client.get(f"/api/results/{published.jobs['dream']}")
    assert (api.headers["Content-Type"], api.headers["Cache-Control"]) == ("application/json; charset=utf-8", PAGE_CACHE)
    css = await client.get("/static/gallery.css")
    assert (css.headers["Content-Type"], css.headers["Cache-Control"]) == ("text/css; charset=utf-8", STATIC_CACHE)
    missing = await client.get("/api/results/999999")
    assert missing.headers["Content-Type"] == "application/json; charset=utf-8"
    assert (await missing.json(), missing.headers["Cache-Control"]) == ({"error": "Not Found"}, NO_STORE)


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
@pytest.mark.parametrize("path", [f"/servers/{PUBLIC}", "/results/1", "/results/1/file", "/api/results/1", "/nowhere"])
async def test_only_get_and_head_are_allowed(client, method, path):
    response = await client.request(method, path, data=b"like=1")
    assert response.status == 405
    assert response.headers["Allow"] == "GET,HEAD"
    assert response.headers["Cache-Control"] == NO_STORE


async def test_a_bad_order_or_page_is_a_bad_request(client, caplog):
    junk = ("page=\u00b2", "page=\u00b9", "page=\u2460", "page=\u0661", "page=" + "9" * 5000, "page=1" + "0" * 4999, "page=-1",
            "page=+1", "page= 1", "page=1.0", "page=", "page=000000001")
    for query in ("order=best", "page=0", "page=x", "page=10001", *junk):
        page = await client.get(f"/servers/{PUBLIC}?{query}")
        assert page.status == 400, query
        assert ("order must be" if query == "order=best" else "page must be a whole number from 1 to 10000") in await text_of(page)
        api = await client.get(f"/api/servers/{PUBLIC}?{query}")
        assert api.status == 400 and "must be" in (await api.json())["error"], query
    assert [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info] == [], "no traceback for a bad query"
    assert (await client.get(f"/api/servers/{PUBLIC}?page=0001")).status == 200, "leading zeros are still a number"


# -- the rate limit ---------------------------------------------------------------------------------


async def test_a_client_past_its_limit_gets_429_with_retry_after(make_client):
    client = await make_client(ClientLimit(burst=5, per_second=0.5))
    statuses = [(await client.get(f"/servers/{PUBLIC}")).status for _ in range(5)]
    refused = await client.get(f"/servers/{PUBLIC}")
    assert statuses == [200] * 5 and refused.status == 429
    assert refused.headers["Retry-After"] == "2", "one request refills every 2 s"
    assert refused.headers["Cache-Control"] == NO_STORE
    assert (await client.post("/results/1")).status == 429, "every request counts, refused ones too"


async def test_fifty_concurrent_requests_against_a_burst_of_ten_admit_exactly_ten(make_client):
    client = await make_client(ClientLimit(burst=10, per_second=0.01))
    responses = await asyncio.gather(*(client.get("/") for _ in range(50)))
    assert sorted(r.status for r in responses) == [200] * 10 + [429] * 40


# -- removal and unpublishing take effect at once ----------------------------------------------------


async def test_a_result_whose_message_was_deleted_is_gone(client, published):
    dream = published.jobs["dream"]
    assert (await client.get(f"/results/{dream}/file")).status == 200
    assert await published.store.gallery.remove([message_link(PUBLIC, dream)]) == 1
    for path in (f"/results/{dream}", f"/results/{dream}/file", f"/api/results/{dream}"):
        assert (await client.get(path)).status == 404, path
    assert dream not in shown_results(await (await client.get(f"/servers/{PUBLIC}")).text())
    listed = (await (await client.get(f"/api/servers/{PUBLIC}")).json())["results"]
    assert dream not in [r["id"] for r in listed] and len(listed) == 2


async def test_a_server_that_turns_its_gallery_off_disappears_at_once(client, published):
    zoom = published.jobs["zoom"]
    paths = [f"/servers/{PUBLIC}", f"/api/servers/{PUBLIC}", f"/results/{zoom}", f"/results/{zoom}/file", f"/api/results/{zoom}"]
    assert [(await client.get(p)).status for p in paths] == [200] * 5
    await published.store.guilds.change(PUBLIC, public_gallery=False)
    assert [(await client.get(p)).status for p in paths] == [404] * 5
    await published.store.guilds.change(PUBLIC, public_gallery=True)
    assert [(await client.get(p)).status for p in paths] == [200] * 5


# -- the JSON API -----------------------------------------------------------------------------------


async def test_the_json_api_gives_a_gallery_and_a_result(client, published):
    jobs = published.jobs
    gallery = await (await client.get(f"/api/servers/{PUBLIC}?order=top")).json()
    assert (gallery["server"], gallery["order"], gallery["page"], gallery["next_page"]) == (PUBLIC, "top", 1, None)
    assert [r["id"] for r in gallery["results"]] == [jobs["banana"], jobs["dream"], jobs["zoom"]]
    result = await (await client.get(f"/api/results/{jobs['banana']}")).json()
    assert result == {
        "id": jobs["banana"],
        "server": PUBLIC,
        "kind": "visualize",
        "media_type": "image/png",
        "animation": False,
        "params": result["params"],
        "command": "?visualize banana size:64 seed:1",
        "likes": 3,
        "posted_at": result["posted_at"],
        "author_id": None,
        "discord_message": message_link(PUBLIC, jobs["banana"]),
        "page": f"/results/{jobs['banana']}",
        "expired": False,
        "file": f"/results/{jobs['banana']}/file",
        "thumbnail": f"/results/{jobs['banana']}/thumbnail",
    }
    assert result["params"]["target"] == "banana" and result["params"]["size"] == 64
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00", result["posted_at"])
    assert (await client.get(result["file"])).status == 200
    assert (await client.get(result["thumbnail"])).headers["Content-Type"] == "image/webp"


async def test_a_gallery_is_paged(make_client, published):
    published.gallery.page_size = 2
    client = await make_client()
    first = await (await client.get(f"/api/servers/{PUBLIC}")).json()
    second = await (await client.get(f"/api/servers/{PUBLIC}?page={first['next_page']}")).json()
    assert (len(first["results"]), first["next_page"], len(second["results"]), second["next_page"]) == (2, 2, 1, None)
    html = await (await client.get(f"/servers/{PUBLIC}")).text()
    assert f'href="/servers/{PUBLIC}?page=2"' in html


# -- operations ---------------------------------------------------------------------------------------


async def test_healthz_and_metrics(client):
    health = await client.get("/healthz")
    assert health.status == 200 and health.headers["Cache-Control"] == NO_STORE
    assert await health.json() == {"status": "ok", "checks": {"database": "ok", "workers": "none in this process"}}
    metrics = await client.get("/metrics")
    assert metrics.status == 200 and metrics.headers["Content-Type"].startswith("text/plain")
    body = await metrics.text()
    assert 'dreambot_jobs{kind="dream",status="done"} 2.0' in body
    assert "dreambot_queue_length 0.0" in body


async def test_healthz_is_503_when_a_check_fails(published):
    from aiohttp.test_utils import TestClient, TestServer

    class Failing:
        async def exposition(self) -> tuple[bytes, str]:
            return b"", "text/plain"

        async def health(self) -> tuple[bool, dict[str, str]]:
            return False, {"database": "unreachable: OperationalError", "workers": "no live worker"}

    async with TestClient(TestServer(make_app(published.gallery, Failing()))) as client:
        response = await client.get("/healthz")
        assert response.status == 503
        assert (await response.json())["status"] == "failing"


async def test_a_video_result_is_shown_in_a_video_element_and_served_as_mp4(client, published, photo_path):
    from tests.clip_making import encode_video, pan_and_zoom

    clip = encode_video(pan_and_zoom(photo_path("chelsea.png"), frames=6, size=(64, 48)))
    job = await published.publish("clip", "dream", {}, clip, "mp4", images=(clip,))
    page = await client.get(f"/results/{job}")
    html = await page.text()
    assert page.status == 200 and f'<video id="result" src="/results/{job}/file"' in html
    assert "a video (video/mp4)" in html and "media-src 'self'" in page.headers["Content-Security-Policy"]
    gallery = await (await client.get(f"/servers/{PUBLIC}")).text()
    assert f'<img src="/results/{job}/thumbnail"' in gallery and "▶ video" in gallery, "a card shows a still of the clip"
    file = await client.get(f"/results/{job}/file")
    assert file.status == 200 and file.headers["Content-Type"] == "video/mp4" and await file.read() == clip


@pytest.mark.parametrize(("fmt", "element", "what"), [("mp4", "video", "a video (video/mp4)"), ("webp", "img", "an animation (image/webp)")])
async def test_a_zoom_as_mp4_plays_in_a_video_element_and_as_webp_in_an_image(client, published, photo_bytes, fmt, element, what):
    import numpy as np

    from core.clip_encoding import encode_clip

    zoom = Image.open(io.BytesIO(gif_zooming_into(photo_bytes("astronaut.png", (96, 96)))))
    frames = [np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(zoom)]
    data, mime, _ = encode_clip(frames, 8, fmt, 1 << 20)
    job = await published.publish(f"zoom {fmt}", "zoom", {"frames": 4, "format": fmt}, data, fmt)
    html = await (await client.get(f"/results/{job}")).text()
    assert f'<{element} id="result" src="/results/{job}/file"' in html and what in html
    assert f"format:{fmt}" in html  # the command that makes it again
    gallery = await (await client.get(f"/servers/{PUBLIC}")).text()
    assert f'<img src="/results/{job}/thumbnail"' in gallery and "▶ " in gallery
    file = await client.get(f"/results/{job}/file")
    assert file.headers["Content-Type"] == mime and await file.read() == data


# -- results whose file is gone ------------------------------------------------------------------------------


async def test_an_expired_result_shows_as_expired_and_one_deleted_by_hand_is_not_listed(client, published):
    jobs, store = published.jobs, published.store
    # The sweep ran while the server's gallery was private (a public one keeps its results), long after the zoom.
    await store.guilds.change(PUBLIC, public_gallery=False)
    await store.jobs.posted(jobs["zoom"], message_link(PUBLIC, jobs["zoom"]), channel_id="3003", in_guild=True)
    async with store.database.writing() as session:
        await session.execute(update(Job).where(Job.id == jobs["zoom"]).values(finished_at=Job.finished_at - 31 * 86400))
    assert (await Retention(store=store, results=LocalResults(published.results_dir), days=30).prune()).files == 1
    await store.guilds.change(PUBLIC, public_gallery=True)
    (published.results_dir / f"job-{jobs['banana']}.png").unlink()  # an operator deleted it by hand

    html = await text_of(await client.get(f"/servers/{PUBLIC}"))
    assert shown_results(html) == [jobs["zoom"], jobs["dream"]], "the file deleted by hand is not listed"
    assert re.findall(r'src="/results/(\d+)/thumbnail"', html) == [str(jobs["dream"])], "no image points at a deleted file"
    assert '<span class="expired">expired</span>' in html
    page = await text_of(await client.get(f"/results/{jobs['zoom']}"))
    assert 'class="expired">expired' in page and "/file" not in page and "?zoom" in page, "expired, with its command"
    assert (await client.get(f"/results/{jobs['zoom']}/file")).status == 404
    listed = (await (await client.get(f"/api/servers/{PUBLIC}")).json())["results"]
    assert [(r["id"], r["expired"], r["file"]) for r in listed] == \
        [(jobs["zoom"], True, None), (jobs["dream"], False, f"/results/{jobs['dream']}/file")]
    for path in (f"/results/{jobs['banana']}", f"/api/results/{jobs['banana']}", f"/results/{jobs['banana']}/file"):
        assert (await client.get(path)).status == 404, path
    assert (await store.jobs.get(jobs["banana"])).result_removed == "missing", "recorded, so later listings skip it"
