from __future__ import annotations

import io
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import skimage
from PIL import Image

from core.errors import ImageTooLarge, InvalidImage
from core.images import DEFAULT_MAX_PIXELS, decode_image, encode_image, fit_longest_side

PHOTOS = Path(skimage.__file__).parent / "data"
RED, BLUE, GREEN = (220, 20, 30), (20, 40, 230), (30, 200, 40)


def save(img: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **options)
    return out.getvalue()


def photo(name: str) -> bytes:
    path = PHOTOS / name
    assert path.exists(), f"scikit-image's data folder has no {name}; reinstall scikit-image"
    return path.read_bytes()


def with_png_size(png: bytes, width: int, height: int) -> bytes:
    """The same PNG whose IHDR declares `width` x `height`, with a valid CRC; the pixel data stays tiny."""
    assert png[12:16] == b"IHDR", "a PNG starts with its IHDR chunk"
    header = bytearray(png)
    header[16:24] = struct.pack(">II", width, height)
    header[29:33] = struct.pack(">I", zlib.crc32(bytes(header[12:29])) & 0xFFFFFFFF)
    return bytes(header)


def assert_one_line(error: Exception) -> str:
    message = str(error)
    assert message.strip() and "\n" not in message and "\r" not in message, repr(message)
    return message


# -- formats ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "GIF"])
def test_each_accepted_format_decodes_to_rgb_of_the_right_size(fmt):
    decoded = decode_image(save(Image.new("RGB", (40, 24), RED), fmt))
    assert decoded.rgb.mode == "RGB" and decoded.rgb.size == (40, 24)
    assert decoded.alpha is None and decoded.source_format == fmt
    assert np.abs(np.asarray(decoded.rgb, dtype=int) - RED).max() <= 12  # lossy formats come close


@pytest.mark.parametrize(("name", "size"), [("chelsea.png", (451, 300)), ("rocket.jpg", (640, 427)),
                                            ("camera.png", (512, 512))])
def test_real_photos_decode(name, size):
    decoded = decode_image(photo(name))
    assert decoded.rgb.mode == "RGB" and decoded.rgb.size == size
    assert decoded.rgb.getextrema() != ((0, 0), (0, 0), (0, 0))


def test_animated_gif_gives_its_first_frame():
    frames = [Image.new("RGB", (40, 24), RED), Image.new("RGB", (40, 24), BLUE)]
    data = save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(io.BytesIO(data)).n_frames == 2
    decoded = decode_image(data)
    assert decoded.rgb.size == (40, 24)
    assert decoded.rgb.getpixel((20, 12)) == RED


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (40, 24), RED)
    img.paste(BLUE, (0, 0, 10, 24))  # a blue strip on the left
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    decoded = decode_image(save(img, "JPEG", exif=exif, quality=95))
    assert decoded.rgb.size == (24, 40)
    assert decoded.source_format == "JPEG"
    top = np.asarray(decoded.rgb)[:5].reshape(-1, 3).mean(axis=0)
    assert top[2] > 150 and top[0] < 100  # the left strip is now on top


# -- modes -----------------------------------------------------------------------------------


def test_rgba_gives_rgb_and_its_alpha_as_a_mask():
    img = Image.new("RGBA", (40, 24), GREEN + (255,))
    img.paste(GREEN + (0,), (0, 0, 20, 24))  # left half fully transparent
    decoded = decode_image(save(img, "PNG"))
    assert decoded.rgb.mode == "RGB" and decoded.rgb.getpixel((30, 5)) == GREEN
    assert decoded.alpha is not None and decoded.alpha.mode == "L" and decoded.alpha.size == (40, 24)
    assert decoded.alpha.getpixel((5, 5)) == 0 and decoded.alpha.getpixel((30, 5)) == 255


def test_fully_opaque_alpha_is_dropped():
    decoded = decode_image(save(Image.new("RGBA", (40, 24), GREEN + (255,)), "PNG"))
    assert decoded.alpha is None and decoded.rgb.getpixel((0, 0)) == GREEN


def test_la_gives_grey_rgb_and_alpha():
    decoded = decode_image(save(Image.new("LA", (40, 24), (100, 128)), "PNG"))
    assert decoded.rgb.mode == "RGB" and decoded.rgb.getpixel((3, 3)) == (100, 100, 100)
    assert decoded.alpha is not None and decoded.alpha.getpixel((3, 3)) == 128


