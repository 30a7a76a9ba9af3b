"""The model benchmark (`posterlite bench`): size, latency, memory and accuracy per model x format.

This module owns the host-CPU benchmark and the report both targets share: finding the
models (`.tflite` files, trained run dirs / `.keras`, or the six shipped models), the
labelled set, the interleaved timing rounds, the ratios, the tables, the JSON report and
the latency-vs-mAP plot. The records (`BenchRow`, `ModelSpec`, ...) live in
`posterlite.benchdata`; the Android target (`posterlite.android`) fills the same rows from
`benchmark_model` runs on a device.

The default run (`posterlite bench`, what `make demo` runs) takes each shipped model's
committed phone-ready file, `models/<name>/model.int8.tflite`, and the Keras model's
figures recorded beside it at export (`benchmarks/export_int8.py`): no conversion and no
TensorFlow. Other formats (`--formats all`) are converted on first use into `.cache/bench/`.

What is measured, per model x format x thread count (host CPU, LiteRT + XNNPACK):
- load: wall time of `Interpreter(...)` + `allocate_tensors()` (ms);
- latency: `invoke()` alone on one prepared poster tensor. Every model is loaded first;
  then `rounds` rounds each take `runs` timed invokes of every model, the models taking
  turns in blocks of 5 (the order rotates each round), so a burst of load from other
  processes hits all models alike.
  p50 is the median of the per-round p50s; mean / p90 / p99 / min / max / std pool all
  samples (ms). Decoding is not in these figures;
- end-to-end: mean per-poster wall time of decode + preprocess (`load_poster` +
  `PosterModel.prepare`) + invoke + dequantize over the labelled set, one poster at a time;
- size: bytes on disk of the model file;
- peak memory: peak RSS (`VmHWM`, reset through `/proc/self/clear_refs` just before
  loading) of a fresh Python process while it loads the model, allocates tensors and
  invokes once, minus its RSS just before loading (numpy + LiteRT already imported), in MB.
  It covers the interpreter's arena, XNNPACK's packed weights and the mapped model file;
- accuracy on the labelled set at threshold 0.5: every figure `metrics.evaluate` gives,
  and the change against the Keras float model on the same posters (measured in this run,
  or recorded at export when the posters and their decoded pixels are the same).
Google's two published int8 MobileNetV2 files are latency + size reference rows; our int8
MobileNetV2 over Google's post-training int8 file is the anchor ratio (goal <= 1.10x).
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from posterlite.benchdata import (
    BenchRow,
    KerasDelta,
    KerasReference,
    LabelledSet,
    LatencyStats,
    ModelSpec,
    load_labelled_set,
    preprocess_version,
)
from posterlite.ensemble import is_ensemble, materialize
from posterlite.errors import PosterliteError
from posterlite.fileio import atomic_path, atomic_write_text, jsonable, library_versions
from posterlite.genres import default_scheme
from posterlite.metrics import DEFAULT_THRESHOLD, MultiLabelReport, evaluate
from posterlite.preprocess import DEFAULT_SIZE, PosterDecodeError, load_poster, pixels_to_input

FORMATS: tuple[str, ...] = ("fp32", "fp16", "dynamic", "int8")
DEFAULT_FORMATS: tuple[str, ...] = ("int8",)
SHIPPED_MODELS: tuple[str, ...] = (
    "cnn",
    "cnn_smote",
    "mobilenet_v1",
    "mobilenet_v1_smote",
    "mobilenet_v2",
    "mobilenet_v2_smote",
    # the fine-tuned mobilenet_v2 exported at 160 px: the fast point of the frontier
    "mobilenet_v2_160",
    "ensemble_v1smote_v2",  # accuracy-first: V1_smote + V2 averaged in one file (~2.2x V2)
)
REPO = Path(__file__).resolve().parents[1]
MODELS_DIR = REPO / "models"
DEFAULT_SAMPLE = REPO / "benchmarks" / "sample"
CACHE_DIR = REPO / ".cache" / "bench"
REFERENCE_FILES: tuple[str, ...] = (
    "tf2_mobilenet_v2_1.0_224_ptq.tflite",
    "mobilenet_v2_1.0_224_quant.tflite",
)
# The anchor ratio: our int8 MobileNetV2 against Google's post-training int8 MobileNetV2,
# the same network and quantization recipe, so it isolates what posterlite adds.
ANCHOR_MODEL = "mobilenet_v2"
ANCHOR_REFERENCE = REFERENCE_FILES[0]
ANCHOR_GOAL = 1.10
DEFAULT_ROUNDS = 5
DEFAULT_RUNS = 30
DEFAULT_WARMUP = 5
SCHEMA = "posterlite-bench/2"
MEMORY_METHOD = "peak RSS growth (ru_maxrss) of a fresh process across load + allocate + 1 invoke"
KERAS_REFERENCE_KEY = "keras_reference"


def shared_dir() -> Path:
    return Path(os.environ.get("POSTERLITE_SHARED", REPO.parent / "shared"))


def shipped_file(run_dir: Path, fmt: str) -> Path:
    """Where a run folder keeps its committed phone-ready file of `fmt`."""
    return Path(run_dir) / f"model.{fmt}.tflite"


def default_outputs() -> tuple[Path, Path]:
    """(JSON, plot) written by every CLI run unless --json / --plot say otherwise."""
    return CACHE_DIR / "bench.json", CACHE_DIR / "bench.png"


@dataclass
class BenchReport:
    rows: list[BenchRow]
    target: str
    settings: dict[str, Any]
    hardware: dict[str, Any]
    library_versions: dict[str, str]
    data: dict[str, Any]
    ratios: list[Ratio] = field(default_factory=list)
    keras_references: dict[str, KerasReference] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    created: str = field(
        default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds")
    )

    def table(self, wide: bool = False) -> str:
        """The CLI's table: the summary (CPU above, ratios below), or every figure per row."""
        return markdown_table(self.rows) if wide else summary_table(self)


