from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torchvision.models import GoogLeNet

from core.errors import ModelUnavailable, UnknownLayer, UnknownModel
from core.models import registry
from core.models.classes import imagenet_classes
from core.models.registry import TappedNetwork, fold_batchnorm, get_entry, googlenet_cache_path, load_network, resolve_layers

CAT_CLASSES = {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"}


def _classify(net, path) -> tuple[str, float]:
    pil = Image.open(path).convert("RGB").resize((224, 224), Image.BICUBIC)
    x = torch.from_numpy(np.array(pil, dtype=np.float32) / 255).permute(2, 0, 1)[None]
    with torch.no_grad():
        p = net(x, ["logits"])["logits"].softmax(-1)[0]
    return imagenet_classes()[int(p.argmax())], float(p.max())


def test_bundled_network_recognises_real_photos(lite0, photo_path):
    cat, _ = _classify(lite0, photo_path("chelsea.png"))
    coffee, p_coffee = _classify(lite0, photo_path("coffee.png"))
    assert cat in CAT_CLASSES
    assert coffee == "espresso" and p_coffee > 0.5


def test_forward_stops_at_the_deepest_requested_layer(lite0):
    ran = []
    hooks = [module.register_forward_hook(lambda m, i, o, n=name: ran.append(n)) for name, module in lite0.stages.items()]
    try:
        out = lite0(torch.rand(1, 3, 64, 64), ["block3", "stem"])
    finally:
        for hook in hooks:
            hook.remove()
    assert set(out) == {"block3", "stem"}
    assert ran[-1] == "block3" and "logits" not in ran and "block4" not in ran


def test_presets_and_layer_names_resolve():
    entry = get_entry("EfficientNet-Lite0")
    assert resolve_layers(entry, "mid") == (entry.presets["mid"],)
    assert resolve_layers(entry, "block4, deep") == ("block4", entry.presets["deep"])
    for model in registry.MODELS.values():
        assert {"shallow", "mid", "deep"} <= set(model.presets)
        assert set(model.presets.values()) <= set(model.layers)
        assert model.layers[-1] == "logits"


def test_unknown_names_suggest_the_closest():
    with pytest.raises(UnknownModel, match="googlenet"):
        get_entry("goglenet")
    with pytest.raises(UnknownLayer, match="block8"):
        resolve_layers(get_entry("efficientnet-lite0"), "blok8")


@pytest.fixture
def torch_home(tmp_path):
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path))
    yield tmp_path
    torch.hub.set_dir(old)


def test_googlenet_loads_a_state_dict_from_the_torch_cache(torch_home):
    torch.manual_seed(0)
    reference = GoogLeNet(num_classes=1000, aux_logits=True, transform_input=False, init_weights=True).eval()
    path = googlenet_cache_path()
    assert path.startswith(str(torch_home))
    (torch_home / "checkpoints").mkdir()
    torch.save(reference.state_dict(), path)  # aux heads included, as in torchvision's file

    net = load_network("googlenet", allow_download=False)
    x = torch.rand(1, 3, 96, 96)
    with torch.no_grad():
        expected = reference(x * 2 - 1)  # the registry's preprocessing maps [0, 1] to [-1, 1]
        ours = net(x, ["logits", "inception4c"])
    torch.testing.assert_close(ours["logits"], expected, rtol=1e-4, atol=1e-4)
    assert ours["inception4c"].shape[1] == 512


