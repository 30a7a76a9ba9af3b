"""Keras -> `.tflite` conversion in four formats, each checked against the Keras model.

Owns `posterlite convert`: float32, float16 (fp16 weights), dynamic-range (int8 weights,
float activations) and full-integer int8 (uint8 input and output, int8 kernels, calibrated
on the calibration poster set through the one preprocessing function). Each file gets the
TFLite Metadata (`posterlite.metadata`) and a JSON sidecar, then checks itself: the new file
runs through `runtime.PosterModel` on a labelled validation sample next to the Keras model,
and the report gives size, probability differences and the change in mAP and macro F1 at
0.5. A format that loses more mAP than `max_drop` is kept as `<name>.<fmt>.FAILED-GATE.tflite`
and the command fails; a passing `<name>.<fmt>.tflite` from an earlier run stays as it was
(a failed run never destroys a good output). The output folder is checked writable, and
`max_drop` non-negative, before any conversion work.

What each format asks of the converter is the format registry's (`posterlite.formats`);
the gate and the report are `posterlite.convert_report`'s.

Keras 3 path: `model.export(..., format="tf_saved_model")` then
`tf.lite.TFLiteConverter.from_saved_model` (the `from_keras_model` path of TF 2.x does not
understand Keras 3 models). TensorFlow is imported only inside the functions that need it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from posterlite.card import CARD_NAME, MODEL_NAME, ModelCard, read_card
from posterlite.convert_report import (
    ConversionReport,
    FormatResult,
    Quality,
    check_max_drop,
    format_result_line,
    gate,
    quality,
    write_report,
)
from posterlite.ensemble import is_ensemble, materialize
from posterlite.errors import PosterliteError
from posterlite.fileio import atomic_write_bytes, check_writable_folder
from posterlite.formats import FLOAT_FORMAT, FORMAT_NAMES, TFLITE_SUFFIX, format_spec
from posterlite.genres import GenreScheme, default_scheme
from posterlite.interpreter import interpreter_from_bytes
from posterlite.metadata import (
    MetadataSpec,
    Quantization,
    embed_metadata,
    sidecar_path,
    write_sidecar,
)
from posterlite.posterfiles import image_files
from posterlite.preprocess import PosterDecodeError, load_poster, pixels_to_input
from posterlite.quiet import Captured, captured_output

if TYPE_CHECKING:  # keras is imported lazily: this module is importable without it
    import keras

T = TypeVar("T")
FAILED_TAG = "FAILED-GATE"
CONVERT_LOG = "conversion.log"  # the converter's C++ output, beside conversion.json
DEFAULT_MAX_DROP = 0.01
DEFAULT_CALIBRATION_LIMIT = 200
REPO_CALIBRATION = Path(__file__).resolve().parents[1] / "calibration"


@dataclass(frozen=True)
class SourceModel:
    """The Keras model being converted and what its card says."""

    keras_path: Path
    card: ModelCard

    @property
    def name(self) -> str:
        """The model's name (its card's): the stem of every file the conversion writes."""
        return self.card.name

    @property
    def genres(self) -> tuple[str, ...]:
        """The model's output genres, in output order."""
        return tuple(self.card.genres)


@dataclass(frozen=True)
class EvalSet:
    """Decoded labelled posters (uint8 pixels) shared by the Keras reference and every format."""

    pixels: np.ndarray  # (N, S, S, 3) uint8
    labels: np.ndarray  # (N, G) multi-hot
    paths: tuple[str, ...]
    source: str  # where it came from, for the report
    skipped: int = 0  # undecodable posters left out