@dataclass(frozen=True)
class Ratio:
    """p50 of one row over another's, both from the same interleaved rounds."""

    name: str
    numerator: str  # row label
    denominator: str
    threads: int | None
    value: float  # ratio of the median-of-rounds p50s
    per_round: tuple[float, ...] = ()  # the ratio within each round
    goal: float | None = None  # at most
    note: str = ""

    @property
    def met(self) -> bool | None:
        return None if self.goal is None else self.value <= self.goal


# ----------------------------------------------------------------------------- models
def _split_name(path: Path) -> tuple[str, str]:
    """`<name>.<fmt>.tflite` -> (name, fmt); anything else -> (stem, "tflite").

    A shipped `model.<fmt>.tflite` is named after its folder (`models/<name>/`).
    """
    stem = path.name[: -len(".tflite")] if path.name.endswith(".tflite") else path.stem
    name, _, fmt = stem.rpartition(".")
    if name and fmt in FORMATS:
        if name == "model" and path.parent.name:
            name = path.parent.resolve().name
        return name, fmt
    return stem, "tflite"


def _run_name(source: Path) -> str:
    """Name of a trained run (its card), else of its folder."""
    from posterlite.card import read_card

    try:
        return read_card(source).name
    except PosterliteError:
        return (source if source.is_dir() else source.parent).name


def _keras_file(source: Path) -> Path:
    path = source / "model.keras" if source.is_dir() else source
    if source.is_dir() and is_ensemble(source):
        path = materialize(source)  # an ensemble's model.keras is rebuilt, not committed
    if not path.is_file():
        raise PosterliteError(f"{source}: no model.keras in this run folder")
    return path


def _file_digest(path: Path, length: int = 12) -> str:
    from posterlite.fileio import sha256_file

    return sha256_file(path)[:length]


def read_sidecar(tflite: Path) -> dict[str, Any]:
    """The JSON sidecar (`<file>.json`) of a `.tflite`, or {} when absent or unreadable."""
    path = Path(tflite).with_suffix(".json")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def recorded_reference(tflite: Path) -> KerasReference | None:
    data = read_sidecar(tflite).get(KERAS_REFERENCE_KEY)
    return KerasReference.from_dict(data) if isinstance(data, dict) else None


def _shipped_if_fresh(folder: Path, fmt: str, keras_path: Path) -> tuple[Path | None, str]:
    """The committed `model.<fmt>.tflite` when it was exported from this `model.keras`.

    Returns (path or None, warning). A file exported from another `model.keras` (the model
    was retrained since) would report figures of the old model: it is not used.
    """
    path = shipped_file(folder, fmt)
    if not path.is_file():
        return None, ""
    reference = recorded_reference(path)
    if reference is not None and reference.keras_sha256 != _file_digest(keras_path, 64):
        return None, (
            f"{path} was exported from an older {keras_path.name}; converting instead "
            "(refresh it: python benchmarks/export_int8.py)"
        )
    return path, ""


def _existing_tflite(folder: Path, name: str, fmt: str) -> Path | None:
    """A conversion already written beside the run (`convert`'s naming), if any."""
    for candidate in (folder / f"{name}.{fmt}.tflite", folder / "tflite" / f"{name}.{fmt}.tflite"):
        if candidate.is_file():
            return candidate
    return None


def resolve_models(
    sources: Sequence[str | Path],
    formats: Sequence[str] = DEFAULT_FORMATS,
    *,
    keras_baseline: bool = True,
    cache_dir: Path | None = None,
    posters: LabelledSet | None = None,
    convert: Callable[..., None] | None = None,
    warnings: list[str] | None = None,
) -> list[ModelSpec]:
    """ModelSpecs for the CLI's MODEL arguments (or the six shipped models when empty).

    `.tflite` files are taken as they are. For run dirs and `.keras` files each format is
    the committed `model.<fmt>.tflite` when it is up to date, else a conversion found
    beside the run, else one made into the cache. A Keras baseline spec is added when
    `keras_baseline` is set and no recorded Keras figures fit `posters`.
    """
    if not sources:
        found = [MODELS_DIR / name for name in SHIPPED_MODELS if (MODELS_DIR / name).is_dir()]
        if not found:
            raise PosterliteError(
                f"no trained models under {MODELS_DIR} (expected {', '.join(SHIPPED_MODELS)}); "
                "train them first or pass MODEL paths"
            )
        sources = found
    specs: list[ModelSpec] = []
    for raw in sources:
        source = Path(raw)
        if not source.exists():
            raise PosterliteError(f"model not found: {source}")
        if source.is_file() and source.suffix == ".tflite":
            from posterlite.interpreter import verify_model_file

            name, fmt = _split_name(verify_model_file(source))
            reference = fitting_reference(recorded_reference(source), posters)
            specs.append(ModelSpec(name, fmt, source, "posterlite", reference))
            continue
        if source.is_file() and source.suffix != ".keras":
            raise PosterliteError(f"{source}: not a .tflite, .keras or trained run folder")
        keras_path = _keras_file(source)
        name = _run_name(source)
        folder = keras_path.parent
        wanted: dict[str, Path | None] = {}
        for fmt in formats:
            path, warning = _shipped_if_fresh(folder, fmt, keras_path)
            if warning and warnings is not None:
                warnings.append(warning)
            wanted[fmt] = path or _existing_tflite(folder, name, fmt)
        missing = [fmt for fmt, path in wanted.items() if path is None]
        if missing:
            converted = convert_to_cache(
                keras_path, name, missing, cache_dir or CACHE_DIR, posters, convert=convert
            )
            wanted.update(converted)
        reference = None
        for path in wanted.values():
            reference = reference or fitting_reference(recorded_reference(path), posters)
        if reference is None and posters is not None and "int8" not in wanted:
            # With int8 among the formats its shipped file was already looked at above.
            shipped, _ = _shipped_if_fresh(folder, "int8", keras_path)
            reference = fitting_reference(recorded_reference(shipped), posters) if shipped else None
        if keras_baseline and (reference is None or posters is None):
            specs.append(ModelSpec(name, "keras", keras_path, "keras"))
        specs.extend(
            ModelSpec(name, fmt, path, "posterlite", reference)
            for fmt, path in wanted.items()
            if path
        )
    return specs


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


