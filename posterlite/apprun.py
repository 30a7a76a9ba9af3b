"""App-side classification: what MediaPipe Tasks' `ImageClassifier` answers for a poster.

Apps embed a posterlite `.tflite` with MediaPipe Tasks (`com.google.mediapipe:tasks-vision`
on Android, `MediaPipeTasksVision` on iOS); the Python package `mediapipe` runs the same C++
task graph on CPU. This module is the one place posterlite imports MediaPipe (lazily: it is
a dev extra, not a runtime dependency). It owns:

- `AppClassifier`: a MediaPipe `ImageClassifier` with the options that reproduce
  posterlite's figures -- every category (`max_results=-1`) and no score cut
  (`score_threshold` = the smallest normal float32); the genre decision uses posterlite's thresholds afterwards, because
  MediaPipe applies one global threshold). Scores come back in genre order.
- `build_pixel_probe`: a `.tflite` "classifier" whose scores are its input pixels, so
  `probe_pixels` reads back exactly what MediaPipe feeds a model (tests and
  benchmarks/parity_mediapipe.py check `preprocess.load_poster` against it).

The app-side bench rows (`posterlite bench --runtime mediapipe`) are built on
`AppClassifier` by `posterlite.bench.targets.mediapipe`.

Decoding: `classify_file` lets MediaPipe decode the file itself (`Image.create_from_file`,
stb_image in the Python package) the way an app hands MediaPipe its platform decoder's
bitmap. A grayscale JPEG decodes there to a 1-channel image that the classifier rejects
(and the rejected graph stays broken); an app's bitmap is always RGBA, so a 1-channel
image is expanded to RGB here before classifying.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Protocol, cast

import numpy as np

from posterlite.errors import PosterliteError

# All categories, no score cut: the options an app needs to reproduce posterlite's scores.
MAX_RESULTS_ALL = -1
# The smallest normal float32 (Kotlin Float.MIN_NORMAL, Swift Float.leastNormalMagnitude),
# not 0 or a negative value: MediaPipe's C API (the Python package) reads a threshold <= 0 as
# "not set" and applies the metadata's global 0.5 (measured, mediapipe 1.2.3). Only exact-0
# scores are dropped; `classify_image` reports a missing category as 0.
NO_SCORE_CUT = float(np.finfo(np.float32).tiny)


class AppRunError(PosterliteError):
    """MediaPipe is missing, or refused a model or an image."""


# MediaPipe ships no type information: these Protocols are the parts posterlite uses.
class MediaPipeImage(Protocol):
    """`mediapipe.Image`: decoded pixels in MediaPipe's own container."""

    @property
    def channels(self) -> int:
        """1, 3 or 4."""

    def numpy_view(self) -> np.ndarray:
        """The pixels, (H, W[, C]) uint8, read-only."""


class MediaPipeCategory(Protocol):
    """One scored label of a classification result."""

    index: int
    score: float
    category_name: str | None


class MediaPipeHead(Protocol):
    """The categories of one output head."""

    categories: list[MediaPipeCategory]


class MediaPipeResult(Protocol):
    """`ImageClassifierResult`: one entry per output head."""

    classifications: list[MediaPipeHead]


class _Dispatcher(Protocol):
    def close(self) -> None:
        """Stop MediaPipe's task dispatcher."""


class MediaPipeClassifier(Protocol):
    """`mediapipe.tasks.python.vision.ImageClassifier`."""

    _handle: object  # MediaPipe's internals, reset only by `AppClassifier.close`
    _dispatcher: _Dispatcher

    def classify(self, image: MediaPipeImage) -> MediaPipeResult:
        """Scores for one image; raises RuntimeError or ValueError when MediaPipe fails."""

    def close(self) -> None:
        """Release the task; raises RuntimeError after a failed run (see `close`)."""


def import_mediapipe() -> ModuleType:
    """`mediapipe`, imported quietly and without TensorFlow.

    MediaPipe's Python package imports TensorFlow (when installed) only for its API-doc
    decorators (`tasks/python/core/optional_dependencies.py`, which falls back to a no-op
    when TensorFlow is absent, as on an app developer's machine); that import costs ~8 s
    here. When TensorFlow is not loaded yet, it is hidden during MediaPipe's import only.
    Returns the module; raises AppRunError when MediaPipe is not installed.
    """
    if "mediapipe.tasks.python.vision" in sys.modules:
        return sys.modules["mediapipe"]  # imported (and its vision tasks) already
    from posterlite import quiet

    hide = "tensorflow" not in sys.modules
    if hide:
        sys.modules["tensorflow"] = None  # type: ignore[assignment]  # -> ModuleNotFoundError
    try:
        with quiet.captured_output():
            import mediapipe  # noqa: F401  (bound in sys.modules)
            from mediapipe.tasks.python import vision  # noqa: F401
    except ImportError as exc:
        raise AppRunError(
            "MediaPipe is not installed: pip install 'posterlite[dev]' (mediapipe>=1.2,<1.3)"
        ) from exc
    finally:
        if hide and sys.modules.get("tensorflow", 0) is None:
            del sys.modules["tensorflow"]
    return sys.modules["mediapipe"]