# ----------------------------------------------------------------------------- inputs
def resolve_model(model: Path) -> SourceModel:
    """A run dir or its `model.keras`; the card beside it names genres, size and thresholds.
    Returns the source; raises PosterliteError when there is no Keras (zip) file."""
    model = Path(model)
    keras_path = model / MODEL_NAME if model.is_dir() else model
    if model.is_dir() and is_ensemble(model):
        keras_path = materialize(model)  # not committed: rebuilt from the members
    if not keras_path.is_file():
        raise PosterliteError(f"no Keras model at {keras_path}")
    if not zipfile.is_zipfile(keras_path):
        raise PosterliteError(f"{keras_path}: not a Keras model (.keras zip archive)")
    card = read_card(keras_path.parent) if (keras_path.parent / CARD_NAME).is_file() else None
    if card is None:
        # A bare model.keras still converts: the default scheme, 0.5 and the folder's name.
        scheme = default_scheme()
        card = ModelCard(
            name=keras_path.parent.name or keras_path.stem,
            arch="unknown",
            genres=list(scheme.names),
            input_size=0,  # filled from the model's input shape
            thresholds=[0.5] * scheme.size,
        )
    return SourceModel(keras_path=keras_path, card=card)


def load_keras(source: SourceModel) -> keras.Model:
    """The Keras model of `source`, checked against its card (input (N, S, S, 3), one
    output per genre; a card without an input size takes the model's). Raises
    PosterliteError for an unloadable file or a model that does not fit its card."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    try:
        model = keras.saving.load_model(source.keras_path, compile=False)
    except Exception as exc:  # Keras raises anything from ValueError to KeyError here
        text = str(exc).strip().splitlines()
        raise PosterliteError(
            f"{source.keras_path}: not a loadable Keras model ({text[0] if text else type(exc).__name__})"
        ) from exc
    shape = tuple(model.input_shape)
    if len(shape) != 4 or shape[1] != shape[2] or shape[3] != 3:
        raise PosterliteError(f"{source.keras_path}: input shape {shape} is not (N, S, S, 3)")
    outputs = int(model.output_shape[-1])
    if outputs != len(source.genres):
        raise PosterliteError(
            f"{source.keras_path}: {outputs} outputs but the card names {len(source.genres)} genres"
        )
    if source.card.input_size in (0, None):
        source.card.input_size = int(shape[1])
    elif int(shape[1]) != source.card.input_size:
        raise PosterliteError(
            f"{source.keras_path}: input {shape[1]} px but the card says {source.card.input_size}"
        )
    return model


def card_manifest(source: SourceModel) -> Path | None:
    """The card's training manifest; a relative path is tried from the working directory,
    then from the run folder and its parents (train records it as given on its command
    line). Returns None when there is none or it is not found."""
    if not source.card.manifest:
        return None
    given = Path(source.card.manifest)
    if given.is_absolute():
        return given if given.is_file() else None
    run_dir = source.keras_path.parent.resolve()
    for base in (Path.cwd(), run_dir, *run_dir.parents[:3]):
        if (base / given).is_file():
            return base / given
    return None


def decode_posters(
    paths: Sequence[Path | str], size: int, workers: int = 2
) -> tuple[np.ndarray, list[int]]:
    """uint8 pixels (N, S, S, 3) of the decodable posters and the indices that decoded. Never
    raises for an undecodable poster (it is left out)."""
    from concurrent.futures import ThreadPoolExecutor

    def one(path: Path | str) -> np.ndarray | None:
        try:
            return load_poster(path, size)
        except PosterDecodeError:
            return None

    with ThreadPoolExecutor(max_workers=workers) as pool:
        decoded = list(pool.map(one, paths))
    kept = [i for i, pixels in enumerate(decoded) if pixels is not None]
    arrays = [pixels for pixels in decoded if pixels is not None]
    if not arrays:
        return np.zeros((0, size, size, 3), np.uint8), []
    return np.stack(arrays), kept


def _sample(items: list[T], limit: int | None, seed: int = 0) -> list[T]:
    """At most `limit` items, drawn with a fixed seed and kept in their original order."""
    if limit is None or len(items) <= limit:
        return items
    chosen = np.sort(np.random.default_rng(seed).choice(len(items), size=limit, replace=False))
    return [items[i] for i in chosen]


def load_eval_set(
    source: SourceModel, eval_dir: Path | None = None, limit: int | None = None
) -> EvalSet | None:
    """The labelled check set: `eval_dir` (any data layout), else the card's val split. Returns
    None when there is neither; raises PosterliteError when the set has no labelled poster
    or none decodes."""
    scheme = GenreScheme(names=source.genres)
    size = source.card.input_size
    if eval_dir is not None:
        from posterlite.data import scan_dataset

        scan = scan_dataset(Path(eval_dir), scheme=scheme, progress=False)
        items = [(str(p.path), p.genres) for p in scan.posters]
        where = f"{eval_dir} ({scan.format})"
    else:
        manifest = card_manifest(source)
        if manifest is None:
            return None
        from posterlite.manifest import read_manifest

        items = [(r.path, r.genres) for r in read_manifest(manifest) if r.split == "val"]
        where = f"{manifest} (split val)"
    items = _sample(items, limit)
    if not items:
        raise PosterliteError(f"no labelled posters to check the conversion on in {where}")
    pixels, kept = decode_posters([p for p, _ in items], size)
    if not kept:
        raise PosterliteError(f"none of the {len(items)} check posters in {where} decode")
    labels = np.stack([scheme.to_multi_hot(items[i][1]) for i in kept])
    return EvalSet(
        pixels=pixels,
        labels=labels,
        paths=tuple(items[i][0] for i in kept),
        source=where + (f", limit {limit}" if limit else ""),
        skipped=len(items) - len(kept),
    )


def calibration_paths(
    source: SourceModel, calibration: Path | None, limit: int = DEFAULT_CALIBRATION_LIMIT
) -> tuple[list[Path], str]:
    """Calibration posters: `calibration` dir, else the repo's committed set, else the
    card's train split (never the val split the self-check measures on). Returns (paths,
    where they came from); raises PosterliteError when there are none."""
    if calibration is not None:
        if not Path(calibration).is_dir():
            raise PosterliteError(f"calibration folder not found: {calibration}")
        paths = image_files(calibration)
        if not paths:
            raise PosterliteError(f"no poster images in calibration folder {calibration}")
        return paths, str(calibration)
    if REPO_CALIBRATION.is_dir() and image_files(REPO_CALIBRATION):
        return image_files(REPO_CALIBRATION), str(REPO_CALIBRATION)
    manifest = card_manifest(source)
    if manifest is not None:
        from posterlite.manifest import read_manifest

        train = [Path(r.path) for r in read_manifest(manifest) if r.split == "train"]
        if train:
            return _sample(train, limit), f"{manifest} (train split, {min(limit, len(train))})"
    raise PosterliteError("int8 needs calibration posters: pass --calibration DIR")


def load_calibration(paths: Sequence[Path], size: int) -> np.ndarray:
    """Calibration inputs as the model sees them: float32 [-1, 1] (N, S, S, 3). Raises
    PosterliteError when none decodes."""
    pixels, kept = decode_posters(paths, size)
    if not kept:
        raise PosterliteError("none of the calibration posters decode")
    return pixels_to_input(pixels, "float32")


# ----------------------------------------------------------------------------- convert
def export_saved_model(model: keras.Model, directory: Path) -> Path:
    """`model` exported as a TF SavedModel into `directory/saved_model`; returns that path."""
    target = Path(directory) / "saved_model"
    model.export(str(target), format="tf_saved_model", verbose=False)
    return target


def convert_saved_model(
    saved_model: Path, fmt: str, calibration: np.ndarray | None = None
) -> bytes:
    """TFLite flatbuffer bytes of `saved_model` in format `fmt`, the converter set as the
    format's spec says (`posterlite.formats`); `calibration` (float32 inputs) feeds a
    calibrated format's representative data set. Raises PosterliteError for an unknown
    format, a calibrated one without posters, or a failed conversion."""
    import tensorflow as tf

    spec = format_spec(fmt)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    if spec.optimize:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if spec.supported_types:
        converter.target_spec.supported_types = [tf.as_dtype(t) for t in spec.supported_types]
    if spec.supported_ops:
        converter.target_spec.supported_ops = [
            getattr(tf.lite.OpsSet, op) for op in spec.supported_ops
        ]
    if spec.calibrated:
        if calibration is None or not len(calibration):
            raise PosterliteError(f"{fmt} needs calibration posters")
        samples = calibration

        def representative() -> Iterator[list[np.ndarray]]:
            for sample in samples:
                yield [sample[None].astype(np.float32)]

        converter.representative_dataset = representative
    if spec.io_type is not None:
        converter.inference_input_type = tf.as_dtype(spec.io_type)
        converter.inference_output_type = tf.as_dtype(spec.io_type)
    try:
        return bytes(converter.convert())
    except Exception as exc:  # the converter raises ConverterError, RuntimeError, ValueError
        text = str(exc).strip().splitlines()
        raise PosterliteError(
            f"{fmt} conversion failed: {text[0] if text else type(exc).__name__}"
        ) from exc


def _tensor_quant(model_bytes: bytes) -> tuple[Quantization, Quantization]:
    interpreter = interpreter_from_bytes(model_bytes)
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    return (
        Quantization(float(inp["quantization"][0]), int(inp["quantization"][1])),
        Quantization(float(out["quantization"][0]), int(out["quantization"][1])),
    )


def metadata_spec(source: SourceModel, fmt: str, model_bytes: bytes) -> MetadataSpec:
    """What goes into the `fmt` file's metadata: the card's facts and the converted
    model's own input/output quantization (read from `model_bytes`)."""
    card = source.card
    input_quant, output_quant = _tensor_quant(model_bytes)
    thresholds = tuple(float(t) for t in card.thresholds) or (card.default_threshold,) * len(
        card.genres
    )
    return MetadataSpec(
        name=card.name,
        version=str(card.version),
        genres=tuple(card.genres),
        thresholds=thresholds,
        input_size=int(card.input_size),
        default_threshold=float(card.default_threshold),
        norm_mean=float(card.normalization_mean),
        norm_std=float(card.normalization_std),
        description=(
            f"posterlite {card.arch} multi-label film genre classifier ({fmt}); "
            f"genres: {', '.join(card.genres)}."
        ),
        input_quantization=input_quant,
        output_quantization=output_quant,
        extra={"format": fmt, "source_model": str(source.keras_path), "arch": card.arch},
    )