def reference_specs(directory: Path | None = None) -> list[ModelSpec]:
    """Google's published int8 MobileNetV2 files, when `../shared/pretrained` has them."""
    directory = directory or shared_dir() / "pretrained"
    specs = []
    for filename in REFERENCE_FILES:
        path = directory / filename
        if path.is_file():
            tag = "int8-ptq" if "ptq" in filename else "int8-qat"
            specs.append(ModelSpec(f"google_{path.stem}", tag, path, "reference"))
    return specs


def convert_to_cache(
    keras_path: Path,
    name: str,
    formats: Sequence[str],
    cache_dir: Path,
    posters: LabelledSet | None = None,
    *,
    convert: Callable[..., None] | None = None,
) -> dict[str, Path]:
    """`<cache>/<name>-<sha12>/<name>.<fmt>.tflite` for each format, converting what is missing."""
    out = Path(cache_dir) / f"{name}-{_file_digest(keras_path)}"
    result = {fmt: out / f"{name}.{fmt}.tflite" for fmt in formats}
    todo = [fmt for fmt, path in result.items() if not path.is_file()]
    if todo:
        import click

        click.echo(f"converting {name} to {', '.join(todo)} (once, into {out})", err=True)
        (convert or convert_keras)(keras_path, out, name, todo, posters)
    missing = [str(p) for p in result.values() if not p.is_file()]
    if missing:
        raise PosterliteError(f"conversion did not produce {', '.join(missing)}")
    return result


def _eval_set(keras_path: Path, posters: LabelledSet | None):
    """The labelled set as `convert`'s check set (decoded once), or None to let it choose."""
    if posters is None:
        return None
    from posterlite.card import read_card
    from posterlite.convert import EvalSet, decode_posters

    card = read_card(keras_path)
    pixels, kept = decode_posters(list(posters.paths), card.input_size)
    if not kept:
        return None
    labels = posters.targets(card.genres)[kept]
    paths = tuple(str(posters.paths[i]) for i in kept)
    return EvalSet(pixels, labels, paths, f"{posters.root} (bench labelled set)")


def convert_keras(
    keras_path: Path,
    out: Path,
    name: str,
    formats: Sequence[str],
    posters: LabelledSet | None,
) -> None:
    """Convert with `posterlite.convert.convert_model` (metadata, sidecar, self-check).

    Bench reports accuracy itself, so the converter's accuracy gate is off here
    (`max_drop=inf`). int8 calibrates on what `convert` finds (calibration/ or the card's
    train split); only when it finds nothing are the bench posters used, with a warning,
    since calibrating on the evaluation set flatters int8 a little.
    """
    from posterlite.convert import convert_model, load_calibration

    eval_set = _eval_set(keras_path, posters)
    try:
        convert_model(keras_path, formats=list(formats), out_dir=out, eval_set=eval_set,
                      max_drop=math.inf)  # fmt: skip
    except PosterliteError as exc:
        if "calibration" not in str(exc) or posters is None:
            raise
        import click

        click.echo(f"warning: {exc}; calibrating {name} int8 on the bench posters", err=True)
        size = int(eval_set.pixels.shape[1]) if eval_set is not None else DEFAULT_SIZE
        convert_model(
            keras_path,
            formats=list(formats),
            out_dir=out,
            eval_set=eval_set,
            max_drop=math.inf,
            calibration_inputs=load_calibration(list(posters.paths), size),
        )


def default_labelled_set() -> LabelledSet | None:
    """The bundled sample (benchmarks/sample) when present; None means no accuracy columns."""
    if not DEFAULT_SAMPLE.exists():
        return None
    return load_labelled_set(DEFAULT_SAMPLE)


# ---------------------------------------------------------------------------- timing
def time_invokes(invoke: Callable[[], Any], runs: int, warmup: int) -> list[float]:
    """Seconds per call of `invoke` for `runs` calls after `warmup` untimed ones.

    The loop is deliberately bare (perf_counter around the call, preallocated list) so it
    adds nothing measurable over a plain `invoke()` loop; `benchmarks/bench_overhead.py`
    checks that.
    """
    if runs < 1:
        raise PosterliteError(f"runs must be >= 1, got {runs}")
    for _ in range(warmup):
        invoke()
    samples = [0.0] * runs
    clock = time.perf_counter
    for index in range(runs):
        start = clock()
        invoke()
        samples[index] = clock() - start
    return samples


@dataclass
class Timed:
    """One row being timed: its invoke and the samples of each round."""

    row: BenchRow
    invoke: Callable[[], Any]
    first_s: float | None = None
    rounds: list[list[float]] = field(default_factory=list)


# Invokes of one row in a row within a round: small, so every row's samples of a round
# spread over the whole round and see the same load from other processes.
INTERLEAVE_BLOCK = 5


def interleaved_rounds(
    timed: Sequence[Timed],
    rounds: int,
    runs: int,
    warmup: int,
    on_round: Callable[[], None] = lambda: None,
    block: int = INTERLEAVE_BLOCK,
) -> None:
    """`rounds` rounds of `runs` timed invokes per row, the rows taking turns in blocks.

    Within a round the rows take turns, `block` timed invokes each, until each has `runs`;
    the order of turns rotates every round. One untimed invoke precedes each block, so the
    caches another model filled are refilled by this one outside the timed loop.
    """
    if rounds < 1:
        raise PosterliteError(f"--rounds must be >= 1, got {rounds}")
    for item in timed:
        for _ in range(warmup):
            item.invoke()
    count = len(timed)
    block = max(1, block)
    for index in range(rounds):
        samples: list[list[float]] = [[] for _ in timed]
        done = 0
        while done < runs:
            size = min(block, runs - done)
            for offset in range(count):
                position = (index + offset) % count
                samples[position] += time_invokes(timed[position].invoke, size, 1)
            done += size
        for item, taken in zip(timed, samples, strict=True):
            item.rounds.append(taken)
        on_round()
    for item in timed:
        item.row.latency = LatencyStats.from_rounds(item.rounds, item.first_s)


