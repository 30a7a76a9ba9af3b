"""Keras -> `.tflite` conversion in four formats, each checked against the Keras model.

Owns `posterlite convert`: float32, float16 (fp16 weights), dynamic-range (int8 weights,
float activations) and full-integer int8 (uint8 input and output, int8 kernels, calibrated
on the calibration poster set through the one preprocessing function). Each file gets the
TFLite Metadata (`posterlite.metadata`) and a JSON sidecar, then checks itself: the new file
runs through `runtime.PosterModel` on a labelled validation sample next to the Keras model,
and the report gives size, probability differences and the change in mAP and macro F1 at
0.5. A format that loses more mAP than `max_drop` is kept as `<name>.<fmt>.FAILED-GATE.tflite`
and the command fails.

Keras 3 path: `model.export(..., format="tf_saved_model")` then
`tf.lite.TFLiteConverter.from_saved_model` (the `from_keras_model` path of TF 2.x does not
understand Keras 3 models). TensorFlow is imported only inside the functions that need it.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from posterlite.card import CARD_NAME, MODEL_NAME, ModelCard, read_card
from posterlite.ensemble import is_ensemble, materialize
from posterlite.errors import PosterliteError
from posterlite.fileio import atomic_write_bytes, atomic_write_text
from posterlite.genres import GenreScheme, default_scheme
from posterlite.metadata import MetadataSpec, Quantization, embed_metadata, write_sidecar
from posterlite.preprocess import PosterDecodeError, load_poster, pixels_to_input
from posterlite.quiet import Captured, captured_output

FORMATS: tuple[str, ...] = ("fp32", "fp16", "dynamic", "int8")
FAILED_TAG = "FAILED-GATE"
CONVERT_LOG = "conversion.log"  # the converter's C++ output, beside conversion.json
DEFAULT_MAX_DROP = 0.01
DEFAULT_CALIBRATION_LIMIT = 200
REPO_CALIBRATION = Path(__file__).resolve().parents[1] / "calibration"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")


@dataclass(frozen=True)
class SourceModel:
    """The Keras model being converted and what its card says."""

    keras_path: Path
    card: ModelCard

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def genres(self) -> tuple[str, ...]:
        return tuple(self.card.genres)


@dataclass(frozen=True)
class EvalSet:
    """Decoded labelled posters (uint8 pixels) shared by the Keras reference and every format."""

    pixels: np.ndarray  # (N, S, S, 3) uint8
    labels: np.ndarray  # (N, G) multi-hot
    paths: tuple[str, ...]
    source: str  # where it came from, for the report
    skipped: int = 0  # undecodable posters left out


@dataclass(frozen=True)
class Quality:
    mean_average_precision: float
    macro_f1: float


@dataclass(frozen=True)
class FormatResult:
    format: str
    path: str
    size_bytes: int
    ratio_to_fp32: float | None
    max_abs_diff: float
    mean_abs_diff: float
    quality: Quality | None
    map_delta: float | None  # tflite - keras (negative = loss)
    macro_f1_delta: float | None
    passed: bool
    seconds: float
    note: str = ""


@dataclass
class ConversionReport:
    model: str
    keras_path: str
    keras_size_bytes: int
    eval_source: str
    eval_count: int
    eval_skipped: int
    calibration: str
    max_drop: float
    keras_quality: Quality | None
    results: list[FormatResult] = field(default_factory=list)

    @property
    def failed(self) -> list[FormatResult]:
        return [r for r in self.results if not r.passed]

    def to_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------------- inputs
def resolve_model(model: Path) -> SourceModel:
    """A run dir or its `model.keras`; the card beside it names genres, size and thresholds."""
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


def load_keras(source: SourceModel) -> Any:
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
    then from the run folder and its parents (train records it as given on its command line)."""
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


def image_files(folder: Path) -> list[Path]:
    """Poster files under `folder` (recursively), sorted for determinism."""
    return sorted(
        p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )


def decode_posters(
    paths: Sequence[Path | str], size: int, workers: int = 2
) -> tuple[np.ndarray, list[int]]:
    """uint8 pixels (N, S, S, 3) of the decodable posters and the indices that decoded."""
    from concurrent.futures import ThreadPoolExecutor

    def one(path: Path | str) -> np.ndarray | None:
        try:
            return load_poster(path, size)
        except PosterDecodeError:
            return None

    with ThreadPoolExecutor(max_workers=workers) as pool:
        decoded = list(pool.map(one, paths))
    kept = [i for i, pixels in enumerate(decoded) if pixels is not None]
    if not kept:
        return np.zeros((0, size, size, 3), np.uint8), []
    return np.stack([decoded[i] for i in kept]), kept


