"""Gallery cards load thumbnails: made from a published result on first asking, kept beside it, and
served to nobody else (private servers, expired or broken results)."""

from __future__ import annotations

import io
import logging

from PIL import Image
from sqlalchemy import update

from bot.store.models import Job
from tests.bot.web.conftest import PUBLIC


async def test_a_thumbnail_is_made_on_first_asking_then_served_as_kept(client, published):
    dream = published.jobs["dream"]
    kept = published.results_dir / f"job-{dream}.thumb.webp"
    assert not kept.exists()
    first = await client.get(f"/results/{dream}/thumbnail")
    assert first.status == 200 and first.headers["Content-Type"] == "image/webp"
    assert "max-age" in first.headers["Cache-Control"]
    data = await first.read()
    assert kept.read_bytes() == data and Image.open(io.BytesIO(data)).size == (144, 96)
    stamp = kept.stat().st_mtime_ns  # served as kept from now on, not made again
    assert await (await client.get(f"/results/{dream}/thumbnail")).read() == data and kept.stat().st_mtime_ns == stamp


async def test_the_gallerys_cards_point_at_thumbnails_that_all_load(client, published):
    html = await (await client.get(f"/servers/{PUBLIC}")).text()
    shown = [published.jobs[name] for name in ("zoom", "dream", "banana")]
    for job in shown:
        assert f'<img src="/results/{job}/thumbnail"' in html
        response = await client.get(f"/results/{job}/thumbnail")
        assert response.status == 200 and Image.open(io.BytesIO(await response.read())).format == "WEBP"
    assert "/file" not in html, "no card loads a full result"


async def test_no_thumbnail_of_a_private_expired_or_broken_result(client, published, caplog):
    jobs = published.jobs
    assert (await client.get(f"/results/{jobs['secret']}/thumbnail")).status == 404
    async with published.store.database.writing() as session:
        await session.execute(update(Job).where(Job.id == jobs["zoom"]).values(result_removed="expired"))
    assert (await client.get(f"/results/{jobs['zoom']}/thumbnail")).status == 404
    (published.results_dir / f"job-{jobs['banana']}.png").write_bytes(b"no longer a picture")
    with caplog.at_level(logging.WARNING):
        assert (await client.get(f"/results/{jobs['banana']}/thumbnail")).status == 404
    assert [r.levelname for r in caplog.records if "thumbnail" in r.getMessage()] == ["WARNING"]
    assert not any(r.exc_info for r in caplog.records), "one line, no traceback"
    assert (await client.get("/results/999999/thumbnail")).status == 404