_MEMORY_PROBE = r"""
import resource, sys
import numpy as np
try:
    from ai_edge_litert.interpreter import Interpreter
except ImportError:
    from tflite_runtime.interpreter import Interpreter

def status_kb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None

# Reset the RSS high-water mark so the import's own peak does not count (Linux >= 4.0);
# else fall back to ru_maxrss, which then may include it.
try:
    open("/proc/self/clear_refs", "w").write("5")
    reset = True
except OSError:
    reset = False
before = status_kb("VmRSS")
interpreter = Interpreter(model_path=sys.argv[1], num_threads=int(sys.argv[2]))
interpreter.allocate_tensors()
for detail in interpreter.get_input_details():
    interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
interpreter.invoke()
peak = status_kb("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(before, peak)
"""


def peak_memory_mb(path: Path, threads: int = 1, timeout: float = 300.0) -> float | None:
    """Peak RSS growth (MB) of a fresh process loading + running `path` once; None if unknown."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", _MEMORY_PROBE, str(path), str(threads)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        before, after = (int(v) for v in done.stdout.split()[-2:])
    except (subprocess.SubprocessError, ValueError, OSError):
        return None
    return max(0, after - before) / 1024.0  # KiB -> MiB


# ------------------------------------------------------------------------ CPU runners
def _random_pixels(size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (1, size, size, 3), dtype=np.uint8)


@dataclass
class LabelledPass:
    probabilities: np.ndarray  # (N, G) for the decodable posters
    kept: np.ndarray  # indices into the labelled set
    end_to_end_s: list[float]
    failed: int


def _labelled_pass(
    posters: LabelledSet, size: int, predict: Callable[[np.ndarray], np.ndarray]
) -> LabelledPass:
    """Decode + preprocess + predict one poster at a time, timing each end to end."""
    probabilities, kept, times = [], [], []
    failed = 0
    clock = time.perf_counter
    for index, path in enumerate(posters.paths):
        start = clock()
        try:
            pixels = load_poster(path, size)
        except PosterDecodeError:
            failed += 1
            continue
        probs = predict(pixels[None])
        times.append(clock() - start)
        probabilities.append(np.asarray(probs).reshape(-1))
        kept.append(index)
    if not probabilities:
        raise PosterliteError(f"{posters.root}: no poster of the labelled set could be decoded")
    return LabelledPass(np.stack(probabilities), np.asarray(kept), times, failed)


def _accuracy(
    posters: LabelledSet, result: LabelledPass, genres: Sequence[str]
) -> MultiLabelReport:
    y_true = posters.targets(genres)[result.kept]
    return evaluate(y_true, result.probabilities, list(genres), DEFAULT_THRESHOLD)


def prepare_tflite_cpu(
    spec: ModelSpec,
    threads: Sequence[int],
    posters: LabelledSet | None,
    measure_memory: bool = True,
) -> list[Timed]:
    """Load one `.tflite` per thread count, score it on the labelled set; ready to time."""
    from posterlite.runtime import PosterModel

    timed = []
    accuracy: MultiLabelReport | None = None
    memory = peak_memory_mb(spec.path, threads[0]) if measure_memory else None
    for count in threads:
        start = time.perf_counter()
        model = PosterModel.load(spec.path, threads=count)
        load_ms = (time.perf_counter() - start) * 1e3
        interpreter = model.interpreter
        input_index = interpreter.get_input_details()[0]["index"]
        interpreter.set_tensor(input_index, model.prepare(_random_pixels(model.input_size)))
        first = time.perf_counter()
        interpreter.invoke()
        first_s = time.perf_counter() - first
        row = BenchRow(
            model=spec.name,
            format=spec.format,
            kind=spec.kind,
            path=str(spec.path),
            target="cpu",
            threads=count,
            size_bytes=spec.path.stat().st_size,
            load_ms=load_ms,
            peak_memory_mb=memory if count == threads[0] else None,
            memory_method=MEMORY_METHOD if memory is not None and count == threads[0] else "",
        )
        if posters is not None and spec.kind != "reference":
            result = _labelled_pass(posters, model.input_size, model.predict_pixels)
            row.end_to_end_ms = statistics.fmean(result.end_to_end_s) * 1e3
            if accuracy is None:
                accuracy = _accuracy(posters, result, model.genres)
            row.accuracy = accuracy
            if result.failed:
                row.notes.append(f"{result.failed} posters could not be decoded")
        if spec.kind == "reference":
            row.notes.append("ImageNet 1001-class reference: latency and size only")
        timed.append(Timed(row, interpreter.invoke, first_s))
    return timed


def bench_tflite_cpu(
    spec: ModelSpec,
    threads: Sequence[int],
    runs: int,
    warmup: int,
    posters: LabelledSet | None,
    measure_memory: bool = True,
    rounds: int = 1,
) -> list[BenchRow]:
    """Rows for one `.tflite` on the host CPU, one per thread count (timed on its own)."""
    timed = prepare_tflite_cpu(spec, threads, posters, measure_memory)
    interleaved_rounds(timed, rounds, runs, warmup)
    return [item.row for item in timed]


_KERAS_THREADS: int | None = None


def _configure_tf_threads(threads: int) -> int | None:
    """TF's intra-op pool size can only be set before TF starts; report what is in force."""
    global _KERAS_THREADS
    import tensorflow as tf

    from posterlite.quiet import quiet_python_loggers

    quiet_python_loggers()
    if _KERAS_THREADS is None:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
            _KERAS_THREADS = threads
        except RuntimeError:
            _KERAS_THREADS = tf.config.threading.get_intra_op_parallelism_threads() or None
    return _KERAS_THREADS