def keras_probabilities(model: keras.Model, pixels: np.ndarray, batch: int = 32) -> np.ndarray:
    """The reference: the Keras model's probabilities (N, G) float32 on the same decoded
    pixels, same preprocessing."""
    outputs = [
        np.asarray(model(pixels_to_input(pixels[i : i + batch], "float32"), training=False))
        for i in range(0, len(pixels), batch)
    ]
    return np.concatenate(outputs).astype(np.float32)


def unlabelled_check_pixels(
    source: SourceModel, calibration: Path | None, size: int, limit: int = 64
) -> np.ndarray:
    """Up to `limit` calibration posters, else seeded noise images: something to compare on."""
    try:
        paths, _ = calibration_paths(source, calibration)
        chosen = _sample(paths, limit)
        pixels, kept = decode_posters(chosen, size)
        if kept:
            return pixels
    except PosterliteError:
        pass
    return np.random.default_rng(0).integers(0, 256, (16, size, size, 3), dtype=np.uint8)


def output_path(out_dir: Path, name: str, fmt: str, failed: bool = False) -> Path:
    """Where format `fmt` of model `name` goes: `<name>.<fmt>.tflite`, or with `failed`
    `<name>.<fmt>.FAILED-GATE.tflite`. Raises PosterliteError for an unknown format."""
    spec = format_spec(fmt)
    if failed:
        return Path(out_dir) / f"{name}.{spec.name}.{FAILED_TAG}{TFLITE_SUFFIX}"
    return Path(out_dir) / spec.file_name(name)


