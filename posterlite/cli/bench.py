"""`posterlite bench`: size, latency, memory and accuracy of models (`posterlite.bench`).

The options are `BenchOptions`' fields under the same names (defaults read from it), and
the text ones (`--formats`, `--threads`, `--cpu-throttle`, `--browser-runtime`) are parsed
by `BenchOptions.from_api`, so the CLI and `posterlite.bench(...)` build the same options
and refuse exactly the same combinations (`bench.check_options`, run by `run_bench`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from posterlite import bench as stage
from posterlite.bench.options import APP_RUNTIMES, TARGET_CHOICES, BenchOptions
from posterlite.browser import DEFAULT_RUNTIME, RUNTIMES, THROTTLES
from posterlite.formats import FORMAT_NAMES

DEFAULT = BenchOptions()  # the defaults of `posterlite bench`
_BOTH = "both"  # --browser-runtime both: every browser runtime of RUNTIMES


# `Any`: the option values click hands `bench` (typed by each option's declaration, which
# mypy cannot read); `BenchOptions.from_api` parses and checks them.
def bench_options(models: tuple[str, ...], fields: Mapping[str, Any]) -> BenchOptions:
    """The `BenchOptions` of `bench`'s MODELs and options (click parameter name -> value;
    an option left out, None, keeps BenchOptions' default). Raises PosterliteError for text
    that does not parse (`--formats`, `--threads`, `--cpu-throttle`)."""
    chosen = {name: value for name, value in fields.items() if value is not None}
    return BenchOptions.from_api(models, **chosen)


def _listed(values: tuple[object, ...]) -> str:
    """(1, 4) -> "1,4": a tuple default as the comma-separated text the option takes."""
    return ",".join(str(v) for v in values)


@click.command()
@click.argument("models", nargs=-1)
@click.option(
    "--formats",
    default=_listed(DEFAULT.formats),
    show_default=True,
    help="Formats of run dirs / .keras to bench: int8 (the committed phone-ready file), "
    f"any of {','.join(FORMAT_NAMES)}, or all (converted once into .cache/bench). "
    ".tflite files are taken as is.",
)
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    default=DEFAULT.data,
    help="Labelled set for accuracy (any layout `data scan` reads); "
    "default: benchmarks/sample when present.",
)
@click.option(
    "--threads",
    default=_listed(DEFAULT.threads),
    show_default=True,
    help="Comma-separated thread counts.",
)
@click.option(
    "--runs",
    type=int,
    default=DEFAULT.runs,
    show_default=True,
    help="Timed invokes per row and round.",
)
@click.option(
    "--rounds",
    type=int,
    default=DEFAULT.rounds,
    show_default=True,
    help="cpu / browser: timing rounds; each times every row in turn (browser: native rows, "
    "then each model in the page), p50 = median of the rounds' p50s, ratios = median of the "
    "per-round ratios.",
)
@click.option(
    "--warmup", type=int, default=DEFAULT.warmup, show_default=True, help="Untimed invokes first."
)
@click.option(
    "--json",
    "json_out",
    type=click.Path(path_type=Path),
    default=None,
    help="Write every figure + hardware + library versions here "
    "(default: .cache/bench/bench.json).",
)
@click.option(
    "--plot",
    "plot_out",
    type=click.Path(path_type=Path),
    default=None,
    help="Write a latency-vs-mAP scatter (PNG) here (default: .cache/bench/bench.png).",
)
@click.option(
    "--wide", is_flag=True, help="Print every figure per row (19 columns; ARM rows add theirs)."
)
@click.option(
    "--keras/--no-keras",
    default=DEFAULT.keras,
    show_default=True,
    help="Compare with the Keras model: its recorded figures when they fit the posters, "
    "else run it (TensorFlow).",
)
@click.option(
    "--target",
    type=click.Choice(TARGET_CHOICES),
    default=DEFAULT.target,
    show_default=True,
    help="Host CPU (LiteRT), an Android device through adb, headless Chromium emulating "
    "a phone, or arm64: LiteRT's ARM64 build under QEMU per phone CPU class (browser and "
    "arm64 add the host CPU rows of the same run).",
)
@click.option(
    "--arm-cpu",
    default=None,
    help="arm64: CPU classes, comma-separated: a53 (Cortex-A53/A55, NEON), a76 (A76/A78, "
    "dot product), a710 (A710 and newer, i8mm), sme (refused on QEMU 7.2, which computes "
    "its int8 kernels wrongly). Rows: outputs identical to the host's x86 run (n/N), max "
    "difference, genre sets changed, mAP, macro F1, guest instructions per inference, "
    "kernel family, anchor ratio. Needs `make arm-tools`. [default: a53,a76,a710]",
)
@click.option(
    "--limit",
    type=int,
    default=None,
    help="Score the first N posters of the labelled set. [default: all; 50 with --target "
    "arm64, where every poster is emulated once per CPU class]",
)
@click.option(
    "--cpu-throttle",
    default=DEFAULT.cpu_throttle,
    help="browser: Chromium CPU throttling rates, comma-separated (4 = Lighthouse's mobile; "
    f"default: {_listed(THROTTLES)}).",
)
@click.option(
    "--browser-runtime",
    "browser_runtimes",
    type=click.Choice([DEFAULT_RUNTIME, *(r for r in RUNTIMES if r != DEFAULT_RUNTIME), _BOTH]),
    default=None,
    help=f"browser: MediaPipe Tasks for Web or LiteRT.js (default: the faster, {DEFAULT_RUNTIME}).",
)
@click.option(
    "--browser-threads",
    type=int,
    default=DEFAULT.browser_threads,
    show_default=True,
    help="browser: LiteRT.js threads (its threaded WebAssembly build; the local server sends "
    "COOP/COEP so the page is cross-origin isolated). MediaPipe web has no threaded build "
    "and runs 1. Native LiteRT rows at this count join the run, so each browser row's p50 "
    "ratio is to native at its own thread count.",
)
@click.option(
    "--chromium",
    type=click.Path(path_type=str, dir_okay=False),
    default=DEFAULT.chromium,
    help="browser: Chromium binary (default: POSTERLITE_CHROMIUM, /usr/bin/chromium).",
)
@click.option(
    "--serial", default=DEFAULT.serial, help="adb serial (android; default: the only device)."
)
@click.option(
    "--benchmark-binary",
    type=click.Path(path_type=Path),
    default=DEFAULT.benchmark_binary,
    help="TFLite benchmark_model built for the device ABI (android).",
)
@click.option("--use-gpu", is_flag=True, help="android: GPU delegate (XNNPACK for the rest).")
@click.option("--use-nnapi", is_flag=True, help="android: NNAPI delegate (XNNPACK for the rest).")
@click.option(
    "--references/--no-references",
    default=DEFAULT.references,
    show_default=True,
    help="Add Google's int8 MobileNetV2 files from ../shared/pretrained.",
)
@click.option(
    "--runtime",
    "app_runtime",
    type=click.Choice(APP_RUNTIMES),
    default=DEFAULT.app_runtime,
    show_default=True,
    help="cpu: mediapipe adds app-side rows beside LiteRT's: each .tflite through MediaPipe "
    "Tasks' ImageClassifier (accuracy as an app gets it; p50 per poster file includes its "
    "own decode and resize). Needs the dev extra.",
)
def bench(
    models: tuple[str, ...],
    json_out: Path | None,
    plot_out: Path | None,
    wide: bool,
    **fields: Any,  # click's option values: see bench_options
) -> None:
    """Size, latency, memory and accuracy of MODELs (.tflite, run dirs, .keras).

    No MODEL: the six shipped models' committed int8 files (models/<name>/model.int8.tflite)
    and Google's int8 MobileNetV2 files, scored on benchmarks/sample. A Markdown table on
    stdout (CPU named above it, ratios below), progress on stderr, every figure in the JSON.
    """
    report = stage.run_bench(bench_options(models, fields))
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    default_json, default_plot = stage.default_outputs()
    json_out, plot_out = json_out or default_json, plot_out or default_plot
    stage.write_json(report, json_out)
    stage.plot_rows(report.rows, plot_out)
    table = stage.wide_table(report) if wide else stage.summary_table(report)
    click.echo(table, nl=False)
    click.echo(f"plot: {plot_out}\nevery figure: {json_out}")
