"""On-device prediction with LiteRT alone: load a `.tflite`, feed posters, get genres.

This module owns the runtime API the CLI (`predict`), the Python API (`posterlite.load`
returns a `PosterModel`; `PosterModel.predict` takes paths, bytes, PIL images or arrays),
the converter's self-checks and the benchmarks share: `PosterModel` (prepare -> run ->
dequantize) and `Prediction`. It imports only numpy, Pillow (through `preprocess`),
flatbuffers (through `metadata`) and the LiteRT interpreter (`posterlite.interpreter`:
`ai_edge_litert`, else `tflite_runtime`), never TensorFlow, so it runs on the phone-side /
edge install (`pip install posterlite[runtime]`).

Inputs are built from the one preprocessing path (`preprocess.load_poster` +
`pixels_to_input`): float models get (pixel - mean) / std in [-1, 1]; integer models get
that same float quantized with the model's own input scale / zero point, so a uint8 model
converted from a [-1, 1] Keras model sees exactly what its calibration saw.
"""

from __future__ import annotations

import os
import sys
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias, cast

import numpy as np

from posterlite.errors import PosterliteError
from posterlite.fileio import json_text
from posterlite.genres import DEFAULT_THRESHOLD
from posterlite.interpreter import LiteInterpreter, TensorDetail, load_interpreter
from posterlite.metadata import read_metadata
from posterlite.posterfiles import IMAGE_SUFFIXES, expand_posters  # noqa: F401 (predict's names)
from posterlite.preprocess import (
    NORM_MEAN,
    NORM_STD,
    PosterDecodeError,
    check_dimensions,
    load_poster,
    pixels_to_input,
)
from posterlite.safetext import csv_text, display

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage


def default_workers() -> int:
    """Decode threads: one per core, at most 4 (decoding is ~10x cheaper than invoking)."""
    return max(1, min(4, os.cpu_count() or 1))


@contextmanager
def _quick_gil_handoff(enabled: bool = True, interval: float = 2e-4) -> Iterator[None]:
    """Shorten the GIL switch interval while decode threads run beside the interpreter.

    After `invoke()` the interpreting thread needs the GIL back; if a decode thread is
    running Python code (Pillow's header parsing, EXIF) CPython makes it wait up to the
    switch interval, 5 ms by default -- as long as a MobileNet int8 invoke. Measured on
    500 posters this cost ~20% of throughput; 0.2 ms bounds the wait. Restored on exit.
    """
    if not enabled:
        yield
        return
    previous = sys.getswitchinterval()
    sys.setswitchinterval(min(previous, interval))
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


@dataclass(frozen=True)
class Prediction:
    """One poster's result; `error` (a `PosterDecodeError.reason`) when it could not be read."""

    path: str
    genres: tuple[str, ...] = ()  # the model's genre order
    probabilities: np.ndarray | None = None  # (G,) float32
    predicted: tuple[str, ...] = ()  # genres at or above the threshold, in model order
    error: str | None = None
    detail: str = ""  # the error's particulars (`PosterDecodeError.detail`), e.g. "5000000x1"

    @property
    def ok(self) -> bool:
        """True when the poster was decoded and run (no `error`)."""
        return self.error is None

    def confidences(self) -> dict[str, float]:
        """Probability per genre, in the model's genre order (empty when not predicted)."""
        if self.probabilities is None:
            return {}
        return {g: float(p) for g, p in zip(self.genres, self.probabilities, strict=True)}

    @property
    def scores(self) -> dict[str, float]:
        """Probability per genre, in the model's genre order (empty when not predicted)."""
        return self.confidences()


def _quant(detail: TensorDetail) -> tuple[float, int]:
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return float(scale), int(zero_point)


