"""The engine's errors: each reads as one short line, however long or odd the user's text was."""

from __future__ import annotations

import pytest

from core.errors import (
    QUOTE_LENGTH,
    DreamError,
    ImageTooLarge,
    InvalidImage,
    InvalidParameter,
    InvalidVideo,
    JobCancelled,
    MissingImage,
    ModelUnavailable,
    UnknownClass,
    UnknownLayer,
    UnknownModel,
    UnknownName,
    VideoTooLarge,
    quoted,
)

HOSTILE = [
    "a" * 10_000,
    "line one\nline two\r\nthree",
    "tab\tand\x00null\x1b[31mred",
    "@everyone <@&123> **bold** `code` ||spoiler||" * 20,
    "\u202eevil right-to-left\u2028separator\u2029paragraph",
    "💥" * 500,
]


def test_short_text_is_quoted_whole():
    assert quoted("banana") == "'banana'"
    assert quoted("") == "''"
    assert quoted("don't") == '"don\'t"'  # repr picks the quote the text does not hold


@pytest.mark.parametrize("text", HOSTILE)
def test_long_or_hostile_text_becomes_one_short_line(text):
    line = quoted(text)
    assert len(line) <= QUOTE_LENGTH
    assert "\n" not in line and "\r" not in line and "\x00" not in line and "\x1b" not in line
    assert "\u2028" not in line and "\u2029" not in line and "\u202e" not in line
    assert line[0] == line[-1] in "'\"", "the quote is closed after the cut"
    if len(repr(text)) > QUOTE_LENGTH:
        assert line[-2] == "…"


def test_the_limit_can_be_chosen():
    assert len(quoted("x" * 100, limit=12)) == 12
    assert quoted("abcdefghij", limit=8) == "'abcde…'"


def test_numbers_read_as_themselves_and_huge_ones_are_cut():
    assert quoted(7) == "7" and quoted(-1.5) == "-1.5" and quoted(2**31) == "2147483648"
    huge = quoted(10**100)
    assert len(huge) == QUOTE_LENGTH and huge.endswith("…") and huge.startswith("1000")
    assert quoted(True) == "'True'"  # a switch's value is text, not a number


@pytest.mark.parametrize("kind", [UnknownModel, UnknownLayer, UnknownClass])
def test_unknown_names_say_what_they_are_and_list_the_closest(kind):
    error = kind("blok8", ["block8", "block3"])
    assert str(error) == f"unknown {kind.kind} 'blok8'; closest: block8, block3"
    assert error.name == "blok8" and error.suggestions == ["block8", "block3"]
    assert str(kind("nothing")) == f"unknown {kind.kind} 'nothing'"  # no suggestion, no "closest"
    assert isinstance(error, UnknownName) and isinstance(error, DreamError)


def test_a_detail_replaces_the_first_half_and_the_suggestions_still_follow():
    error = UnknownLayer("blok8", ("block8",), detail="unknown layer 'blok8' for efficientnet-lite0")
    assert str(error) == "unknown layer 'blok8' for efficientnet-lite0; closest: block8"


@pytest.mark.parametrize("text", HOSTILE)
def test_an_unknown_name_from_hostile_text_is_one_short_line(text):
    message = str(UnknownModel(text, ["googlenet", "efficientnet-lite0"]))
    assert "\n" not in message and "\r" not in message
    assert len(message) <= len("unknown model ; closest: googlenet, efficientnet-lite0") + QUOTE_LENGTH


def test_each_error_is_caught_as_what_it_is_a_kind_of():
    """Fronts catch the families: a clip too large is a bad input, a missing photo too."""
    for error, family in [(VideoTooLarge("x"), InvalidVideo), (InvalidVideo("x"), InvalidImage), (MissingImage("x"), InvalidImage),
                          (ImageTooLarge("x"), InvalidImage), (UnknownClass("x"), UnknownName)]:
        with pytest.raises(family):
            raise error
    for error in (InvalidImage("x"), InvalidParameter("x"), UnknownModel("x"), ModelUnavailable("x"), JobCancelled("x")):
        with pytest.raises(DreamError):
            raise error
    assert not issubclass(InvalidParameter, InvalidImage) and not issubclass(JobCancelled, InvalidImage)
