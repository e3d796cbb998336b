"""The dream engine: pure functions and data from images to images; no Discord, HTTP or database here."""

from __future__ import annotations

from .errors import *  # noqa: F401,F403
from .errors import __all__ as _errors_all
from .jobs import JobResult, JobSpec, ProgressEvent
from .models.classes import imagenet_classes, resolve_class, search_classes
from .models.registry import MODELS, get_entry, load_network, resolve_layers
from .params import validate_params
from .runner import JobRunner

__all__ = [
    *_errors_all,
    "JobSpec",
    "JobResult",
    "ProgressEvent",
    "JobRunner",
    "MODELS",
    "get_entry",
    "load_network",
    "resolve_layers",
    "imagenet_classes",
    "resolve_class",
    "search_classes",
    "validate_params",
]
