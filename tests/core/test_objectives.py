"""Objectives (core.objectives): what each scores, what its gradient pushes, and how they combine."""

from __future__ import annotations

import pytest
import torch

from core.objectives import (
    Objective,
    channel_objective,
    class_logit_objective,
    guide_objective,
    layer_objective,
)


def _activations(*shape: int, seed: int = 0, layer: str = "block8") -> dict[str, torch.Tensor]:
    return {layer: torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).requires_grad_(True)}


def _gradient(objective: Objective, activations: dict[str, torch.Tensor], layer: str = "block8") -> torch.Tensor:
    (grad,) = torch.autograd.grad(objective(activations), activations[layer])
    return grad


def test_the_layer_objective_s_gradient_is_the_activations_over_the_channel_count():
    activations = _activations(2, 6, 5, 4)
    x = activations["block8"]
    objective = layer_objective("block8")
    assert objective.layers == ("block8",) and objective.name == "layer:block8"
    torch.testing.assert_close(objective(activations), 0.5 * x.detach().pow(2).sum() / 6)
    torch.testing.assert_close(_gradient(objective, activations), x.detach() / 6)


def test_layers_of_different_widths_mix_evenly():
    """Scaled per channel: a layer of 4 channels and one of 64 with activations of the same size score alike."""
    narrow, wide = torch.ones(1, 4, 3, 3), torch.ones(1, 64, 3, 3)
    assert float(layer_objective("a")({"a": narrow})) == pytest.approx(float(layer_objective("b")({"b": wide})))


def test_the_layer_objective_is_a_sum_so_tiles_add_up_to_the_whole():
    whole = _activations(1, 3, 8, 8)
    x = whole["block8"].detach()
    objective = layer_objective("block8")
    halves = [objective({"block8": x[..., :4]}), objective({"block8": x[..., 4:]})]
    torch.testing.assert_close(halves[0] + halves[1], objective({"block8": x}))


def test_the_channel_objective_moves_only_its_channel():
    activations = _activations(2, 5, 4, 4)
    objective = channel_objective("block8", 3)
    assert objective.name == "channel:block8:3"
    torch.testing.assert_close(objective(activations), activations["block8"].detach()[:, 3].sum())
    grad = _gradient(objective, activations)
    assert torch.all(grad[:, 3] == 1) and torch.all(grad[:, [0, 1, 2, 4]] == 0)


def test_a_channel_out_of_range_is_caught_before_it_reads_another_tensor():
    with pytest.raises(AssertionError, match="block8 has 5 channels"):
        channel_objective("block8", 5)(_activations(1, 5, 2, 2))


def test_the_class_logit_objective_is_the_batch_mean_of_one_score():
    logits = _activations(4, 1000, layer="logits")
    objective = class_logit_objective(954)
    assert objective.layers == ("logits",) and objective.name == "logit:954"
    torch.testing.assert_close(objective(logits), logits["logits"].detach()[:, 954].mean())
    grad = _gradient(objective, logits, "logits")
    assert torch.all(grad[:, 954] == 0.25) and float(grad.abs().sum()) == pytest.approx(1.0)


def test_the_guide_objective_pulls_each_position_toward_its_best_match_in_the_guide():
    guide = torch.tensor([[1.0, 0.0, -5.0], [0.0, 1.0, -5.0]])  # (C=2, N=3): two clear directions and one all negative
    x = torch.tensor([[[[2.0, 0.1, -1.0]], [[0.5, 3.0, -1.0]]]], requires_grad=True)  # (1, 2, 1, 3)
    objective = guide_objective("g", guide)
    assert objective.layers == ("g",) and objective.name == "guide:g"
    score = objective({"g": x})
    # position 0 (2, 0.5) matches guide column 0: 2; position 1 (0.1, 3) matches column 1: 3; position 2 is negative: 0
    assert float(score.detach()) == pytest.approx((2.0 + 3.0) / 2)
    (grad,) = torch.autograd.grad(score, x)
    expected = torch.tensor([[[[0.5, 0.0, 0.0]], [[0.0, 0.5, 0.0]]]])  # the matched (rectified) column / C
    torch.testing.assert_close(grad, expected)


def test_objectives_add_weigh_and_negate_and_read_each_layer_once():
    a = _activations(1, 4, 3, 3, layer="block3") | _activations(1, 6, 3, 3, seed=1, layer="block8")
    first, second = layer_objective("block3"), layer_objective("block8")
    total = first + second + layer_objective("block3")
    assert total.layers == ("block3", "block8")
    torch.testing.assert_close(total(a), 2 * first(a) + second(a))
    weighted = 0.5 * second
    assert weighted.name == "0.5 * layer:block8" and weighted.layers == ("block8",)
    torch.testing.assert_close(weighted(a), 0.5 * second(a))
    torch.testing.assert_close((second * 3.0)(a), 3.0 * second(a))
    torch.testing.assert_close((-second)(a), -second(a))
    assert repr(first + second) == "Objective(layer:block3 + layer:block8)"
