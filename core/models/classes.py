"""The 1000 ImageNet class names and a forgiving lookup (`banana`, `Banana`, `anemone fish`, `954`)."""

from __future__ import annotations

import difflib
import re
from functools import lru_cache
from importlib import resources

from ..errors import UnknownClass, quoted

__all__ = ["imagenet_classes", "resolve_class", "search_classes", "suggest_classes"]


@lru_cache(maxsize=1)
def imagenet_classes() -> tuple[str, ...]:
    text = resources.files(__package__).joinpath("imagenet_classes.txt").read_text(encoding="utf-8")
    names = tuple(line for line in text.splitlines() if line)
    assert len(names) == 1000, f"imagenet_classes.txt must have 1000 lines, has {len(names)}"
    return names


def _normal(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[_\-]+", " ", text)).strip().lower()


def _label(index: int) -> str:
    return f"{imagenet_classes()[index]} ({index})"


def resolve_class(query: str | int) -> int:
    """Index of the ImageNet class named by `query`; raises UnknownClass listing the closest names."""
    names = imagenet_classes()
    text = _normal(str(query))
    if text.isascii() and text.isdigit():  # ASCII only: "²" is a digit to str.isdigit but no number to int()
        if len(text) <= 4 and int(text) < len(names):
            return int(text)
        raise UnknownClass(str(query), detail=f"class index {quoted(text)} is out of range 0-{len(names) - 1}")
    if not text:
        raise UnknownClass(str(query), detail="no class name given")
    normal = [_normal(n) for n in names]
    exact = [i for i, n in enumerate(normal) if n == text]
    if len(exact) == 1:
        return exact[0]
    if len(exact) > 1:
        raise UnknownClass(str(query), [_label(i) for i in exact], detail=f"class {quoted(query)} is ambiguous; pick an index")
    # A plural or a small typo: accept a single clearly-closest name.
    close = difflib.get_close_matches(text, normal, n=3, cutoff=0.6)
    if close and difflib.SequenceMatcher(None, text, close[0]).ratio() >= 0.9 and normal.count(close[0]) == 1:
        if len(close) == 1 or difflib.SequenceMatcher(None, text, close[1]).ratio() < 0.9:
            return normal.index(close[0])
    containing = [i for i, n in enumerate(normal) if re.search(rf"\b{re.escape(text)}\b", n)]
    if len(containing) == 1:
        return containing[0]
    suggestions = [_label(i) for i in containing[:5]] or [_label(normal.index(c)) for c in close]
    detail = f"class {quoted(query)} is ambiguous" if len(containing) > 1 else f"unknown class {quoted(query)}"
    raise UnknownClass(str(query), suggestions, detail=detail)


def search_classes(text: str = "") -> list[tuple[int, str]]:
    """(index, name) of every class whose name contains `text` (all classes when empty)."""
    needle = _normal(text)
    return [(i, n) for i, n in enumerate(imagenet_classes()) if needle in _normal(n)]


def suggest_classes(text: str, limit: int = 25) -> list[tuple[int, str]]:
    """Up to `limit` (index, name) for a partly typed class: names starting with `text`, then names
    containing it; only when there are none, names it nearly spells (a typo). All classes in order
    when `text` is empty."""
    needle = _normal(text)
    names = imagenet_classes()
    normal = [_normal(n) for n in names]
    starting = [i for i, n in enumerate(normal) if n.startswith(needle)]
    containing = [i for i, n in enumerate(normal) if needle in n and not n.startswith(needle)]
    found = (starting + containing)[:limit]
    if not found and needle:
        # Compared with each word too, so "anemne" finds "sea anemone" as well as whole names.
        near = {i for i, n in enumerate(normal) if difflib.get_close_matches(needle, [n, *n.split()], n=1, cutoff=0.75)}
        found = sorted(near)[:limit]
    return [(i, names[i]) for i in found]
