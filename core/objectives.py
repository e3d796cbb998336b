"""Objectives: small factories that return a loss over a dict of activations, composable with + and *.

Each objective knows which layers it reads (`layers`), so the forward pass can stop at the deepest
one. Losses are sums over positions (not means), so the gradient of a tile is exactly its share of
the whole image's gradient and tiled dreams match untiled ones.
"""

from __future__ import annotations

from typing import Callable

import torch

__all__ = ["Objective", "layer_objective", "channel_objective", "guide_objective", "class_logit_objective"]

Activations = dict[str, torch.Tensor]


class Objective:
    """A differentiable score to maximise: `objective(activations) -> scalar tensor`."""

    def __init__(self, fn: Callable[[Activations], torch.Tensor], layers: tuple[str, ...], name: str):
        self.fn, self.layers, self.name = fn, tuple(dict.fromkeys(layers)), name

    def __call__(self, activations: Activations) -> torch.Tensor:
        return self.fn(activations)

    def __add__(self, other: "Objective") -> "Objective":
        return Objective(lambda a: self(a) + other(a), self.layers + other.layers, f"{self.name} + {other.name}")

    def __mul__(self, weight: float) -> "Objective":
        return Objective(lambda a: weight * self(a), self.layers, f"{weight:g} * {self.name}")

    __rmul__ = __mul__

    def __neg__(self) -> "Objective":
        return self * -1.0

    def __repr__(self) -> str:
        return f"Objective({self.name})"


def layer_objective(layer: str) -> Objective:
    """Amplify whatever the layer sees: half the squared activations over the channel count
    (gradient = the activations / channels, so several layers mix evenly)."""

    def loss(a: Activations) -> torch.Tensor:
        x = a[layer]  # (B, C, H, W)
        return 0.5 * x.pow(2).sum() / x.shape[1]  # per-channel scale so several layers mix evenly

    return Objective(loss, (layer,), f"layer:{layer}")


def channel_objective(layer: str, channel: int) -> Objective:
    def loss(a: Activations) -> torch.Tensor:
        x = a[layer]
        assert 0 <= channel < x.shape[1], f"{layer} has {x.shape[1]} channels; validate channels before building"
        return x[:, channel].sum()

    return Objective(loss, (layer,), f"channel:{layer}:{channel}")


def guide_objective(layer: str, guide_features: torch.Tensor) -> Objective:
    """Move each position's features toward the best-matching feature of a guide image.

    guide_features: (C, N), the guide's activations at `layer` flattened over positions. Both sides
    are rectified first: the original matched ReLU outputs, and with signed features (our layers
    end in batch norm) the best match flips between steps and the score stops rising.
    """
    guide = guide_features.clamp(min=0)

    def loss(a: Activations) -> torch.Tensor:
        x = a[layer].clamp(min=0)  # (B, C, H, W)
        flat = x.flatten(2)  # (B, C, M)
        best = torch.einsum("bcm,cn->bmn", flat, guide).argmax(dim=2)  # (B, M): chosen guide position
        matched = guide.t()[best]  # (B, M, C)
        return (flat.transpose(1, 2) * matched).sum() / x.shape[1]

    return Objective(loss, (layer,), f"guide:{layer}")


def class_logit_objective(class_index: int, layer: str = "logits") -> Objective:
    """The pre-softmax score of one ImageNet class, averaged over the batch."""
    return Objective(lambda a: a[layer][:, class_index].mean(), (layer,), f"logit:{class_index}")
