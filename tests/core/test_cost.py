from __future__ import annotations

import statistics
from dataclasses import replace

import pytest
import torch
from PIL import Image

from benchmarks.layer_flops import architecture_stages, count_stages
from core.cost import BACKWARD_RATIO, DEFAULT_RATES, RateMeter, job_cost, seconds, work_share
from core.jobs import JobCost, Rates
from core.images import fit_longest_side
from core.models.registry import MODELS
from core.params import DreamParams, VisualizeParams, ZoomParams
from core.spec import compile_job
from core.transforms import compose, standard_transforms

CPU = DEFAULT_RATES["cpu"]
BIG = (4000, 3000)  # a photo larger than every max_side below, so max_side decides the size


def dream(image_size=BIG, **options) -> JobCost:
    return job_cost("dream", DreamParams(**options), image_size)


def zoom(image_size=None, **options) -> JobCost:
    return job_cost("zoom", ZoomParams(**options), image_size)


# -- counting ----------------------------------------------------------------------------------


def test_doubling_steps_doubles_the_network_work():
    once, twice = dream(max_side=512, steps=10), dream(max_side=512, steps=20)
    assert twice.network == pytest.approx(2 * once.network) and twice.passes == 2 * once.passes
    assert twice.pixels == once.pixels  # decoding and encoding do not depend on steps


def test_network_work_grows_with_the_area():
    small, large = dream(max_side=256, octaves=1), dream(max_side=512, octaves=1)
    assert large.network / small.network == pytest.approx(4, rel=0.02)
    assert large.encode / small.encode == pytest.approx(4, rel=0.02)
    # The pyramid adds octaves of 1/1.4 the side each: about 1 + 1/1.96 + 1/1.96**2 + ... of the top one.
    pyramid = dream(max_side=512, octaves=4)
    assert pyramid.network / large.network == pytest.approx(sum(1.4 ** (-2 * i) for i in range(4)), rel=0.03)
    assert dream(max_side=512, octaves=5).network > pyramid.network


def test_a_small_photo_is_not_enlarged_to_max_side():
    assert dream((451, 300), max_side=2048).network == pytest.approx(dream((451, 300), max_side=451).network)
    assert dream((451, 300), max_side=2048).network < dream((4510, 3000), max_side=2048).network


@pytest.mark.parametrize("size", [(451, 300), (300, 451), (1000, 1000), (4000, 3), (3, 4000), (1023, 767)])
@pytest.mark.parametrize("max_side", [64, 256, 1024])
def test_pricing_fits_the_photo_exactly_as_the_runner_does(size, max_side):
    from core.cost import _fitted

    assert _fitted(size, max_side) == fit_longest_side(Image.new("RGB", size), max_side).size


def test_deeper_layers_cost_more():
    for entry in MODELS.values():
        counts = [entry.gflops_per_megapixel[layer] for layer in entry.layers]
        assert counts == sorted(counts) and len(set(counts)) == len(counts), f"{entry.name} counts are not increasing"
    shallow, mid, deep = (dream(max_side=512, layer=layer).network for layer in ("shallow", "mid", "deep"))
    assert shallow < mid < deep
    # A forward stops at the deepest layer asked for, so adding a shallower one costs nothing.
    assert dream(max_side=512, layer="block3,block13").network == pytest.approx(dream(max_side=512, layer="block13").network)
    lite0, googlenet = dream(max_side=512), dream(max_side=512, model="googlenet")
    assert googlenet.network > 3 * lite0.network


def test_tiling_adds_the_margins_overhead():
    one_tile = dream((512, 512), max_side=512, octaves=1, steps=1)
    assert one_tile.passes == 1
    assert one_tile.network == pytest.approx(MODELS["efficientnet-lite0"].gflops_per_megapixel["block8"] * (1 + BACKWARD_RATIO) * 0.262144, rel=0.05)
    tiled = dream((2048, 2048), max_side=2048, octaves=1, steps=1)
    assert tiled.passes == 16
    # 16 tiles of 512 plus up to 64 px of context on each inner side: (2432 / 2048) ** 2 = 1.41 times the pixels.
    assert 1.3 < tiled.network / (16 * one_tile.network) < 1.5
    # Smaller tiles mean relatively more margin.
    assert dream((2048, 2048), max_side=2048, octaves=1, steps=1, tile=256).network > tiled.network


def test_zoom_costs_its_frames_times_a_dream_frame():
    frame = dream((320, 320), max_side=320, steps=5, octaves=2)
    for frames in (1, 24, 240):
        cost = zoom(size=320, steps=5, octaves=2, frames=frames)
        assert cost.network == pytest.approx(frames * frame.network) and cost.passes == frames * frame.passes
    assert zoom(size=320, frames=24).decode == 0  # noise: nothing to decode
    photo = zoom((1200, 800), size=320, frames=24)
    assert photo.decode > 0 and photo.network < zoom(size=320, frames=24).network  # 320x213 frames


