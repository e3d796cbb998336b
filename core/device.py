"""Choosing the torch device from a config value ("auto", "cpu", "cuda", "cuda:1")."""

from __future__ import annotations

import torch

from .errors import InvalidParameter, quoted

__all__ = ["resolve_device"]


def resolve_device(name: str = "auto") -> torch.device:
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InvalidParameter("device cuda was asked for but no CUDA GPU is available; use --device cpu or auto")
        try:
            device = torch.device(name)
        except RuntimeError:
            raise InvalidParameter(f"device must be auto, cpu, cuda or cuda:N, got {quoted(name)}") from None
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InvalidParameter(f"there is no {name}; this machine has {torch.cuda.device_count()} GPU(s)")
        return device
    raise InvalidParameter(f"device must be auto, cpu, cuda or cuda:N, got {quoted(name)}")
