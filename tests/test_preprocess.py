"""The one preprocessing function: every image mode to the same (size, size, 3) input."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from posterlite.preprocess import (
    InputSpec,
    PosterDecodeError,
    load_poster,
    pixels_to_input,
    preprocess_poster,
)


def _encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def _two_bands(mode: str, top, bottom, size: tuple[int, int] = (40, 60)) -> Image.Image:
    """An image of `mode` whose top half is `top` and bottom half `bottom` (flat colours:
    any resize filter leaves the middle of each band unchanged)."""
    width, height = size
    image = Image.new(mode, size, top)
    image.paste(bottom, (0, height // 2, width, height))
    return image


def _palette_bands() -> Image.Image:
    image = Image.new("P", (40, 60), 0)
    image.putpalette([200, 30, 30, 10, 220, 40] + [0, 0, 0] * 254)
    image.paste(1, (0, 30, 40, 60))
    return image


def _i16_bands() -> Image.Image:
    # Full-scale white (65535) and 128 * 257: 8-bit 255 and 128.
    array = np.full((60, 40), 65535, np.uint16)
    array[30:] = 128 * 257
    image = Image.fromarray(array)  # uint16: mode I;16
    assert image.mode == "I;16"
    return image


# (image builder, file format, expected RGB of the top band, of the bottom band)
MODES = {
    "RGB": (
        lambda: _two_bands("RGB", (200, 30, 30), (10, 220, 40)),
        "PNG",
        (200, 30, 30),
        (10, 220, 40),
    ),
    # ITU-R 601 luma: L = 0.299 R + 0.587 G + 0.114 B, kept as grey.
    "L": (lambda: _two_bands("L", 200, 30), "PNG", (200,) * 3, (30,) * 3),
    "P": (_palette_bands, "PNG", (200, 30, 30), (10, 220, 40)),
    # CMYK: R = (255 - K) * (1 - C / 255) ...: pure magenta + yellow is red; K 100 darkens.
    "CMYK": (
        lambda: _two_bands("CMYK", (0, 255, 255, 0), (0, 200, 200, 100)),
        "TIFF",
        (255, 0, 0),
        (155, 33, 33),
    ),
    "CMYK-JPEG": (
        lambda: _two_bands("CMYK", (0, 255, 255, 0), (0, 0, 0, 255)),
        "JPEG",
        (255, 0, 0),
        (0, 0, 0),
    ),
    # Alpha is composited on white: opaque keeps its colour, transparent turns white,
    # half-transparent black (alpha 128) is 255 * 127 / 255 = 127.
    "RGBA": (
        lambda: _two_bands("RGBA", (200, 30, 30, 255), (0, 0, 0, 128)),
        "PNG",
        (200, 30, 30),
        (127, 127, 127),
    ),
    "LA": (lambda: _two_bands("LA", (100, 255), (0, 0)), "PNG", (100,) * 3, (255,) * 3),
    "1": (lambda: _two_bands("1", 1, 0), "PNG", (255,) * 3, (0,) * 3),
    "I;16": (_i16_bands, "TIFF", (255,) * 3, (128,) * 3),
}


@pytest.mark.parametrize("mode", list(MODES))
def test_every_mode_becomes_rgb(mode: str) -> None:
    build, fmt, top, bottom = MODES[mode]
    image = build()
    assert image.mode == mode.split("-")[0]
    pixels = load_poster(_encode(image, fmt), size=32)
    assert pixels.shape == (32, 32, 3) and pixels.dtype == np.uint8
    # Rows 0-11 come from the top band, 20-31 from the bottom band (away from the edge).
    tolerance = 3 if fmt == "JPEG" else 1
    assert np.abs(pixels[:12].astype(int) - top).max() <= tolerance, pixels[0, 0]
    assert np.abs(pixels[20:].astype(int) - bottom).max() <= tolerance, pixels[-1, 0]


def test_alpha_composited_on_white() -> None:
    transparent = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    pixels = load_poster(_encode(transparent, "PNG"), size=8)
    assert pixels.min() == 255


def test_exif_orientation_applied() -> None:
    image = Image.new("RGB", (40, 20), (0, 0, 0))
    image.paste((255, 255, 255), (0, 0, 20, 20))  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display: left half becomes top half
    pixels = load_poster(_encode(image, "JPEG", exif=exif.tobytes(), quality=95), size=20)
    assert pixels[:8].mean() > 200 and pixels[12:].mean() < 50


def test_float_range_and_uint8_passthrough() -> None:
    pixels = np.array([[[0, 127, 255]]], np.uint8)
    floats = pixels_to_input(pixels, "float32")
    assert floats.dtype == np.float32
    np.testing.assert_allclose(floats, [[[-1.0, 127 / 127.5 - 1, 1.0]]], atol=1e-6)
    every = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1).repeat(3, axis=3)
    passed = pixels_to_input(every, "uint8")
    assert passed.dtype == np.uint8 and passed.shape == every.shape
    assert np.array_equal(passed, every)  # the pixels themselves: quantization is the model's


def test_preprocess_poster_shape(tmp_path) -> None:
    path = tmp_path / "p.jpg"
    Image.new("RGB", (182, 268), (10, 20, 30)).save(path)
    tensor = preprocess_poster(path, InputSpec(size=224))
    assert tensor.shape == (224, 224, 3) and -1.0 <= tensor.min() <= tensor.max() <= 1.0


@pytest.mark.parametrize(
    "payload, reason",
    [
        (b"", "zero-byte"),
        (b"this is not an image at all", "not an image"),
    ],
)
def test_bad_bytes_have_reasons(payload: bytes, reason: str) -> None:
    with pytest.raises(PosterDecodeError) as info:
        load_poster(payload)
    assert info.value.reason == reason


def test_truncated_jpeg() -> None:
    data = _encode(Image.new("RGB", (200, 300), (1, 2, 3)), "JPEG")
    with pytest.raises(PosterDecodeError) as info:
        load_poster(data[: len(data) // 2])
    assert info.value.reason in {"truncated", "undecodable"}


def test_missing_file(tmp_path) -> None:
    with pytest.raises(PosterDecodeError) as info:
        load_poster(tmp_path / "nope.jpg")
    assert info.value.reason == "missing file"


@pytest.mark.parametrize("size", [(40, 120), (120, 40)])
def test_posters_are_stretched_not_cropped_or_padded(size: tuple[int, int]) -> None:
    """Red, green, blue thirds along the long side all reach the square output, and its
    first and last rows and columns are poster, not padding: a centre crop would keep
    green only, a letterbox would add borders."""
    width, height = size
    tall = height > width
    image = Image.new("RGB", size, (0, 200, 0))
    third = max(size) // 3
    image.paste((220, 0, 0), (0, 0, width, third) if tall else (0, 0, third, height))
    last = (0, 2 * third, width, height) if tall else (2 * third, 0, width, height)
    image.paste((0, 0, 230), last)
    pixels = load_poster(_encode(image, "PNG"), size=30).astype(int)
    along = pixels if tall else pixels.transpose(1, 0, 2)  # rows run along the long side
    assert np.abs(along[:8] - (220, 0, 0)).max() <= 1
    assert np.abs(along[12:18] - (0, 200, 0)).max() <= 1
    assert np.abs(along[22:] - (0, 0, 230)).max() <= 1
