"""The one preprocessing path from poster file to model input.

Training, calibration, the converter's self-checks, prediction and bench all call
`load_poster` / `preprocess_poster`, so every stage sees the same pixels:

decode -> EXIF transpose -> RGB -> resize -> model input.

- Decode: Pillow (libjpeg-turbo for JPEG, like Android's BitmapFactory).
- RGB: grayscale ("L", "I;16", "1"), palette ("P"), CMYK and YCbCr convert to RGB;
  images with alpha ("RGBA", "LA", "PA", palette transparency) are composited on white,
  because posters with transparent margins are meant to be shown on a light page.
- Resize: the whole poster is stretched to `size x size` (aspect NOT kept, no crop) with
  exactly the resampling MediaPipe Tasks' `ImageClassifier` applies on CPU, so a poster
  gives the same model input here and in an app. MediaPipe's ImageToTensorCalculator
  (OpenCV converter) warps the full-image region onto the tensor with
  `cv::getPerspectiveTransform` + `cv::warpPerspective(INTER_LINEAR, BORDER_REPLICATE)`.
  For an unrotated full-image region that warp is a plain scale *without* the half-pixel
  shift: output pixel i samples source coordinate i * src / size, rounded to 1/32 px
  (OpenCV's INTER_BITS = 5); the 2x2 neighbours (clamped at the border) are blended with
  integer weights (32 - f) * (32 - g) etc. and rounded, `(sum + 512) >> 10`. No
  antialiasing when shrinking. `resize_pixels` does that in numpy, vectorised.
  Checked bit-exact (max |difference| 0) against MediaPipe 1.2.3's CPU ImageClassifier with
  a probe model whose outputs are its input pixels (`posterlite.apprun.build_pixel_probe`):
  224/160/96 px, random-noise images from 1x1 to 2000x1333 (down- and up-scaling), real
  posters, float32 and uint8 input tensors, RGB and RGBA images (tests/test_preprocess.py;
  benchmarks/parity_mediapipe.py). MediaPipe Python's own `Image.create_from_file` decodes
  JPEGs with stb_image, which differs from libjpeg-turbo by up to a few levels per pixel;
  an app decodes with the platform's decoder, so the decode is not part of the match.
- Model input: float32 in [-1, 1] (`(pixel - 127.5) / 127.5`, the MobileNet convention,
  computed as MediaPipe does: `pixel * float32(2 / 255) - 1` in float32, checked
  bit-exact with the probe) or the raw uint8 pixels for integer models; a uint8 model's
  input quantization maps those pixels onto the same [-1, 1] range (see `runtime`).

Only numpy and Pillow are needed here: this module runs on the phone-side install.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import threading
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
# Caps for untrusted posters, all checked before the expensive step they guard.
# A poster is at most a few thousand pixels a side; anything past this is a decompression
# bomb or a mislabelled panorama, and decoding it would cost gigabytes. Checked from the
# header, before decoding (decoded RGB is 3 bytes a pixel: 120 MB at the cap).
MAX_PIXELS = 40_000_000
# No side longer than this (WebP's own limit is 16383): a 5,000,000 x 1 strip is under the
# area cap but is no poster. (`resize_pixels` is bounded by its output anyway.)
MAX_SIDE = 16_384
# Bytes read from one poster file (or taken as bytes): a 40 MP JPEG is ~10-20 MB.
MAX_FILE_BYTES = 64 * 1024 * 1024
# The formats a poster may be in (Pillow format names; a camera's MPO comes through JPEG).
# Pillow's other ~40 decoders (EPS runs Ghostscript, PSD, FITS, ...) are never tried.
POSTER_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")
# Keys every cache of decoded pixels / features (posterlite.train): change it whenever
# `load_poster` or `pixels_to_input` changes the pixels a model sees.
PREPROCESS_VERSION = "posterlite-preprocess-2:stretch-mediapipe-cpu-bilinear-rgb-white-alpha:[-1,1]"
# OpenCV's fixed-point remap: source coordinates in 1/32 px, weights in 1/1024.
_COORD_BITS = 5
_COORD_SCALE = 1 << _COORD_BITS
# `resize_pixels` gathers the tapped columns first when the source is wider than this many
# output sizes, so its working memory stays a small multiple of the output's.
_COMPACT_FROM = 4

InputDType = Literal["float32", "uint8"]

# Pillow must never load a truncated file silently: we want it reported.
ImageFile.LOAD_TRUNCATED_IMAGES = False
# What Pillow's decoders raise on hostile bytes besides OSError (fuzzed files hit these):
# each becomes the poster's own "undecodable" error, never a traceback for the batch.
_DECODER_FAILURES = (
    ValueError,
    SyntaxError,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
    struct.error,
)
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
_FILE_KINDS = {
    stat.S_IFDIR: "directory",
    stat.S_IFIFO: "FIFO",
    stat.S_IFCHR: "character device",
    stat.S_IFBLK: "block device",
    stat.S_IFSOCK: "socket",
}
_OPEN_LOCK = threading.Lock()


class PosterDecodeError(PosterliteError):
    """A poster file that cannot be used; `reason` is a short machine-readable tag."""

    def __init__(self, path: str, reason: str, detail: str = "") -> None:
        self.path = path
        self.reason = reason
        self.detail = detail  # what was seen, e.g. "5000000x1"; "" when the reason says it all
        super().__init__(f"{path}: {reason}" + (f" ({detail})" if detail else ""))


@dataclass(frozen=True)
class InputSpec:
    """What a model expects: square side and dtype of its input tensor."""

    size: int = DEFAULT_SIZE
    dtype: InputDType = "float32"


def check_dimensions(name: str, width: int, height: int) -> None:
    """Refuse sizes no poster has, from the header, before a pixel is decoded."""
    if width <= 0 or height <= 0 or max(width, height) > MAX_SIDE or width * height > MAX_PIXELS:
        raise PosterDecodeError(name, "absurd size", f"{width}x{height}")


def _read_capped(path: Path) -> bytes:
    """A poster file's bytes, at most MAX_FILE_BYTES of them.

    Stat first: a FIFO, device or socket is refused without being opened (opening a FIFO
    blocks until a writer comes; /dev/zero never ends). The open is non-blocking and the
    open file is checked again, so one swapped in after the stat cannot hang us either;
    the read stops one byte past the cap, whatever the size claimed.
    """
    name = str(path)
    try:
        info = os.stat(path)
    except FileNotFoundError as exc:
        raise PosterDecodeError(name, "missing file") from exc
    except OSError as exc:
        raise PosterDecodeError(name, "unreadable", str(exc)) from exc
    _check_regular(name, info)
    _check_file_size(name, info.st_size)
    try:
        descriptor = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        raise PosterDecodeError(name, "unreadable", str(exc)) from exc
    with open(descriptor, "rb") as file:
        try:
            _check_regular(name, os.fstat(descriptor))
            data = file.read(min(info.st_size, MAX_FILE_BYTES) + 1)
            if len(data) > info.st_size:  # grew since the stat: read on, to the cap
                data += file.read(MAX_FILE_BYTES + 1 - len(data))
        except OSError as exc:
            raise PosterDecodeError(name, "unreadable", str(exc)) from exc
    _check_file_size(name, len(data))
    return data


def _check_regular(name: str, info: os.stat_result) -> None:
    if not stat.S_ISREG(info.st_mode):
        kind = _FILE_KINDS.get(stat.S_IFMT(info.st_mode), "special file")
        raise PosterDecodeError(name, "not a regular file", kind)


def _check_file_size(name: str, size: int) -> None:
    if size > MAX_FILE_BYTES:
        raise PosterDecodeError(name, "too large", f"over {MAX_FILE_BYTES} bytes")


def _open_image(data: bytes) -> Image.Image:
    """Pillow's header parse of the poster formats only. DecompressionBombWarning (which
    Pillow issues past MAX_IMAGE_PIXELS, before our own, smaller cap can refuse the image)
    is raised instead of printed; the filter change is global, so the lock keeps decode
    threads from restoring each other's filters out of order."""
    with _OPEN_LOCK, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        return Image.open(io.BytesIO(data), formats=POSTER_FORMATS)