def _sample(items: list, limit: int | None, seed: int = 0) -> list:
    """At most `limit` items, drawn with a fixed seed and kept in their original order."""
    if limit is None or len(items) <= limit:
        return items
    chosen = np.sort(np.random.default_rng(seed).choice(len(items), size=limit, replace=False))
    return [items[i] for i in chosen]


def load_eval_set(
    source: SourceModel, eval_dir: Path | None = None, limit: int | None = None
) -> EvalSet | None:
    """The labelled check set: `eval_dir` (any data layout), else the card's val split."""
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
    card's train split (never the val split the self-check measures on)."""
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
    """Calibration inputs as the model sees them: float32 [-1, 1] (N, S, S, 3)."""
    pixels, kept = decode_posters(paths, size)
    if not kept:
        raise PosterliteError("none of the calibration posters decode")
    return pixels_to_input(pixels, "float32")


# ----------------------------------------------------------------------------- convert
def export_saved_model(model: Any, directory: Path) -> Path:
    target = Path(directory) / "saved_model"
    model.export(str(target), format="tf_saved_model", verbose=False)
    return target


def convert_saved_model(
    saved_model: Path, fmt: str, calibration: np.ndarray | None = None
) -> bytes:
    """TFLite flatbuffer bytes for one format."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    if fmt == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif fmt == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif fmt == "int8":
        if calibration is None or not len(calibration):
            raise PosterliteError("int8 needs calibration posters")

        def representative() -> Any:
            for sample in calibration:
                yield [sample[None].astype(np.float32)]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8
    elif fmt != "fp32":
        raise PosterliteError(f"unknown format {fmt!r} (choose {', '.join(FORMATS)}, all)")
    try:
        return bytes(converter.convert())
    except Exception as exc:  # the converter raises ConverterError, RuntimeError, ValueError
        text = str(exc).strip().splitlines()
        raise PosterliteError(
            f"{fmt} conversion failed: {text[0] if text else type(exc).__name__}"
        ) from exc


def _tensor_quant(model_bytes: bytes) -> tuple[Quantization, Quantization]:
    from posterlite.runtime import _interpreter_class

    interpreter = _interpreter_class()(model_content=model_bytes)
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    return (
        Quantization(float(inp["quantization"][0]), int(inp["quantization"][1])),
        Quantization(float(out["quantization"][0]), int(out["quantization"][1])),
    )


def metadata_spec(source: SourceModel, fmt: str, model_bytes: bytes) -> MetadataSpec:
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


def keras_probabilities(model: Any, pixels: np.ndarray, batch: int = 32) -> np.ndarray:
    """The reference: the Keras model on the same decoded pixels, same preprocessing."""
    outputs = [
        np.asarray(model(pixels_to_input(pixels[i : i + batch], "float32"), training=False))
        for i in range(0, len(pixels), batch)
    ]
    return np.concatenate(outputs).astype(np.float32)


def quality(labels: np.ndarray, probabilities: np.ndarray, genres: Sequence[str]) -> Quality:
    from posterlite.metrics import evaluate

    report = evaluate(labels, probabilities, genres, 0.5)
    return Quality(report.mean_average_precision, report.macro_f1)


def unlabelled_check_pixels(
    source: SourceModel, calibration: Path | None, size: int, limit: int = 64
) -> np.ndarray:
    """Up to `limit` calibration posters, else seeded noise images: something to compare on."""
    try:
        paths, _ = calibration_paths(source, calibration)
        pixels, kept = decode_posters(_sample(paths, limit), size)
        if kept:
            return pixels
    except PosterliteError:
        pass
    return np.random.default_rng(0).integers(0, 256, (16, size, size, 3), dtype=np.uint8)


@dataclass(frozen=True)
class GateVerdict:
    """A format's verdict against the Keras model on the same check set."""

    passed: bool
    map_delta: float | None  # converted - keras (negative = loss)
    macro_f1_delta: float | None
    note: str = ""


def gate(converted: Quality | None, keras: Quality | None, max_drop: float) -> GateVerdict:
    """The accuracy gate: a format fails when its mAP is MORE than `max_drop` below Keras'
    (a drop of exactly `max_drop` passes). Without a labelled check set it passes with a note."""
    if converted is None or keras is None:
        return GateVerdict(True, None, None, "no labelled check set: gate not applied")
    map_delta = converted.mean_average_precision - keras.mean_average_precision
    f1_delta = converted.macro_f1 - keras.macro_f1
    if -map_delta > max_drop:
        note = f"mAP drop {-map_delta:.4f} > max-drop {max_drop:g}"
        return GateVerdict(False, map_delta, f1_delta, note)
    return GateVerdict(True, map_delta, f1_delta)


