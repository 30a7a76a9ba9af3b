"""A bench run from start to end (the top layer): check the options, find the posters and
the models, run the chosen targets, compare the rows, return the report."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from posterlite.bench.environment import capture
from posterlite.bench.labelled import LabelledSet, default_labelled_set, load_labelled_set
from posterlite.bench.models import reference_specs, resolve_models
from posterlite.bench.options import BenchOptions
from posterlite.bench.paths import display_path
from posterlite.bench.ratios import compute_ratios, keras_deltas
from posterlite.bench.records import BenchReport, BenchRow, DataRecord, RunSettings
from posterlite.bench.targets import RunContext, arm_cpu_names, check_options, chosen_targets
from posterlite.genres import DEFAULT_THRESHOLD


def settings_of(options: BenchOptions) -> RunSettings:
    """What the report records about the options (target-specific ones for their target)."""
    browser = options.target == "browser"
    android = options.target == "android"
    arm = options.target == "arm64"
    return RunSettings(
        models=tuple(options.models) or ("<shipped>",),
        formats=tuple(options.formats),
        threads=options.native_threads,
        runs=options.runs,
        warmup=options.warmup,
        rounds=options.rounds if not android else 1,
        threshold=DEFAULT_THRESHOLD,
        references=options.references,
        use_gpu=options.use_gpu if android else None,
        use_nnapi=options.use_nnapi if android else None,
        cpu_throttle=options.throttles if browser else None,
        browser_runtimes=options.runtimes if browser else None,
        browser_threads=options.browser_threads if browser else None,
        app_runtime="mediapipe" if options.app_runtime == "mediapipe" else None,
        limit=options.poster_limit,
        arm_cpu=arm_cpu_names(options.arm_cpu) if arm else None,
    )


def _data_record(posters: LabelledSet | None) -> DataRecord:
    if posters is None:
        return DataRecord(path=None, posters=0, skipped_by_scan=0)
    return DataRecord(display_path(posters.root), len(posters), posters.skipped)


def run_bench(options: BenchOptions) -> BenchReport:
    """Resolve models and data, measure on the chosen targets, return the report. Raises
    PosterliteError (one line) for refused options, missing tools, models or data."""
    check_options(options)
    targets = chosen_targets(options)
    for target in targets:  # fail on a missing tool before anything is measured
        target.preflight(options)
    environment = capture()
    limit = options.poster_limit
    posters = (
        load_labelled_set(options.data, limit)
        if options.data is not None
        else default_labelled_set(limit)
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
    context = RunContext(specs, posters, options)
    rows: list[BenchRow] = []
    for target in targets:
        rows += target.run(context)
    keras_deltas(rows, specs)
    return BenchReport(
        rows=rows,
        target=options.target,
        settings=settings_of(options),
        environment=environment.finished(),
        data=_data_record(posters),
        ratios=compute_ratios(rows),
        keras_references={s.name: s.keras_reference for s in specs if s.keras_reference},
        warnings=warnings,
    )


def bench(models: Sequence[str | Path] = (), **options: object) -> BenchReport:
    """`posterlite bench` from Python: MODELs (none: the shipped models) and the CLI's
    options as keywords (the fields of `BenchOptions`: `formats=("int8",)` or "all",
    `data=`, `threads=(1,)`, `runs=`, `rounds=`, `references=`, ...; in the browser
    `target="browser"`, `cpu_throttle=(1, 4)`, `browser_runtimes=("litert",)`,
    `browser_threads=2`; on the ARM CPU classes `target="arm64"`, `arm_cpu="a53,a76"`,
    `limit=50`). Returns the report (`summary_table(report)` is the CLI's table).
    Raises TypeError for an unknown keyword and PosterliteError for what the CLI refuses."""
    return run_bench(BenchOptions.from_api(models, **options))