@dataclass
class PosterModel:
    """A loaded `.tflite` genre model plus what its metadata says about inputs and labels."""

    path: Path
    interpreter: LiteInterpreter
    genres: tuple[str, ...]
    thresholds: np.ndarray  # tuned per genre (metadata); default_threshold where unknown
    input_size: int
    input_dtype: np.dtype
    input_quant: tuple[float, int]  # (scale, zero_point); scale 0.0 = not quantized
    output_quant: tuple[float, int]
    name: str = ""
    version: str = ""
    default_threshold: float = DEFAULT_THRESHOLD
    norm_mean: float = NORM_MEAN
    norm_std: float = NORM_STD
    threads: int = 1
    batch_size: int = 1
    metadata_source: str = "default"
    _input_index: int = field(default=0, repr=False)
    _output_index: int = field(default=0, repr=False)
    _output_dtype: np.dtype = field(default=np.dtype(np.float32), repr=False)
    _allocated_batch: int = field(default=1, repr=False)
    _lut: np.ndarray | None = field(default=None, repr=False)
    _identity: bool = field(default=False, repr=False)

    @classmethod
    def load(cls, path: Path, threads: int = 1, batch_size: int = 1) -> PosterModel:
        """The model at `path` on `threads` LiteRT threads, `batch_size` posters per invoke,
        labels and thresholds from its metadata. Raises PosterliteError for a missing or
        unusable file, or one without exactly one input and one output tensor."""
        path = Path(path)
        interpreter = load_interpreter(path, threads)
        inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise PosterliteError(
                f"{path}: expected one input and one output tensor, got "
                f"{len(inputs)} and {len(outputs)}"
            )
        shape = tuple(int(v) for v in inputs[0]["shape"])
        if len(shape) != 4 or shape[3] != 3 or shape[1] != shape[2]:
            raise PosterliteError(f"{path}: input shape {list(shape)} is not (N, S, S, 3)")
        # The interpreter already knows the output count: metadata checks the labels on it.
        info = read_metadata(path, with_tensors=False, n_outputs=int(outputs[0]["shape"][-1]))
        genres, thresholds = info.genres, info.thresholds
        model = cls(
            path=path,
            interpreter=interpreter,
            genres=tuple(genres),
            thresholds=np.asarray(thresholds, dtype=np.float64),
            input_size=shape[1],
            input_dtype=np.dtype(inputs[0]["dtype"]),
            input_quant=_quant(inputs[0]),
            output_quant=_quant(outputs[0]),
            name=info.name,
            version=info.version,
            default_threshold=info.default_threshold,
            norm_mean=info.norm_mean,
            norm_std=info.norm_std,
            threads=threads,
            batch_size=max(1, batch_size),
            metadata_source=info.source,
            _input_index=int(inputs[0]["index"]),
            _output_index=int(outputs[0]["index"]),
            _output_dtype=np.dtype(outputs[0]["dtype"]),
            _allocated_batch=shape[0],
        )
        model.configure_input()
        return model

    # -- input -------------------------------------------------------------------------
    def _default_norm(self) -> bool:
        return (self.norm_mean, self.norm_std) == (NORM_MEAN, NORM_STD)

    def _float_values(self) -> np.ndarray:
        """The float input every pixel value 0..255 maps to (the one preprocessing path)."""
        levels = np.arange(256, dtype=np.uint8)
        if self._default_norm():
            return pixels_to_input(levels, "float32")
        return (levels.astype(np.float32) - self.norm_mean) / self.norm_std

    def configure_input(self) -> None:
        """(Re)derive the pixel -> input table from `input_dtype`, `input_quant` and norm."""
        self._lut = self._build_lut()
        self._identity = self._lut.dtype == np.uint8 and bool(
            np.array_equal(self._lut, np.arange(256, dtype=np.uint8))
        )

    def _build_lut(self) -> np.ndarray:
        """Pixel -> input-tensor value table: preprocessing is per-pixel, so 256 entries say it all."""
        values = self._float_values()
        if np.issubdtype(self.input_dtype, np.floating):
            return values.astype(self.input_dtype)
        scale, zero_point = self.input_quant
        if not np.issubdtype(self.input_dtype, np.integer):
            raise PosterliteError(f"{self.path}: unsupported input dtype {self.input_dtype}")
        limits = np.iinfo(self.input_dtype)
        if scale == 0.0:
            # An integer input without quantization parameters takes raw pixels (uint8).
            if self.input_dtype != np.uint8:
                raise PosterliteError(f"{self.path}: {self.input_dtype} input has no scale")
            return np.arange(256, dtype=np.uint8)
        # With the usual scale 2/255 every pixel lands exactly on a half step (zero point
        # 127 or 128 for a range of [-1, 1]). Ties are settled like TFLite's own Quantize
        # op (std::round: half away from zero, not numpy's half-to-even), after rounding
        # away the float32 jitter of the stored scale, which would otherwise decide them
        # (1/127.5 stored as 0.0078431377 sends pixels >= 128 one step down).
        real = np.round(values.astype(np.float64) / scale + zero_point, 4)
        quantized = np.sign(real) * np.floor(np.abs(real) + 0.5)
        table: np.ndarray = np.clip(quantized, limits.min, limits.max).astype(self.input_dtype)
        return table

    def prepare(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 pixels (N, S, S, 3) or (S, S, 3) from `load_poster` -> input tensor (N, S, S, 3)."""
        pixels = np.asarray(pixels)
        if pixels.ndim == 3:
            pixels = pixels[None]
        if pixels.dtype != np.uint8:
            raise ValueError(f"prepare() takes uint8 pixels, got {pixels.dtype}")
        if pixels.shape[1:] != (self.input_size, self.input_size, 3):
            raise ValueError(
                f"pixels {pixels.shape[1:]} do not match the model input "
                f"({self.input_size}, {self.input_size}, 3)"
            )
        if np.issubdtype(self.input_dtype, np.floating) and self._default_norm():
            # Arithmetic beats a float table lookup here (~0.15 vs ~0.8 ms at 224 px).
            return pixels_to_input(pixels, "float32").astype(self.input_dtype, copy=False)
        assert self._lut is not None
        if self._identity:
            # uint8 input with scale 1/127.5 and zero point 127 maps each pixel onto
            # itself: nothing to compute (the common case for our int8 conversions).
            return np.ascontiguousarray(pixels)
        return np.take(self._lut, pixels)  # ~3x faster than lut[pixels] fancy indexing

    # -- invoke ------------------------------------------------------------------------
    def _allocate(self, batch: int) -> None:
        shape = [batch, self.input_size, self.input_size, 3]
        self.interpreter.resize_tensor_input(self._input_index, shape)
        self.interpreter.allocate_tensors()
        self._allocated_batch = batch

    def run(self, inputs: np.ndarray) -> np.ndarray:
        """Raw output tensor (N, G) for prepared inputs, invoked `batch_size` samples at a time.

        A short last chunk is zero-padded rather than re-allocating the interpreter, which
        would re-plan the XNNPACK graph (slower than computing the padding).
        """
        inputs = np.asarray(inputs)
        if inputs.ndim == 3:
            inputs = inputs[None]
        if inputs.dtype != self.input_dtype:
            raise ValueError(f"run() takes {self.input_dtype} inputs, got {inputs.dtype}")
        count = inputs.shape[0]
        batch = max(1, min(self.batch_size, count))
        if batch != self._allocated_batch:
            self._allocate(batch)
        chunks = []
        for start in range(0, count, batch):
            chunk = inputs[start : start + batch]
            real = chunk.shape[0]
            if real < batch:
                pad = np.zeros((batch - real, *chunk.shape[1:]), dtype=chunk.dtype)
                chunk = np.concatenate([chunk, pad])
            self.interpreter.set_tensor(self._input_index, np.ascontiguousarray(chunk))
            self.interpreter.invoke()
            output = self.interpreter.get_tensor(self._output_index)
            chunks.append(output.reshape(batch, -1)[:real].copy())
        return np.concatenate(chunks) if chunks else np.zeros((0, len(self.genres)))

    def dequantize(self, raw: np.ndarray) -> np.ndarray:
        """The output tensor as float32 probabilities (integer outputs dequantized)."""
        scale, zero_point = self.output_quant
        if np.issubdtype(raw.dtype, np.integer) and scale != 0.0:
            return ((raw.astype(np.float32) - zero_point) * scale).astype(np.float32)
        return raw.astype(np.float32)

    def predict_pixels(self, pixels: np.ndarray, chunk: int = 64) -> np.ndarray:
        """Probabilities (N, G) float32 for uint8 pixels (N, S, S, 3).

        Prepared in chunks: a whole validation split as float32 at 224 px would be GBs.
        """
        pixels = np.asarray(pixels)
        if pixels.ndim == 3:
            pixels = pixels[None]
        step = max(chunk, self.batch_size)
        parts = [
            self.dequantize(self.run(self.prepare(pixels[start : start + step])))
            for start in range(0, len(pixels), step)
        ]
        return np.concatenate(parts) if parts else np.zeros((0, len(self.genres)), np.float32)

    # -- decisions ---------------------------------------------------------------------
    def cut(self, threshold: float | Sequence[float] | str | None = None) -> np.ndarray:
        """Per-genre thresholds: `None` -> the default (0.5), "tuned" -> the metadata's."""
        if threshold is None:
            cut: np.ndarray = np.full(len(self.genres), self.default_threshold)
        elif isinstance(threshold, str):
            if threshold != "tuned":
                raise ValueError(f"unknown threshold {threshold!r}")
            cut = self.thresholds.copy()
        else:
            values = np.asarray(threshold, dtype=np.float64)
            cut = np.broadcast_to(values, (len(self.genres),)).copy()
        return cut

    def decide(
        self, probabilities: np.ndarray, threshold: float | Sequence[float] | str | None = None
    ) -> tuple[str, ...]:
        """The genres whose probability reaches the threshold (see `cut`); raises
        ValueError for an unknown threshold name."""
        cut = self.cut(threshold)
        # Vectorized: an ImageNet stand-in has 1001 outputs and this runs once per poster.
        return tuple(self.genres[i] for i in np.flatnonzero(np.asarray(probabilities) >= cut))

    # -- files -------------------------------------------------------------------------
    def _load(self, path: str) -> np.ndarray | PosterDecodeError:
        # Decode and prepare both run in the pool, so the invoking thread does nothing but
        # invoke; `_quick_gil_handoff` keeps numpy's GIL-holding prepare from stalling it.
        try:
            tensor: np.ndarray = self.prepare(load_poster(path, self.input_size))[0]
        except PosterDecodeError as exc:
            return exc
        return tensor

    def _decoded(
        self, paths: Iterable[str | Path], workers: int
    ) -> Iterator[tuple[str, np.ndarray | PosterDecodeError]]:
        """(path, input tensor or error) in input order, `workers` threads ahead (0: inline)."""
        items = (str(p) for p in paths)
        if workers == 0:
            for path in items:
                yield path, self._load(path)
            return
        ahead = 2 * workers + self.batch_size
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
            pending: deque[tuple[str, Future[np.ndarray | PosterDecodeError]]] = deque()
            for path in items:
                pending.append((path, pool.submit(self._load, path)))
                if len(pending) >= ahead:
                    done_path, future = pending.popleft()
                    yield done_path, future.result()
            while pending:
                done_path, future = pending.popleft()
                yield done_path, future.result()

    def iter_predictions(
        self,
        paths: Iterable[str | Path],
        workers: int | None = None,
        threshold: float | Sequence[float] | str | None = None,
    ) -> Iterator[Prediction]:
        """Predictions in input order, decoding ahead in a thread pool while invoking.

        Pillow releases the GIL while decoding and resizing, and LiteRT releases it in
        `invoke()`, so decoding the next posters overlaps the current inference. `workers`
        0 decodes inline (no threads).
        """
        workers = default_workers() if workers is None else max(0, workers)
        batch: list[tuple[str, np.ndarray]] = []

        def flush() -> Iterator[Prediction]:
            tensors = batch[0][1][None] if len(batch) == 1 else np.stack([b[1] for b in batch])
            probabilities = self.dequantize(self.run(tensors))
            for (path, _), probs in zip(batch, probabilities, strict=True):
                yield Prediction(
                    path=path,
                    genres=self.genres,
                    probabilities=probs,
                    predicted=self.decide(probs, threshold),
                )
            batch.clear()

        with _quick_gil_handoff(workers > 0):
            for path, result in self._decoded(paths, workers):
                if isinstance(result, PosterDecodeError):
                    yield Prediction(
                        path=path, genres=self.genres, error=result.reason, detail=result.detail
                    )
                    continue
                batch.append((path, result))
                if len(batch) >= self.batch_size:
                    yield from flush()
            if batch:
                yield from flush()

    def predict(
        self,
        images: ImageInput | Sequence[ImageInput],
        threshold: float | Sequence[float] | str | None = None,
    ) -> Prediction | list[Prediction]:
        """Genres of one poster, or of each poster of a list (the Python API's call).

        A poster is a file path, encoded image bytes, a PIL image or a uint8 array
        (H, W, 3) / (H, W); each goes through the one preprocessing path (`load_poster`).
        An array already (S, S, 3) at the model's input size is taken as resized pixels.
        A 4-D uint8 array is a batch of those. `threshold`: None (the model's default,
        0.5), a float, one float per genre, or "tuned" (the metadata's per-genre values).
        A poster that cannot be decoded gives a Prediction with `error` set.
        """
        items: list[ImageInput]
        if isinstance(images, list | tuple):
            items = list(images)
        elif isinstance(images, np.ndarray) and images.ndim == 4:
            items = list(images)
        else:
            items = [cast("ImageInput", images)]  # any other Sequence (a str) is one poster
        single = not isinstance(images, list | tuple) and not (
            isinstance(images, np.ndarray) and images.ndim == 4
        )
        predictions = []
        for index, item in enumerate(items):
            name = str(item) if isinstance(item, str | Path) else f"<{type(item).__name__} {index}>"
            try:
                pixels = self._pixels_of(item)
            except PosterDecodeError as exc:
                predictions.append(
                    Prediction(path=name, genres=self.genres, error=exc.reason, detail=exc.detail)
                )
                continue
            probabilities = self.predict_pixels(pixels)[0]
            predictions.append(
                Prediction(
                    path=name,
                    genres=self.genres,
                    probabilities=probabilities,
                    predicted=self.decide(probabilities, threshold),
                )
            )
        return predictions[0] if single else predictions

    def _pixels_of(self, item: ImageInput) -> np.ndarray:
        """uint8 (S, S, 3) pixels of one API input, through the one preprocessing path."""
        if isinstance(item, str | Path | bytes):
            return load_poster(item, self.input_size)
        if isinstance(item, np.ndarray):
            if item.dtype != np.uint8:
                raise TypeError(f"predict() takes uint8 arrays, got {item.dtype}")
            if item.shape == (self.input_size, self.input_size, 3):
                return item
            if item.ndim not in (2, 3) or (item.ndim == 3 and item.shape[2] not in (1, 3, 4)):
                raise ValueError(f"predict() takes (H, W, 3) images, got shape {item.shape}")
            check_dimensions("<array>", item.shape[1], item.shape[0])
            from PIL import Image

            item = Image.fromarray(
                item.squeeze(-1) if item.ndim == 3 and item.shape[2] == 1 else item
            )
        if hasattr(item, "save") and hasattr(item, "mode"):  # a PIL image
            check_dimensions("<image>", *item.size)  # before spending a re-encode on it
            return load_poster(_encoded(item), self.input_size)
        raise TypeError(
            f"predict() takes a path, bytes, PIL image or uint8 array, got {type(item).__name__}"
        )

    def predict_files(
        self,
        paths: Iterable[str | Path],
        workers: int | None = None,
        threshold: float | Sequence[float] | str | None = None,
    ) -> list[Prediction]:
        """One `Prediction` per path; undecodable posters carry `error` and are not run."""
        return list(self.iter_predictions(paths, workers=workers, threshold=threshold))


# A poster the Python API takes. A string alias: Pillow is optional at run time.
ImageInput: TypeAlias = "str | Path | bytes | PILImage | np.ndarray"


def _encoded(image: PILImage) -> bytes:
    """A PIL image as lossless bytes (EXIF kept), so it takes the one preprocessing path.

    Re-encoding costs a few ms per poster but keeps a single decode -> orientation -> RGB
    -> resize implementation (`preprocess.load_poster`) for files and in-memory images.
    """
    import io

    buffer = io.BytesIO()
    exif = image.getexif()
    try:
        image.save(buffer, format="PNG", exif=exif)
    except (OSError, ValueError, KeyError):  # modes PNG cannot hold (CMYK, YCbCr, F)
        buffer = io.BytesIO()
        image.save(buffer, format="TIFF", exif=exif)
    return buffer.getvalue()


# ----------------------------------------------------------------------------- CLI help
def prediction_text(prediction: Prediction) -> str:
    """The paper's per-poster block: predicted classes, then one confidence line per genre.

    For the terminal: every line is `display`-escaped (file names and labels are data).
    """
    genres = [display(g) for g in prediction.genres]
    width = max((len(g) for g in genres), default=0)
    scores = () if prediction.probabilities is None else prediction.probabilities
    lines = [
        f"{prediction.path}",
        f"Predicted classes: {list(prediction.predicted)}",
        *(f"  {g:<{width}}  {p:.4f}" for g, p in zip(genres, scores, strict=False)),
    ]
    return "".join(display(line) + "\n" for line in lines)


def predictions_json(model: PosterModel, predictions: Sequence[Prediction], cut: np.ndarray) -> str:
    """The batch as one strict JSON document (non-finite scores are null)."""
    payload = {
        "model": str(model.path),
        "name": model.name,
        "version": model.version,
        "genres": list(model.genres),
        "thresholds": [float(t) for t in cut],
        "predictions": [
            {"path": p.path, "predicted": list(p.predicted), "probabilities": p.confidences()}
            for p in predictions
            if p.ok
        ],
        "skipped": [{"path": p.path, "reason": p.error} for p in predictions if not p.ok],
    }
    return json_text(payload)


def predictions_csv(model: PosterModel, predictions: Sequence[Prediction]) -> str:
    """One row per predicted poster; formula-safe cells (`safetext.csv_text`)."""
    rows: list[list[str]] = [["path", "predicted", *model.genres]]
    for p in predictions:
        if p.ok and p.probabilities is not None:
            rows.append([p.path, "|".join(p.predicted), *(f"{v:.6f}" for v in p.probabilities)])
    return csv_text(rows)