def check_format(
    path: Path,
    source: SourceModel,
    eval_set: EvalSet | None,
    reference: np.ndarray | None,
    fallback_pixels: np.ndarray | None = None,
) -> tuple[float, float, Quality | None]:
    """Run the new file through the runtime; (max |dp|, mean |dp|, quality or None). Raises
    PosterliteError for a file the runtime refuses."""
    from posterlite.runtime import PosterModel

    model = PosterModel.load(path, threads=2, batch_size=8)
    pixels = eval_set.pixels if eval_set is not None else fallback_pixels
    if pixels is None or reference is None:
        return float("nan"), float("nan"), None
    probabilities = model.predict_pixels(pixels)
    diff = np.abs(probabilities - reference)
    found = quality(eval_set.labels, probabilities, source.genres) if eval_set else None
    return float(diff.max()), float(diff.mean()), found


@contextlib.contextmanager
def converter_output(log_path: Path, log: Callable[[str], None]) -> Iterator[None]:
    """TensorFlow's and the MLIR converter's C++ prints go to `log_path`, not the terminal;
    when the block fails, its last lines are logged and the error names the log. Re-raises
    the block's exception (a PosterliteError with the log's name)."""
    captured = Captured()
    try:
        with captured_output(log_path) as captured:
            yield
    except PosterliteError as exc:
        for line in captured.tail():
            log(f"converter: {line}")
        raise PosterliteError(f"{exc} (converter log: {log_path})") from exc
    except Exception:
        for line in captured.tail():
            log(f"converter: {line}")
        raise


