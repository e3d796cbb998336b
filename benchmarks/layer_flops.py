"""Forward GFLOP per megapixel and channel count of each named layer, for `ModelEntry` in core/models/registry.py.

    python -m benchmarks.layer_flops [--size 224]

Builds each architecture without its weights (nothing is read or downloaded), runs one image of
`size` x `size` through its stages with forward hooks on every Conv2d and Linear, and counts
multiply-adds (2 FLOP each). Batch norms, activations, pooling and additions are left out: they are
a few FLOP per activation against hundreds per convolution output. Prints the two dicts to paste
into the registry; tests/core/test_cost.py recounts lite0 with `count_stages` and compares.
"""

from __future__ import annotations

import argparse
from typing import Sequence

import torch
from torch import nn

__all__ = ["architecture_stages", "count_stages", "main"]


def architecture_stages(model: str) -> list[tuple[str, nn.Module]]:
    """The named stages of `model` as the registry's builder makes them, with random weights."""
    if model == "efficientnet-lite0":
        from core.models.efficientnet_lite import EfficientNetLite0

        return EfficientNetLite0().stages()
    if model == "googlenet":
        from torchvision.models import GoogLeNet

        net = GoogLeNet(num_classes=1000, aux_logits=False, transform_input=False, init_weights=False)
        # The same split as core.models.registry._build_googlenet (which also loads weights).
        names = ["conv1", "maxpool1", "conv2", "conv3", "maxpool2", "inception3a", "inception3b", "maxpool3",
                 "inception4a", "inception4b", "inception4c", "inception4d", "inception4e", "maxpool4",
                 "inception5a", "inception5b"]
        logits = nn.Sequential(net.avgpool, nn.Flatten(), net.fc)
        return [(n, getattr(net, n)) for n in names] + [("logits", logits)]
    raise ValueError(f"no architecture for {model!r}")


def _macs(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> int:
    if isinstance(module, nn.Conv2d):
        # Each output value is a dot product over (in / groups) x kernel inputs.
        return output.numel() * (module.in_channels // module.groups) * module.kernel_size[0] * module.kernel_size[1]
    assert isinstance(module, nn.Linear), f"no multiply-add count for {type(module).__name__}"
    return output.numel() * module.in_features


@torch.no_grad()
def count_stages(stages: Sequence[tuple[str, nn.Module]], size: int = 224) -> tuple[dict[str, float], dict[str, int]]:
    """Cumulative forward GFLOP per megapixel of input up to and including each stage, and its output channels.

    stages: (name, module) in order, as `architecture_stages` gives them. Returns two dicts keyed by
    stage name. The count is per megapixel of a `size` x `size` input; convolutions scale with the
    area, only the classifier's final Linear (a fixed 2.6 MFLOP or so) does not.
    """
    count = [0]

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        count[0] += _macs(module, inputs, output)

    handles = [m.register_forward_hook(hook) for _, stage in stages for m in stage.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        megapixels = size * size / 1e6
        x = torch.zeros(1, 3, size, size)
        gflops: dict[str, float] = {}
        channels: dict[str, int] = {}
        for name, stage in stages:
            stage.eval()
            x = stage(x)
            gflops[name] = 2 * count[0] / 1e9 / megapixels
            channels[name] = int(x.shape[1])
    finally:
        for handle in handles:
            handle.remove()
    return gflops, channels


def main(argv: list[str] | None = None) -> None:
    from core.models.registry import MODELS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224, help="side of the square input counted (default 224)")
    args = parser.parse_args(argv)
    for name, entry in MODELS.items():
        gflops, channels = count_stages(architecture_stages(name), args.size)
        print(f"# {name}: forward GFLOP per megapixel at {args.size}x{args.size}, cumulative; output channels")
        print(f"{'layer':<14}{'GFLOP/MP':>10}{'channels':>10}")
        for layer in entry.layers:
            print(f"{layer:<14}{gflops[layer]:>10.3f}{channels[layer]:>10}")
        print("gflops_per_megapixel={" + ", ".join(f'"{layer}": {gflops[layer]:.3f}' for layer in entry.layers) + "},")
        print("channels={" + ", ".join(f'"{layer}": {channels[layer]}' for layer in entry.layers) + "},")
        print()


if __name__ == "__main__":
    main()
