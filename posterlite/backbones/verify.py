"""Verifying an imported backbone: the TFLite model and the Keras one on the same pixels.

Each TFLite model gets the raw `load_poster` uint8 pixels, its own expected input (see the
package docstring's PRETRAINED_INPUT), the Keras model `pixels_to_input(pixels)` from the
same pixels; agreement is the pooled features' cosine and, with a classifier, top-1 / top-5
agreement of the ImageNet scores.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from posterlite.backbones.keras_map import Classifier
from posterlite.backbones.tflite_reader import CONV_OPS
from posterlite.errors import PosterliteError

if TYPE_CHECKING:  # keras is imported lazily: this module is importable without it
    import keras


@dataclass
class VerifyFigures:
    """Agreement of the imported Keras backbone with the TFLite model on the same pixels."""

    images: int
    image_source: str
    feature_cosine_mean: float | None = None
    feature_cosine_min: float | None = None
    # vs the TFLite model's output (uint8 softmax, steps of 1/256: ties are common)
    top1_agreement: float | None = None
    top5_overlap_mean: float | None = None
    # vs the TFLite model's pre-softmax logits (finer; no ties)
    top1_agreement_logits: float | None = None
    top5_overlap_mean_logits: float | None = None


def tflite_input(pixels: np.ndarray, dtype: str, scale: float, zero_point: int) -> np.ndarray:
    """The TFLite model's own expected input from uint8 pixels (see PRETRAINED_INPUT)."""
    from posterlite.preprocess import pixels_to_input

    if dtype == "uint8":
        return pixels.astype(np.uint8)
    real = pixels_to_input(pixels, "float32")
    if dtype == "int8":
        return np.clip(np.round(real / scale + zero_point), -128, 127).astype(np.int8)
    return real


@dataclass
class TFLiteOutputs:
    """What `run_tflite` reads from the TFLite model per image, dequantized."""

    pooled: np.ndarray | None  # [N, features] dequantized, if the graph exposes it
    output: np.ndarray  # [N, ...] dequantized model output (probabilities or embedding)
    logits: np.ndarray | None = None  # [N, classes] pre-softmax, if the graph has a head


def run_tflite(path: Path, pixels: np.ndarray, threads: int = 1) -> TFLiteOutputs:
    """Run the TFLite model one image at a time; also read its pooled features (the
    AVERAGE_POOL_2D / MEAN output) by keeping intermediate tensors. Raises ValueError /
    RuntimeError (LiteRT's) for a file it cannot load."""
    from ai_edge_litert.interpreter import Interpreter

    with warnings.catch_warnings():  # "for debugging only": we do read intermediate tensors
        warnings.simplefilter("ignore", UserWarning)
        interpreter = Interpreter(
            model_path=str(path), num_threads=threads, experimental_preserve_all_tensors=True
        )
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    pooled_index = logits_index = None
    for op in interpreter._get_ops_details():  # the only op-level view the Interpreter has
        if op["op_name"] in ("AVERAGE_POOL_2D", "MEAN"):
            pooled_index = int(op["outputs"][0])
        elif op["op_name"] in CONV_OPS and pooled_index is not None:
            logits_index = int(op["outputs"][0])  # the head after the pool: pre-softmax
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    scale, zero = inp["quantization"]
    rows: dict[str, list[np.ndarray]] = {"pooled": [], "output": [], "logits": []}
    for image in pixels:
        x = tflite_input(image[None], np.dtype(inp["dtype"]).name, scale, zero)
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        rows["output"].append(
            _dequantized(interpreter.get_tensor(out["index"]), out["quantization"]).reshape(-1)
        )
        for key, index in (("pooled", pooled_index), ("logits", logits_index)):
            if index is not None:
                value = interpreter.get_tensor(index)
                rows[key].append(_dequantized(value, details[index]["quantization"]).reshape(-1))
    return TFLiteOutputs(
        pooled=np.stack(rows["pooled"]) if rows["pooled"] else None,
        output=np.stack(rows["output"]),
        logits=np.stack(rows["logits"]) if rows["logits"] else None,
    )


