"""The phone-ready file's JSON sidecar: written at export, read by every bench run.

`models/<name>/model.int8.tflite` is the shipped int8 file; its sidecar
`models/<name>/model.int8.json` records how it was exported (the conversion gate, the
calibration set, hashes) and, under `keras_reference`, the Keras float model's figures on
the bundled sample, so `posterlite bench` reports "change vs Keras" without TensorFlow.

- Reading (`read_sidecar`, `recorded_reference`, `fitting_reference`): a recorded Keras
  figure applies only to exactly the posters it was measured on, decoded the same way.
- Writing (`export_int8`, what `benchmarks/export_int8.py` calls per model): convert with
  the accuracy gate, score Keras and the new file on the sample, write file + sidecar
  atomically. Idempotent: an up-to-date export is left alone unless forced.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from posterlite.bench.labelled import (
    LabelledSet,
    accuracy_of,
    labelled_pass,
    preprocess_version,
    score,
)
from posterlite.bench.paths import REPO, display_path
from posterlite.bench.records import KerasReference, as_object
from posterlite.ensemble import is_ensemble, materialize
from posterlite.errors import PosterliteError
from posterlite.fileio import atomic_write_bytes, atomic_write_text, jsonable, sha256_file
from posterlite.formats import SHIPPED_FORMAT, format_spec
from posterlite.metrics import MultiLabelReport

KERAS_REFERENCE_KEY = "keras_reference"
EXPORT_FORMAT = SHIPPED_FORMAT
# Bumped when what an export records changes, so older sidecars are redone.
EXPORT_VERSION = 1


def shipped_file(run_dir: Path, fmt: str) -> Path:
    """Where a run folder keeps its committed phone-ready file of `fmt`."""
    return Path(run_dir) / format_spec(fmt).file_name("model")


def file_digest(path: Path, length: int = 12) -> str:
    """The first `length` hex digits of the file's sha256."""
    return sha256_file(path)[:length]


# ------------------------------------------------------------------------------ reading
def read_sidecar(tflite: Path) -> dict[str, object]:
    """The JSON sidecar (`<file>.json`) of a `.tflite`, or {} when absent or unreadable."""
    path = Path(tflite).with_suffix(".json")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return dict(data) if isinstance(data, dict) else {}


def recorded_reference(tflite: Path) -> KerasReference | None:
    """The Keras figures recorded in the file's sidecar, or None."""
    data = read_sidecar(tflite).get(KERAS_REFERENCE_KEY)
    return KerasReference.from_dict(as_object(data, "keras_reference")) if data else None


_DIGESTS: dict[tuple[Path, int | None], str] = {}


def _posters_digest(posters: LabelledSet, size: int | None) -> str:
    """Cached per labelled set and size: the decode is the cost."""
    key = (posters.root, size)
    if key not in _DIGESTS:
        _DIGESTS[key] = posters.data_digest() if size is None else posters.pixels_digest(size)
    return _DIGESTS[key]


def fitting_reference(
    reference: KerasReference | None, posters: LabelledSet | None
) -> KerasReference | None:
    """`reference` when it was recorded on exactly these posters, decoded the same way."""
    if reference is None or posters is None or reference.posters != len(posters):
        return None
    if reference.preprocess_version != preprocess_version():
        return None
    if reference.data_digest != _posters_digest(posters, None):
        return None
    if reference.pixels_digest != _posters_digest(posters, reference.input_size):
        return None
    return reference


# ------------------------------------------------------------------------------ writing
def repo_relative(text: str) -> str:
    """Strip this checkout's absolute path from recorded text (reports are portable)."""
    return text.replace(str(REPO) + "/", "").replace(str(REPO), ".")


def calibration_digest(folder: Path | None = None) -> str:
    """sha256 (16 hex) over the calibration images' names and contents (default:
    the repository's `calibration/`)."""
    from posterlite.convert import REPO_CALIBRATION
    from posterlite.posterfiles import image_files

    digest = hashlib.sha256()
    for path in image_files(folder or REPO_CALIBRATION):
        digest.update(path.name.encode("utf-8") + b"\0" + bytes.fromhex(sha256_file(path)))
    return digest.hexdigest()[:16]


def up_to_date(run: Path, keras_sha: str, posters: LabelledSet, calibration: str) -> bool:
    """True when the committed file was exported from this `model.keras` (sha256), this
    calibration set and these posters, by this export version."""
    target = shipped_file(run, EXPORT_FORMAT)
    if not target.is_file():
        return False
    export = read_sidecar(target).get("export") or {}
    export = as_object(export, "export")
    reference = recorded_reference(target)
    return (
        reference is not None
        and export.get("version") == EXPORT_VERSION
        and export.get("sha256") == sha256_file(target)
        and export.get("calibration_digest") == calibration
        and reference.keras_sha256 == keras_sha
        and fitting_reference(reference, posters) is not None
    )


