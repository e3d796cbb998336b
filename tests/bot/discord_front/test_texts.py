"""Every text the bot sends fits what Discord accepts, rendered at its largest: refusals of hostile
requests, refusals by the limits, and result posts at the longest parameters and names. Checked
with the strict fake's own rules (tests/fake_discord/_limits.py), on the texts as the bot makes
them, before any cut. The help's, `!settings`' and the answers' own checks of the kind are with
their modules' tests (cogs/test_info.py, cogs/test_settings.py, tests/bot/service/test_answers.py)."""

from __future__ import annotations

import itertools

import pytest

from bot.commands import JOB_COMMANDS, CommandError, parse_command, reproduce_command
from bot.discord_front.cogs.dreams.cog import refusal_line, result_words, what_came_out
from bot.inputs import over_the_limit
from bot.results import LocalResults
from bot.service import Accepted, Denied, Requester, Service
from bot.store import RateLimits, Store
from core.models.classes import imagenet_classes
from core.models.registry import MODELS
from core.params import MOST_CHANNELS, param_help
from core.spec import SEED_MAX, compile_job
from tests.bot.service.helpers import LONGEST_IDS as ALICE
from tests.bot.service.helpers import LONGEST_PREFIX, Workers, fits

HUGE = "9" * 4000  # what a user with Nitro may type into one message
ODD = "ẞ" * 4000


def hostile_requests() -> list[str]:
    """Chat commands a user might send to break a reply: huge values for every option of every
    command, huge unknown options and words, ids and seeds of thousands of digits."""
    texts = []
    for kind in JOB_COMMANDS:
        options = {name for name, _, _ in param_help(kind)} | ({name for name, _, _ in param_help("video")} if kind == "dream" else set())
        for option, value in itertools.product(sorted(options), (HUGE, ODD, "-" + HUGE, ",".join([HUGE[:10]] * 200))):
            texts.append(f"{LONGEST_PREFIX}{kind} {option}:{value}")
        texts += [f"{LONGEST_PREFIX}{kind} {HUGE}:1", f"{LONGEST_PREFIX}{kind} seed:{HUGE}", f"{LONGEST_PREFIX}{kind} {ODD}"]
    texts += [f"{LONGEST_PREFIX}{ODD}", f"{LONGEST_PREFIX}cancel {HUGE}", f"{LONGEST_PREFIX}gallery {ODD}",
              f"{LONGEST_PREFIX}help {ODD}", f"{LONGEST_PREFIX}layers {ODD}", f"{LONGEST_PREFIX}classes {ODD}",
              f"{LONGEST_PREFIX}queue {ODD}", f"{LONGEST_PREFIX}settings {ODD}:1"]
    return texts


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


async def test_every_refusal_of_a_hostile_request_is_one_line_that_fits(service, photo_bytes):
    photo = photo_bytes("chelsea.png", (64, 48))
    seen = 0
    texts = hostile_requests()
    for text in texts:
        try:
            request = parse_command(text, LONGEST_PREFIX)
        except CommandError as exc:
            line = str(exc)
        else:
            assert request is not None
            if request.is_job:
                refused = service.jobs.check(request) or await service.jobs.submit(request, ALICE, images=[photo] if request.name != "visualize" else [])
                assert isinstance(refused, Denied), text[:80]
                line = refusal_line(refused)
            else:
                line = await service.answers.answer(request, ALICE)
        assert "\n" not in line and fits(line), (text[:60], len(line), line[:200])
        seen += 1
    assert seen == len(texts) > 150


async def test_refusals_by_the_limits_fit_at_their_longest(store, tmp_path):
    limits = RateLimits(user_burst=1, user_refill_seconds=10**9, guild_jobs_per_hour=1, max_active_jobs=1)
    request = parse_command(f"{LONGEST_PREFIX}visualize banana steps:10", LONGEST_PREFIX)
    lines = []
    async with Store.open(str(store.database.engine.url), limits=limits) as limited:
        async with Service.open(store=limited, executor=Workers(), results=LocalResults(tmp_path / "r"),  # type: ignore[arg-type]
                                prefix=LONGEST_PREFIX) as service:
            over_cap = await service.jobs.submit(parse_command(f"{LONGEST_PREFIX}zoom frames:240 size:1024 steps:50",
                                                               LONGEST_PREFIX), ALICE)
            assert isinstance(over_cap, Denied) and over_cap.why == "over_time_cap" and not over_cap.passes_with_time
            lines.append(refusal_line(over_cap))
        async with Service.open(store=limited, executor=Workers(predicted=1.0), results=LocalResults(tmp_path / "r"),  # type: ignore[arg-type]
                                prefix=LONGEST_PREFIX) as service:
            assert isinstance(await service.jobs.submit(request, ALICE), Accepted)
            neighbour = Requester("2" * 20, guild_id=ALICE.guild_id, channel_id=ALICE.channel_id)
            for who in (ALICE, neighbour):  # the active-job cap, then the server's hourly limit
                refused = await service.jobs.submit(request, who)
                assert isinstance(refused, Denied) and refused.passes_with_time, refused
                lines.append(refusal_line(refused))
    assert {line.split(" ", 2)[1] for line in lines[1:]} == {"you", "this"}
    assert all(fits(line) and "\n" not in line for line in lines), lines
    assert fits(over_the_limit("x" * 40, 10**12, 25 * 2**20))


def longest_specs():
    """Jobs whose reproduce commands are as long as the options allow: every option away from its
    default at the longest it can be written, the longest names, the largest seed."""
    entry = MODELS["efficientnet-lite0"]
    layers = ",".join(entry.layers[:-1])
    fewest = min(entry.channels[layer] for layer in entry.layers[:-1])
    channels = ",".join(str(fewest - 1 - i) for i in range(MOST_CHANNELS))
    photo = {"strength": 9.87654321, "steps": 99, "octaves": 7, "octave_scale": 1.987654321, "max_side": 4095,
             "tile": 2047, "jitter": 127, "iterations": 8}
    longest_class = max(imagenet_classes(), key=len)
    return [
        ("dream", {"layer": layers, "channel": channels, **photo}),
        ("dream", {"target": longest_class, **photo}),
        ("visualize", {"target": longest_class, "style": "vivid", "size": 1023, "steps": 1999, "lr": 0.987654321}),
        ("zoom", {"layer": layers, "frames": 239, "zoom": 1.49876543, "rotate": -14.987654321, "size": 1023, "steps": 49,
                  "octaves": 5, "strength": 9.87654321, "frame_ms": 999, "max_bytes": 500 * 2**20 - 1, "loop": "seamless",
                  "format": "webp"}),
    ]


@pytest.mark.parametrize(("kind", "options"), longest_specs(), ids=["layers", "target", "visualize", "zoom"])
def test_a_result_post_fits_at_the_longest_parameters_and_names(kind, options, photo_bytes):
    images = [photo_bytes("chelsea.png", (64, 48))] if kind == "dream" else []
    spec = compile_job(kind, options, images=images, seed=SEED_MAX)
    command = reproduce_command(spec, LONGEST_PREFIX)
    metadata = {"class_name": max(imagenet_classes(), key=len), "probability": 0.123456, "frames": 239, "format": "webp",
                "loop": "seamless"}
    page = "\n<https://" + "g" * 200 + ".example/results/2147483647>"
    note = "\n_re-encoded as 4096x4096 at 123456 kb/s to fit the upload limit_"
    text = result_words(2**31 - 1, 2**64 - 1, command, what_came_out(kind, metadata), page) + note
    assert fits(text), len(text)