def prepare_keras_cpu(spec: ModelSpec, threads: int, posters: LabelledSet | None) -> Timed:
    """The float Keras model as a baseline row (TF eager call, batch 1), ready to time."""
    from posterlite.quiet import captured_output

    with captured_output():  # TensorFlow's import and first call print from C++
        in_force = _configure_tf_threads(threads)
        import keras

        start = time.perf_counter()
        model = keras.models.load_model(spec.path, compile=False)
        load_ms = (time.perf_counter() - start) * 1e3
        size = int(model.input_shape[1])
        x = pixels_to_input(_random_pixels(size), "float32")

        def call(batch: np.ndarray = x) -> np.ndarray:
            return np.asarray(model(batch, training=False))

        first = time.perf_counter()
        call()
        first_s = time.perf_counter() - first
    from posterlite.card import read_card

    try:
        genres: Sequence[str] = read_card(spec.path).genres
    except PosterliteError:
        genres = default_scheme().names
    row = BenchRow(
        model=spec.name,
        format="keras",
        kind="keras",
        path=str(spec.path),
        target="cpu",
        threads=in_force,
        size_bytes=spec.path.stat().st_size,
        load_ms=load_ms,
        delegate="tensorflow",
        notes=["Keras float baseline (TensorFlow eager, batch 1)"],
    )
    if posters is not None:
        result = _labelled_pass(posters, size, lambda p: call(pixels_to_input(p, "float32")))
        row.end_to_end_ms = statistics.fmean(result.end_to_end_s) * 1e3
        if len(genres) == result.probabilities.shape[1]:
            row.accuracy = _accuracy(posters, result, genres)
    return Timed(row, call, first_s)


def bench_keras_cpu(
    spec: ModelSpec, threads: int, runs: int, warmup: int, posters: LabelledSet | None
) -> BenchRow:
    """The Keras baseline row timed on its own."""
    timed = prepare_keras_cpu(spec, threads, posters)
    interleaved_rounds([timed], 1, runs, warmup)
    return timed.row


# --------------------------------------------------------------------------- the run
def _progress(total: int, desc: str, unit: str = "model"):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False)


def run_cpu(
    specs: Sequence[ModelSpec],
    threads: Sequence[int],
    runs: int,
    warmup: int,
    posters: LabelledSet | None,
    measure_memory: bool = True,
    rounds: int = DEFAULT_ROUNDS,
) -> list[BenchRow]:
    """Load and score every spec, then time them all in interleaved rounds."""
    timed: list[Timed] = []
    with _progress(len(specs), "bench cpu: load + accuracy") as bar:
        for spec in specs:
            bar.set_postfix_str(f"{spec.name}/{spec.format}")
            if spec.kind == "keras":
                timed.append(prepare_keras_cpu(spec, threads[0], posters))
            else:
                timed.extend(prepare_tflite_cpu(spec, threads, posters, measure_memory))
            bar.update(1)
    with _progress(rounds, "bench cpu: timing rounds", unit="round") as bar:
        interleaved_rounds(timed, rounds, runs, warmup, on_round=lambda: bar.update(1))
    return [item.row for item in timed]


# ---------------------------------------------------------------------------- ratios
def _ratio(name: str, top: BenchRow, bottom: BenchRow, goal: float | None, note: str) -> Ratio:
    assert top.latency is not None and bottom.latency is not None
    per_round: tuple[float, ...] = ()
    a, b = top.latency.round_p50_ms, bottom.latency.round_p50_ms
    if a and len(a) == len(b):
        per_round = tuple(x / y for x, y in zip(a, b, strict=True) if y > 0)
    return Ratio(
        name=name,
        numerator=top.label,
        denominator=bottom.label,
        threads=top.threads,
        value=top.latency.p50_ms / bottom.latency.p50_ms,  # type: ignore[operator]
        per_round=per_round,
        goal=goal,
        note=note,
    )


def compute_ratios(rows: Sequence[BenchRow]) -> list[Ratio]:
    """The anchor (our int8 MobileNetV2 / Google's int8 MobileNetV2) and each int8 / fp32."""
    timed = [r for r in rows if r.latency is not None and r.latency.p50_ms]
    browser_rows = [r for r in timed if r.target == "browser"]
    timed = [r for r in timed if r.target != "browser"]
    ratios: list[Ratio] = []
    for row in browser_rows:  # goal <= 4x native LiteRT (issue 13), unthrottled
        # Native LiteRT at the browser row's own thread count: a threaded page over a
        # one-thread native run would flatter the browser by the threads' speed-up.
        natives = (
            r
            for r in timed
            if r.target == "cpu"
            and r.kind == row.kind
            and r.path == row.path
            and r.threads == row.threads
        )
        for native in natives:
            throttle = row.device.get("cpu_throttle", "?")
            name = f"browser ({row.device.get('model', '?')}) / native LiteRT"
            note = (
                f"same run, both at {row.threads} thread(s); the page's p50 (one poster, "
                "decode excluded) over invoke's p50"
            )
            ratios.append(_ratio(name, row, native, 4.0 if throttle == "1" else None, note))
    for threads in sorted({r.threads for r in timed if r.threads is not None}):
        same = [r for r in timed if r.threads == threads]
        google = [
            r for r in same if r.kind == "reference" and Path(r.path).name == ANCHOR_REFERENCE
        ]
        ours = [r for r in same if r.kind == "posterlite" and r.format == "int8"]
        for row in (r for r in ours if r.model == ANCHOR_MODEL):
            for reference in google:
                ratios.append(
                    _ratio(
                        "anchor: our int8 MobileNetV2 / Google's int8 MobileNetV2",
                        row,
                        reference,
                        ANCHOR_GOAL,
                        "same network, both post-training int8; ours adds uint8 I/O, "
                        "a 6-genre head and metadata",
                    )
                )
        for row in ours:
            fp32 = [r for r in same if r.kind == "posterlite" and r.model == row.model
                    and r.format == "fp32"]  # fmt: skip
            for base in fp32:
                ratios.append(
                    _ratio(
                        "int8 / fp32",
                        row,
                        base,
                        None,
                        "depends on the CPU's int8 kernels: lower where XNNPACK has fast int8 "
                        "dot products than on wide float units (e.g. AVX-512)",
                    )
                )
    return ratios


