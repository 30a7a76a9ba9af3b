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


@pytest.mark.parametrize("mode", ["RGB", "L", "P", "CMYK", "RGBA", "LA", "1", "I;16"])
def test_every_mode_becomes_rgb(mode: str) -> None:
    image = Image.new("RGB", (40, 60), (200, 30, 30)).convert(mode)
    fmt = "TIFF" if mode in ("CMYK", "I;16") else "PNG"
    pixels = load_poster(_encode(image, fmt), size=32)
    assert pixels.shape == (32, 32, 3) and pixels.dtype == np.uint8


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
    assert pixels_to_input(pixels, "uint8").dtype == np.uint8


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