def _palette_image(index: int) -> Image.Image:
    img = Image.new("P", (40, 24), index)
    img.putpalette(list(RED) + list(BLUE) + [0] * (256 * 3 - 6))
    return img


def test_palette_with_transparency_gives_alpha():
    img = _palette_image(1)
    img.paste(0, (0, 0, 20, 24))
    decoded = decode_image(save(img, "PNG", transparency=0))
    assert decoded.rgb.mode == "RGB" and decoded.rgb.getpixel((30, 5)) == BLUE
    assert decoded.alpha is not None
    assert decoded.alpha.getpixel((5, 5)) == 0 and decoded.alpha.getpixel((30, 5)) == 255


def test_palette_without_transparency_gives_plain_rgb():
    decoded = decode_image(save(_palette_image(1), "PNG"))
    assert decoded.rgb.mode == "RGB" and decoded.rgb.getpixel((5, 5)) == BLUE and decoded.alpha is None


def test_greyscale():
    decoded = decode_image(save(Image.new("L", (40, 24), 77), "PNG"))
    assert decoded.rgb.mode == "RGB" and decoded.rgb.getpixel((0, 0)) == (77, 77, 77) and decoded.alpha is None


def test_16_bit_greyscale_is_scaled_not_clipped():
    array = np.zeros((24, 40), dtype=np.uint16)
    array[:, :10] = 65535
    array[:, 10:20] = 32768
    array[:, 20:30] = 0
    array[:, 30:] = 16384
    data = save(Image.fromarray(array), "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")  # really a 16-bit file
    rgb = decode_image(data).rgb
    assert rgb.mode == "RGB"
    assert rgb.getpixel((0, 0)) == (255, 255, 255)
    assert abs(rgb.getpixel((15, 0))[0] - 128) <= 1
    assert rgb.getpixel((25, 0)) == (0, 0, 0)
    assert abs(rgb.getpixel((35, 0))[0] - 64) <= 1


def test_cmyk_jpeg_becomes_rgb():
    cyan = Image.new("CMYK", (40, 24), (255, 0, 0, 0))
    decoded = decode_image(save(cyan, "JPEG", quality=95))
    assert decoded.rgb.mode == "RGB" and decoded.rgb.size == (40, 24)
    r, g, b = decoded.rgb.getpixel((20, 12))
    assert r < 40 and g > 215 and b > 215


# -- errors ----------------------------------------------------------------------------------


def test_empty_bytes():
    with pytest.raises(InvalidImage) as caught:
        decode_image(b"")
    assert "empty" in assert_one_line(caught.value)


@pytest.mark.parametrize(
    "data",
    [
        bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)),
        b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n",
        b"just some text, not a picture\n",
        b"<svg xmlns='http://www.w3.org/2000/svg' width='10' height='10'/>",
    ],
    ids=["random", "pdf", "text", "svg"],
)
def test_not_an_image(data):
    with pytest.raises(InvalidImage) as caught:
        decode_image(data)
    assert type(caught.value) is InvalidImage
    assert "not an image" in assert_one_line(caught.value)


