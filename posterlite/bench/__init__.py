"""The model benchmark (`posterlite bench`): size, latency, memory and accuracy per model x
format x thread count, on the host CPU, an Android device, headless Chromium, through
MediaPipe Tasks, or (arm64) LiteRT's ARM64 kernels under QEMU per phone CPU class.

The package is layered; a module imports only modules above it in this list:
- `paths`, `environment`, `records`: where things are, where a run ran, what it measured
  (`BenchRow`, `LatencyStats`, `Ratio`, `BenchReport` with `to_json` / `from_json`);
- `timing`: `time_invokes`, `interleaved_rounds` and `round_ratio`, the one ratio
  definition (median of per-round p50 ratios);
- `labelled`: the labelled set and scoring on it; `sidecar`: the shipped file's recorded
  Keras figures (read, and written at export: `export_int8`); `cache`: conversions;
  `models`: which models a run measures;
- `options`: `BenchOptions`, one record for the CLI and Python;
- `targets`: the registry (`cpu`, `android`, `browser`, `arm64`, `mediapipe`), each turning specs
  into rows, and `check_options`, the one place options are refused;
- `ratios`, `report`: comparisons between rows; tables, JSON, plot;
- `run`: `run_bench` and `bench`; `browser_ratio`: the multi-format browser / native
  ratio record (`benchmarks/browser_ratio.py`).

`posterlite.bench(...)` calls `bench` (the README's Python API): the package makes itself
callable at the end of this file. A package cannot be a function, and `import
posterlite.bench.x` binds the package on `posterlite`; so this package declares its module
class once, the way the Python docs describe ("Customizing module attribute access").
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

from posterlite.bench.environment import Environment, cpu_model
from posterlite.bench.labelled import LabelledSet, default_labelled_set, load_labelled_set
from posterlite.bench.models import (
    ANCHOR_REFERENCE,
    DEFAULT_FORMATS,
    REFERENCE_FILES,
    SHIPPED_MODELS,
    reference_specs,
    resolve_models,
    split_name,
)
from posterlite.bench.options import (
    BenchOptions,
    parse_arm_cpus,
    parse_formats,
    parse_runtimes,
    parse_threads,
    parse_throttles,
)
from posterlite.bench.paths import (
    CACHE_DIR,
    DEFAULT_SAMPLE,
    MODELS_DIR,
    REPO,
    default_outputs,
    display_path,
    shared_dir,
)
from posterlite.bench.ratios import ANCHOR_GOAL, ANCHOR_MODEL, compute_ratios
from posterlite.bench.records import (
    SCHEMA,
    ArmFigures,
    BenchReport,
    BenchRow,
    KerasReference,
    LatencyStats,
    ModelSpec,
    Ratio,
)
from posterlite.bench.report import (
    markdown_table,
    pareto_front,
    plot_rows,
    summary_table,
    wide_table,
    write_json,
)
from posterlite.bench.run import bench, run_bench
from posterlite.bench.sidecar import (
    fitting_reference,
    read_sidecar,
    recorded_reference,
    shipped_file,
)
from posterlite.bench.targets import TARGETS, check_options
from posterlite.bench.targets.cpu import bench_tflite_cpu
from posterlite.bench.timing import Timed, interleaved_rounds, round_ratio, time_invokes
from posterlite.formats import FORMAT_NAMES as FORMATS

__all__ = [
    "ANCHOR_GOAL",
    "ANCHOR_MODEL",
    "ANCHOR_REFERENCE",
    "CACHE_DIR",
    "DEFAULT_FORMATS",
    "DEFAULT_SAMPLE",
    "FORMATS",
    "MODELS_DIR",
    "REFERENCE_FILES",
    "REPO",
    "SCHEMA",
    "SHIPPED_MODELS",
    "TARGETS",
    "ArmFigures",
    "BenchOptions",
    "BenchReport",
    "BenchRow",
    "Environment",
    "KerasReference",
    "LabelledSet",
    "LatencyStats",
    "ModelSpec",
    "Ratio",
    "Timed",
    "bench",
    "bench_tflite_cpu",
    "check_options",
    "compute_ratios",
    "cpu_model",
    "default_labelled_set",
    "default_outputs",
    "display_path",
    "fitting_reference",
    "interleaved_rounds",
    "load_labelled_set",
    "markdown_table",
    "pareto_front",
    "parse_arm_cpus",
    "parse_formats",
    "parse_runtimes",
    "parse_threads",
    "parse_throttles",
    "plot_rows",
    "read_sidecar",
    "recorded_reference",
    "reference_specs",
    "resolve_models",
    "round_ratio",
    "run_bench",
    "shared_dir",
    "shipped_file",
    "split_name",
    "summary_table",
    "time_invokes",
    "wide_table",
    "write_json",
]


class _CallablePackage(types.ModuleType):
    """This package, callable: `posterlite.bench(models, **options)` is `bench(...)`."""

    def __call__(
        self, models: tuple[str | Path, ...] | list[str | Path] = (), **options: object
    ) -> BenchReport:
        return bench(models, **options)


sys.modules[__name__].__class__ = _CallablePackage
