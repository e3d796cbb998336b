"""The typed slash commands and the prefix parser agree: the same options give the same compiled job."""

from __future__ import annotations

import pytest

from bot.commands import job_request, parse_words
from core.errors import InvalidParameter
from core.spec import compile_job


@pytest.mark.parametrize("kind, typed, words", [
    ("zoom", {"frames": 12, "zoom": 1.1, "seed": 3}, ["frames:12", "zoom:1.1", "seed:3"]),
    ("visualize", {"target": "anemone fish", "size": 64, "steps": 12, "seed": 7},
     ["anemone", "fish", "size:64", "steps:12", "seed:7"]),
    ("visualize", {"target": None, "lr": 0.1, "seed": 1}, ["lr:0.1", "seed:1"]),
])
def test_typed_options_compile_to_the_job_the_parser_makes(kind, typed, words):
    defaults = {"model": "efficientnet-lite0"}
    slash, prefix = job_request(kind, typed, defaults=defaults), parse_words(kind, words, defaults=defaults)
    compiled = [compile_job(kind, r.params, seed=r.seed) for r in (slash, prefix)]
    assert compiled[0] == compiled[1]


def test_a_typed_option_out_of_range_is_refused_with_the_parsers_words():
    with pytest.raises(InvalidParameter, match="octaves must be between 1 and 8"):
        compile_job("dream", job_request("dream", {"octaves": 99}).params, images=[])
