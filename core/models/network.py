"""A pretrained classifier cut into named stages, so a forward pass can stop at the deepest layer needed."""

from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn

__all__ = ["TappedNetwork"]


class TappedNetwork(nn.Module):
    """Runs `stages` in order on images in [0, 1] and returns the activations that were asked for.

    `normalize` maps (B, 3, H, W) RGB in [0, 1] to what the weights were trained on.
    """

    def __init__(
        self,
        name: str,
        stages: Iterable[tuple[str, nn.Module]],
        normalize: Callable[[torch.Tensor], torch.Tensor],
        stride: int = 32,
    ):
        super().__init__()
        self.name = name
        self.stride = stride  # total downsampling; tiles are aligned to it
        self.stages = nn.ModuleDict(stages)
        self.normalize = normalize
        self._order = {stage: i for i, stage in enumerate(self.stages)}
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)

    @property
    def stage_names(self) -> list[str]:
        return list(self.stages)

    def forward(self, images: torch.Tensor, layers: Iterable[str]) -> dict[str, torch.Tensor]:
        """images: (B, 3, H, W) in [0, 1]; returns {layer: activation} and stops after the deepest one."""
        wanted = set(layers)
        missing = wanted - self._order.keys()
        assert not missing, f"{self.name} has no stage {sorted(missing)}; use one of {self.stage_names}"
        deepest = max(self._order[layer] for layer in wanted)
        out: dict[str, torch.Tensor] = {}
        x = self.normalize(images)
        for i, (stage, module) in enumerate(self.stages.items()):
            x = module(x)
            if stage in wanted:
                out[stage] = x
            if i == deepest:
                break
        return out
