from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.models import GoogLeNet

from core.errors import ModelUnavailable, UnknownLayer, UnknownModel
from core.models import registry
from core.models.classes import imagenet_classes
from core.models.registry import get_entry, googlenet_cache_path, load_network, resolve_layers

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
