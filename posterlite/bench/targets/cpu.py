"""The host CPU target: LiteRT + XNNPACK rows (and the Keras float baseline), timed in
interleaved rounds.

Per model x format x thread count it measures load time, p50 and the other latency figures
of `invoke()` on one prepared poster tensor, end-to-end time per poster (decode +
preprocess + invoke) over the labelled set, accuracy at the default threshold, and the
peak memory of a fresh process loading and running the model once. Every model is loaded
and scored first; then all are timed together in `interleaved_rounds`.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from posterlite.bench.labelled import LabelledSet, accuracy_of, labelled_pass
from posterlite.bench.options import BenchOptions
from posterlite.bench.records import MEMORY_METHOD, BenchRow, ModelSpec
from posterlite.bench.targets.base import RunContext, TargetName
from posterlite.bench.timing import Timed, interleaved_rounds
from posterlite.errors import PosterliteError
from posterlite.genres import default_scheme
from posterlite.metrics import MultiLabelReport
from posterlite.preprocess import pixels_to_input

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
REFERENCE_NOTE = "ImageNet 1001-class reference: latency and size only"


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


def random_pixels(size: int, seed: int = 0) -> np.ndarray:
    """A (1, size, size, 3) uint8 poster of noise: the input every timed invoke gets."""
    return np.random.default_rng(seed).integers(0, 256, (1, size, size, 3), dtype=np.uint8)


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
        interpreter.set_tensor(input_index, model.prepare(random_pixels(model.input_size)))
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
            input_size=model.input_size,
            peak_memory_mb=memory if count == threads[0] else None,
            memory_method=MEMORY_METHOD if memory is not None and count == threads[0] else "",
        )
        if posters is not None and spec.kind != "reference":
            result = labelled_pass(posters, model.input_size, model.predict_pixels)
            row.end_to_end_ms = statistics.fmean(result.end_to_end_s) * 1e3
            if accuracy is None:
                accuracy = accuracy_of(posters, result, model.genres)
            row.accuracy = accuracy
            if result.failed:
                row.notes.append(f"{result.failed} posters could not be decoded")
        if spec.kind == "reference":
            row.notes.append(REFERENCE_NOTE)
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


_KERAS_THREADS: list[int | None] = []  # TF's intra-op pool size, once it is known


def _configure_tf_threads(threads: int) -> int | None:
    """TF's intra-op pool size can only be set before TF starts; report what is in force."""
    import tensorflow as tf

    from posterlite.quiet import quiet_python_loggers

    quiet_python_loggers()
    if not _KERAS_THREADS:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
            _KERAS_THREADS.append(threads)
        except RuntimeError:
            in_force = tf.config.threading.get_intra_op_parallelism_threads()
            _KERAS_THREADS.append(int(in_force) or None)
    return _KERAS_THREADS[0]


def prepare_keras_cpu(spec: ModelSpec, threads: int, posters: LabelledSet | None) -> Timed:
    """The float Keras model as a baseline row (TF eager call, batch 1), ready to time."""
    from posterlite.quiet import captured_output

    with captured_output():  # TensorFlow's import and first call print from C++
        in_force = _configure_tf_threads(threads)
        import keras

        start = time.perf_counter()
        model: Any = keras.models.load_model(spec.path, compile=False)  # Keras is untyped
        load_ms = (time.perf_counter() - start) * 1e3
        size = int(model.input_shape[1])
        x = pixels_to_input(random_pixels(size), "float32")

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
        result = labelled_pass(posters, size, lambda p: call(pixels_to_input(p, "float32")))
        row.end_to_end_ms = statistics.fmean(result.end_to_end_s) * 1e3
        if len(genres) == result.probabilities.shape[1]:
            row.accuracy = accuracy_of(posters, result, genres)
    return Timed(row, call, first_s)


def bench_keras_cpu(
    spec: ModelSpec, threads: int, runs: int, warmup: int, posters: LabelledSet | None
) -> BenchRow:
    """The Keras baseline row timed on its own."""
    timed = prepare_keras_cpu(spec, threads, posters)
    interleaved_rounds([timed], 1, runs, warmup)
    return timed.row


def progress(total: int, desc: str, unit: str = "model") -> Any:
    """A tqdm bar on stderr that disappears when done (tqdm is untyped)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False)


def prepare_cpu(
    specs: Sequence[ModelSpec],
    threads: Sequence[int],
    posters: LabelledSet | None,
    measure_memory: bool = True,
) -> list[Timed]:
    """Load and score every spec (Keras baselines at the first thread count); ready to time."""
    timed: list[Timed] = []
    with progress(len(specs), "bench cpu: load + accuracy") as bar:
        for spec in specs:
            bar.set_postfix_str(f"{spec.name}/{spec.format}")
            if spec.kind == "keras":
                timed.append(prepare_keras_cpu(spec, threads[0], posters))
            else:
                timed.extend(prepare_tflite_cpu(spec, threads, posters, measure_memory))
            bar.update(1)
    return timed


def run_cpu(
    specs: Sequence[ModelSpec],
    threads: Sequence[int],
    runs: int,
    warmup: int,
    posters: LabelledSet | None,
    measure_memory: bool = True,
    rounds: int = 5,
) -> list[BenchRow]:
    """Load and score every spec, then time them all in interleaved rounds."""
    timed = prepare_cpu(specs, threads, posters, measure_memory)
    with progress(rounds, "bench cpu: timing rounds", unit="round") as bar:
        on_round: Callable[[], None] = lambda: bar.update(1)  # noqa: E731
        interleaved_rounds(timed, rounds, runs, warmup, on_round=on_round)
    return [item.row for item in timed]


class CpuTarget:
    """`--target cpu`: the host CPU through LiteRT + XNNPACK (Keras baselines beside)."""

    @property
    def name(self) -> TargetName:
        """The registry key."""
        return "cpu"

    def refusal(self, options: BenchOptions) -> str | None:
        """The CPU target owns no option another target would refuse: None."""
        return None

    def preflight(self, options: BenchOptions) -> None:
        """Nothing to check before measuring: LiteRT is a dependency."""

    def run(self, context: RunContext) -> list[BenchRow]:
        """Every spec x thread count, timed in `options.rounds` interleaved rounds."""
        o = context.options
        return run_cpu(context.specs, o.native_threads, o.runs, o.warmup, context.posters,
                       o.measure_memory, o.rounds)  # fmt: skip


TARGET = CpuTarget()