def _open(source: str | Path | bytes) -> tuple[Image.Image, str]:
    name = "<bytes>" if isinstance(source, bytes) else str(source)
    if isinstance(source, bytes):
        _check_file_size(name, len(source))
        data = source
    else:
        data = _read_capped(Path(source))
    if not data:
        raise PosterDecodeError(name, "zero-byte")
    try:
        image = _open_image(data)
        check_dimensions(name, *image.size)
        image.load()
        check_dimensions(name, *image.size)  # a decoder may settle the size while loading
    except PosterDecodeError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise PosterDecodeError(name, "decompression bomb", str(exc)) from exc
    except UnidentifiedImageError as exc:
        raise PosterDecodeError(name, "not an image") from exc
    except MemoryError as exc:
        raise PosterDecodeError(name, "out of memory") from exc
    except OSError as exc:
        message = str(exc)
        reason = "truncated" if "truncat" in message.lower() else "undecodable"
        raise PosterDecodeError(name, reason, message) from exc
    except _DECODER_FAILURES as exc:
        raise PosterDecodeError(name, "undecodable", f"{type(exc).__name__}: {exc}") from exc
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


def _taps(size: int, source: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each of `size` output positions: the two source indices and the 1/32 fraction.

    Output i samples source coordinate i * source / size (MediaPipe's corner-to-corner warp:
    no half-pixel shift), rounded half-to-even to 1/32 px as OpenCV's cvRound does; exact
    integer arithmetic, so no float tie can round differently.
    """
    numerator = np.arange(size, dtype=np.int64) * source * _COORD_SCALE
    quotient, remainder = np.divmod(numerator, size)
    round_up = (2 * remainder > size) | ((2 * remainder == size) & (quotient % 2 == 1))
    fixed = quotient + round_up
    base = fixed >> _COORD_BITS
    first = np.minimum(base, source - 1)  # BORDER_REPLICATE: taps past the edge clamp
    second = np.minimum(base + 1, source - 1)
    return first, second, fixed & (_COORD_SCALE - 1)


def resize_pixels(pixels: np.ndarray, size: int) -> np.ndarray:
    """Stretch uint8 RGB pixels (H, W, 3) to (size, size, 3) as MediaPipe Tasks does on CPU.

    Plain bilinear sampling (no antialiasing), bit-exact with MediaPipe 1.2.3's
    ImageToTensorCalculator (see the module docstring).
    """
    if pixels.ndim != 3 or pixels.dtype != np.uint8:
        raise ValueError(f"resize_pixels wants uint8 (H, W, C), got {pixels.dtype} {pixels.shape}")
    height, width, channels = pixels.shape
    x0, x1, fx = _taps(size, width)
    y0, y1, fy = _taps(size, height)
    if width > _COMPACT_FROM * size:
        # A wide source: the passes below widen `size` whole rows to uint16, which for a
        # 5,000,000 x 1 strip was 2.7 GiB at 96 px. Gather only the rows and columns some tap reads
        # (at most 2 * size of each; rows first, a plain copy) and renumber the taps into
        # that block: the same integers are blended, so the result is bit for bit the same.
        used_rows, y_index = np.unique(np.concatenate([y0, y1]), return_inverse=True)
        used_cols, x_index = np.unique(np.concatenate([x0, x1]), return_inverse=True)
        pixels = np.take(np.take(pixels, used_rows, axis=0), used_cols, axis=1)
        height, width = len(used_rows), len(used_cols)
        y0, y1, x0, x1 = y_index[:size], y_index[size:], x_index[:size], x_index[size:]
    # Rows flattened to (H, W * C) so both passes are one np.take each (faster than
    # fancy indexing on the channel axis). Vertical pass first, on the `size` rows needed,
    # in uint16 (<= 255 * 32); the horizontal pass in uint32 (<= 255 * 32 * 32); in place.
    flat = pixels.reshape(height, width * channels)
    wy1 = fy.astype(np.uint16)[:, None]
    rows = np.take(flat, y0, axis=0).astype(np.uint16)
    rows *= _COORD_SCALE - wy1
    below = np.take(flat, y1, axis=0).astype(np.uint16)
    below *= wy1
    rows += below
    channel = np.arange(channels)
    left = (x0[:, None] * channels + channel).ravel()
    right = (x1[:, None] * channels + channel).ravel()
    wx1 = np.repeat(fx.astype(np.uint32), channels)
    total = np.take(rows, left, axis=1).astype(np.uint32)
    total *= _COORD_SCALE - wx1
    beside = np.take(rows, right, axis=1).astype(np.uint32)
    beside *= wx1
    total += beside
    # OpenCV: (sum of 1/32768 weights + 2^14) >> 15 == (sum of 1/1024 weights + 512) >> 10.
    shift = 2 * _COORD_BITS
    total += 1 << (shift - 1)
    total >>= shift
    resized: np.ndarray = total.astype(np.uint8).reshape(size, size, channels)
    return resized


def decode_rgb(source: str | Path | bytes) -> np.ndarray:
    """Decode, EXIF-transpose and convert to RGB: the full-size uint8 (H, W, 3) bitmap, what
    an app's platform decoder hands MediaPipe. Raises `PosterDecodeError` like `load_poster`."""
    image, name = _open(source)
    try:
        # in place: without an orientation tag the copying variant still copies the image.
        ImageOps.exif_transpose(image, in_place=True)
        return np.asarray(to_rgb(image), dtype=np.uint8)
    except PosterDecodeError:
        raise
    except MemoryError as exc:
        raise PosterDecodeError(name, "out of memory") from exc
    except (OSError, *_DECODER_FAILURES) as exc:  # a malformed EXIF block, mostly
        raise PosterDecodeError(name, "undecodable", f"{type(exc).__name__}: {exc}") from exc


def load_poster(source: str | Path | bytes, size: int = DEFAULT_SIZE) -> np.ndarray:
    """Decode, EXIF-transpose, convert to RGB and resize: uint8 array (size, size, 3).

    Raises `PosterDecodeError` (with `.reason`) for anything that is not a usable image.
    """
    return resize_pixels(decode_rgb(source), size)


def pixels_to_input(pixels: np.ndarray, dtype: InputDType = "float32") -> np.ndarray:
    """uint8 pixels (..., H, W, 3) to model input: float32 in [-1, 1] or uint8 unchanged."""
    if dtype == "uint8":
        return pixels.astype(np.uint8, copy=False)
    # MediaPipe's arithmetic, to the last bit: it maps [0, 255] onto [(0 - mean) / std,
    # (255 - mean) / std] with one float32 multiply and one add (OpenCV convertTo), which
    # differs from (pixel - mean) / std by up to 1 ulp.
    low = np.float32(0.0 - NORM_MEAN) / np.float32(NORM_STD)
    high = np.float32(255.0 - NORM_MEAN) / np.float32(NORM_STD)
    scale = (high - low) / np.float32(255.0)
    normalized: np.ndarray = pixels.astype(np.float32) * scale + low
    return normalized


def preprocess_poster(source: str | Path | bytes, spec: InputSpec = InputSpec()) -> np.ndarray:
    """The one preprocessing function: poster file to one model input (H, W, 3)."""
    return pixels_to_input(load_poster(source, spec.size), spec.dtype)


def preprocess_batch(
    sources: list[str | Path | bytes], spec: InputSpec = InputSpec()
) -> np.ndarray:
    """Stack of `preprocess_poster` results (N, H, W, 3); raises on the first bad poster."""
    return np.stack([preprocess_poster(source, spec) for source in sources])
