"""Importing a TFLite MobileNet: `.weights.h5` written atomically, a JSON record beside it
(source sha256, arch, verification figures) and, when the source has one, the ImageNet
classifier (`<name>.classifier.npz`: kernel [features, 1001], bias [1001]; index 0 =
background).
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from posterlite.backbones.keras_map import Classifier, empty_backbone, map_onto_keras
from posterlite.backbones.sources import WEIGHTS_SUFFIX, check_arch
from posterlite.backbones.tflite_reader import read_tflite
from posterlite.backbones.verify import compare_with_tflite, synthetic_pixels
from posterlite.errors import PosterliteError
from posterlite.fileio import atomic_write_bytes, atomic_write_text, json_text, sha256_file

if TYPE_CHECKING:  # keras is imported lazily: this module is importable without it
    import keras


@dataclass
class ImportRecord:
    """The JSON record written beside an imported `.weights.h5`."""

    arch: str
    source: str
    source_sha256: str
    weights_file: str
    classifier_file: str | None
    input_size: int
    tflite_input: dict
    quantization: dict[str, int]
    layers_set: int
    verification: dict = field(default_factory=dict)
    posterlite_version: str = ""


def record_path(weights: Path) -> Path:
    """`X.weights.h5` -> `X.import.json` (beside it)."""
    return weights.with_name(_stem(weights) + ".import.json")


def classifier_path(weights: Path) -> Path:
    """`X.weights.h5` -> `X.classifier.npz` (beside it): the ImageNet head, when imported."""
    return weights.with_name(_stem(weights) + ".classifier.npz")


def _stem(weights: Path) -> str:
    name = weights.name
    return name[: -len(WEIGHTS_SUFFIX)] if name.endswith(WEIGHTS_SUFFIX) else weights.stem


def _save_weights_atomic(model: keras.Model, target: Path) -> None:
    """Keras insists on a `.weights.h5` name, so save into a temp folder beside the target
    and rename: the target appears whole or not at all."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        tmp = tmp_dir / ("part" + WEIGHTS_SUFFIX)
        model.save_weights(str(tmp))
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def _save_classifier_atomic(classifier: Classifier, target: Path) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, kernel=classifier.kernel, bias=classifier.bias)
    atomic_write_bytes(target, buffer.getvalue())


def load_classifier(weights: Path) -> Classifier | None:
    """The ImageNet head imported beside `weights`, or None when there is none; raises
    OSError / ValueError (numpy's) for an unreadable file."""
    path = classifier_path(Path(weights))
    if not path.is_file():
        return None
    with np.load(path) as data:
        return Classifier(kernel=data["kernel"], bias=data["bias"])


def import_tflite_backbone(
    source: Path,
    arch: str,
    out: Path,
    verify_pixels: np.ndarray | None = None,
    verify_source: str = "synthetic",
    verify_count: int = 4,
    threads: int = 1,
) -> ImportRecord:
    """TFLite MobileNet -> Keras `.weights.h5` + `.import.json` (+ `.classifier.npz`).

    Verification runs both models on `verify_pixels` (default: `verify_count` synthetic
    images) and stores the agreement figures in the record.
    Returns the record written; raises PosterliteError for an unknown arch, an output name
    without `.weights.h5`, a file that is not a TFLite MobileNet or does not fit the arch.
    """
    from posterlite import __version__

    arch = check_arch(arch)
    source, out = Path(source), Path(out)
    if not out.name.endswith(WEIGHTS_SUFFIX):
        raise PosterliteError(f"{out}: output must end with {WEIGHTS_SUFFIX} (Keras weights file)")
    info = read_tflite(source)
    if not info.layers:
        raise PosterliteError(f"{source}: TFLite model has no conv ops; not a MobileNet")
    # Weights do not depend on the input size; verify at the size the TFLite graph was
    # built for (224 for Google's files, smaller for test models).
    shape = info.input_shape
    size = shape[1] if len(shape) == 4 and shape[1] == shape[2] and shape[1] >= 32 else 224
    model = empty_backbone(arch, size)
    classifier, names = map_onto_keras(info, arch, model)
    if verify_pixels is None and verify_count > 0:
        verify_pixels = synthetic_pixels(verify_count, size)
    verification: dict = {}
    if verify_pixels is not None and len(verify_pixels):
        figures, _ = compare_with_tflite(
            source, model, classifier, verify_pixels, verify_source, threads
        )
        verification = asdict(figures)
    quantization: dict[str, int] = {}
    for layer in info.layers:
        quantization[layer.quantization] = quantization.get(layer.quantization, 0) + 1
    _save_weights_atomic(model, out)
    classifier_file = None
    if classifier is not None:
        _save_classifier_atomic(classifier, classifier_path(out))
        classifier_file = classifier_path(out).name
    record = ImportRecord(
        arch=arch,
        source=str(source),
        source_sha256=sha256_file(source),
        weights_file=out.name,
        classifier_file=classifier_file,
        input_size=size,
        tflite_input={
            "dtype": info.input_dtype,
            "scale": info.input_scale,
            "zero_point": info.input_zero_point,
            "shape": list(info.input_shape),
        },
        quantization=quantization,
        layers_set=len(names),
        verification=verification,
        posterlite_version=__version__,
    )
    atomic_write_text(record_path(out), json_text(asdict(record)))
    return record
