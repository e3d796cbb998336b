"""A pretrained classifier cut into named stages, so a forward pass can stop at the deepest layer needed."""

from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

__all__ = ["TappedNetwork", "fold_batchnorm"]


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
        self.memory_format = torch.contiguous_format
        self._order = {stage: i for i, stage in enumerate(self.stages)}
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)

    @property
    def stage_names(self) -> list[str]:
        return list(self.stages)

    def use_channels_last(self, enabled: bool = True) -> "TappedNetwork":
        """Keep weights and activations channels-last (NHWC): oneDNN and cuDNN convolutions run faster so.

        Inputs may come in either layout; they are converted after normalisation.
        """
        self.memory_format = torch.channels_last if enabled else torch.contiguous_format
        return self.to(memory_format=self.memory_format)

    def forward(self, images: torch.Tensor, layers: Iterable[str]) -> dict[str, torch.Tensor]:
        """images: (B, 3, H, W) in [0, 1]; returns {layer: activation} and stops after the deepest one."""
        wanted = set(layers)
        missing = wanted - self._order.keys()
        assert not missing, f"{self.name} has no stage {sorted(missing)}; use one of {self.stage_names}"
        deepest = max(self._order[layer] for layer in wanted)
        out: dict[str, torch.Tensor] = {}
        x = self.normalize(images).contiguous(memory_format=self.memory_format)
        for i, (stage, module) in enumerate(self.stages.items()):
            x = module(x)
            if stage in wanted:
                out[stage] = x
            if i == deepest:
                break
        return out


def fold_batchnorm(pairs: Iterable[tuple[nn.Module, str, str]]) -> int:
    """Fold eval-mode batch norms into the convolutions before them; returns how many were folded.

    pairs: (parent, conv attribute, batch-norm attribute), where the parent's forward applies the
    batch norm directly to the convolution's output. The convolution gets the batch norm's scale and
    shift and the batch norm becomes an identity, so every forward and backward pass skips one
    elementwise sweep over the activation. The function computed is unchanged up to rounding.
    """
    count = 0
    for parent, conv_name, bn_name in list(pairs):
        conv, bn = getattr(parent, conv_name), getattr(parent, bn_name)
        assert isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d), (
            f"fold_batchnorm got {type(conv).__name__} and {type(bn).__name__}; pass (Conv2d, BatchNorm2d) attribute names"
        )
        assert not (conv.training or bn.training), "call .eval() before folding batch norms"
        setattr(parent, conv_name, fuse_conv_bn_eval(conv, bn))
        setattr(parent, bn_name, nn.Identity())
        count += 1
    return count