def keras_on_sample(run: Path, posters: LabelledSet) -> tuple[MultiLabelReport, int]:
    """The Keras model's figures on the posters, decoded as bench decodes them, and its
    input size."""
    import numpy as np

    from posterlite.convert import keras_probabilities, load_keras, resolve_model
    from posterlite.preprocess import PosterDecodeError, load_poster
    from posterlite.quiet import captured_output

    source = resolve_model(run)
    with captured_output():
        model = load_keras(source)
    size = int(source.card.input_size)
    pixels, kept = [], []
    for index, path in enumerate(posters.paths):
        try:
            pixels.append(load_poster(path, size))
            kept.append(index)
        except PosterDecodeError:
            continue
    with captured_output():
        probabilities = keras_probabilities(model, np.stack(pixels))
    return score(posters, np.asarray(kept), probabilities, list(source.genres)), size


def tflite_on_sample(path: Path, posters: LabelledSet) -> MultiLabelReport:
    """A `.tflite`'s figures on the posters, scored as every bench row is."""
    from posterlite.runtime import PosterModel

    model = PosterModel.load(path)
    result = labelled_pass(posters, model.input_size, model.predict_pixels)
    return accuracy_of(posters, result, model.genres)


@dataclass(frozen=True)
class ExportSettings:
    """How `export_int8` converts: the gate and the check set."""

    max_drop: float
    eval_limit: int | None = None
    force: bool = False


def export_int8(
    run: Path,
    posters: LabelledSet,
    calibration: str,
    settings: ExportSettings,
    log: Callable[[str], None] = lambda line: None,
) -> str:
    """Export one run folder's phone-ready int8 file and its sidecar; returns a one-line
    summary. `calibration` is `calibration_digest()` (the same for every run). Raises
    PosterliteError when the run has no model.keras or the conversion gate fails (then
    nothing is written)."""
    from posterlite.convert import convert_model
    from posterlite.fileio import library_versions

    keras_path = materialize(run) if is_ensemble(run) else run / "model.keras"
    if not keras_path.is_file():
        raise PosterliteError(f"{run}: no model.keras")
    keras_sha = sha256_file(keras_path)
    if not settings.force and up_to_date(run, keras_sha, posters, calibration):
        return f"{run.name}: up to date ({shipped_file(run, EXPORT_FORMAT)})"
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"export-{run.name}-") as tmp:
        report = convert_model(
            run,
            formats=[EXPORT_FORMAT],
            out_dir=Path(tmp),
            max_drop=settings.max_drop,
            eval_limit=settings.eval_limit,
            log=log,
        )
        result = report.results[0]
        converted = Path(result.path)
        data = converted.read_bytes()
        sidecar = read_sidecar(converted)
        int8_sample = tflite_on_sample(converted, posters)
    keras_report, size = keras_on_sample(run, posters)
    reference = KerasReference(
        mean_average_precision=keras_report.mean_average_precision,
        macro_f1=keras_report.macro_f1,
        posters=len(posters),
        data=display_path(posters.root),
        data_digest=posters.data_digest(),
        pixels_digest=posters.pixels_digest(size),
        input_size=size,
        keras_sha256=keras_sha,
        accuracy=asdict(keras_report),
        preprocess_version=preprocess_version(),
    )
    sidecar.update(
        source_model=repo_relative(str(sidecar.get("source_model", keras_path))),
        keras_reference=asdict(reference),
        export={
            "version": EXPORT_VERSION,
            "sha256": hashlib.sha256(data).hexdigest(),
            "calibration": repo_relative(report.calibration),
            "calibration_digest": calibration,
            "gate": {
                "check_set": repo_relative(report.eval_source),
                "posters": report.eval_count,
                "max_drop": report.max_drop,
                "keras": asdict(report.keras_quality) if report.keras_quality else None,
                "int8": asdict(result.quality) if result.quality else None,
                "map_delta": result.map_delta,
                "macro_f1_delta": result.macro_f1_delta,
                "max_abs_diff": result.max_abs_diff,
                "passed": result.passed,
            },
            "int8_on_sample": {
                "mean_average_precision": int8_sample.mean_average_precision,
                "macro_f1": int8_sample.macro_f1,
            },
            "command": "python benchmarks/export_int8.py"
            + (f" --eval-limit {settings.eval_limit}" if settings.eval_limit else ""),
            "library_versions": library_versions(),
        },
    )
    target = shipped_file(run, EXPORT_FORMAT)
    atomic_write_bytes(target, data)
    atomic_write_text(
        target.with_suffix(".json"),
        json.dumps(jsonable(sidecar), indent=2, sort_keys=True, allow_nan=False) + "\n",
    )
    gate = (
        f"gate mAP {result.map_delta:+.4f} on {report.eval_count} val posters"
        if result.map_delta is not None
        else "gate not applied (no labelled check set)"
    )
    return (
        f"{run.name}: wrote {display_path(target)} ({len(data) / 1e6:.2f} MB); {gate}; "
        f"sample mAP keras {keras_report.mean_average_precision:.4f} / int8 "
        f"{int8_sample.mean_average_precision:.4f}; {time.perf_counter() - started:.0f} s"
    )
