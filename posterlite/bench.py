"""The model benchmark (`posterlite bench`): size, latency, memory and accuracy per model x format.

This module owns the host-CPU benchmark and everything both targets share: finding the
models (`.tflite` files, trained run dirs / `.keras` converted into a cache, or the six
shipped models), the labelled set, the result rows (`BenchRow`), the Markdown table, the
JSON report and the latency-vs-mAP plot. The Android target (`posterlite.android`) fills
the same rows from `benchmark_model` runs on a device.

What is measured, per model x format x thread count (host CPU, LiteRT + XNNPACK):
- load: wall time of `Interpreter(...)` + `allocate_tensors()` (ms);
- latency: `invoke()` alone on one prepared poster tensor, after `warmup` untimed invokes;
  mean / p50 / p90 / p99 / min / max / std over `runs` timed invokes (ms). Decoding is not
  in these figures;
- end-to-end: mean per-poster wall time of decode + preprocess (`load_poster` +
  `PosterModel.prepare`) + invoke + dequantize over the labelled set, one poster at a time;
- size: bytes on disk of the model file;
- peak memory: peak RSS (`VmHWM`, reset through `/proc/self/clear_refs` just before
  loading) of a fresh Python process while it loads the model, allocates tensors and
  invokes once, minus its RSS just before loading (numpy + LiteRT already imported), in MB. It covers the interpreter's arena, XNNPACK's packed weights
  and the mapped model file;
- accuracy on the labelled set at threshold 0.5: every figure `metrics.evaluate` gives.
The Keras float model (when the source is a run dir / `.keras`) is a baseline row, and
Google's two published int8 MobileNetV2 files are latency + size reference rows.
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

from posterlite.errors import PosterliteError
from posterlite.fileio import atomic_path, atomic_write_text, jsonable, library_versions
from posterlite.genres import CATCH_ALL, GenreScheme, default_scheme
from posterlite.metrics import DEFAULT_THRESHOLD, MultiLabelReport, evaluate
from posterlite.preprocess import DEFAULT_SIZE, PosterDecodeError, load_poster, pixels_to_input

FORMATS: tuple[str, ...] = ("fp32", "fp16", "dynamic", "int8")
SHIPPED_MODELS: tuple[str, ...] = (
    "cnn",
    "cnn_smote",
    "mobilenet_v1",
    "mobilenet_v1_smote",
    "mobilenet_v2",
    "mobilenet_v2_smote",
)
REPO = Path(__file__).resolve().parents[1]
MODELS_DIR = REPO / "models"
DEFAULT_SAMPLE = REPO / "benchmarks" / "sample"
CACHE_DIR = REPO / ".cache" / "bench"
REFERENCE_FILES: tuple[str, ...] = (
    "tf2_mobilenet_v2_1.0_224_ptq.tflite",
    "mobilenet_v2_1.0_224_quant.tflite",
)
SCHEMA = "posterlite-bench/1"
MEMORY_METHOD = "peak RSS growth (ru_maxrss) of a fresh process across load + allocate + 1 invoke"


def shared_dir() -> Path:
    return Path(os.environ.get("POSTERLITE_SHARED", REPO.parent / "shared"))


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class LatencyStats:
    """Latency figures in milliseconds; a figure the source does not give is None."""

    count: int
    mean_ms: float
    p50_ms: float | None
    p90_ms: float | None = None
    p99_ms: float | None = None
    min_ms: float | None = None
    max_ms: float | None = None
    std_ms: float | None = None
    first_ms: float | None = None  # first (cold) inference, when known
    p5_ms: float | None = None  # benchmark_model prints p5 / median / p95
    p95_ms: float | None = None

    @classmethod
    def from_samples(cls, seconds: Sequence[float], first_s: float | None = None) -> LatencyStats:
        if not seconds:
            raise ValueError("no latency samples")
        ms = np.asarray(seconds, dtype=np.float64) * 1e3
        p50, p90, p99 = np.percentile(ms, [50, 90, 99])
        return cls(
            count=int(ms.size),
            mean_ms=float(ms.mean()),
            p50_ms=float(p50),
            p90_ms=float(p90),
            p99_ms=float(p99),
            min_ms=float(ms.min()),
            max_ms=float(ms.max()),
            std_ms=float(ms.std()),
            first_ms=None if first_s is None else first_s * 1e3,
        )


@dataclass
class BenchRow:
    """One model x format x thread count on one target."""

    model: str
    format: str  # fp32 | fp16 | dynamic | int8 | keras | the reference's own tag
    kind: str  # "posterlite" | "keras" | "reference"
    path: str
    target: str  # "cpu" | "android"
    threads: int | None
    size_bytes: int
    latency: LatencyStats | None = None
    load_ms: float | None = None
    end_to_end_ms: float | None = None  # decode + preprocess + invoke, per poster
    peak_memory_mb: float | None = None
    memory_method: str = ""
    accuracy: MultiLabelReport | None = None
    device: dict[str, str] = field(default_factory=dict)
    delegate: str = "xnnpack"
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.model}/{self.format}"


@dataclass
class BenchReport:
    rows: list[BenchRow]
    target: str
    settings: dict[str, Any]
    hardware: dict[str, Any]
    library_versions: dict[str, str]
    data: dict[str, Any]
    created: str = field(
        default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds")
    )


# ----------------------------------------------------------------------------- models
@dataclass(frozen=True)
class ModelSpec:
    """A model file to benchmark and what it is."""

    name: str
    format: str
    path: Path
    kind: str  # "posterlite" | "keras" | "reference"


def _split_name(path: Path) -> tuple[str, str]:
    """`<name>.<fmt>.tflite` -> (name, fmt); anything else -> (stem, "tflite")."""
    stem = path.name[: -len(".tflite")] if path.name.endswith(".tflite") else path.stem
    name, _, fmt = stem.rpartition(".")
    if name and fmt in FORMATS:
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
    if not path.is_file():
        raise PosterliteError(f"{source}: no model.keras in this run folder")
    return path


def _existing_tflite(folder: Path, name: str, fmt: str) -> Path | None:
    """A conversion already shipped beside the run (`convert`'s naming), if any."""
    for candidate in (folder / f"{name}.{fmt}.tflite", folder / "tflite" / f"{name}.{fmt}.tflite"):
        if candidate.is_file():
            return candidate
    return None


def resolve_models(
    sources: Sequence[str | Path],
    formats: Sequence[str] = FORMATS,
    *,
    keras_baseline: bool = True,
    cache_dir: Path | None = None,
    posters: LabelledSet | None = None,
    convert: Callable[..., None] | None = None,
) -> list[ModelSpec]:
    """ModelSpecs for the CLI's MODEL arguments (or the six shipped models when empty).

    `.tflite` files are taken as they are; run dirs and `.keras` files are converted to
    `formats` (reusing conversions found beside the run or in the cache).
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
            name, fmt = _split_name(source)
            specs.append(ModelSpec(name, fmt, source, "posterlite"))
            continue
        if source.is_file() and source.suffix != ".keras":
            raise PosterliteError(f"{source}: not a .tflite, .keras or trained run folder")
        keras_path = _keras_file(source)
        name = _run_name(source)
        folder = keras_path.parent
        wanted = {fmt: _existing_tflite(folder, name, fmt) for fmt in formats}
        missing = [fmt for fmt, path in wanted.items() if path is None]
        if missing:
            converted = convert_to_cache(
                keras_path, name, missing, cache_dir or CACHE_DIR, posters, convert=convert
            )
            wanted.update(converted)
        if keras_baseline:
            specs.append(ModelSpec(name, "keras", keras_path, "keras"))
        specs.extend(
            ModelSpec(name, fmt, path, "posterlite") for fmt, path in wanted.items() if path
        )
    return specs


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


def _file_digest(path: Path) -> str:
    from posterlite.fileio import sha256_file

    return sha256_file(path)[:12]


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


# ----------------------------------------------------------------------- labelled set
@dataclass(frozen=True)
class LabelledSet:
    """Posters with raw genre labels (mapped to each model's genres at evaluation)."""

    root: Path
    paths: tuple[Path, ...]
    genres: tuple[tuple[str, ...], ...]
    skipped: int = 0

    def __len__(self) -> int:
        return len(self.paths)

    def targets(self, model_genres: Sequence[str]) -> np.ndarray:
        """Multi-hot (N, G) in the model's genre order; unknown raw genres -> the catch-all."""
        scheme = GenreScheme(
            names=tuple(model_genres), catch_all=CATCH_ALL if CATCH_ALL in model_genres else None
        )
        return np.stack([scheme.to_multi_hot(scheme.map_raw(g)) for g in self.genres])


def load_labelled_set(path: Path, limit: int | None = None, progress: bool = False) -> LabelledSet:
    """Any layout `data.scan_dataset` reads; posters it cannot decode are left out."""
    from posterlite.data import scan_dataset

    path = Path(path)
    if not path.exists():
        raise PosterliteError(f"labelled set not found: {path}")
    result = scan_dataset(path, progress=progress)
    posters = result.posters[:limit] if limit else result.posters
    if not posters:
        raise PosterliteError(f"{path}: no labelled posters found")
    return LabelledSet(
        root=path,
        paths=tuple(Path(p.path) for p in posters),
        genres=tuple(tuple(p.genres) for p in posters),
        skipped=len(result.skipped),
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


def bench_tflite_cpu(
    spec: ModelSpec,
    threads: Sequence[int],
    runs: int,
    warmup: int,
    posters: LabelledSet | None,
    measure_memory: bool = True,
) -> list[BenchRow]:
    """Rows for one `.tflite` on the host CPU, one per thread count."""
    from posterlite.runtime import PosterModel

    rows = []
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
        samples = time_invokes(interpreter.invoke, runs, warmup)
        row = BenchRow(
            model=spec.name,
            format=spec.format,
            kind=spec.kind,
            path=str(spec.path),
            target="cpu",
            threads=count,
            size_bytes=spec.path.stat().st_size,
            latency=LatencyStats.from_samples(samples, first_s),
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
        rows.append(row)
    return rows


_KERAS_THREADS: int | None = None


def _configure_tf_threads(threads: int) -> int | None:
    """TF's intra-op pool size can only be set before TF starts; report what is in force."""
    global _KERAS_THREADS
    import tensorflow as tf

    if _KERAS_THREADS is None:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
            _KERAS_THREADS = threads
        except RuntimeError:
            _KERAS_THREADS = tf.config.threading.get_intra_op_parallelism_threads() or None
    return _KERAS_THREADS


def bench_keras_cpu(
    spec: ModelSpec, threads: int, runs: int, warmup: int, posters: LabelledSet | None
) -> BenchRow:
    """The float Keras model as a baseline row (TF eager call, batch 1)."""
    in_force = _configure_tf_threads(threads)
    import keras

    from posterlite.card import read_card

    start = time.perf_counter()
    model = keras.models.load_model(spec.path, compile=False)
    load_ms = (time.perf_counter() - start) * 1e3
    size = int(model.input_shape[1])
    try:
        genres: Sequence[str] = read_card(spec.path).genres
    except PosterliteError:
        genres = default_scheme().names
    x = pixels_to_input(_random_pixels(size), "float32")

    def call(batch: np.ndarray = x) -> np.ndarray:
        return np.asarray(model(batch, training=False))

    first = time.perf_counter()
    call()
    first_s = time.perf_counter() - first
    samples = time_invokes(call, runs, warmup)
    row = BenchRow(
        model=spec.name,
        format="keras",
        kind="keras",
        path=str(spec.path),
        target="cpu",
        threads=in_force,
        size_bytes=spec.path.stat().st_size,
        latency=LatencyStats.from_samples(samples, first_s),
        load_ms=load_ms,
        delegate="tensorflow",
        notes=["Keras float baseline (TensorFlow eager, batch 1)"],
    )
    if posters is not None:
        result = _labelled_pass(posters, size, lambda p: call(pixels_to_input(p, "float32")))
        row.end_to_end_ms = statistics.fmean(result.end_to_end_s) * 1e3
        if len(genres) == result.probabilities.shape[1]:
            row.accuracy = _accuracy(posters, result, genres)
    return row


# --------------------------------------------------------------------------- the run
def _progress(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="model", file=sys.stderr, leave=False)


def run_cpu(
    specs: Sequence[ModelSpec],
    threads: Sequence[int],
    runs: int,
    warmup: int,
    posters: LabelledSet | None,
    measure_memory: bool = True,
) -> list[BenchRow]:
    rows: list[BenchRow] = []
    with _progress(len(specs), "bench cpu") as bar:
        for spec in specs:
            bar.set_postfix_str(f"{spec.name}/{spec.format}")
            if spec.kind == "keras":
                rows.append(bench_keras_cpu(spec, threads[0], runs, warmup, posters))
            else:
                rows.extend(bench_tflite_cpu(spec, threads, runs, warmup, posters, measure_memory))
            bar.update(1)
    return rows


# --------------------------------------------------------------------- environment
def hardware_info() -> dict[str, Any]:
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.lower().startswith(("model name", "hardware", "processor\t: arm")):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 0
    return {
        "cpu_model": cpu_model or platform.processor() or "unknown",
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
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


def markdown_table(rows: Sequence[BenchRow]) -> str:
    """One line per row: size, load, latency (invoke only), end-to-end, memory, accuracy."""
    header = (
        "| model | format | target | threads | size MB | load ms | mean ms | p50 ms | p90 ms "
        "| p99 ms | e2e ms/poster | peak MB | mAP | macro F1 | micro F1 | subset acc "
        "| hamming | paper acc |"
    )
    lines = [header, "|" + "---|" * 3 + "---:|" * 15]
    for row in rows:
        lat, acc = row.latency, row.accuracy
        target = row.target if not row.device else f"{row.target} ({row.device.get('model', '?')})"
        lines.append(
            "| "
            + " | ".join(
                [
                    row.model,
                    row.format,
                    target,
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
        ax.annotate(row.label, (lat, m_ap), fontsize=7, xytext=(3, 3), textcoords="offset points")
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
    formats: Sequence[str] = FORMATS
    data: Path | None = None
    threads: Sequence[int] = (1, 2)
    runs: int = 50
    warmup: int = 5
    references: bool = True
    target: str = "cpu"
    serial: str | None = None
    benchmark_binary: Path | None = None
    use_gpu: bool = False
    use_nnapi: bool = False
    measure_memory: bool = True


def parse_formats(text: str) -> tuple[str, ...]:
    chosen = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown or not chosen:
        raise PosterliteError(
            f"unknown format(s) {unknown or text!r}: choose from {', '.join(FORMATS)}"
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
    if options.runs < 1 or options.warmup < 0:
        raise PosterliteError("--runs must be >= 1 and --warmup >= 0")
    posters = (
        load_labelled_set(options.data) if options.data is not None else default_labelled_set()
    )
    specs = resolve_models(
        options.models,
        options.formats,
        keras_baseline=options.target == "cpu",
        posters=posters,
    )
    if options.references:
        specs += reference_specs()
    settings = {
        "models": [str(m) for m in options.models] or ["<shipped>"],
        "formats": list(options.formats),
        "threads": list(options.threads),
        "runs": options.runs,
        "warmup": options.warmup,
        "threshold": DEFAULT_THRESHOLD,
        "references": options.references,
    }
    data = {
        "path": str(posters.root) if posters else None,
        "posters": len(posters) if posters else 0,
        "skipped_by_scan": posters.skipped if posters else 0,
    }
    if options.target == "android":
        from posterlite import android

        rows = android.run_android(
            specs,
            threads=options.threads,
            runs=options.runs,
            warmup=options.warmup,
            posters=posters,
            serial=options.serial,
            binary=options.benchmark_binary,
            use_gpu=options.use_gpu,
            use_nnapi=options.use_nnapi,
        )
        settings.update(use_gpu=options.use_gpu, use_nnapi=options.use_nnapi)
    elif options.target == "cpu":
        rows = run_cpu(
            specs, options.threads, options.runs, options.warmup, posters, options.measure_memory
        )
    else:
        raise PosterliteError(f"unknown target {options.target!r} (cpu or android)")
    return BenchReport(
        rows=rows,
        target=options.target,
        settings=settings,
        hardware=hardware_info(),
        library_versions=library_versions(),
        data=data,
    )


__all__ = [
    "BenchOptions",
    "BenchReport",
    "BenchRow",
    "LatencyStats",
    "ModelSpec",
    "markdown_table",
    "plot_rows",
    "run_bench",
    "time_invokes",
    "write_json",
]