def _dequantized(values: np.ndarray, quantization: tuple[float, int]) -> np.ndarray:
    scale, zero = quantization
    if values.dtype.kind == "f" or not scale:
        return values.astype(np.float32)
    return ((values.astype(np.float32) - zero) * scale).astype(np.float32)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of `a` with the same row of `b` (N,), float64."""
    a = a.reshape(len(a), -1).astype(np.float64)
    b = b.reshape(len(b), -1).astype(np.float64)
    denominator = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.sum(a * b, axis=1) / np.maximum(denominator, 1e-12)


def topk_agreement(reference: np.ndarray, candidate: np.ndarray, k: int = 5) -> tuple[float, float]:
    """(share of rows with the same top-1, mean size of the top-k overlap)."""
    top1 = float(np.mean(reference.argmax(1) == candidate.argmax(1)))
    # stable sort: among tied (quantized) scores the lower class index ranks first, as argmax
    ref_k = np.argsort(-reference, axis=1, kind="stable")[:, :k]
    cand_k = np.argsort(-candidate, axis=1, kind="stable")[:, :k]
    overlap = [len(set(r) & set(c)) for r, c in zip(ref_k, cand_k, strict=True)]
    return top1, float(np.mean(overlap))


def compare_with_tflite(
    source: Path,
    model: keras.Model,
    classifier: Classifier | None,
    pixels: np.ndarray,
    image_source: str,
    threads: int = 1,
    batch: int = 16,
) -> tuple[VerifyFigures, dict[str, np.ndarray]]:
    """Feed the same pixels to TFLite (its own uint8 input) and Keras ([-1,1] float). Returns
    the agreement figures and the arrays compared."""
    from posterlite.preprocess import pixels_to_input

    reference = run_tflite(source, pixels, threads)
    pooled = np.concatenate(
        [
            np.asarray(model(pixels_to_input(pixels[i : i + batch]), training=False))
            for i in range(0, len(pixels), batch)
        ]
    )
    figures = VerifyFigures(images=len(pixels), image_source=image_source)
    arrays: dict[str, np.ndarray] = {"keras_pooled": pooled, "tflite_output": reference.output}
    tflite_features = reference.pooled
    if tflite_features is None and reference.output.shape[1] == pooled.shape[1]:
        tflite_features = reference.output  # an embedding extractor's output is the pool
    if tflite_features is not None:
        cosine = cosine_rows(pooled, tflite_features)
        figures.feature_cosine_mean = float(cosine.mean())
        figures.feature_cosine_min = float(cosine.min())
        arrays["tflite_pooled"] = tflite_features
    if classifier is not None and reference.output.shape[1] == classifier.bias.shape[0]:
        logits = classifier.logits(pooled)
        figures.top1_agreement, figures.top5_overlap_mean = topk_agreement(reference.output, logits)
        arrays["keras_logits"] = logits
        if reference.logits is not None and reference.logits.shape == logits.shape:
            figures.top1_agreement_logits, figures.top5_overlap_mean_logits = topk_agreement(
                reference.logits, logits
            )
            arrays["tflite_logits"] = reference.logits
    return figures, arrays


def synthetic_pixels(count: int, size: int = 224, seed: int = 0) -> np.ndarray:
    """Smooth random colour fields (upsampled noise): a deterministic stand-in for posters."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        images.append(np.asarray(Image.fromarray(small).resize((size, size), Image.BILINEAR)))
    return np.stack(images)


def poster_pixels(folder: Path, count: int, size: int = 224) -> np.ndarray:
    """The first `count` decodable images of `folder` (sorted), as `load_poster` pixels.
    Returns uint8 (N, size, size, 3); raises PosterliteError when none decodes."""
    from posterlite.preprocess import PosterDecodeError, load_poster

    files = sorted(
        p for p in Path(folder).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")
    )
    images = []
    for file in files:
        if len(images) >= count:
            break
        try:
            images.append(load_poster(file, size))
        except PosterDecodeError:
            continue
    if not images:
        raise PosterliteError(f"{folder}: no decodable images to verify with")
    return np.stack(images)
