from __future__ import annotations

import pytest

from core.errors import UnknownClass
from core.models.classes import imagenet_classes, resolve_class, search_classes


@pytest.mark.parametrize(
    "query, name",
    [
        ("banana", "banana"),
        ("Banana", "banana"),
        ("  BANANAS ", "banana"),
        ("anemone fish", "anemone fish"),
        ("Anemone_Fish", "anemone fish"),
        ("measuring cup", "measuring cup"),
        ("measurin cup", "measuring cup"),
        ("admiral", "admiral"),
        ("954", "banana"),
        (954, "banana"),
    ],
)
def test_forgiving_class_names(query, name):
    assert imagenet_classes()[resolve_class(query)] == name


def test_ambiguous_name_lists_the_candidates():
    with pytest.raises(UnknownClass) as info:
        resolve_class("cat")
    message = str(info.value)
    assert "ambiguous" in message and "tiger cat (282)" in message and "\n" not in message


def test_unknown_name_and_index_out_of_range():
    with pytest.raises(UnknownClass, match="unknown class 'xyzzy'"):
        resolve_class("xyzzy")
    with pytest.raises(UnknownClass, match="out of range"):
        resolve_class("1000")
    with pytest.raises(UnknownClass, match="closest: .*parachute"):
        resolve_class("parashute thing")


def test_search():
    assert (393, "anemone fish") in search_classes("fish")
    assert len(search_classes("")) == 1000
