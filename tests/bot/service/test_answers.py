"""The informational commands' answers (bot/service/answers.py), the same words on every front:
models, layers, classes, queue, cancel, quota, gallery, stats, settings and help. Each is one clear
text that fits a Discord message; a mistake comes back as one line, never raised.

The service runs over a real store with an executor that runs nothing (tests/bot/service/helpers.py)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import update

from bot.commands import Request, parse_command
from bot.executor import QueuePlace
from bot.results import LocalResults
from bot.service import Accepted, Requester, Retention, Service
from bot.store.models import Job
from bot.store import Asker, RateLimits, Store
from core.spec import compile_job
from tests.bot.fake_runners import fake_spec
from tests.bot.rows import add_job
from tests.bot.service.helpers import LONGEST_IDS, LONGEST_PREFIX, Workers, fits

ALICE = Requester("alice", guild_id="g1", channel_id="c1")
BOB = Requester("bob", guild_id="g1", channel_id="c1")


@pytest.fixture
async def store(tmp_path):
    async with Store.open(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", upgrade=True,
                          limits=RateLimits(user_burst=0, guild_jobs_per_hour=0, max_active_jobs=0)) as opened:
        yield opened


@pytest.fixture
async def service(store, tmp_path):
    async with Service.open(store=store, executor=Workers(), results=LocalResults(tmp_path / "results"),  # type: ignore[arg-type]
                            prefix=LONGEST_PREFIX) as service:
        yield service


@asynccontextmanager
async def answering(store: Store, tmp_path, workers: Workers | None = None, **options) -> AsyncIterator[Service]:
    """A service over `store` whose executor runs nothing and, unless told, holds no job."""
    workers = workers or Workers(queued=(), running=())
    async with Service.open(store=store, executor=workers, results=LocalResults(tmp_path / "results"),  # type: ignore[arg-type]
                            owner="this-process", **options) as service:
        yield service


async def test_answers_are_one_clear_text(service):
    for text in ["!help", "!help dream", "!models", "!layers googlenet", "!classes fish", "!queue", "!quota", "!stats", "!gallery"]:
        reply = await service.answers.answer(parse_command(text), ALICE)
        assert reply and "Traceback" not in reply
    assert "unknown model" in await service.answers.answer(parse_command("!layers nonet"), ALICE)
    assert "anemone fish (393)" in await service.answers.answer(parse_command("!classes fish"), ALICE)
    assert "jobs may take up to 2 min" in await service.answers.answer(parse_command("!quota"), ALICE)


async def test_queue_gallery_and_stats_answers_fit_at_their_largest(service, store, tmp_path):
    spec = compile_job("visualize", {"target": "banana"})
    for _ in range(300):  # far more of one user's jobs than a reply could list
        await add_job(store, spec, user_id=LONGEST_IDS.user_id, guild_id=LONGEST_IDS.guild_id, channel_id=LONGEST_IDS.channel_id)
    for job_id in range(1, 21):  # more than a gallery answer lists; the rest stay queued
        link = f"https://discord.com/channels/{'9' * 20}/{'9' * 20}/{str(job_id).rjust(20, '9')}"
        location = await LocalResults(tmp_path / "results").save(job_id, b"png", "image/png")  # listed only with its file
        await store.jobs.finish(job_id, {}, location, "image/png")
        await store.gallery.add(job_id, link)
    for name, params in (("queue", {}), ("gallery", {"order": "top"}), ("gallery", {"order": "recent"}), ("stats", {})):
        text = await service.answers.answer(Request(name, params), LONGEST_IDS)
        assert fits(text), (name, len(text))
    queue = await service.answers.answer(Request("queue", {}), LONGEST_IDS)
    assert queue.endswith("and 270 more of yours"), "the list stops long before a message would"
    assert not isinstance(await service.jobs.submit(parse_command("!visualize banana"), LONGEST_IDS), Accepted)


# -- the engine's catalogue ----------------------------------------------------------------------------------


async def test_models_layers_and_classes_are_read_from_the_engines_catalogue(store, tmp_path):
    async with answering(store, tmp_path) as service:
        answers = service.answers
        assert answers.models().splitlines()[0].startswith("efficientnet-lite0: ")
        assert [line.split(":")[0] for line in answers.models().splitlines()] == ["efficientnet-lite0", "googlenet"]
        default = answers.layers()
        assert default.startswith("efficientnet-lite0 presets: shallow=block3, mid=block8, deep=block13\nlayers: ")
        assert answers.layers("googlenet").startswith("googlenet presets: ") and "inception4c" in answers.layers("googlenet")
        assert await answers.answer(Request("layers", {}), ALICE) == default, "no model: the default one"
        assert (await answers.answer(Request("layers", {"model": "nonet"}), ALICE)).startswith("unknown model 'nonet'; closest: ")
        assert answers.classes("anemone") == "2 classes: sea anemone (108), anemone fish (393)"
        assert answers.classes("zzqx") == "no ImageNet class contains 'zzqx'"
        many = answers.classes("a")
        assert len(re.findall(r" \(\d+\)", many)) == 25 and re.search(r" and \d+ more$", many), "25 shown, the rest counted"


async def test_help_is_in_the_prefix_asked_for_or_the_services(store, tmp_path):
    async with answering(store, tmp_path, prefix="%") as service:
        answers = service.answers
        assert "%dream" in answers.help() and "!dream" not in answers.help()
        dream = answers.help("dream", "?")
        assert dream.splitlines()[0].startswith("?dream: ") and len(dream.splitlines()) > 5, "one line per option"
        assert await answers.answer(Request("help", {"command": "zoom"}), ALICE) == answers.help("zoom")
        assert await answers.answer(Request("settings", {}), ALICE) == \
            "settings belong to a Discord server; server admins change them there"
        with pytest.raises(AssertionError, match="no answer for dance"):
            await answers.answer(Request("dance", {}), ALICE)


# -- the asker's jobs --------------------------------------------------------------------------------------


async def test_the_queue_says_where_each_of_the_askers_jobs_stands(store, tmp_path):
    running = await add_job(store, fake_spec("dream"), user_id="alice", guild_id="g1", owner="this-process")
    waiting = await add_job(store, fake_spec("zoom"), user_id="alice", guild_id="g1", owner="this-process")
    elsewhere = await add_job(store, fake_spec("visualize"), user_id="alice", guild_id="g1", owner="another-process")
    orphan = await add_job(store, fake_spec("dream"), user_id="alice", guild_id="g1")
    await add_job(store, fake_spec("dream"), user_id="bob", guild_id="g1", owner="this-process")  # not alice's
    workers = Workers(queued=(str(waiting), "99"), running=(str(running),),
                      places={str(running): QueuePlace(0, 0.0), str(waiting): QueuePlace(2, 40.0)})
    async with answering(store, tmp_path, workers) as service:
        queue = await service.answers.queue(ALICE)
    assert queue.splitlines() == [
        "1 running, 2 waiting",
        f"your job {running}: dream, running",
        f"your job {waiting}: zoom, 2nd in line, starts in about 40 s",
        f"your job {elsewhere}: visualize, in another bot process's queue",
        f"your job {orphan}: dream, waiting for a bot process to pick it up",
    ]


async def test_cancel_without_an_id_cancels_the_askers_latest_job(store, tmp_path):
    first = await add_job(store, fake_spec("dream"), user_id="alice", guild_id="g1")
    latest = await add_job(store, fake_spec("dream"), user_id="alice", guild_id="g1")
    bobs = await add_job(store, fake_spec("dream"), user_id="bob", guild_id="g1")
    workers = Workers(queued=(), running=())
    async with answering(store, tmp_path, workers) as service:
        cancel = service.answers.cancel
        assert await cancel(ALICE) == f"job {latest} cancelled"
        assert (await store.jobs.get(latest)).status == "cancelled" and (await store.jobs.get(first)).status == "queued"
        assert await cancel(ALICE, bobs) == f"you have no job {bobs}", "someone else's job is not confirmed"
        assert await cancel(ALICE, latest) == f"job {latest} is already cancelled"
        assert await cancel(ALICE) == f"job {first} cancelled"
        assert await cancel(ALICE) == "you have no job to cancel"
        moderator = Requester("mod", guild_id="g1", channel_id="c1", is_moderator=True)
        assert await service.answers.answer(Request("cancel", {"job_id": bobs}), moderator) == f"job {bobs} cancelled"
    assert workers.cancels == [str(latest), str(first), str(bobs)], "each job cancelled is stopped on the workers too"


async def test_quota_tells_what_a_member_may_start_now_and_for_how_long(store, tmp_path):
    async with answering(store, tmp_path) as service:
        await service.guilds.change("g1", user_burst=3, user_refill_seconds=60, guild_jobs_per_hour=30, max_active_jobs=2,
                                    max_job_seconds=30, exempt_role_ids=("vip",))
        assert await service.answers.quota(ALICE) == \
            "you can start 3 of 3 jobs now; this server has 30 left this hour; 0 of your 2 job slots are busy; jobs may take up to 30 s"
        admitted = await store.jobs.admit(fake_spec(), Asker("alice", "g1", "c1"), predicted=1.0, max_seconds=30.0)
        assert admitted.allowed
        after = await service.answers.quota(ALICE)
        assert re.fullmatch(r"you can start 2 of 3 jobs now, one more in (1 min|\d+ s); this server has 29 left this hour; "
                            r"1 of your 2 job slots are busy; jobs may take up to 30 s", after), after
        vip = Requester("carol", guild_id="g1", channel_id="c1", roles=("vip",))
        assert await service.answers.quota(vip) == "you are exempt from the rate limits here; jobs may take up to 2 min"


# -- the server's gallery and numbers ----------------------------------------------------------------------


async def posted(store: Store, *, guild_id: str = "g1", user_id: str = "alice", kind: str = "dream", likes: int = 0,
                 results: LocalResults | None = None) -> tuple[int, str]:
    """A finished job posted on a server and in its gallery, with `likes`; (job, message link).
    results: where its file is kept (a listing shows only results whose file is there)."""
    job_id = await add_job(store, fake_spec(kind), user_id=user_id, guild_id=guild_id, channel_id="c1")
    location = await results.save(job_id, b"png", "image/png") if results is not None else f"job-{job_id}.png"
    assert await store.jobs.finish(job_id, {"total": 1.0}, location, "image/png")
    link = f"https://discord.com/channels/{guild_id}/c1/{800 + job_id}"
    entry = await store.gallery.add(job_id, link, channel_id="c1")
    for fan in range(likes):
        await store.gallery.like(entry, f"fan-{fan}")
    return job_id, link


async def test_the_gallery_says_which_results_expired_and_leaves_out_files_deleted_by_hand(store, tmp_path):
    results = LocalResults(tmp_path / "results")
    async with answering(store, tmp_path) as service:
        (expired, expired_link), (by_hand, _), (_, kept_link) = [await posted(store, results=results) for _ in range(3)]
        await store.jobs.posted(expired, expired_link, channel_id="c1", in_guild=True)  # its delivery is over
        async with store.database.writing() as session:
            await session.execute(update(Job).where(Job.id == expired).values(finished_at=Job.finished_at - 31 * 86400))
        assert (await Retention(store=store, results=results, days=30).prune()).files == 1
        (results.folder / f"job-{by_hand}.png").unlink()
        listed = (await service.answers.gallery(ALICE)).splitlines()
    assert [line.rsplit(": ", 1)[1] for line in listed] == [kept_link, expired_link]
    assert listed[0].startswith("#3 dream (0 likes): ") and listed[1].startswith("#1 dream (0 likes; expired): ")


async def test_the_gallery_lists_this_servers_results_newest_or_most_liked_first(store, tmp_path):
    async with answering(store, tmp_path) as service:
        gallery = service.answers.gallery
        assert await gallery(ALICE) == "the gallery is empty: results appear here once they are posted"
        assert await gallery(Requester("alice")) == "the gallery belongs to a server; use it there"
        results = LocalResults(tmp_path / "results")
        shown = [await posted(store, kind="zoom" if n == 11 else "dream", likes=n % 4, results=results) for n in range(12)]
        await posted(store, guild_id="g2", likes=9, results=results)  # another server's
        deleted_job, deleted_link = shown[5]
        assert await store.gallery.remove([deleted_link]) == 1
        recent = (await gallery(ALICE)).splitlines()
        top = (await gallery(ALICE, "top")).splitlines()
    kept = [entry for entry in shown if entry[0] != deleted_job]
    assert len(recent) == len(top) == 10, "ten at most"
    assert [line.rsplit(": ", 1)[1] for line in recent] == [link for _, link in kept[::-1][:10]]
    by_likes = sorted(kept, key=lambda entry: (-((entry[0] - 1) % 4), -entry[0]))  # job n + 1 has n % 4 likes; ties newest first
    assert [line.rsplit(": ", 1)[1] for line in top] == [link for _, link in by_likes[:10]]
    assert top[0] == "#12 zoom (3 likes): https://discord.com/channels/g1/c1/812"


async def test_stats_count_a_servers_jobs_users_entries_and_likes(store, tmp_path):
    async with answering(store, tmp_path) as service:
        assert await service.answers.stats(ALICE) == "0 jobs (none yet; none yet) by 0 users; 0 in the gallery, 0 likes"
        await posted(store, likes=2)
        await posted(store, user_id="bob", kind="zoom", likes=1)
        await add_job(store, fake_spec("dream"), user_id="bob", guild_id="g1")
        await posted(store, guild_id="g2", user_id="carol", likes=5)
        assert await service.answers.stats(ALICE) == "3 jobs (dream 2, zoom 1; done 2, queued 1) by 2 users; 2 in the gallery, 3 likes"
        assert await service.answers.stats(Requester("alice")) == \
            "4 jobs (dream 3, zoom 1; done 3, queued 1) by 3 users; 3 in the gallery, 8 likes", "outside a server: all of them"