@pytest.mark.parametrize("name", ["chelsea.png", "rocket.jpg", "hubble_deep_field.jpg"])
def test_truncated_file(name):
    data = photo(name)
    with pytest.raises(InvalidImage) as caught:
        decode_image(data[: len(data) // 2])
    assert type(caught.value) is InvalidImage
    assert "truncated" in assert_one_line(caught.value)


@pytest.mark.parametrize("fmt", ["TIFF", "ICO", "TGA"])
def test_readable_but_unsupported_format(fmt):
    with pytest.raises(InvalidImage) as caught:
        decode_image(save(Image.new("RGB", (40, 24), RED), fmt))
    message = assert_one_line(caught.value)
    assert fmt in message and "PNG" in message  # names what it got and what it takes


def test_real_multipage_tiff_is_refused():
    with pytest.raises(InvalidImage, match="TIFF"):
        decode_image(photo("multipage.tif"))


@pytest.mark.parametrize("side", [8000, 30000])
def test_header_declaring_too_many_pixels_is_refused_before_decoding(side):
    # The pixel data is that of a 40x24 image: decoding it would fail as truncated, not as too large.
    data = with_png_size(save(Image.new("RGB", (40, 24), RED), "PNG"), side, side)
    assert struct.unpack(">II", data[16:24]) == (side, side) and data.endswith(b"IEND\xaeB`\x82")
    started = time.perf_counter()
    with pytest.raises(ImageTooLarge) as caught:
        decode_image(data)  # the default limit
    assert time.perf_counter() - started < 1.0
    assert type(caught.value) is ImageTooLarge and side * side > DEFAULT_MAX_PIXELS
    assert_one_line(caught.value)
    with pytest.raises(ImageTooLarge):
        decode_image(data, max_pixels=1_000_000)


def test_header_check_names_size_and_limit():
    data = with_png_size(save(Image.new("RGB", (40, 24), RED), "PNG"), 8000, 8000)
    with pytest.raises(ImageTooLarge) as caught:
        decode_image(data)
    message = assert_one_line(caught.value)
    assert "8000x8000" in message and "50 MP" in message


def test_normal_image_over_a_lower_limit():
    data = photo("chelsea.png")  # 451 x 300 = 135,300 pixels
    with pytest.raises(ImageTooLarge) as caught:
        decode_image(data, max_pixels=100_000)
    assert "451x300" in assert_one_line(caught.value)
    assert decode_image(data, max_pixels=451 * 300).rgb.size == (451, 300)  # the limit itself is allowed


# -- encoding and resizing -------------------------------------------------------------------


def test_png_round_trip_keeps_size_pixels_and_alpha():
    rgb = Image.fromarray(np.random.default_rng(1).integers(0, 256, (24, 40, 3), dtype=np.uint8), "RGB")
    alpha = Image.new("L", (40, 24), 255)
    alpha.paste(40, (0, 0, 20, 24))
    data, mime = encode_image(rgb, "PNG", alpha=alpha)
    assert mime == "image/png" and data.startswith(b"\x89PNG")
    decoded = decode_image(data)
    assert decoded.rgb.size == (40, 24)
    assert np.array_equal(np.asarray(decoded.rgb), np.asarray(rgb))
    assert decoded.alpha is not None and np.array_equal(np.asarray(decoded.alpha), np.asarray(alpha))


def test_jpeg_has_no_alpha():
    rgb = Image.new("RGB", (40, 24), GREEN)
    data, mime = encode_image(rgb, "jpg", alpha=Image.new("L", (40, 24), 0))
    assert mime == "image/jpeg" and data.startswith(b"\xff\xd8")
    decoded = decode_image(data)
    assert decoded.source_format == "JPEG" and decoded.rgb.size == (40, 24) and decoded.alpha is None


def test_webp_keeps_alpha():
    alpha = Image.new("L", (40, 24), 255)
    alpha.paste(0, (0, 0, 20, 24))
    data, mime = encode_image(Image.new("RGB", (40, 24), GREEN), "WEBP", alpha=alpha)
    decoded = decode_image(data)
    assert mime == "image/webp" and decoded.source_format == "WEBP" and decoded.alpha is not None
    assert decoded.alpha.getpixel((5, 5)) == 0 and decoded.alpha.getpixel((30, 5)) == 255


def test_unknown_output_format():
    with pytest.raises(ValueError, match="GIF"):
        encode_image(Image.new("RGB", (4, 4)), "GIF")


@pytest.mark.parametrize(
    ("size", "max_side"),
    [((451, 300), 128), ((300, 451), 128), ((4000, 3), 100), ((3, 4000), 100), ((1000, 1000), 333), ((641, 427), 640)],
)
def test_fit_longest_side_shrinks_keeping_the_aspect(size, max_side):
    width, height = size
    out = fit_longest_side(Image.new("RGB", size), max_side)
    assert max(out.size) == max_side
    assert min(out.size) >= 1
    scale = max_side / max(size)
    assert abs(out.size[0] - width * scale) <= 1 and abs(out.size[1] - height * scale) <= 1


@pytest.mark.parametrize(("size", "max_side"), [((40, 24), 128), ((128, 85), 128), ((1, 1), 64)])
def test_fit_longest_side_never_enlarges(size, max_side):
    img = Image.new("RGB", size)
    assert fit_longest_side(img, max_side).size == size
