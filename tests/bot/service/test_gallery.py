"""Each server's gallery through the service (bot/service/gallery.py): likes (one per member, never
the requester's own), featuring once, withdrawal of results whose message was deleted, and the
read-only view the web gallery gets: only what a server published, files by the name their job
recorded, and the addresses of the web pages. The store's side is in tests/bot/store/test_gallery.py;
the web app's, over HTTP, in tests/bot/web/."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import update

from bot.results import LocalResults
from bot.service import Denied, Gallery, PublicGallery, Retention
from bot.service.gallery import ResultFile, gallery_page_url, result_page_url
from bot.store import MAX_ID, LikeResult, Store
from bot.store.models import Job
from core.spec import compile_job
from tests.bot.rows import add_job

GUILD = "1001"


@pytest.fixture
async def store(tmp_path):
    async with Store.open(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", upgrade=True) as opened:
        yield opened


@pytest.fixture
def results(tmp_path):
    return LocalResults(tmp_path / "results")


def link_of(job_id: int, guild_id: str = GUILD) -> str:
    return f"https://discord.com/channels/{guild_id}/3003/{900_000 + job_id}"


async def finished(store: Store, results: LocalResults, *, user_id: str = "alice", guild_id: str | None = GUILD,
                   mime_type: str = "image/png", data: bytes | None = b"result", command: str | None = "visualize banana seed:7") -> int:
    """A finished visualize job of `user_id`'s on a server, its result file kept (unless data is None); its id."""
    spec = compile_job("visualize", {"target": "banana", "size": 64}, seed=7)
    job_id = await add_job(store, spec, user_id=user_id, guild_id=guild_id, channel_id="3003", command=command)
    location = await results.save(job_id, data or b"", mime_type)
    if data is None:
        (results.folder / location).unlink()
    assert await store.jobs.finish(job_id, {"total": 1.0}, location, mime_type)
    return job_id


# -- likes, featuring and withdrawal -------------------------------------------------------------------


async def test_a_like_counts_once_per_member_and_never_the_requesters_own(store, results):
    gallery = Gallery(store)
    job_id = await finished(store, results, user_id="alice")
    assert await gallery.like(job_id, link_of(job_id), channel_id="3003", user_id="bob") == LikeResult(True, 1)
    assert await gallery.like(job_id, link_of(job_id), channel_id="3003", user_id="bob") == LikeResult(False, 1)
    assert await gallery.like(job_id, link_of(job_id), channel_id="3003", user_id="alice") == \
        Denied("you cannot like your own result")
    assert await gallery.like(job_id, link_of(job_id), channel_id="3003", user_id="carol") == LikeResult(True, 2)
    assert await gallery.like(404, link_of(404), channel_id="3003", user_id="bob") == Denied("that result is no longer known")
    item = await store.gallery.item(job_id)
    assert (item.likes, item.message_link, item.channel_id) == (2, link_of(job_id), "3003"), "the first like put it in the gallery"


async def test_a_like_taken_back_is_uncounted_and_may_be_given_again(store, results):
    gallery = Gallery(store)
    job_id = await finished(store, results)
    assert await gallery.unlike(job_id, "bob") is None, "in no gallery yet"
    await gallery.like(job_id, link_of(job_id), channel_id="3003", user_id="bob")
    assert await gallery.unlike(job_id, "bob") == LikeResult(False, 0)
    assert await gallery.unlike(job_id, "bob") == LikeResult(False, 0), "taking back twice takes back once"
    assert await gallery.like(job_id, link_of(job_id), channel_id="3003", user_id="bob") == LikeResult(True, 1)


async def test_a_result_is_featured_once_however_often_it_reaches_the_threshold(store, results):
    gallery = Gallery(store)
    job_id = await finished(store, results)
    assert not await gallery.claim_feature(link_of(job_id)), "not in a gallery: nothing to feature"
    await gallery.like(job_id, link_of(job_id), channel_id="3003", user_id="bob")
    assert await gallery.claim_feature(link_of(job_id))
    await gallery.unlike(job_id, "bob")
    await gallery.like(job_id, link_of(job_id), channel_id="3003", user_id="bob")
    assert not await gallery.claim_feature(link_of(job_id))


