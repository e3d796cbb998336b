"""The engine's exceptions: one small family, so every front can map them to one readable line.

    DreamError                  base class; str(error) is a complete sentence for the user
    ├── InvalidImage            missing, empty, truncated or not an image at all
    │   ├── MissingImage        a kind that needs an input (a dream's photo) was given none
    │   ├── ImageTooLarge       header declares more pixels than allowed (refused before decoding)
    │   └── InvalidVideo        a clip that is damaged, truncated or has no video track
    │       └── VideoTooLarge   container says too long, too many frames or pixels (refused before decoding)
    ├── InvalidParameter        a parameter outside its allowed range or of the wrong type
    ├── UnknownName             a name that is not in a list; carries the closest valid names
    │   ├── UnknownModel
    │   ├── UnknownLayer
    │   └── UnknownClass
    ├── ModelUnavailable        weights cannot be found locally nor downloaded
    └── JobCancelled            the job was cancelled while running
"""

from __future__ import annotations

__all__ = [
    "quoted",
    "QUOTE_LENGTH",
    "DreamError",
    "InvalidImage",
    "MissingImage",
    "ImageTooLarge",
    "InvalidVideo",
    "VideoTooLarge",
    "InvalidParameter",
    "UnknownName",
    "UnknownModel",
    "UnknownLayer",
    "UnknownClass",
    "ModelUnavailable",
    "JobCancelled",
]


QUOTE_LENGTH = 40  # the most characters of what a user typed that an error message repeats


def quoted(value: object, limit: int = QUOTE_LENGTH) -> str:
    """What a user typed, quoted for an error message: `repr`, cut to `limit` characters with an
    ellipsis, so a message that repeats its input stays one short line however long the input."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        text = str(value)  # a number reads as itself; a huge one is cut like any text
        return text if len(text) <= limit else text[: limit - 1] + "…"
    text = repr(str(value))
    return text if len(text) <= limit else text[: limit - 2] + "…" + text[0]


class DreamError(Exception):
    """Base of every error the engine raises on purpose."""


class InvalidImage(DreamError):
    pass


class MissingImage(InvalidImage):
    """A job without the input its kind needs; fronts may say how to give one in their own words."""


class ImageTooLarge(InvalidImage):
    pass


class InvalidVideo(InvalidImage):
    """A kind of InvalidImage: a clip is a dream's input as a photo is, so whatever reports a bad input reports a bad clip."""


class VideoTooLarge(InvalidVideo):
    pass


class InvalidParameter(DreamError):
    pass


class UnknownName(DreamError):
    """A name not in the list of valid names; `suggestions` are the closest valid ones."""

    kind = "name"

    def __init__(self, name: str, suggestions: list[str] | tuple[str, ...] = (), *, detail: str = ""):
        self.name = name
        self.suggestions = list(suggestions)
        message = detail or f"unknown {self.kind} {quoted(name)}"
        if self.suggestions:
            message += "; closest: " + ", ".join(self.suggestions)
        super().__init__(message)


class UnknownModel(UnknownName):
    kind = "model"


class UnknownLayer(UnknownName):
    kind = "layer"


class UnknownClass(UnknownName):
    kind = "class"


class ModelUnavailable(DreamError):
    pass


class JobCancelled(DreamError):
    pass
