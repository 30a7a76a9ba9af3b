"""The MediaPipe target (`posterlite bench --runtime mediapipe`, beside `--target cpu`):
what an app's MediaPipe Tasks `ImageClassifier` call answers and costs, per posterlite
`.tflite`, on the host CPU (`posterlite.apprun` wraps the classifier).

Accuracy: every labelled poster file through MediaPipe's own decode and resize, scored at
the default threshold like every other row. Latency: one classify call per poster file,
cycling through the first posters (decoding the same file every call would time a warm
page cache only), timed in interleaved rounds after the LiteRT rows.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from posterlite.apprun import AppClassifier, AppRunError
from posterlite.bench.labelled import LabelledSet, score
from posterlite.bench.options import BenchOptions
from posterlite.bench.records import BenchRow, ModelSpec
from posterlite.bench.targets.base import RunContext, TargetName
from posterlite.bench.timing import Timed, interleaved_rounds

APP_FORMAT_SUFFIX = "MediaPipe"
APP_TIMING_NOTE = (
    "MediaPipe Tasks ImageClassifier (CPU, its default 1 XNNPACK thread here): p50 per poster "
    "file includes MediaPipe's own decode, resize, inference and postprocessing (what an "
    "app's classify call costs); timed in its own rounds after the LiteRT rows"
)
# Posters the timed loop cycles through (decoding the same file every call would time a
# warm page cache only; a few dozen files behave like an app's stream of new posters).
TIMING_POSTERS = 32


def bench_rows(
    specs: Sequence[ModelSpec],
    posters: LabelledSet | None,
    runs: int,
    warmup: int,
    rounds: int,
) -> list[BenchRow]:
    """One app-side row per posterlite `.tflite` in `specs`: MediaPipe's accuracy on the
    labelled set and its per-poster latency, timed in `rounds` interleaved rounds. Raises
    AppRunError without such a model, or when MediaPipe refuses one."""
    chosen = [s for s in specs if s.kind == "posterlite" and Path(s.path).suffix == ".tflite"]
    if not chosen:
        raise AppRunError("--runtime mediapipe needs at least one posterlite .tflite model")
    with tempfile.TemporaryDirectory() as folder:
        files = [Path(p) for p in posters.paths[:TIMING_POSTERS]] if posters else []
        if not files:  # no labelled set: time on one generated poster-sized image
            from PIL import Image

            noise = np.random.default_rng(0).integers(0, 256, (268, 182, 3), dtype=np.uint8)
            files = [Path(folder) / "poster.jpg"]
            Image.fromarray(noise).save(files[0], quality=90)
        timed: list[Timed] = []
        apps: list[AppClassifier] = []
        try:
            for spec in chosen:
                start = time.perf_counter()
                app = AppClassifier.open(Path(spec.path))
                load_ms = (time.perf_counter() - start) * 1e3
                apps.append(app)
                row = BenchRow(
                    model=spec.name,
                    format=f"{spec.format} {APP_FORMAT_SUFFIX}",
                    kind="app",
                    path=str(spec.path),
                    target="cpu",
                    # MediaPipe's XNNPACK default on desktop Linux: 1 thread (on Android and
                    # iOS: half the cores, 1-4); the Tasks API has no thread option.
                    threads=1,
                    size_bytes=Path(spec.path).stat().st_size,
                    load_ms=load_ms,
                    delegate="mediapipe",
                    notes=[APP_TIMING_NOTE],
                )
                if posters is not None:
                    labelled_app_pass(app, posters, row)
                cycle = file_cycle(app, files)
                first = time.perf_counter()
                cycle()
                timed.append(Timed(row, cycle, time.perf_counter() - first))
            interleaved_rounds(timed, rounds, runs, warmup)
        finally:
            for app in apps:
                app.close()
    for item in timed:  # no labelled pass: the timed calls are the end-to-end figure
        if item.row.end_to_end_ms is None:
            item.row.end_to_end_ms = statistics.fmean(sum(item.rounds, [])) * 1e3
    return [item.row for item in timed]


def file_cycle(app: AppClassifier, files: Sequence[Path]) -> Callable[[], np.ndarray]:
    """A call that classifies the next poster file (decode + resize + run), round robin."""
    state = {"next": 0}

    def call() -> np.ndarray:
        path = files[state["next"] % len(files)]
        state["next"] += 1
        return app.classify_file(path)

    return call


def labelled_app_pass(app: AppClassifier, posters: LabelledSet, row: BenchRow) -> None:
    """Score every labelled poster file through MediaPipe; fill the row's accuracy and
    end-to-end time. Raises AppRunError when MediaPipe classifies none."""
    scores, kept, times, failed = [], [], [], 0
    for index, path in enumerate(posters.paths):
        start = time.perf_counter()
        try:
            result = app.classify_file(path)
        except AppRunError:
            failed += 1
            continue
        times.append(time.perf_counter() - start)
        scores.append(result)
        kept.append(index)
    if not scores:
        raise AppRunError(f"{posters.root}: MediaPipe classified none of the labelled posters")
    row.accuracy = score(posters, np.asarray(kept), np.stack(scores), app.labels)
    row.end_to_end_ms = statistics.fmean(times) * 1e3
    if failed:
        row.notes.append(f"{failed} posters refused by MediaPipe")


class MediaPipeTarget:
    """App-side rows through MediaPipe Tasks, beside the CPU target's LiteRT rows."""

    @property
    def name(self) -> TargetName:
        """The registry key."""
        return "mediapipe"

    def refusal(self, options: BenchOptions) -> str | None:
        """App-side rows run on the host CPU, beside its LiteRT rows."""
        if options.app_runtime == "mediapipe" and options.target != "cpu":
            return "--runtime mediapipe needs --target cpu"
        return None

    def preflight(self, options: BenchOptions) -> None:
        """MediaPipe is imported (and found missing) when the first model opens."""

    def run(self, context: RunContext) -> list[BenchRow]:
        """One app-side row per posterlite `.tflite`."""
        o = context.options
        return bench_rows(context.specs, context.posters, o.runs, o.warmup, o.rounds)


TARGET = MediaPipeTarget()