async def test_a_result_whose_message_was_deleted_leaves_the_gallery(store, results):
    gallery = Gallery(store)
    kept, gone = await finished(store, results), await finished(store, results)
    for job_id in (kept, gone):
        await store.jobs.posted(job_id, link_of(job_id), channel_id="3003", in_guild=True)
    assert [await gallery.job_posted_in(link_of(j)) for j in (kept, gone)] == [kept, gone]
    assert await gallery.job_posted_in(link_of(12345)) is None, "a message without a result"
    assert await gallery.withdraw([link_of(gone), link_of(12345)]) == 1
    assert await gallery.withdraw([link_of(gone)]) == 0, "withdrawn once"
    assert await gallery.job_posted_in(link_of(gone)) is None and await gallery.job_posted_in(link_of(kept)) == kept
    assert [item.job_id for item in await store.gallery.listing(GUILD)] == [kept]


# -- what the web gallery may show ------------------------------------------------------------------------


async def published(store: Store, results: LocalResults, **options) -> int:
    """A finished job whose result was posted: on a server (default GUILD) it is in that server's gallery."""
    job_id = await finished(store, results, **options)
    guild_id = options.get("guild_id", GUILD)
    await store.jobs.posted(job_id, link_of(job_id, guild_id or "@me"), channel_id="3003", in_guild=guild_id is not None)
    return job_id


async def test_only_a_server_that_publishes_its_gallery_is_shown(store, results):
    public = PublicGallery(store, results=results)
    job_id = await published(store, results)
    assert await public.gallery(GUILD) is None and await public.result(job_id) is None and await public.result_file(job_id) is None
    await store.guilds.change(GUILD, public_gallery=True)
    page = await public.gallery(GUILD)
    assert (page.guild_id, page.order, page.page, page.has_next) == (GUILD, "recent", 1, False)
    assert [r.job_id for r in page.results] == [job_id]
    assert await public.result_file(job_id) == ResultFile(results.folder / f"job-{job_id}.png", "image/png")
    await store.guilds.change(GUILD, public_gallery=False)
    assert await public.gallery(GUILD) is None and await public.result(job_id) is None, "turned off: hidden at once"


async def test_a_published_result_shows_what_its_server_chose_and_nothing_more(store, results):
    public = PublicGallery(store, results=results, default_prefix="!")
    await store.guilds.change(GUILD, public_gallery=True)
    job_id = await published(store, results, user_id="424242")
    result = await public.result(job_id)
    assert (result.job_id, result.guild_id, result.kind, result.mime_type) == (job_id, GUILD, "visualize", "image/png")
    assert result.params["target"] == "banana" and result.params["size"] == 64
    assert (result.command, result.likes, result.message_link, result.author_id) == \
        ("!visualize banana seed:7", 0, link_of(job_id), None), "the bot's prefix; nobody's name"
    item = await store.gallery.item(job_id)
    assert result.posted_at == datetime.fromtimestamp(item.created_at, timezone.utc), "when it entered the gallery, in UTC"
    assert not result.is_video and not result.is_animation
    await store.guilds.change(GUILD, prefix="?", public_names=True)
    result = await public.result(job_id)
    assert (result.command, result.author_id) == ("?visualize banana seed:7", "424242"), "the server's prefix; who asked"
    unnamed = await published(store, results, command=None)
    assert (await public.result(unnamed)).command is None, "a job that cannot say how it was made"


@pytest.mark.parametrize(("mime_type", "video", "animation"), [("image/gif", False, True), ("image/webp", False, True),
                                                                ("video/mp4", True, True), ("image/jpeg", False, False)])
async def test_animations_and_videos_are_told_by_their_type(store, results, mime_type, video, animation):
    await store.guilds.change(GUILD, public_gallery=True)
    result = await PublicGallery(store, results=results).result(await published(store, results, mime_type=mime_type))
    assert (result.mime_type, result.is_video, result.is_animation) == (mime_type, video, animation)