def keras_deltas(rows: Sequence[BenchRow], specs: Sequence[ModelSpec]) -> None:
    """Fill each row's change against its Keras model: measured here, else recorded."""
    measured = {r.model: r.accuracy for r in rows if r.kind == "keras" and r.accuracy}
    recorded = {s.name: s.keras_reference for s in specs if s.keras_reference is not None}
    for row in rows:
        if row.kind != "posterlite" or row.accuracy is None:
            continue
        base: MultiLabelReport | KerasReference | None = measured.get(row.model)
        source = "measured"
        if base is None:
            base, source = recorded.get(row.model), "recorded"
        if base is not None:
            row.vs_keras = KerasDelta(
                row.accuracy.mean_average_precision - base.mean_average_precision,
                row.accuracy.macro_f1 - base.macro_f1,
                source,
            )


# --------------------------------------------------------------------- environment
def cpu_model() -> str:
    """The CPU's marketing name (`lscpu`'s "Model name"), from /proc/cpuinfo."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.lower().startswith(("model name", "hardware", "processor\t: arm")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def hardware_info() -> dict[str, Any]:
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 0
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    return {
        "cpu_model": cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "load_average_1min_at_end": load,
        "machine": platform.machine(),
        "system": platform.platform(),
        "python": platform.python_version(),
    }


# ---------------------------------------------------------------------------- output
def _fmt(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if 0 < abs(value) < 1 and digits < 3:  # tiny models: keep three decimals
        digits = 3
    return f"{value:.{digits}f}"


def _signed(value: float | None, digits: int = 4) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:+.{digits}f}"


def _target_cell(row: BenchRow) -> str:
    return row.target if not row.device else f"{row.target} ({row.device.get('model', '?')})"


def summary_table(report: BenchReport) -> str:
    """The table a person reads at a glance, with the CPU above it and the ratios below.

    One line per model x format x thread count: size, p50 latency, mAP, macro F1 at 0.5
    and the change in mAP against the Keras model. Everything else is in the JSON.
    """
    rows = report.rows
    threads = sorted({r.threads for r in rows if r.threads is not None})
    show_threads = len(threads) > 1
    show_target = report.target != "cpu"
    hw = report.hardware
    versions = report.library_versions
    runtime = f"LiteRT {versions.get('ai-edge-litert', '?')} + XNNPACK"
    settings = report.settings
    if report.target in ("cpu", "browser"):  # the browser's rows run on this CPU too
        timing = (
            f"p50 = median of {settings.get('rounds')} interleaved rounds x "
            f"{settings.get('runs')} invokes"
        )
        where = f"host CPU: {hw.get('cpu_model')} ({hw.get('logical_cores')} logical cores)"
        if report.target == "browser":
            timing += (
                f"; browser rows: p50 of {settings.get('runs')} warm classify calls in the page "
                f"(headless Chromium, CPU throttle {settings.get('cpu_throttle')})"
            )
    else:
        device = next((r.device for r in rows if r.device), {})
        timing = f"benchmark_model, {settings.get('runs')} runs"
        where = f"{device.get('model', 'device')} ({device.get('abi', '?')}) via adb"
    data = report.data
    accuracy = (
        f"accuracy on {data['posters']} posters ({data['path']}), threshold {DEFAULT_THRESHOLD:g}"
        if data.get("posters")
        else "no labelled set: no accuracy"
    )
    lines = [
        f"posterlite bench | {where} | {runtime} | threads {','.join(map(str, threads))}",
        f"{timing}; {accuracy}",
        "",
    ]
    header = ["model", "format"]
    header += ["target"] if show_target else []
    header += ["threads"] if show_threads else []
    header += ["MB", "p50 ms", "mAP", "macro F1", "mAP vs Keras"]
    left = 2 + int(show_target) + int(show_threads)
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * left + "---:|" * 5]
    for row in rows:
        if row.kind == "keras" and report.target != "cpu":
            continue
        acc = row.accuracy
        cells = [row.model if row.kind != "reference" else f"{row.model} (ImageNet)", row.format]
        cells += [_target_cell(row)] if show_target else []
        cells += ["-" if row.threads is None else str(row.threads)] if show_threads else []
        delta = row.vs_keras.mean_average_precision if row.vs_keras else None
        cells += [
            _fmt(row.size_bytes / 1e6),
            _fmt(row.latency.p50_ms if row.latency else None),
            _fmt(acc.mean_average_precision if acc else None, 4),
            _fmt(acc.macro_f1 if acc else None, 4),
            "baseline" if row.kind == "keras" else _signed(delta),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for ratio in report.ratios:
        spread = (
            f"; per round {min(ratio.per_round):.2f}-{max(ratio.per_round):.2f}"
            if ratio.per_round
            else ""
        )
        goal = ""
        if ratio.goal is not None:
            goal = f" (goal <= {ratio.goal:.2f}x: {'met' if ratio.met else 'MISSED'})"
        lines.append(
            f"{ratio.name}, {ratio.threads} thread(s): {ratio.numerator} / "
            f"{ratio.denominator} = {ratio.value:.2f}x{goal}{spread}"
        )
    wanted = settings.get("references") and report.target == "cpu"
    if wanted and not any(Path(r.path).name == ANCHOR_REFERENCE for r in rows):
        lines.append(
            f"anchor ratio not measured: Google's {ANCHOR_REFERENCE} not found under "
            f"{shared_dir() / 'pretrained'}"
        )
    sources = {r.vs_keras.source for r in rows if r.vs_keras}
    if "recorded" in sources:
        lines.append(
            "mAP vs Keras: the Keras model's mAP on these posters recorded at export "
            "(models/<name>/model.int8.json), same decoded pixels"
        )
    lines += sorted({f"MediaPipe rows: {r.notes[0]}" for r in rows if r.delegate == "mediapipe"})
    return "\n".join(lines).rstrip("\n") + "\n"


def markdown_table(rows: Sequence[BenchRow]) -> str:
    """The wide table (`--wide`): size, load, latency, end-to-end, memory, every accuracy figure."""
    header = (
        "| model | format | target | threads | size MB | load ms | mean ms | p50 ms | p90 ms "
        "| p99 ms | e2e ms/poster | peak MB | mAP | macro F1 | micro F1 | subset acc "
        "| hamming | paper acc | mAP vs Keras |"
    )
    lines = [header, "|" + "---|" * 3 + "---:|" * 16]
    for row in rows:
        lat, acc = row.latency, row.accuracy
        lines.append(
            "| "
            + " | ".join(
                [
                    row.model,
                    row.format,
                    _target_cell(row),
                    "-" if row.threads is None else str(row.threads),
                    _fmt(row.size_bytes / 1e6),
                    _fmt(row.load_ms, 1),
                    _fmt(lat.mean_ms if lat else None),
                    _fmt(lat.p50_ms if lat else None),
                    _fmt(lat.p90_ms if lat else None),
                    _fmt(lat.p99_ms if lat else None),
                    _fmt(row.end_to_end_ms),
                    _fmt(row.peak_memory_mb, 1),
                    _fmt(acc.mean_average_precision if acc else None, 4),
                    _fmt(acc.macro_f1 if acc else None, 4),
                    _fmt(acc.micro_f1 if acc else None, 4),
                    _fmt(acc.subset_accuracy if acc else None, 4),
                    _fmt(acc.hamming_loss if acc else None, 4),
                    _fmt(acc.paper_accuracy if acc else None, 4),
                    _signed(row.vs_keras.mean_average_precision if row.vs_keras else None),
                ]
            )
            + " |"
        )
    return "\n".join(lines) + "\n"


def report_json(report: BenchReport) -> str:
    body = {
        "schema": SCHEMA,
        "created": report.created,
        "target": report.target,
        "settings": report.settings,
        "hardware": report.hardware,
        "library_versions": report.library_versions,
        "data": report.data,
        "memory_method": MEMORY_METHOD,
        "ratios": [{**asdict(r), "met": r.met} for r in report.ratios],
        "keras_references": {k: asdict(v) for k, v in report.keras_references.items()},
        "warnings": report.warnings,
        "rows": [asdict(row) for row in report.rows],
    }
    return json.dumps(jsonable(body), indent=2, allow_nan=False) + "\n"


def write_json(report: BenchReport, out: Path) -> None:
    atomic_write_text(Path(out), report_json(report))


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of points no other point beats on both latency (lower) and mAP (higher)."""
    front = []
    for i, (lat_i, map_i) in enumerate(points):
        dominated = any(
            lat_j <= lat_i and map_j >= map_i and (lat_j < lat_i or map_j > map_i)
            for j, (lat_j, map_j) in enumerate(points)
            if j != i
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda k: points[k][0])