def test_a_gif_over_its_byte_budget_costs_the_retries():
    roomy, tight = zoom(size=256, frames=24, format="gif"), zoom(size=256, frames=24, max_bytes=64 * 1024, format="gif")
    assert tight.network == roomy.network
    assert tight.encode > 2 * roomy.encode  # every colour count is tried before the frames shrink


def test_a_seamless_zoom_costs_its_cross_fade_and_each_format_its_encoding():
    plain, seamless = zoom(size=256, frames=24), zoom(size=256, frames=24, loop="seamless")
    assert seamless.network == pytest.approx(plain.network * (24 + 8) / 24)  # a third more, at most 12
    assert zoom(size=256, frames=240, loop="seamless").passes == zoom(size=256, frames=252).passes
    gif, webp, mp4 = (zoom(size=256, frames=24, format=f).encode for f in ("gif", "webp", "mp4"))
    assert mp4 < webp < gif
    assert zoom(size=256, frames=24).encode == pytest.approx(webp)  # auto: a short zoom that fits is a WebP
    assert zoom(size=256, frames=120).encode == pytest.approx(5 * mp4)  # a long one is an MP4
    # A short zoom whose WebP would not fit tries it, then makes the MP4.
    assert zoom(size=256, frames=24, max_bytes=256 * 1024).encode == pytest.approx(webp + 2 * mp4)


def test_render_cost_follows_the_transformed_crops():
    from core.cost import _render_crop_megapixels

    generator = torch.Generator().manual_seed(0)
    transform = compose(standard_transforms(generator))
    for size in (64, 160):
        areas = [transform(torch.zeros(1, 1, size, size)).shape[-2:].numel() for _ in range(150)]
        assert _render_crop_megapixels(size) * 1e6 == pytest.approx(statistics.mean(areas), rel=0.02)
    small, large = (job_cost("visualize", VisualizeParams(size=size, steps=64, style="vivid"), None) for size in (128, 256))
    assert large.network / small.network == pytest.approx(((256 + 16) / (128 + 16)) ** 2, rel=0.05)
    assert job_cost("visualize", VisualizeParams(steps=512), None).network > 1.9 * job_cost("visualize", VisualizeParams(steps=256), None).network


def test_natural_render_cost_is_its_crops_plus_the_image_work():
    """A natural render's network sees fixed-size crops whatever the render's size: a 1024 px render
    costs only its larger Fourier image more than a 224 px one, and far less than a vivid 1024."""
    from core.cost import NATURAL_IMAGE_GFLOP_PER_MEGAPIXEL
    from core.models.registry import get_entry
    from core.render import NaturalRenderSettings

    def network(**options) -> float:
        return job_cost("visualize", VisualizeParams(**options), None).network

    settings = NaturalRenderSettings()
    gflops = get_entry("efficientnet-lite0").gflops_per_megapixel["logits"]
    per_step = gflops * (1 + BACKWARD_RATIO) * settings.crops * settings.input_size ** 2 / 1e6
    assert network(size=1024, steps=100) - network(size=224, steps=100) == pytest.approx(
        NATURAL_IMAGE_GFLOP_PER_MEGAPIXEL * (1024 ** 2 - 224 ** 2) / 1e6 * 100, rel=1e-6)
    assert network(size=224, steps=200) - network(size=224, steps=100) == pytest.approx(
        100 * (per_step + NATURAL_IMAGE_GFLOP_PER_MEGAPIXEL * 224 ** 2 / 1e6), rel=1e-6)
    assert network(size=1024, steps=100) < network(size=1024, steps=100, style="vivid") / 5


def test_compiled_specs_carry_their_price():
    spec = compile_job("zoom", {"frames": 3, "size": 96})
    assert spec.cost == job_cost("zoom", spec.params, None)


# -- the registry's metadata -------------------------------------------------------------------


def test_registry_flops_and_channels_match_a_fresh_count_of_lite0():
    entry = MODELS["efficientnet-lite0"]
    gflops, channels = count_stages(architecture_stages(entry.name), 224)
    assert set(entry.gflops_per_megapixel) == set(entry.channels) == set(entry.layers)
    for layer in entry.layers:
        assert entry.gflops_per_megapixel[layer] == pytest.approx(gflops[layer], rel=0.01), layer
        assert entry.channels[layer] == channels[layer], layer


def test_registry_channels_match_googlenet():
    entry = MODELS["googlenet"]
    gflops, channels = count_stages(architecture_stages(entry.name), 224)
    assert set(entry.gflops_per_megapixel) == set(entry.channels) == set(entry.layers)
    assert {layer: channels[layer] for layer in entry.layers} == entry.channels
    for layer in entry.layers:
        assert entry.gflops_per_megapixel[layer] == pytest.approx(gflops[layer], rel=0.01), layer


# -- time ----------------------------------------------------------------------------------------


