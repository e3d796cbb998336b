"""Clips in: kind by content, limits from the container before decoding, and one line for every bad file."""

from __future__ import annotations

import pytest

from core.clips import ClipLimits, decode_clip, probe_clip, work_size
from core.images import is_clip
from core.errors import InvalidParameter, InvalidVideo, VideoTooLarge
from core.spec import compile_job
from tests.clip_making import animated, encode_video, pan_and_zoom


@pytest.fixture(scope="module")
def frames(photo_path):
    return pan_and_zoom(photo_path("chelsea.png"), 24, (128, 96))


@pytest.fixture(scope="module")
def mp4(frames):
    return encode_video(frames, fps=24)


def test_a_clip_is_known_by_its_content_not_its_name(mp4, frames, photo_bytes):
    assert is_clip(mp4)
    assert is_clip(animated(frames, "GIF")) and is_clip(animated(frames, "WEBP"))
    assert not is_clip(photo_bytes("chelsea.png"))  # a PNG, whatever it is called
    assert not is_clip(animated(frames[:1], "GIF"))  # a still GIF is a photo
    assert not is_clip(b"hello")


@pytest.mark.parametrize("make", ["mp4", "webm", "gif", "webp"])
def test_probe_and_decode_each_container(make, frames):
    data = {
        "mp4": lambda: encode_video(frames, fps=24),
        "webm": lambda: encode_video(frames, fps=24, codec="libvpx-vp9", container="webm"),
        "gif": lambda: animated(frames, "GIF", frame_ms=40),
        "webp": lambda: animated(frames, "WEBP", frame_ms=40),
    }[make]()
    info = probe_clip(data)
    assert (info.width, info.height, info.frames) == (128, 96, 24)
    assert info.fps == pytest.approx(25.0 if make in ("gif", "webp") else 24.0, rel=0.02)
    clip = decode_clip(data, max_side=64)
    assert len(clip.frames) == 24 and clip.frames[0].shape == (48, 64, 3)


def test_work_size_is_even_and_never_enlarges():
    assert work_size((128, 96), 320) == (128, 96)
    assert work_size((1920, 1080), 320) == (320, 180)
    assert work_size((333, 101), 100) == (100, 30)
    assert all(side % 2 == 0 for side in work_size((127, 95), 320))


@pytest.mark.parametrize(("limits", "words"), [
    (ClipLimits(max_seconds=0.5), "1.0 s long; the limit is 0.5 s"),
    (ClipLimits(max_frames=10), "24 frames; the limit is 10"),
    (ClipLimits(max_frame_pixels=100 * 80), "128x96; frames may have at most"),
    (ClipLimits(max_total_pixels=10 * 128 * 96), "in all; the limit is"),
])
def test_limits_are_checked_from_the_metadata(mp4, limits, words):
    with pytest.raises(VideoTooLarge) as error:
        probe_clip(mp4, limits=limits)
    assert words in str(error.value) and "\n" not in str(error.value)


def test_an_animation_over_the_frame_limit_is_refused_before_decoding(frames):
    with pytest.raises(VideoTooLarge, match="the limit is 5"):
        probe_clip(animated(frames, "GIF"), limits=ClipLimits(max_frames=5))


@pytest.mark.parametrize("damage", ["truncated", "header only", "garbage after the signature", "empty"])
def test_a_broken_clip_is_one_line(mp4, damage):
    data = {
        "truncated": mp4[: len(mp4) // 2],
        "header only": mp4[:40],
        "garbage after the signature": mp4[:12] + bytes(range(256)) * 8,
        "empty": b"",
    }[damage]
    with pytest.raises(InvalidVideo) as error:
        decode_clip(data, max_side=64)
    assert "\n" not in str(error.value) and "Traceback" not in str(error.value)


def test_a_clip_without_a_video_track_is_refused():
    import io

    import av
    import numpy as np

    out = io.BytesIO()
    with av.open(out, "w", format="mp4") as output:
        stream = output.add_stream("aac", rate=48000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="flt", layout="mono")
        frame.sample_rate = 48000
        for packet in [*stream.encode(frame), *stream.encode()]:
            output.mux(packet)
    with pytest.raises(InvalidVideo, match="no video track"):
        probe_clip(out.getvalue())


def test_compile_job_tells_a_clip_from_a_photo(mp4, photo_bytes):
    spec = compile_job("dream", {"blend": "0.5", "flow": "off"}, images=[mp4], seed=1)
    assert spec.kind == "video" and spec.params.blend == 0.5 and spec.params.flow is False
    assert spec.cost is not None and spec.cost.passes > 0
    png_named_mp4 = photo_bytes("chelsea.png", (64, 48))  # names never reach the engine: only bytes do
    assert compile_job("dream", {}, images=[png_named_mp4], seed=1).kind == "dream"
    with pytest.raises(InvalidParameter, match="for videos only"):
        compile_job("dream", {"blend": 0.5}, images=[png_named_mp4])


def test_the_price_counts_every_frame(frames):
    # Defaults: the first frame takes 6 steps at each of 3 octaves, each later frame 2 steps at full size.
    short = compile_job("dream", {}, images=[encode_video(frames[:8])], seed=1).cost
    long = compile_job("dream", {}, images=[encode_video(frames)], seed=1).cost
    alone = compile_job("dream", {"blend": 0}, images=[encode_video(frames)], seed=1).cost
    assert (short.passes, long.passes, alone.passes) == (18 + 7 * 2, 18 + 23 * 2, 24 * 18)
    assert long.network > short.network and long.decode > short.decode and long.encode > short.encode


def test_compile_job_refuses_a_clip_over_the_limits(mp4):
    with pytest.raises(VideoTooLarge, match="the limit is 0.5 s"):
        compile_job("dream", {}, images=[mp4], clip_limits=ClipLimits(max_seconds=0.5))


def test_video_options_are_checked(mp4):
    with pytest.raises(InvalidParameter, match="format must be one of mp4, gif, webp"):
        compile_job("dream", {"format": "avi"}, images=[mp4])
    with pytest.raises(InvalidParameter, match="blend must be between 0 and 0.95"):
        compile_job("dream", {"blend": 2}, images=[mp4])


def test_a_stored_video_job_is_restored_with_its_price(mp4):
    from core.params import as_dict
    from core.spec import restore_job

    spec = compile_job("dream", {"blend": 0.5}, images=[mp4], seed=3)
    again = restore_job("video", as_dict(spec.params), seed=3, image=mp4)
    assert (again.kind, again.params, again.cost) == ("video", spec.params, spec.cost)