def test_googlenet_without_weights_names_the_cache_path(torch_home, monkeypatch):
    with pytest.raises(ModelUnavailable) as offline:
        load_network("googlenet", allow_download=False)
    assert googlenet_cache_path() in str(offline.value) and "\n" not in str(offline.value)

    def no_network(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    with pytest.raises(ModelUnavailable, match="could not be downloaded") as failed:
        load_network("googlenet", allow_download=True)
    assert googlenet_cache_path() in str(failed.value)


def test_googlenet_with_a_wrong_file_is_one_clear_error(torch_home):
    (torch_home / "checkpoints").mkdir()
    torch.save({"not": torch.zeros(1)}, googlenet_cache_path())
    with pytest.raises(ModelUnavailable, match="do not fit"):
        load_network("googlenet", allow_download=False)


# -- TappedNetwork, fold_batchnorm and the catalogue's lookups, on small stand-ins -------------------


class _Counted(nn.Module):
    """A stage that adds `amount` and counts its calls, so a test sees which stages ran."""

    def __init__(self, amount: float):
        super().__init__()
        self.amount, self.calls = amount, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return x + self.amount


def _toy() -> tuple[TappedNetwork, dict[str, _Counted]]:
    stages = {name: _Counted(amount) for name, amount in (("a", 1.0), ("b", 10.0), ("c", 100.0), ("logits", 1000.0))}
    return TappedNetwork("toy", stages.items(), normalize=lambda x: x * 2), stages


def test_a_tapped_network_returns_only_the_layers_asked_for_and_runs_no_further():
    net, stages = _toy()
    x = torch.ones(1, 3, 4, 4)
    out = net(x, ["b", "a"])
    assert set(out) == {"a", "b"}
    # normalize first, then the stages in order: 2 + 1, then + 10
    torch.testing.assert_close(out["a"], torch.full_like(x, 3.0))
    torch.testing.assert_close(out["b"], torch.full_like(x, 13.0))
    assert [stages[n].calls for n in ("a", "b", "c", "logits")] == [1, 1, 0, 0]
    assert set(net(x, ["c"])) == {"c"} and stages["logits"].calls == 0
    assert net.stage_names == ["a", "b", "c", "logits"]
    assert not any(p.requires_grad for p in net.parameters()) and not net.training


def test_a_tapped_network_names_its_stages_when_asked_for_one_it_lacks():
    net, _ = _toy()
    with pytest.raises(AssertionError, match=r"toy has no stage \['d'\]; use one of \['a', 'b', 'c', 'logits'\]"):
        net(torch.ones(1, 3, 4, 4), ["a", "d"])


class _ConvBn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


def test_fold_batchnorm_computes_the_same_function_without_the_batch_norm():
    torch.manual_seed(0)
    parents = [_ConvBn(), _ConvBn()]
    for parent in parents:  # batch norms that do something: statistics and affine terms away from 0 and 1
        parent.bn.running_mean.uniform_(-1, 1)
        parent.bn.running_var.uniform_(0.5, 2)
        nn.init.uniform_(parent.bn.weight, 0.5, 2)
        nn.init.uniform_(parent.bn.bias, -1, 1)
        parent.eval()
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        before = [parent(x) for parent in parents]
        assert fold_batchnorm((parent, "conv", "bn") for parent in parents) == 2
        after = [parent(x) for parent in parents]
    for parent, b, a in zip(parents, before, after):
        assert isinstance(parent.bn, nn.Identity) and parent.conv.bias is not None
        assert float(b.abs().max()) > 0.5  # the batch norm changed the output a lot, so equality means something
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_fold_batchnorm_refuses_training_mode_and_the_wrong_modules():
    parent = _ConvBn()  # still in training mode
    with pytest.raises(AssertionError, match="eval"):
        fold_batchnorm([(parent, "conv", "bn")])
    parent.eval()
    with pytest.raises(AssertionError, match="pass \\(Conv2d, BatchNorm2d\\)"):
        fold_batchnorm([(parent, "bn", "conv")])
    assert fold_batchnorm([]) == 0


def test_model_names_are_read_forgivingly_and_unknown_ones_suggest_the_closest():
    assert get_entry("  GoogLeNet ").name == "googlenet"
    with pytest.raises(UnknownModel) as close:
        get_entry("efficientnet")
    assert close.value.suggestions[0] == "efficientnet-lite0" and "efficientnet-lite0" in str(close.value)
    with pytest.raises(UnknownModel) as far:
        get_entry("zzzzzzzz")
    assert far.value.suggestions == list(registry.MODELS)  # nothing close: every name is offered
    assert "\n" not in str(far.value)


def test_layer_lists_are_deduplicated_and_an_empty_one_is_refused():
    entry = get_entry("efficientnet-lite0")
    assert resolve_layers(entry, "block8, MID ,block8,") == ("block8",)
    assert resolve_layers(entry, "logits") == ("logits",)
    for empty in ("", " , "):
        with pytest.raises(UnknownLayer, match="no layer given") as info:
            resolve_layers(entry, empty)
        assert info.value.suggestions == list(entry.presets)
    with pytest.raises(UnknownLayer) as far:
        resolve_layers(entry, "x" * 500)
    assert far.value.suggestions == list(entry.presets) and len(str(far.value)) < 150  # the long name is cut short