def plot_rows(rows: Sequence[BenchRow], out: Path, threads: int | None = None) -> None:
    """Latency (p50, one thread count) vs mAP; one point per model x format, Pareto front drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chosen = [
        r
        for r in rows
        if r.latency
        and r.latency.p50_ms
        and r.accuracy
        and not math.isnan(r.accuracy.mean_average_precision)
    ]
    if threads is None and chosen:
        threads = min((r.threads for r in chosen if r.threads is not None), default=None)
    chosen = [r for r in chosen if r.kind == "keras" or r.threads == threads]
    references = [r for r in rows if r.kind == "reference" and r.latency and r.threads == threads]
    fig, ax = plt.subplots(figsize=(9, 6))
    points = [(r.latency.p50_ms, r.accuracy.mean_average_precision) for r in chosen]  # type: ignore[union-attr]
    markers = {"fp32": "o", "fp16": "s", "dynamic": "^", "int8": "D", "keras": "x"}
    for row, (lat, m_ap) in zip(chosen, points, strict=True):
        ax.scatter(lat, m_ap, marker=markers.get(row.format, "o"), s=40, alpha=0.8)
        label = row.label if row.target != "browser" else f"{row.label} ({row.device['model']})"
        ax.annotate(label, (lat, m_ap), fontsize=7, xytext=(3, 3), textcoords="offset points")
    front = pareto_front(points)
    if front:
        ax.plot(
            [points[i][0] for i in front],
            [points[i][1] for i in front],
            "-",
            color="crimson",
            lw=1.5,
            label="Pareto front",
        )
        ax.scatter(
            [points[i][0] for i in front],
            [points[i][1] for i in front],
            s=140,
            facecolors="none",
            edgecolors="crimson",
        )
    for ref in references:
        ax.axvline(ref.latency.p50_ms, ls="--", lw=0.8, color="gray")  # type: ignore[union-attr]
        ax.text(
            ref.latency.p50_ms,
            ax.get_ylim()[0],
            f" {ref.model}",
            rotation=90,
            fontsize=6,
            va="bottom",
            color="gray",
        )  # type: ignore[union-attr]
    ax.set_xscale("log")
    ax.set_xlabel(f"p50 latency, ms (invoke only, {threads} thread(s), log scale)")
    ax.set_ylabel("mAP on the labelled set")
    ax.set_title("posterlite: latency vs mAP per model x format")
    ax.grid(True, which="both", alpha=0.3)
    if front:
        ax.legend(loc="lower right")
    fig.tight_layout()
    with atomic_path(Path(out)) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


# ------------------------------------------------------------------------- entry point
@dataclass
class BenchOptions:
    models: Sequence[str] = ()
    formats: Sequence[str] = DEFAULT_FORMATS
    data: Path | None = None
    threads: Sequence[int] = (1,)
    runs: int = DEFAULT_RUNS
    warmup: int = DEFAULT_WARMUP
    rounds: int = DEFAULT_ROUNDS
    references: bool = True
    keras: bool = True
    target: str = "cpu"
    serial: str | None = None
    benchmark_binary: Path | None = None
    use_gpu: bool = False
    use_nnapi: bool = False
    measure_memory: bool = True
    cpu_throttle: Sequence[int] = (1, 4)  # browser: Chromium CPU throttling rates
    browser_runtimes: Sequence[str] = ()  # browser: () = posterlite.browser.DEFAULT_RUNTIME
    # browser: LiteRT.js threads (> 1: its threaded build in a cross-origin isolated page;
    # MediaPipe web runs 1). Native LiteRT rows at this count join the run for the ratio.
    browser_threads: int = 1
    chromium: str | None = None  # browser: the Chromium binary (default: Debian's)
    app_runtime: str | None = None  # "mediapipe": add app-side rows (posterlite.apprun)


def parse_formats(text: str) -> tuple[str, ...]:
    """`int8`, `fp32,int8` or `all`."""
    chosen = tuple(part.strip() for part in text.split(",") if part.strip())
    if chosen == ("all",):
        return FORMATS
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown or not chosen:
        raise PosterliteError(
            f"unknown format(s) {unknown or text!r}: choose from {', '.join(FORMATS)} or all"
        )
    return chosen


def parse_threads(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise PosterliteError(f"--threads takes integers like 1,2 (got {text!r})") from exc
    if not values or any(v < 1 for v in values):
        raise PosterliteError(f"--threads must be positive integers (got {text!r})")
    return values


def run_bench(options: BenchOptions) -> BenchReport:
    """Resolve models and data, measure on the chosen target, return the report."""
    if options.runs < 1 or options.warmup < 0 or options.rounds < 1:
        raise PosterliteError("--runs and --rounds must be >= 1 and --warmup >= 0")
    if options.target not in ("cpu", "android", "browser"):
        raise PosterliteError(f"unknown target {options.target!r} (cpu, android or browser)")
    if options.browser_threads < 1:
        raise PosterliteError(f"--browser-threads must be >= 1 (got {options.browser_threads})")
    if options.browser_threads != 1 and options.target != "browser":
        raise PosterliteError("--browser-threads needs --target browser")
    threads = tuple(options.threads)
    if options.target == "browser":  # native LiteRT at the page's thread count, for its ratio
        threads = tuple(sorted({*threads, options.browser_threads}))
    posters = (
        load_labelled_set(options.data) if options.data is not None else default_labelled_set()
    )
    warnings: list[str] = []
    specs = resolve_models(
        options.models,
        options.formats,
        keras_baseline=options.keras and options.target == "cpu",
        posters=posters,
        warnings=warnings,
    )
    if options.references:
        specs += reference_specs()
    settings = {
        "models": [str(m) for m in options.models] or ["<shipped>"],
        "formats": list(options.formats),
        "threads": list(threads),
        "runs": options.runs,
        "warmup": options.warmup,
        "rounds": options.rounds if options.target in ("cpu", "browser") else 1,
        "threshold": DEFAULT_THRESHOLD,
        "references": options.references,
    }
    data = {
        "path": _display_path(posters.root) if posters else None,
        "posters": len(posters) if posters else 0,
        "skipped_by_scan": posters.skipped if posters else 0,
    }
    if options.target == "android":
        from posterlite import android

        rows = android.run_android(
            specs,
            threads=threads,
            runs=options.runs,
            warmup=options.warmup,
            posters=posters,
            serial=options.serial,
            binary=options.benchmark_binary,
            use_gpu=options.use_gpu,
            use_nnapi=options.use_nnapi,
        )
        settings.update(use_gpu=options.use_gpu, use_nnapi=options.use_nnapi)
    else:
        rows = run_cpu(
            specs,
            threads,
            options.runs,
            options.warmup,
            posters,
            options.measure_memory,
            options.rounds,
        )
    if options.target == "browser":  # the page's rows beside native LiteRT's, same run
        from posterlite import browser

        runtimes = tuple(options.browser_runtimes) or (browser.DEFAULT_RUNTIME,)
        rows += browser.run_browser(specs, posters, throttles=options.cpu_throttle,
                                    runtimes=runtimes, runs=options.runs, warmup=options.warmup,
                                    chromium=options.chromium, native=rows,
                                    threads=options.browser_threads)  # fmt: skip
        settings.update(cpu_throttle=list(options.cpu_throttle), browser_runtimes=list(runtimes),
                        browser_threads=options.browser_threads)  # fmt: skip
    if options.app_runtime == "mediapipe":  # what an app's MediaPipe Tasks call answers
        from posterlite import apprun

        rounds = options.rounds
        rows += apprun.bench_rows(specs, posters, options.runs, options.warmup, rounds)
        settings["app_runtime"] = "mediapipe"
    keras_deltas(rows, specs)
    return BenchReport(
        rows=rows,
        target=options.target,
        settings=settings,
        hardware=hardware_info(),
        library_versions=library_versions(),
        data=data,
        ratios=compute_ratios(rows),
        keras_references={s.name: s.keras_reference for s in specs if s.keras_reference},
        warnings=warnings,
    )


def _display_path(path: Path) -> str:
    """Repo-relative when inside the checkout (reports carry no machine's absolute path)."""
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        return str(path)


__all__ = [
    "BenchOptions",
    "BenchReport",
    "BenchRow",
    "LatencyStats",
    "ModelSpec",
    "Ratio",
    "markdown_table",
    "plot_rows",
    "run_bench",
    "summary_table",
    "time_invokes",
    "write_json",
]