def convert_model(
    model: Path,
    formats: Sequence[str] = FORMAT_NAMES,
    out_dir: Path | None = None,
    calibration: Path | None = None,
    max_drop: float = DEFAULT_MAX_DROP,
    eval_dir: Path | None = None,
    eval_limit: int | None = None,
    eval_set: EvalSet | None = None,
    calibration_inputs: np.ndarray | None = None,
    log: Callable[[str], None] = lambda _: None,
    keras_reference: np.ndarray | None = None,
) -> ConversionReport:
    """Convert, embed metadata, self-check and gate every format; write the report.

    `eval_set` / `calibration_inputs` (and `keras_reference`, the Keras probabilities on
    `eval_set`) let a caller (the benchmarks) decode posters and run Keras once for many
    conversions. Raises `PosterliteError` after writing everything when a
    format failed the gate; an earlier passing file of that format is left untouched.
    Returns the report.
    """
    check_max_drop(max_drop)
    specs = [format_spec(fmt) for fmt in formats]  # an unknown format: one line, now
    source = resolve_model(model)
    out_dir = Path(out_dir) if out_dir is not None else source.keras_path.parent
    check_writable_folder(out_dir)  # before minutes of conversion, not after
    keras_model = load_keras(source)
    size = source.card.input_size

    if eval_set is None:
        eval_set = load_eval_set(source, eval_dir, eval_limit)
    if eval_set is not None and eval_set.pixels.shape[1] != size:
        raise PosterliteError(f"check set is {eval_set.pixels.shape[1]} px, model {size} px")
    calibration_note = ""
    if any(spec.calibrated for spec in specs) and calibration_inputs is None:
        paths, calibration_note = calibration_paths(source, calibration)
        calibration_inputs = load_calibration(paths, size)
        calibration_note += f" ({len(calibration_inputs)} posters)"
    elif calibration_inputs is not None:
        calibration_note = f"caller-supplied ({len(calibration_inputs)} posters)"

    fallback_pixels = None
    if eval_set is not None:
        log(f"check set: {len(eval_set.pixels)} posters from {eval_set.source}")
        reference = (
            keras_reference
            if keras_reference is not None
            else keras_probabilities(keras_model, eval_set.pixels)
        )
        keras_quality = quality(eval_set.labels, reference, source.genres)
    else:
        # No labels anywhere: still compare probabilities with Keras, on posters.
        log("no labelled check set (no card manifest, no --eval): probability diffs only")
        keras_quality = None
        fallback_pixels = unlabelled_check_pixels(source, calibration, size)
        reference = keras_probabilities(keras_model, fallback_pixels)

    report = ConversionReport(
        model=source.name,
        keras_path=str(source.keras_path),
        keras_size_bytes=source.keras_path.stat().st_size,
        eval_source=eval_set.source if eval_set else "none",
        eval_count=len(eval_set.pixels) if eval_set else 0,
        eval_skipped=eval_set.skipped if eval_set else 0,
        calibration=calibration_note,
        max_drop=max_drop,
        keras_quality=keras_quality,
    )
    fp32_size: int | None = None
    log_path = Path(out_dir) / CONVERT_LOG
    log_path.unlink(missing_ok=True)  # one run's converter output
    with tempfile.TemporaryDirectory(prefix="posterlite-convert-") as tmp:
        with converter_output(log_path, log):
            saved_model = export_saved_model(keras_model, Path(tmp))
        for fmt in formats:
            started = time.perf_counter()
            log(f"{fmt}: converting")
            with converter_output(log_path, log):
                raw = convert_saved_model(saved_model, fmt, calibration_inputs)
            spec = metadata_spec(source, fmt, raw)
            data = embed_metadata(raw, spec)
            # Checked under a hidden staging name; renamed to its final or FAILED name only
            # once the check ran, so no half-checked file ever carries a shipping name.
            staging = Path(out_dir) / f".{source.name}.{fmt}.checking.tflite"
            atomic_write_bytes(staging, data)
            try:
                max_diff, mean_diff, found = check_format(
                    staging, source, eval_set, reference, fallback_pixels
                )
            except BaseException:
                staging.unlink(missing_ok=True)
                raise
            verdict = gate(found, keras_quality, max_drop)
            passed, note = verdict.passed, verdict.note
            map_delta, f1_delta = verdict.map_delta, verdict.macro_f1_delta
            final = output_path(out_dir, source.name, fmt, failed=not passed)
            os.replace(staging, final)
            if passed:
                # A stale FAILED-GATE file would contradict this run's verdict.
                stale = output_path(out_dir, source.name, fmt, failed=True)
                stale.unlink(missing_ok=True)
                sidecar_path(stale).unlink(missing_ok=True)
            elif (earlier := output_path(out_dir, source.name, fmt)).is_file():
                # A failing run leaves a passing file of an earlier run (and its sidecar)
                # alone: it passed its own gate; this run's file sits beside it, tagged.
                note += f"; earlier {earlier.name} kept"
            write_sidecar(final, spec)
            if fmt == FLOAT_FORMAT:
                fp32_size = len(data)
            result = FormatResult(
                format=fmt,
                path=str(final),
                size_bytes=len(data),
                ratio_to_fp32=(len(data) / fp32_size) if fp32_size else None,
                max_abs_diff=max_diff,
                mean_abs_diff=mean_diff,
                quality=found,
                map_delta=map_delta,
                macro_f1_delta=f1_delta,
                passed=passed,
                seconds=time.perf_counter() - started,
                note=note,
            )
            report.results.append(result)
            log(format_result_line(result))
    write_report(report, out_dir)
    if report.failed:
        names = ", ".join(f"{r.format} ({r.note})" for r in report.failed)
        raise PosterliteError(
            f"{source.name}: failed the accuracy gate: {names}; kept as *.{FAILED_TAG}.tflite"
        )
    return report