def output_path(out_dir: Path, name: str, fmt: str, failed: bool = False) -> Path:
    return Path(out_dir) / (
        f"{name}.{fmt}.{FAILED_TAG}.tflite" if failed else f"{name}.{fmt}.tflite"
    )


def check_format(
    path: Path,
    source: SourceModel,
    eval_set: EvalSet | None,
    reference: np.ndarray | None,
    fallback_pixels: np.ndarray | None = None,
) -> tuple[float, float, Quality | None]:
    """Run the new file through the runtime; (max |dp|, mean |dp|, quality or None)."""
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
    when the block fails, its last lines are logged and the error names the log."""
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
    formats: Sequence[str] = FORMATS,
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
    format failed the gate.
    """
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise PosterliteError(f"unknown format {unknown[0]!r} (choose {', '.join(FORMATS)}, all)")
    source = resolve_model(model)
    keras_model = load_keras(source)
    out_dir = Path(out_dir) if out_dir is not None else source.keras_path.parent
    size = source.card.input_size

    if eval_set is None:
        eval_set = load_eval_set(source, eval_dir, eval_limit)
    if eval_set is not None and eval_set.pixels.shape[1] != size:
        raise PosterliteError(f"check set is {eval_set.pixels.shape[1]} px, model {size} px")
    calibration_note = ""
    if "int8" in formats and calibration_inputs is None:
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
            other = output_path(out_dir, source.name, fmt, failed=passed)
            os.replace(staging, final)
            # A stale file of the opposite verdict would contradict this run's verdict.
            other.unlink(missing_ok=True)
            Path(other).with_suffix(".json").unlink(missing_ok=True)
            write_sidecar(final, spec)
            if fmt == "fp32":
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


# ----------------------------------------------------------------------------- report
def format_result_line(result: FormatResult) -> str:
    figures = f"{result.size_bytes / 1e6:.3f} MB, max |dp| {result.max_abs_diff:.4f}"
    if result.quality is not None and result.map_delta is not None:
        figures += (
            f", mAP {result.quality.mean_average_precision:.4f} ({result.map_delta:+.4f}),"
            f" macro F1 {result.quality.macro_f1:.4f} ({result.macro_f1_delta:+.4f})"
        )
    verdict = "ok" if result.passed else f"FAILED GATE: {result.note}"
    return f"{result.format}: {Path(result.path).name}: {figures}; {verdict}"


def report_markdown(report: ConversionReport) -> str:
    lines = [
        f"# Conversion of {report.model}",
        "",
        f"- Keras model: `{report.keras_path}` ({report.keras_size_bytes / 1e6:.3f} MB)",
        f"- check set: {report.eval_source}: {report.eval_count} posters"
        f" ({report.eval_skipped} undecodable left out)",
        f"- calibration (int8): {report.calibration or 'n/a'}",
        f"- gate: a format fails when its mAP is more than {report.max_drop:g} below Keras",
    ]
    if report.keras_quality is not None:
        lines.append(
            f"- Keras: mAP {report.keras_quality.mean_average_precision:.4f}, "
            f"macro F1 @0.5 {report.keras_quality.macro_f1:.4f}"
        )
    lines += [
        "",
        "| format | file | size MB | x fp32 | max abs dp | mean abs dp | mAP | d mAP | macro F1 | d F1 | gate |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in report.results:
        q = r.quality
        ratio = f"{r.ratio_to_fp32:.3f}" if r.ratio_to_fp32 is not None else "-"
        if q is not None and r.map_delta is not None and r.macro_f1_delta is not None:
            figures = (
                f"{q.mean_average_precision:.4f} | {r.map_delta:+.4f} | "
                f"{q.macro_f1:.4f} | {r.macro_f1_delta:+.4f}"
            )
        else:
            figures = "- | - | - | -"
        gate = "pass" if r.passed else f"**FAILED** ({r.note})"
        lines.append(
            f"| {r.format} | {Path(r.path).name} | {r.size_bytes / 1e6:.3f} | {ratio} | "
            f"{r.max_abs_diff:.4f} | {r.mean_abs_diff:.5f} | {figures} | {gate} |"
        )
    return "\n".join(lines) + "\n"


def write_report(report: ConversionReport, out_dir: Path) -> None:
    atomic_write_text(
        Path(out_dir) / "conversion.json",
        json.dumps(report.to_dict(), indent=2, default=float) + "\n",
    )
    atomic_write_text(Path(out_dir) / "conversion.md", report_markdown(report))