def test_the_cpu_defaults_admit_a_photo_dream_and_refuse_a_giant_zoom():
    assert seconds(dream((451, 300)), CPU) < 120
    giant = zoom(frames=240, size=1024, steps=50, octaves=6)
    assert seconds(giant, CPU) > 10 * 120
    assert seconds(giant, DEFAULT_RATES["cuda"]) < seconds(giant, CPU)


def test_work_share_is_the_time_before_encoding():
    plain = dream(max_side=512)
    share = work_share(plain)
    assert 0 < share < 1
    encode_seconds = plain.encode / CPU.megapixels_per_second
    assert share == pytest.approx(1 - encode_seconds / seconds(plain, CPU), abs=1e-6)
    assert work_share(replace(plain, encode=plain.encode * 10)) < share


def _timings(cost: JobCost, rates: Rates, *, compute: float = 1.0, pixels: float = 1.0, overhead: float = 1.0) -> dict[str, float]:
    """Stage timings of a dream of `cost` that ran `compute`, `pixels` and `overhead` times as long as `rates` say."""
    dream_s = (cost.network / rates.gflops_per_second + cost.passes * rates.seconds_per_pass) * compute
    decode_s = cost.decode / rates.megapixels_per_second * pixels
    encode_s = cost.encode / rates.megapixels_per_second * pixels
    total = decode_s + dream_s + encode_s + rates.overhead_seconds * overhead
    return {"decode": decode_s, "dream": dream_s, "encode": encode_s, "total": total}


def test_rate_meter_moves_toward_what_jobs_measure():
    meter, cost = RateMeter(), dream(max_side=1024)
    before = meter.predict(cost, "cpu")
    assert before == pytest.approx(seconds(cost, CPU))
    slow = _timings(cost, CPU, compute=2.0)  # this machine is half as fast as the defaults say
    meter.observe(cost, slow, "cpu")
    after_one = meter.predict(cost, "cpu")
    assert before < after_one < slow["total"]
    for _ in range(30):
        meter.observe(cost, slow, "cpu")
    assert meter.predict(cost, "cpu") == pytest.approx(slow["total"], rel=0.05)
    assert meter.rates["cpu"].megapixels_per_second == pytest.approx(CPU.megapixels_per_second, rel=0.01)
    assert meter.rates["cuda"] == DEFAULT_RATES["cuda"]  # each device type learns on its own


def test_rate_meter_learns_encoding_apart_from_the_network():
    meter, cost = RateMeter(), dream(max_side=1024)
    for _ in range(30):
        meter.observe(cost, _timings(cost, CPU, pixels=3.0), "cpu")
    rates = meter.rates["cpu"]
    assert rates.megapixels_per_second == pytest.approx(CPU.megapixels_per_second / 3, rel=0.05)
    assert rates.gflops_per_second == pytest.approx(CPU.gflops_per_second, rel=0.01)


def test_rate_meter_clamps_a_single_outlier():
    meter, cost = RateMeter(), dream(max_side=1024)
    before = meter.predict(cost, "cpu")
    meter.observe(cost, _timings(cost, CPU, compute=100.0, pixels=100.0, overhead=100.0), "cpu")  # a neighbour hogged the CPU
    after = meter.predict(cost, "cpu")
    assert before < after < 1.5 * before
    for _ in range(5):  # ordinary jobs pull it back
        meter.observe(cost, _timings(cost, CPU), "cpu")
    assert meter.predict(cost, "cpu") == pytest.approx(before, rel=0.1)


def test_rate_meter_takes_a_zooms_decode_out_of_its_dream_stage():
    meter, cost = RateMeter(), zoom((2000, 2000), size=256, frames=4)
    timings = _timings(cost, CPU)
    timings["dream"] += timings.pop("decode")  # the runner times a zoom's decode inside "dream"
    meter.observe(cost, timings, "cpu")
    rates = meter.rates["cpu"]
    for name in ("gflops_per_second", "seconds_per_pass", "megapixels_per_second", "overhead_seconds"):
        assert getattr(rates, name) == pytest.approx(getattr(CPU, name), rel=0.01), name


def test_rate_meter_shares_a_batchs_dream_stage_among_its_jobs():
    meter, cost = RateMeter(), dream(max_side=512)
    timings = _timings(cost, CPU)
    # Four dreams ran in one pass per step: four times the network work in as many passes.
    timings["dream"] = 4 * cost.network / CPU.gflops_per_second + cost.passes * CPU.seconds_per_pass
    timings["total"] = timings["decode"] + timings["dream"] + timings["encode"] + CPU.overhead_seconds
    meter.observe(cost, timings, "cpu", batch=4)
    assert meter.predict(cost, "cpu") == pytest.approx(seconds(cost, CPU), rel=0.01)
    meter.observe(cost, timings, "cpu")  # taken for one job's time, the same stage looks slow
    assert meter.predict(cost, "cpu") > 1.2 * seconds(cost, CPU)