async def test_no_result_is_found_that_is_not_published_or_has_no_file(store, results):
    public = PublicGallery(store, results=results)
    await store.guilds.change(GUILD, public_gallery=True)
    shown = await published(store, results)
    unposted = await finished(store, results)  # finished, never posted: in no gallery
    deleted = await published(store, results)
    await store.gallery.remove([link_of(deleted)])
    in_a_dm = await published(store, results, guild_id=None)
    elsewhere = await published(store, results, guild_id="2002")  # a server that does not publish
    no_file = await published(store, results, data=None)
    for job_id in (unposted, deleted, in_a_dm, elsewhere, 0, -1, MAX_ID + 1, 10**30):
        assert await public.result(job_id) is None and await public.result_file(job_id) is None, job_id
    assert await public.result(no_file) is None and await public.result_file(no_file) is None, \
        "its file is gone: no page with a broken image"
    assert await public.result(shown) is not None


async def test_a_gallery_is_paged_newest_or_most_liked_first(store, results):
    public = PublicGallery(store, results=results, page_size=2)
    await store.guilds.change(GUILD, public_gallery=True)
    jobs = [await published(store, results) for _ in range(5)]
    liked = await store.gallery.item(jobs[1])
    for fan in ("a", "b"):
        await store.gallery.like(liked.id, fan)
    pages = [await public.gallery(GUILD, "recent", n) for n in (1, 2, 3)]
    assert [[r.job_id for r in p.results] for p in pages] == [jobs[:2:-1], jobs[2:0:-1], jobs[:1]]
    assert [p.has_next for p in pages] == [True, True, False]
    top = await public.gallery(GUILD, "top")
    assert [r.job_id for r in top.results] == [jobs[1], jobs[4]] and top.results[0].likes == 2
    assert (await public.gallery(GUILD, "recent", 4)).results == ()


def test_the_web_pages_addresses():
    assert gallery_page_url("https://dreams.example.org", 1001) == "https://dreams.example.org/servers/1001"
    assert result_page_url("https://dreams.example.org", 12) == "https://dreams.example.org/results/12"


# -- results whose file is gone: expired, or deleted by hand -------------------------------------------------


async def test_an_expired_result_is_listed_as_expired_with_no_file_to_serve(store, results):
    public = PublicGallery(store, results=results)
    old, new = await published(store, results), await published(store, results)
    async with store.database.writing() as session:  # it finished 31 days ago, while the gallery was private
        await session.execute(update(Job).where(Job.id == old).values(finished_at=Job.finished_at - 31 * 86400))
    assert (await Retention(store=store, results=results, days=30).prune()).files == 1
    await store.guilds.change(GUILD, public_gallery=True)
    page = await public.gallery(GUILD)
    assert [(r.job_id, r.expired) for r in page.results] == [(new, False), (old, True)]
    expired = await public.result(old)
    assert expired.expired and expired.command == "!visualize banana seed:7", "the page still says how to make it again"
    assert await public.result_file(old) is None and await public.result_file(new) is not None


async def test_results_whose_file_was_deleted_by_hand_are_left_out_and_pages_stay_full(store, results):
    public = PublicGallery(store, results=results, page_size=2)
    await store.guilds.change(GUILD, public_gallery=True)
    jobs = [await published(store, results) for _ in range(5)]
    for gone in (jobs[4], jobs[2]):
        (results.folder / f"job-{gone}.png").unlink()
    pages = [await public.gallery(GUILD, "recent", n) for n in (1, 2)]
    assert [[r.job_id for r in p.results] for p in pages] == [[jobs[3], jobs[1]], [jobs[0]]]
    assert [p.has_next for p in pages] == [True, False]
    assert [(await store.jobs.get(j)).result_removed for j in jobs] == [None, None, "missing", None, "missing"]
    (results.folder / f"job-{jobs[3]}.png").unlink()
    assert await public.result(jobs[3]) is None, "a result page finds it gone too"
    assert [r.job_id for r in (await public.gallery(GUILD)).results] == [jobs[1], jobs[0]]