def _rgb_image(mp: ModuleType, pixels: np.ndarray) -> MediaPipeImage:
    """A MediaPipe SRGB/SRGBA image from uint8 (H, W), (H, W, 1), (H, W, 3) or (H, W, 4)."""
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8:
        raise AppRunError(f"MediaPipe images are uint8, got {pixels.dtype}")
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 3, 4):
        raise AppRunError(f"expected an (H, W, 3) image, got shape {pixels.shape}")
    if pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    fmt = mp.ImageFormat.SRGB if pixels.shape[2] == 3 else mp.ImageFormat.SRGBA
    return cast(MediaPipeImage, mp.Image(image_format=fmt, data=np.ascontiguousarray(pixels)))


@dataclass
class AppClassifier:
    """MediaPipe Tasks' ImageClassifier (CPU) on one model, scores in the model's label order.

    Use as a context manager, or call `close()`.
    """

    path: Path
    labels: tuple[str, ...]
    max_results: int = MAX_RESULTS_ALL
    score_threshold: float = NO_SCORE_CUT
    _classifier: MediaPipeClassifier | None = field(default=None, repr=False)
    _mp: ModuleType | None = field(default=None, repr=False)

    @classmethod
    def open(
        cls,
        path: Path,
        labels: Sequence[str] | None = None,
        max_results: int = MAX_RESULTS_ALL,
        score_threshold: float = NO_SCORE_CUT,
    ) -> AppClassifier:
        """Load `path` in MediaPipe. `labels`: expected label order (default: the model's
        metadata, read by posterlite); a category MediaPipe names differently is an error.
        Returns the open classifier; raises AppRunError when MediaPipe is missing or refuses
        the model, PosterliteError (from `read_metadata`) for a file without metadata."""
        from posterlite.metadata import read_metadata

        path = Path(path)
        if labels is None:
            labels = read_metadata(path, with_tensors=False).genres
        app = cls(path, tuple(labels), max_results, score_threshold)
        app._mp = import_mediapipe()
        app._create()
        return app

    def _create(self) -> None:
        from mediapipe.tasks.python import BaseOptions, vision

        options = vision.ImageClassifierOptions(
            base_options=BaseOptions(model_asset_path=str(self.path)),
            max_results=self.max_results,
            score_threshold=self.score_threshold,
        )
        try:
            from posterlite import quiet

            with quiet.captured_output():
                self._classifier = cast(
                    MediaPipeClassifier, vision.ImageClassifier.create_from_options(options)
                )
        except (RuntimeError, ValueError, OSError) as exc:
            raise AppRunError(
                f"{self.path}: MediaPipe cannot load it ({_first_line(exc)})"
            ) from exc

    def close(self) -> None:
        """Release MediaPipe's task (again: a no-op). Returns nothing; never raises."""
        classifier, self._classifier = self._classifier, None
        if classifier is None:
            return
        try:
            classifier.close()
        except (RuntimeError, ValueError):
            # After a failed run MediaPipe's close() raises ("Task runner is currently not
            # running") and keeps its handle, so its __del__ retries -- and at interpreter
            # exit that retry waits forever on a dead dispatcher (measured, mediapipe
            # 1.2.3). Drop the handle and stop the dispatcher ourselves.
            with contextlib.suppress(Exception):
                classifier._handle = None
                classifier._dispatcher.close()

    def __enter__(self) -> AppClassifier:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def load_file(self, path: str | Path) -> MediaPipeImage:
        """The file decoded by MediaPipe itself (an app: its platform decoder's bitmap).
        Returns it as RGB(A); raises AppRunError when MediaPipe cannot decode it."""
        try:
            image = cast(MediaPipeImage, self._module().Image.create_from_file(str(path)))
        except (RuntimeError, ValueError, OSError) as exc:
            raise AppRunError(f"{path}: MediaPipe cannot decode it ({_first_line(exc)})") from exc
        if image.channels in (3, 4):
            return image
        return _rgb_image(self._module(), image.numpy_view())

    def _module(self) -> ModuleType:
        if self._mp is None:
            raise AppRunError("AppClassifier is not open: use AppClassifier.open()")
        return self._mp

    def to_image(self, pixels: np.ndarray) -> MediaPipeImage:
        """A MediaPipe image of decoded uint8 pixels (H, W[, 1|3|4]), as an app builds one.
        Raises AppRunError for another dtype or shape."""
        return _rgb_image(self._module(), pixels)

    def classify_image(self, image: MediaPipeImage) -> np.ndarray:
        """Scores (G,) float32 in label order for a MediaPipe image; missing categories 0.
        Raises AppRunError when MediaPipe fails or names a category differently."""
        if self._classifier is None:
            raise AppRunError(f"{self.path}: the classifier is closed")
        failure = ""
        try:
            result = self._classifier.classify(image)
        except (RuntimeError, ValueError) as exc:
            failure = _first_line(exc)
        if failure:
            # A failed run leaves MediaPipe's graph in an error state: start a fresh one.
            # Raised outside the `except`: a chained exception would keep the old task alive
            # through its traceback until interpreter exit, where its close() never returns.
            self.close()
            self._create()
            raise AppRunError(f"MediaPipe failed on an image ({failure})")
        scores = np.zeros(len(self.labels), np.float32)
        for category in result.classifications[0].categories:
            if category.index >= len(self.labels):
                raise AppRunError(f"{self.path}: MediaPipe category index {category.index}")
            name = category.category_name
            if name and name != self.labels[category.index]:
                raise AppRunError(
                    f"{self.path}: MediaPipe names category {category.index} {name!r}, "
                    f"expected {self.labels[category.index]!r}"
                )
            scores[category.index] = category.score
        return scores

    def classify_file(self, path: str | Path) -> np.ndarray:
        """Scores for a poster file, decoded and resized by MediaPipe itself."""
        return self.classify_image(self.load_file(path))

    def classify_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Scores for a decoded uint8 image (any size), resized by MediaPipe."""
        return self.classify_image(self.to_image(pixels))

    def iter_files(self, paths: Sequence[str | Path]) -> Iterator[np.ndarray | AppRunError]:
        """Scores per file; an `AppRunError` in place of a file MediaPipe refused."""
        for path in paths:
            try:
                yield self.classify_file(path)
            except AppRunError as exc:
                yield exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[-1][:300] if text else type(exc).__name__


# -- the pixel probe --------------------------------------------------------------------
def build_pixel_probe(
    size: int, dtype: str = "float32", norm_mean: float = 0.0, norm_std: float = 1.0
) -> bytes:
    """A `.tflite` whose "scores" are its input pixels: input (1, size, size, 3) -> RESHAPE
    -> output (1, size*size*3), labels p0..pN, normalization mean 0 / std 1 (float32) or
    quantization scale 1 / zero point 0 (uint8). Classified in MediaPipe with all
    categories and no score cut, category i's score is the i-th value MediaPipe fed it
    (`norm_mean` / `norm_std` other than 0 / 1: the normalized float input). Built straight from the TFLite schema (no TensorFlow): milliseconds."""
    from posterlite.metadata import MetadataSpec, embed_metadata
    from posterlite.tflite_file import pack_model
    from posterlite.tflite_file import schema as tflite_schema

    if dtype not in ("float32", "uint8"):
        raise ValueError(f"probe dtype must be float32 or uint8, got {dtype!r}")
    count = size * size * 3
    schema = tflite_schema()
    tensor_type = schema.TensorType.FLOAT32 if dtype == "float32" else schema.TensorType.UINT8

    def tensor(name: str, shape: list[int], kind: int, buffer: int) -> object:
        made = schema.TensorT()
        made.name, made.shape, made.type, made.buffer = name, shape, kind, buffer
        if kind == schema.TensorType.UINT8:
            quant = schema.QuantizationParametersT()
            quant.scale, quant.zeroPoint = [1.0], [0]
            made.quantization = quant
        return made

    empty, shape_buffer = schema.BufferT(), schema.BufferT()
    shape_buffer.data = np.frombuffer(np.array([1, count], np.int32).tobytes(), np.uint8)
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.RESHAPE
    code.version = 1
    reshape = schema.OperatorT()
    reshape.opcodeIndex, reshape.inputs, reshape.outputs = 0, [0, 1], [2]
    reshape.builtinOptionsType = schema.BuiltinOptions.ReshapeOptions
    reshape.builtinOptions = schema.ReshapeOptionsT()
    reshape.builtinOptions.newShape = [1, count]
    graph = schema.SubGraphT()
    graph.name = "main"
    graph.tensors = [
        tensor("image", [1, size, size, 3], tensor_type, 0),
        tensor("shape", [2], schema.TensorType.INT32, 1),
        tensor("pixels", [1, count], tensor_type, 0),
    ]
    graph.inputs, graph.outputs, graph.operators = [0], [2], [reshape]
    model = schema.ModelT()
    model.version, model.description = 3, "posterlite pixel probe"
    model.buffers, model.subgraphs, model.operatorCodes = [empty, shape_buffer], [graph], [code]
    spec = MetadataSpec(
        name=f"pixel-probe-{size}-{dtype}",
        version="1",
        genres=tuple(f"p{i}" for i in range(count)),
        thresholds=(0.0,) * count,
        input_size=size,
        default_threshold=0.0,
        norm_mean=norm_mean,
        norm_std=norm_std,
        description="Outputs its input pixels: reads back what an app runtime feeds a model.",
    )
    return embed_metadata(pack_model(model), spec)


def probe_pixels(probe: AppClassifier, image: MediaPipeImage, size: int) -> np.ndarray:
    """The (size, size, 3) uint8 pixels MediaPipe fed the probe for a MediaPipe image.
    Raises AppRunError when the probe's scores are not uint8 pixels."""
    values = probe.classify_image(image)
    if values.shape != (size * size * 3,):
        raise AppRunError(f"probe returned {values.shape} values, expected {size * size * 3}")
    pixels = values.reshape(size, size, 3)
    if np.any(pixels != np.round(pixels)) or pixels.min() < 0 or pixels.max() > 255:
        raise AppRunError("probe values are not uint8 pixels")
    return pixels.astype(np.uint8)
