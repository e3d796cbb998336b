"""The speed paths: fast networks, batched dreams, captured gradient steps (their cache logic on CPU), bf16."""

from __future__ import annotations

import platform

import pytest
import torch
from torch import nn
from torchvision.models import GoogLeNet

from core.dream import DreamSettings, StepGraphs, _roll_each, dream, dream_batch, octave_sizes, tiled_gradient
from core.errors import InvalidParameter
from core.images import decode_image, to_tensor
from core.spec import compile_job
from core.models.registry import googlenet_cache_path, load_network
from core.objectives import layer_objective
from core.runner import JobRunner, keep_freed_memory


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def _gradient(net, layer: str, image: torch.Tensor) -> torch.Tensor:
    return tiled_gradient(net, layer_objective(layer), image, tile=512)


@pytest.fixture(scope="module")
def plain_lite0():
    return load_network("efficientnet-lite0", fast=False)


def test_fast_network_computes_the_plain_one(lite0, plain_lite0):
    assert lite0.memory_format == torch.channels_last
    assert not any(isinstance(m, nn.BatchNorm2d) for m in lite0.modules()), "every batch norm is folded"
    image = torch.rand(2, 3, 96, 80, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        fast, plain = lite0(image, ["block8", "logits"]), plain_lite0(image, ["block8", "logits"])
    for layer in ("block8", "logits"):
        assert _relative(fast[layer], plain[layer]) < 1e-4
    assert _relative(_gradient(lite0, "block8", image), _gradient(plain_lite0, "block8", image)) < 1e-3


def test_fast_googlenet_computes_the_plain_one(tmp_path):
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path))
    try:
        (tmp_path / "checkpoints").mkdir()
        torch.manual_seed(0)
        torch.save(GoogLeNet(num_classes=1000, aux_logits=False, init_weights=False).state_dict(), googlenet_cache_path())
        fast, plain = load_network("googlenet", allow_download=False), load_network("googlenet", allow_download=False, fast=False)
    finally:
        torch.hub.set_dir(old)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    image = torch.rand(1, 3, 96, 96, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert _relative(fast(image, ["logits"])["logits"], plain(image, ["logits"])["logits"]) < 1e-4
    assert _relative(_gradient(fast, "inception4c", image), _gradient(plain, "inception4c", image)) < 1e-3


def test_roll_into_a_buffer_equals_torch_roll():
    x = torch.rand(2, 3, 7, 9, generator=torch.Generator().manual_seed(0))
    shifts = [(3, -4), (-20, 11)]
    expected = torch.cat([x[i : i + 1].roll(shift, dims=(2, 3)) for i, shift in enumerate(shifts)])
    buffer = torch.full_like(x, float("nan"))
    assert _roll_each(x, shifts, out=buffer) is buffer
    assert torch.equal(buffer, expected)


def test_tiled_gradient_writes_into_the_given_buffer(lite0):
    image = torch.rand(1, 3, 96, 128, generator=torch.Generator().manual_seed(0))
    buffer = torch.empty_like(image)
    result = tiled_gradient(lite0, layer_objective("block3"), image, tile=64, out=buffer)
    assert result is buffer
    assert torch.equal(buffer, tiled_gradient(lite0, layer_objective("block3"), image, tile=64))


def test_batched_dream_equals_one_by_one(lite0):
    """Several same-sized images in one pass get what each would get alone (up to float rounding)."""
    objective, settings = layer_objective("block8"), DreamSettings(steps=3, octaves=2)
    images = [torch.rand(1, 3, 64, 80, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    alone = [dream(lite0, objective, image, settings, torch.Generator().manual_seed(10 + i)) for i, image in enumerate(images)]
    together = dream_batch(lite0, objective, images, settings, [torch.Generator().manual_seed(10 + i) for i in range(3)])
    other_seed = [dream(lite0, objective, image, settings, torch.Generator().manual_seed(20 + i)) for i, image in enumerate(images)]
    assert len(together) == 3 and all(t.shape == images[0].shape for t in together)
    for a, t, o in zip(alone, together, other_seed):
        # A ReLU6 that flips on a rounding difference can move a few pixels; nothing like another seed.
        assert float((t - a).abs().mean()) < 0.1 * float((o - a).abs().mean())
    # One step is no chaotic loop: there the batch may differ from the solo runs by float rounding
    # only, whatever the kernels. Measured over seeds 0-8, default and AVX2 one-thread kernels: at
    # most 2.4e-7 against a step of 5.8e-3 per value; the bound, 1e-3 of the step, is 25 times that.
    one_step = DreamSettings(steps=1, octaves=1)
    alone = [dream(lite0, objective, image, one_step, torch.Generator().manual_seed(10 + i)) for i, image in enumerate(images)]
    together = dream_batch(lite0, objective, images, one_step, [torch.Generator().manual_seed(10 + i) for i in range(3)])
    for image, a, t in zip(images, alone, together):
        step = float((a - image).abs().mean())
        assert step > 0 and float((t - a).abs().max()) < 1e-3 * step


def test_batched_tiled_dream_equals_one_by_one(lite0):
    objective, settings = layer_objective("block3"), DreamSettings(steps=2, octaves=1, tile=48)
    images = [torch.rand(1, 3, 96, 96, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    alone = [dream(lite0, objective, image, settings, torch.Generator().manual_seed(i)) for i, image in enumerate(images)]
    together = dream_batch(lite0, objective, images, settings, [torch.Generator().manual_seed(i) for i in range(2)])
    for a, t in zip(alone, together):
        # Measured over seeds 0-5, default and AVX2 one-thread kernels: 0.0 (another seed changes 0.011).
        assert float((t - a).abs().mean()) < 1e-4


def test_batched_dream_refuses_mixed_sizes(lite0):
    with pytest.raises(AssertionError, match="one size"):
        dream_batch(lite0, layer_objective("block3"), [torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 40)],
                    DreamSettings(steps=1, octaves=1), [torch.Generator(), torch.Generator()])


class EagerCapture:
    """Stands in for CUDA graph capture on CPU: records what was captured and replays eagerly, like a
    graph, from a static input buffer."""

    def __init__(self):
        self.shapes: list[tuple[int, ...]] = []

    def __call__(self, fn, example):
        self.shapes.append(tuple(example.shape))
        static_in = example.detach().clone()

        def replay(image):
            static_in.copy_(image)
            return fn(static_in).clone()

        return replay


def test_step_graphs_capture_once_per_octave_shape_and_replay(lite0):
    objective, settings = layer_objective("block8"), DreamSettings(steps=3, octaves=3)
    image = torch.rand(1, 3, 90, 72, generator=torch.Generator().manual_seed(0))
    capture = EagerCapture()
    graphs = StepGraphs(capture)
    key = (lite0.name, objective.name)
    eager = dream(lite0, objective, image, settings, torch.Generator().manual_seed(5))
    replayed = dream(lite0, objective, image, settings, torch.Generator().manual_seed(5), graphs=graphs, graph_key=key)
    assert torch.equal(replayed, eager)
    assert capture.shapes == [(1, 3, *size) for size in octave_sizes(90, 72, 3, settings.octave_scale)]
    assert (graphs.captures, graphs.replays, len(graphs)) == (3, 9, 3)

    dream(lite0, objective, image, settings, torch.Generator().manual_seed(6), graphs=graphs, graph_key=key)
    assert graphs.captures == 3, "a second job of the same shape and objective replays"
    dream(lite0, layer_objective("block3"), image, settings, torch.Generator().manual_seed(6), graphs=graphs,
          graph_key=(lite0.name, "layer:block3"))
    assert graphs.captures == 6, "another objective is another capture"
    dream(lite0, objective, image, settings, torch.Generator().manual_seed(6), graphs=graphs, graph_key=None)
    assert graphs.captures == 6 and graphs.replays == 27, "without a key nothing is captured or replayed"


def test_step_graphs_evict_the_least_recently_used():
    capture = EagerCapture()
    graphs = StepGraphs(capture, max_entries=2)
    double = lambda x: 2 * x  # noqa: E731
    for size in (4, 5, 4, 6, 4, 5):
        assert torch.equal(graphs.run("k", double, torch.ones(1, size)), torch.full((1, size), 2.0))
    assert capture.shapes == [(1, 4), (1, 5), (1, 6), (1, 5)]  # 5 was evicted by 6; 4 stayed in use
    assert len(graphs) == 2


def test_a_failed_capture_falls_back_to_eager():
    def broken(fn, example):
        raise RuntimeError("operation not permitted when stream is capturing")

    graphs = StepGraphs(broken)
    for _ in range(2):
        assert torch.equal(graphs.run("k", lambda x: x + 1, torch.zeros(2)), torch.ones(2))
    assert graphs.captures == 0 and len(graphs.failures) == 1
    assert "stream is capturing" in next(iter(graphs.failures.values()))


def test_bf16_autocast_path_runs_and_still_dreams(lite0):
    objective, settings = layer_objective("block3"), DreamSettings(steps=3, octaves=1)
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    bf16 = dream(lite0, objective, image, settings, torch.Generator().manual_seed(0), precision="bf16")
    fp32 = dream(lite0, objective, image, settings, torch.Generator().manual_seed(0))
    assert bf16.dtype == torch.float32 and 0 <= float(bf16.min()) and float(bf16.max()) <= 1
    with torch.no_grad():
        score = lambda x: float(objective(lite0(x, objective.layers)))  # noqa: E731
        assert score(bf16) - score(image) > 0.5 * (score(fp32) - score(image)) > 0
    with pytest.raises(AssertionError, match="precision"):
        dream(lite0, objective, image, DreamSettings(steps=1, octaves=1), torch.Generator(), precision="fp16")


def test_runner_speed_options_are_checked():
    with pytest.raises(InvalidParameter, match="precision"):
        JobRunner("cpu", precision="fp16")
    with pytest.raises(InvalidParameter, match="CUDA graphs"):
        JobRunner("cpu", cuda_graphs=True)
    runner = JobRunner("cpu")
    assert runner.graphs is None and runner.precision_for("efficientnet-lite0") == "fp32"


def test_plain_runner_dreams_like_the_fast_one(runner, photo_bytes):
    """fast=False (no folding, NCHW) gives the same dream, not another one.

    Not the same bytes: where a rounding difference flips a ReLU6, the gradient changes there, and
    since each step is normalised by the mean gradient magnitude, every later step's size shifts a
    little, so many pixels round to the neighbouring level. Far less than another seed changes.
    """
    image = photo_bytes("chelsea.png", (96, 64))
    spec, other = (compile_job("dream", {"steps": 2, "octaves": 2}, images=[image], seed=seed) for seed in (3, 4))
    plain = JobRunner("cpu", allow_download=False, fast=False)
    pixels = lambda result: to_tensor(decode_image(result.data).rgb)  # noqa: E731
    fast, slow, reseeded = pixels(runner.run(spec)), pixels(plain.run(spec)), pixels(runner.run(other))
    assert float((fast - slow).abs().mean()) < 0.35 * float((fast - reseeded).abs().mean())
    objective, net = layer_objective("block8"), runner.network("efficientnet-lite0")
    with torch.no_grad():
        score = lambda x: float(objective(net(x, objective.layers)))  # noqa: E731
        assert score(slow) == pytest.approx(score(fast), rel=0.02)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt only")
def test_allocator_tuning_applies_on_glibc():
    assert keep_freed_memory() is True
