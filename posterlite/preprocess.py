"""The one preprocessing path from poster file to model input.

Training, calibration, the converter's self-checks and on-device prediction all call
`load_poster` / `preprocess_poster`, so every stage sees the same pixels:

decode -> EXIF transpose -> RGB -> resize -> model input.

- RGB: grayscale ("L", "I;16", "1"), palette ("P"), CMYK and YCbCr convert to RGB;
  images with alpha ("RGBA", "LA", "PA", palette transparency) are composited on white,
  because posters with transparent margins are meant to be shown on a light page.
- Resize: the whole poster is stretched to `size x size` (aspect NOT kept, no crop), with
  Pillow's antialiased BILINEAR filter. Posters are ~2:3; stretching keeps the title and
  the credits block that a centre crop would cut, and it is what `tf.image.resize` of the
  same image does, so an app can reproduce it with any bitmap scaler.
- Model input: float32 in [-1, 1] (`pixel / 127.5 - 1`, the MobileNet convention:
  mean 127.5, std 127.5) or the raw uint8 pixels for integer models; a uint8 model's
  input quantization maps those pixels onto the same [-1, 1] range (see `runtime`).

Only numpy and Pillow are needed here: this module runs on the phone-side install.
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from posterlite.errors import PosterliteError

DEFAULT_SIZE = 224
NORM_MEAN = 127.5
NORM_STD = 127.5
# A poster is at most a few thousand pixels a side; anything past this is a decompression
# bomb or a mislabelled panorama, and decoding it would cost gigabytes.
MAX_PIXELS = 40_000_000
RESIZE_FILTER = Image.Resampling.BILINEAR

InputDType = Literal["float32", "uint8"]

# Pillow must never load a truncated file silently: we want it reported.
ImageFile.LOAD_TRUNCATED_IMAGES = False


class PosterDecodeError(PosterliteError):
    """A poster file that cannot be used; `reason` is a short machine-readable tag."""

    def __init__(self, path: str, reason: str, detail: str = "") -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}" + (f" ({detail})" if detail else ""))


@dataclass(frozen=True)
class InputSpec:
    """What a model expects: square side and dtype of its input tensor."""

    size: int = DEFAULT_SIZE
    dtype: InputDType = "float32"


def _open(source: str | Path | bytes) -> tuple[Image.Image, str]:
    name = "<bytes>" if isinstance(source, bytes) else str(source)
    if isinstance(source, bytes):
        data = source
    else:
        try:
            data = Path(source).read_bytes()
        except FileNotFoundError as exc:
            raise PosterDecodeError(name, "missing file") from exc
        except OSError as exc:
            raise PosterDecodeError(name, "unreadable", str(exc)) from exc
    if not data:
        raise PosterDecodeError(name, "zero-byte")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width <= 0 or height <= 0 or width * height > MAX_PIXELS:
                raise PosterDecodeError(name, "absurd size", f"{width}x{height}")
            image.load()
    except PosterDecodeError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise PosterDecodeError(name, "decompression bomb", str(exc)) from exc
    except UnidentifiedImageError as exc:
        raise PosterDecodeError(name, "not an image") from exc
    except OSError as exc:
        message = str(exc)
        reason = "truncated" if "truncat" in message.lower() else "undecodable"
        raise PosterDecodeError(name, reason, message) from exc
    except (ValueError, SyntaxError, EOFError, IndexError, struct.error) as exc:
        raise PosterDecodeError(name, "undecodable", str(exc)) from exc
    return image, name


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode to RGB; transparency is composited on white."""
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit grayscale: scale to 8 bits instead of clipping at 255.
        array = np.asarray(image, dtype=np.float64)
        peak = float(array.max()) or 1.0
        image = Image.fromarray((array * (255.0 / peak)).astype(np.uint8), "L")
    if image.mode == "F":
        array = np.asarray(image, dtype=np.float64)
        low, high = float(array.min()), float(array.max())
        scaled = (array - low) / ((high - low) or 1.0) * 255.0
        image = Image.fromarray(scaled.astype(np.uint8), "L")
    return image.convert("RGB") if image.mode != "RGB" else image


def load_poster(source: str | Path | bytes, size: int = DEFAULT_SIZE) -> np.ndarray:
    """Decode, EXIF-transpose, convert to RGB and resize: uint8 array (size, size, 3).

    Raises `PosterDecodeError` (with `.reason`) for anything that is not a usable image.
    """
    image, name = _open(source)
    try:
        # in place: without an orientation tag the copying variant still copies the image.
        ImageOps.exif_transpose(image, in_place=True)
        rgb = to_rgb(image)
        resized = rgb.resize((size, size), RESIZE_FILTER)
    except PosterDecodeError:
        raise
    except (OSError, ValueError, SyntaxError) as exc:
        raise PosterDecodeError(name, "undecodable", str(exc)) from exc
    return np.asarray(resized, dtype=np.uint8)


def pixels_to_input(pixels: np.ndarray, dtype: InputDType = "float32") -> np.ndarray:
    """uint8 pixels (..., H, W, 3) to model input: float32 in [-1, 1] or uint8 unchanged."""
    if dtype == "uint8":
        return pixels.astype(np.uint8, copy=False)
    return (pixels.astype(np.float32) - NORM_MEAN) / NORM_STD


def preprocess_poster(source: str | Path | bytes, spec: InputSpec = InputSpec()) -> np.ndarray:
    """The one preprocessing function: poster file to one model input (H, W, 3)."""
    return pixels_to_input(load_poster(source, spec.size), spec.dtype)


def preprocess_batch(
    sources: list[str | Path | bytes], spec: InputSpec = InputSpec()
) -> np.ndarray:
    """Stack of `preprocess_poster` results (N, H, W, 3); raises on the first bad poster."""
    return np.stack([preprocess_poster(source, spec) for source in sources])
