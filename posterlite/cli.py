"""Command line: parses options and calls the stage modules, nothing else.

Stage modules are imported inside each command so that `posterlite predict` and
`posterlite info` run on the runtime-only install (no TensorFlow import).
A `PosterliteError` becomes one line on stderr and exit status 1.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from posterlite import __version__
from posterlite.archs import ARCH_NAMES, BACKBONE_NAMES
from posterlite.errors import PosterliteError
from posterlite.safetext import display, write_data

# click >= 8.2 raises this (a UsageError) for a bare group; it carries the help text.
_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())


class _Group(click.Group):
    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except PosterliteError as exc:
            # Messages quote file names and labels: escaped, so the error stays one line.
            click.echo(f"error: {display(str(exc))}", err=True)
            ctx.exit(1)
        except click.UsageError as exc:
            if isinstance(exc, _NO_ARGS_IS_HELP):
                raise  # a bare group prints its help, as click does
            # One line instead of click's usage block; exit 2 stays click's usage status.
            command = exc.ctx.command_path if exc.ctx else ctx.command_path
            click.echo(f"error: {exc.format_message()} (see '{command} --help')", err=True)
            ctx.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="posterlite")
def main() -> None:
    """posterlite: film posters to multi-label genre predictions on a phone.

    Pipeline: data -> backbone -> train -> convert -> predict / info -> bench.
    """


# --- data -------------------------------------------------------------------------
@main.group(cls=_Group)
def data() -> None:
    """Read, split and download poster data sets."""


_DATA_FORMATS = "kaggle|multihot|folders|streaming"


def _warn(lines: list[str]) -> None:
    """Warnings go to stderr, so `--json` output stays one JSON object."""
    for line in lines:
        click.echo(line, err=True)


def _warn_genre_gaps(manifest: Path) -> None:
    """Before training: genres of the scheme with no poster in the train or val split."""
    from posterlite.data import genre_gap_warnings
    from posterlite.genres import default_scheme
    from posterlite.manifest import read_manifest

    rows = read_manifest(manifest)
    _warn(genre_gap_warnings(rows, default_scheme().names, ("train", "val"), manifest))


@data.command("scan")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--format", "fmt", metavar=_DATA_FORMATS, help="Force a layout (default: detect).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def data_scan(path: Path, fmt: str | None, as_json: bool) -> None:
    """Count the usable labelled posters of a data set and every row or file left out."""
    import json
    import time

    from posterlite import data as data_mod

    start = time.perf_counter()
    result = data_mod.scan_dataset(path, fmt)
    seconds = time.perf_counter() - start
    if as_json:
        click.echo(json.dumps({**result.to_json(), "seconds": round(seconds, 2)}, indent=1))
    else:
        click.echo(data_mod.format_scan_summary(result, seconds))
    _warn(result.warnings())


@data.command("split")
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Manifest CSV.")
@click.option(
    "--val-fraction", default=0.15, show_default=True, type=float, help="Share of films in val."
)
@click.option(
    "--test-fraction",
    default=0.15,
    show_default=True,
    type=float,
    help="Share of films in test (scored once per shipped model; 0: no test split).",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Split/reduction seed.")
@click.option("--per-genre", type=int, default=None, help="At most N posters per genre.")
@click.option("--format", "fmt", metavar=_DATA_FORMATS, help="Force a layout for every source.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def data_split(
    sources: tuple[Path, ...],
    out: Path,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    per_genre: int | None,
    fmt: str | None,
    as_json: bool,
) -> None:
    """Merge SOURCES into one manifest with a seeded, multi-label stratified train/val/test
    split (films never straddle splits; train/held-out first, then held-out into val/test)."""
    import json
    import time

    from posterlite import data as data_mod

    start = time.perf_counter()
    report = data_mod.split_sources(
        list(sources), out, val_fraction, seed, per_genre, fmt, test_fraction=test_fraction
    )
    seconds = time.perf_counter() - start
    if as_json:
        click.echo(json.dumps({**report.to_json(), "seconds": round(seconds, 2)}, indent=1))
    else:
        click.echo(data_mod.format_split_summary(report, seconds))
    _warn(report.warnings())


@data.command("download")
@click.argument("csv_file", metavar="CSV", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Poster folder.")
@click.option("--workers", default=8, show_default=True, type=int, help="Parallel downloads.")
@click.option("--retries", default=3, show_default=True, type=int, help="Retries per URL.")
@click.option(
    "--timeout", default=20.0, show_default=True, type=float, help="Seconds per connect or read."
)
@click.option(
    "--deadline",
    type=float,
    default=None,
    help="Most seconds one poster may take, every URL, retry and slow read included "
    "[default: 4 x --timeout].",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def data_download(
    csv_file: Path,
    out: Path,
    workers: int,
    retries: int,
    timeout: float,
    deadline: float | None,
    as_json: bool,
) -> None:
    """Download the Poster URLs of a Kaggle CSV to OUT/<imdbId>.jpg (resumable).

    Only http(s) is fetched, redirects included; a poster past --deadline or the size cap
    is refused. A poster that fails is one line of the summary; the others go on.
    """
    import json

    from posterlite import data as data_mod

    limits = data_mod.DownloadLimits(timeout=timeout, deadline=deadline, retries=retries)
    result = data_mod.download_posters(csv_file, out, workers, limits)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=1))
    else:
        click.echo(data_mod.format_download_summary(result))


# --- backbone ---------------------------------------------------------------------
@main.group(cls=_Group)
def backbone() -> None:
    """ImageNet MobileNet backbones from published TFLite files (offline)."""


@backbone.command("import")
@click.argument("model", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--arch",
    required=True,
    type=click.Choice(BACKBONE_NAMES),
    help="Keras architecture to fill.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Keras weights file (.weights.h5).",
)
@click.option(
    "--verify-dir",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    default=None,
    help="Verify on the first posters of this folder (default: synthetic images).",
)
@click.option(
    "--verify-count",
    type=click.IntRange(0),
    default=4,
    show_default=True,
    help="Posters run through both models to check the import (0: skip).",
)
@click.option(
    "--threads", type=click.IntRange(1), default=1, show_default=True, help="CPU threads."
)
def backbone_import(
    model: Path, arch: str, out: Path, verify_dir: Path | None, verify_count: int, threads: int
) -> None:
    """Import MODEL.tflite (Google's int8 MobileNet) into a Keras .weights.h5 + .import.json."""
    from posterlite import backbones

    backbones.limit_tf_threads(threads)
    pixels = (
        backbones.poster_pixels(verify_dir, verify_count) if verify_dir and verify_count else None
    )
    record = backbones.import_tflite_backbone(
        model,
        arch,
        out,
        verify_pixels=pixels,
        verify_source=str(verify_dir) if pixels is not None else "synthetic",
        verify_count=verify_count,
        threads=threads,
    )
    figures = {k: v for k, v in record.verification.items() if isinstance(v, float)}
    summary = ", ".join(f"{k} {v:.4f}" for k, v in figures.items())
    click.echo(f"{out}: {arch} from {model.name} ({record.layers_set} layers set); {summary}")


# --- train ------------------------------------------------------------------------


def _check_weights_file(path: Path | None) -> None:
    # Checked before any data is read, so a typo fails in a second with one line.
    if path is not None and not Path(path).is_file():
        raise PosterliteError(f"backbone weights file not found: {path}")


def _echo_grid(result, out: Path) -> None:
    for name, run_id in result.best.items():
        entry = result.runs[run_id]
        click.echo(
            f"{name:<20} <- {run_id:<32} val mAP {entry['val_map']:.4f}  "
            f"macro F1@0.5 {entry['val_macro_f1']:.4f}  -> {out / name}"
        )
    click.echo(
        f"grid: {len(result.redone)} run(s) trained, {len(result.runs) - len(result.redone)} "
        f"resumed; {result.wall_time_s:.0f} s, peak RSS {result.peak_rss_mb:.0f} MB"
    )


@main.group(cls=_Group, invoke_without_command=True)
@click.option(
    "--data",
    "manifest",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Manifest CSV from `data split`.",
)
@click.option(
    "--model",
    "arch",
    type=click.Choice(ARCH_NAMES),
    default="mobilenet_v1",
    show_default=True,
    help="Architecture.",
)
@click.option("--smote", is_flag=True, help="SMOTE (label powerset) on frozen embeddings.")
@click.option(
    "--optimizer",
    type=click.Choice(["adam", "sgd"]),
    default="adam",
    show_default=True,
    help="SGD uses momentum 0.9.",
)
@click.option("--lr", type=float, default=1e-3, show_default=True, help="Learning rate.")
@click.option("--epochs", type=int, default=50, show_default=True, help="Max epochs (early stop).")
@click.option("--batch-size", type=int, default=32, show_default=True, help="Batch size.")
@click.option("--input-size", type=int, default=None, help="Default: 224 MobileNets, 96 cnn.")
@click.option(
    "--backbone-weights",
    type=click.Path(path_type=Path),
    default=None,
    help="Keras .weights.h5 or Google .tflite MobileNet (else POSTERLITE_PRETRAINED, ../shared).",
)
@click.option(
    "--fine-tune",
    default="0",
    show_default=True,
    metavar="N|all",
    help="After the head: N = train the top N backbone blocks on cached activations; all = "
    "train every layer end to end on augmented posters (resumable; --ft-* options).",
)
@click.option(
    "--fine-tune-lr",
    type=float,
    default=None,
    help="Fine-tune learning rate (N blocks: default lr/10; all: backbone peak, default 2e-4).",
)
@click.option(
    "--fine-tune-flip", is_flag=True, help="Fine-tune on mirrored train posters too (cached)."
)
@click.option(
    "--init",
    type=click.Path(path_type=Path),
    default=None,
    help="--fine-tune all: start from this trained model folder instead of a head stage.",
)
@click.option(
    "--ft-schedule",
    default="160:3,224:1",
    show_default=True,
    help="--fine-tune all: SIZE:EPOCHS pairs in order (progressive resizing).",
)
@click.option(
    "--ft-head-lr-mult",
    type=float,
    default=3.0,
    show_default=True,
    help="--fine-tune all: head peak lr = this x the backbone's.",
)
@click.option(
    "--ft-warmup",
    type=float,
    default=1 / 3,
    show_default="1/3",
    help="--fine-tune all: linear warm-up length in epochs (then cosine decay to 0).",
)
@click.option(
    "--ft-weight-decay",
    type=float,
    default=1e-4,
    show_default=True,
    help="--fine-tune all: AdamW weight decay.",
)
@click.option(
    "--ft-bn",
    type=click.Choice(["frozen", "train"]),
    default="frozen",
    show_default=True,
    help="--fine-tune all: batch norm with frozen moving statistics, or trained.",
)
@click.option(
    "--ft-crop-scale",
    type=float,
    default=0.7,
    show_default=True,
    help="--fine-tune all: random-resized crop keeps at least this share of the area.",
)
@click.option(
    "--ft-jitter",
    type=float,
    default=0.15,
    show_default=True,
    help="--fine-tune all: brightness/contrast/saturation jitter strength (0: none).",
)
@click.option(
    "--ft-sampler",
    type=click.Choice(["none", "powerset"]),
    default=None,
    help="--fine-tune all: label-powerset balanced sampler (default: powerset with --smote).",
)
@click.option(
    "--ft-patience",
    type=int,
    default=2,
    show_default=True,
    help="--fine-tune all: stop after this many epochs without a better val mAP.",
)
@click.option(
    "--ft-ema",
    type=float,
    default=0.0,
    show_default=True,
    help="--fine-tune all: weight moving-average momentum (e.g. 0.995; 0: off); validation "
    "and the kept epoch use the averaged weights.",
)
@click.option(
    "--ft-teacher",
    "ft_teachers",
    type=click.Path(path_type=Path),
    multiple=True,
    help="--fine-tune all: a trained model folder to distil from (repeat for an ensemble; "
    "their mean probabilities on the train posters are cached).",
)
@click.option(
    "--ft-distill",
    type=float,
    default=0.0,
    show_default=True,
    help="--fine-tune all: weight of the teachers' soft targets (target = (1-w) x labels + "
    "w x teachers; needs --ft-teacher).",
)
@click.option(
    "--head-hidden",
    type=int,
    default=256,
    show_default=True,
    help="Hidden units in the head (0: none).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed (repeatable runs).")
@click.option("--time-budget", type=float, default=None, help="Max seconds per fit (best kept).")
@click.option("--grid", "grid_mode", is_flag=True, help="Run the paper's grid (= `train grid`).")
@click.option(
    "--out", type=click.Path(path_type=Path, file_okay=False), help="Run folder to write."
)
@click.pass_context
def train(
    ctx: click.Context,
    manifest: Path | None,
    arch: str,
    smote: bool,
    optimizer: str,
    lr: float,
    epochs: int,
    batch_size: int,
    input_size: int | None,
    backbone_weights: Path | None,
    fine_tune: str,
    fine_tune_lr: float | None,
    fine_tune_flip: bool,
    init: Path | None,
    ft_schedule: str,
    ft_head_lr_mult: float,
    ft_warmup: float,
    ft_weight_decay: float,
    ft_bn: str,
    ft_crop_scale: float,
    ft_jitter: float,
    ft_sampler: str | None,
    ft_patience: int,
    ft_ema: float,
    ft_teachers: tuple[Path, ...],
    ft_distill: float,
    head_hidden: int,
    seed: int,
    time_budget: float | None,
    grid_mode: bool,
    out: Path | None,
) -> None:
    """Train one genre model (or, with --grid / `train grid`, the paper's grid).

    Writes model.keras, card.json, history.json, report.{json,md}, thresholds.json,
    curves.png and confusion.png into --out.
    """
    if ctx.invoked_subcommand is not None:
        return
    missing = [flag for flag, value in (("--data", manifest), ("--out", out)) if value is None]
    if missing:
        # Optional for `train grid`, so click cannot enforce them: say which, as click does.
        raise click.UsageError(f"Missing option {' and '.join(repr(m) for m in missing)}.", ctx)
    _check_weights_file(backbone_weights)
    _warn_genre_gaps(manifest)
    from posterlite.train import EndToEndConfig, TrainConfig, parse_schedule, run_grid, train_run

    end_to_end = None
    if fine_tune.strip().lower() == "all":
        end_to_end = EndToEndConfig(
            schedule=parse_schedule(ft_schedule),
            learning_rate=fine_tune_lr or 2e-4,
            head_lr_multiplier=ft_head_lr_mult,
            warmup_epochs=ft_warmup,
            weight_decay=ft_weight_decay,
            bn=ft_bn,
            crop_scale=ft_crop_scale,
            jitter=ft_jitter,
            sampler=ft_sampler or ("powerset" if smote else "none"),
            patience=ft_patience,
            ema=ft_ema,
            teachers=tuple(str(t) for t in ft_teachers),
            distill=ft_distill,
        )
        blocks = 0
    elif fine_tune.strip().isdigit():
        blocks = int(fine_tune)
    else:
        raise click.UsageError(f"--fine-tune takes a number of blocks or 'all', not {fine_tune!r}")
    if init is not None and end_to_end is None:
        raise click.UsageError("--init needs --fine-tune all")
    config = TrainConfig(
        arch=arch,
        smote=smote,
        optimizer=optimizer,
        learning_rate=lr,
        epochs=epochs,
        batch_size=batch_size,
        input_size=input_size,
        backbone_weights=str(backbone_weights) if backbone_weights else None,
        fine_tune=blocks,
        fine_tune_learning_rate=None if end_to_end else fine_tune_lr,
        end_to_end=end_to_end,
        init=str(init) if init else None,
        fine_tune_flip=fine_tune_flip,
        head_hidden=head_hidden,
        seed=seed,
        time_budget_s=time_budget,
    )
    if grid_mode:
        _echo_grid(run_grid(manifest, out, config), out)
        return
    result = train_run(config, manifest, out)
    click.echo(
        f"{result.run_id}: val mAP {result.val_map:.4f}, macro F1@0.5 {result.val_macro_f1:.4f}, "
        f"micro F1 {result.val_micro_f1:.4f}, {result.params:,} params, "
        f"{result.wall_time_s:.0f} s -> {out}"
    )


@train.command("grid")
@click.option(
    "--data",
    "manifest",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="Manifest CSV from `data split`.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("models"),
    show_default=True,
    help="Where the best run of each of the six is written.",
)
@click.option("--epochs", type=int, default=50, show_default=True, help="Max epochs per run.")
@click.option("--batch-size", type=int, default=32, show_default=True, help="Batch size.")
@click.option(
    "--backbone-weights",
    type=click.Path(path_type=Path),
    default=None,
    help="Keras .weights.h5 or Google .tflite MobileNet (else POSTERLITE_PRETRAINED, ../shared).",
)
@click.option(
    "--head-hidden", type=int, default=256, show_default=True, help="Hidden units (0: none)."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed (repeatable runs).")
@click.option(
    "--time-budget",
    type=float,
    default=120.0,
    show_default=True,
    help="Max seconds per fit; the best epoch so far is kept.",
)
@click.option(
    "--model",
    "archs",
    type=click.Choice(ARCH_NAMES),
    multiple=True,
    help="Only these architectures (repeatable; default: all three).",
)
def train_grid(
    manifest: Path,
    out: Path,
    epochs: int,
    batch_size: int,
    backbone_weights: Path | None,
    head_hidden: int,
    seed: int,
    time_budget: float,
    archs: tuple[str, ...],
) -> None:
    """3 architectures x +-SMOTE x {Adam 1e-3, 1e-4, 1e-5; SGD 1e-4, 1e-5}; keeps the best
    run of each of the six by validation mAP in OUT/<name>. Resumable: finished runs
    (state in the cache) are not redone."""
    _check_weights_file(backbone_weights)
    _warn_genre_gaps(manifest)
    from posterlite.train import ARCHS, TrainConfig, run_grid

    base = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        backbone_weights=str(backbone_weights) if backbone_weights else None,
        head_hidden=head_hidden,
        seed=seed,
        time_budget_s=time_budget,
    )
    _echo_grid(run_grid(manifest, out, base, archs=archs or ARCHS), out)


@train.command("export-size")
@click.argument("source", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--size", type=int, required=True, help="Input side of the exported model (px).")
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Folder for the exported model and its card.",
)
def train_export_size(source: Path, size: int, out: Path) -> None:
    """Re-export a trained MobileNet at another input size (same weights, e.g. a fast 160 px
    variant); validation is re-scored at that size and thresholds re-tuned on it."""
    from posterlite.train import export_at_size

    summary = export_at_size(source, size, out)
    click.echo(
        f"{out}: {size} px, val mAP {summary['mAP']:.4f}, macro F1@0.5 {summary['macro_f1']:.4f}"
    )


# --- calibration ------------------------------------------------------------------
@main.group(cls=_Group)
def calibration() -> None:
    """Build the poster set that calibrates full-integer (int8) conversion."""


@calibration.command("build")
@click.argument("src", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--n",
    "count",
    type=click.IntRange(min=1),
    default=200,
    show_default=True,
    help="Posters to draw.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Folder for the set (replaced whole).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Sampling seed.")
@click.option(
    "--exclude",
    type=click.Path(exists=True, path_type=Path),
    multiple=True,
    help="A manifest (all its rows) or folder whose posters must not be drawn; repeatable.",
)
def calibration_build(
    src: Path, count: int, out: Path, seed: int, exclude: tuple[Path, ...]
) -> None:
    """Draw ~N posters from SRC (a manifest's train split or any data layout) into OUT."""
    from posterlite.calibration import build_calibration_set
    from posterlite.genres import default_scheme

    result = build_calibration_set(src, out, n=count, seed=seed, exclude=exclude)
    counts = ", ".join(f"{g} {c}" for g, c in result.genre_counts(default_scheme()).items())
    click.echo(f"{out}: {len(result.items)} posters ({counts})")


# --- convert ----------------------------------------------------------------------
@main.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "formats",
    type=click.Choice(["fp32", "fp16", "dynamic", "int8", "all"]),
    multiple=True,
    default=("all",),
    show_default=True,
    help="Repeat for several formats.",
)
@click.option(
    "--calibration",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Calibration posters for int8 (default: the repo's calibration/ set).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Output folder (default: the model's run folder); checked writable before converting.",
)
@click.option(
    "--max-drop",
    type=click.FloatRange(min=0.0),
    default=0.01,
    show_default=True,
    help="Fail a format that loses more mAP than this against Keras (0 or more). A failing "
    "format is written as NAME.FMT.FAILED-GATE.tflite; an earlier passing file is kept.",
)
@click.option(
    "--eval",
    "eval_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Labelled check set (any data layout; default: the card's val split).",
)
@click.option(
    "--eval-limit",
    type=click.IntRange(min=1),
    default=None,
    help="Check on at most N posters (seeded sample).",
)
def convert(
    model: Path,
    formats: tuple[str, ...],
    calibration: Path | None,
    out: Path | None,
    max_drop: float,
    eval_dir: Path | None,
    eval_limit: int | None,
) -> None:
    """Convert a trained MODEL (run folder or model.keras) to .tflite and check each format."""
    from posterlite.convert import FORMATS, convert_model

    chosen = FORMATS if "all" in formats else tuple(f for f in FORMATS if f in formats)
    report = convert_model(
        model,
        formats=chosen,
        out_dir=out,
        calibration=calibration,
        max_drop=max_drop,
        eval_dir=eval_dir,
        eval_limit=eval_limit,
        log=lambda line: click.echo(line, err=True),
    )
    for result in report.results:
        click.echo(result.path)


# --- predict / info ---------------------------------------------------------------
@main.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("posters", nargs=-1, required=True)
@click.option(
    "--threshold", type=float, default=0.5, show_default=True, help="Per-genre cut, in [0, 1]."
)
@click.option("--tuned-thresholds", is_flag=True, help="Use the per-genre thresholds in the model.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document for the batch.")
@click.option("--csv", "as_csv", is_flag=True, help="One CSV row per poster.")
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Interpreter threads.",
)
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Decode threads.")
def predict(
    model: Path,
    posters: tuple[str, ...],
    threshold: float,
    tuned_thresholds: bool,
    as_json: bool,
    as_csv: bool,
    threads: int,
    workers: int | None,
) -> None:
    """Predict genres of POSTERS (files, directories, globs) with a .tflite MODEL.

    Runs on LiteRT alone (no TensorFlow). Undecodable posters are reported on stderr and
    skipped; the exit status is 1 only when no poster could be predicted.
    """
    from posterlite.metadata import check_threshold
    from posterlite.runtime import (
        PosterModel,
        expand_posters,
        prediction_text,
        predictions_csv,
        predictions_json,
    )

    if as_json and as_csv:
        raise PosterliteError("choose one of --json and --csv")
    check_threshold(threshold, "--threshold")  # `nan` parses as a float, and cuts nothing
    paths, missing = expand_posters(posters)
    for argument in missing:
        click.echo(f"skipped: {display(argument)}: missing file", err=True)
    if not paths:
        raise PosterliteError("no poster files to predict")
    poster_model = PosterModel.load(model, threads=threads)
    cut = "tuned" if tuned_thresholds else threshold
    predictions = []
    for prediction in poster_model.iter_predictions(paths, workers=workers, threshold=cut):
        predictions.append(prediction)
        if not prediction.ok:
            click.echo(f"skipped: {display(prediction.path)}: {prediction.error}", err=True)
        elif not (as_json or as_csv):
            click.echo(prediction_text(prediction))
    if as_json:
        _write_data(predictions_json(poster_model, predictions, poster_model.cut(cut)))
    elif as_csv:
        _write_data(predictions_csv(poster_model, predictions))
    if not any(p.ok for p in predictions):
        raise PosterliteError(f"none of the {len(predictions)} posters could be predicted")


@main.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def info(model: Path, as_json: bool) -> None:
    """Show what a .tflite MODEL carries: name, version, genres, thresholds, I/O tensors."""
    from posterlite.fileio import json_text
    from posterlite.metadata import info_text, read_metadata

    details = read_metadata(model)
    if as_json:
        _write_data(json_text(details.to_dict()))
    else:
        click.echo(info_text(details), nl=False)


def _write_data(text: str) -> None:
    """A JSON or CSV document on stdout, byte-exact: not through click.echo, which strips
    what looks like an escape sequence from a file name when stdout is not a terminal."""
    sys.stdout.flush()
    write_data(sys.stdout.buffer, text)


# --- bench ------------------------------------------------------------------------
@main.command()
@click.argument("models", nargs=-1)
@click.option(
    "--formats",
    default="int8",
    show_default=True,
    help="Formats of run dirs / .keras to bench: int8 (the committed phone-ready file), "
    "any of fp32,fp16,dynamic,int8, or all (converted once into .cache/bench). "
    ".tflite files are taken as is.",
)
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    default=None,
    help="Labelled set for accuracy (any layout `data scan` reads); "
    "default: benchmarks/sample when present.",
)
@click.option("--threads", default="1", show_default=True, help="Comma-separated thread counts.")
@click.option(
    "--runs", type=int, default=30, show_default=True, help="Timed invokes per row and round."
)
@click.option(
    "--rounds",
    type=int,
    default=5,
    show_default=True,
    help="cpu / browser: timing rounds; each times every row in turn (browser: native rows, "
    "then each model in the page), p50 = median of the rounds' p50s, ratios = median of the "
    "per-round ratios.",
)
@click.option("--warmup", type=int, default=5, show_default=True, help="Untimed invokes first.")
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
    default=True,
    show_default=True,
    help="Compare with the Keras model: its recorded figures when they fit the posters, "
    "else run it (TensorFlow).",
)
@click.option(
    "--target",
    type=click.Choice(["cpu", "android", "browser", "arm64"]),
    default="cpu",
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
    default=None,
    help="browser: Chromium CPU throttling rates, comma-separated (4 = Lighthouse's mobile; "
    "default: 1,4).",
)
@click.option(
    "--browser-runtime",
    type=click.Choice(["mediapipe", "litert", "both"]),
    default=None,
    help="browser: MediaPipe Tasks for Web or LiteRT.js (default: the faster, mediapipe).",
)
@click.option(
    "--browser-threads",
    type=int,
    default=1,
    show_default=True,
    help="browser: LiteRT.js threads (its threaded WebAssembly build; the local server sends "
    "COOP/COEP so the page is cross-origin isolated). MediaPipe web has no threaded build "
    "and runs 1. Native LiteRT rows at this count join the run, so each browser row's p50 "
    "ratio is to native at its own thread count.",
)
@click.option(
    "--chromium",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="browser: Chromium binary (default: POSTERLITE_CHROMIUM, /usr/bin/chromium).",
)
@click.option("--serial", default=None, help="adb serial (android; default: the only device).")
@click.option(
    "--benchmark-binary",
    type=click.Path(path_type=Path),
    default=None,
    help="TFLite benchmark_model built for the device ABI (android).",
)
@click.option("--use-gpu", is_flag=True, help="android: GPU delegate (XNNPACK for the rest).")
@click.option("--use-nnapi", is_flag=True, help="android: NNAPI delegate (XNNPACK for the rest).")
@click.option(
    "--references/--no-references",
    default=True,
    show_default=True,
    help="Add Google's int8 MobileNetV2 files from ../shared/pretrained.",
)
@click.option(
    "--runtime",
    "app_runtime",
    type=click.Choice(["litert", "mediapipe"]),
    default="litert",
    show_default=True,
    help="cpu: mediapipe adds app-side rows beside LiteRT's: each .tflite through MediaPipe "
    "Tasks' ImageClassifier (accuracy as an app gets it; p50 per poster file includes its "
    "own decode and resize). Needs the dev extra.",
)
def bench(
    models: tuple[str, ...],
    formats: str,
    data: Path | None,
    threads: str,
    runs: int,
    rounds: int,
    warmup: int,
    json_out: Path | None,
    plot_out: Path | None,
    wide: bool,
    keras: bool,
    target: str,
    serial: str | None,
    benchmark_binary: Path | None,
    use_gpu: bool,
    use_nnapi: bool,
    references: bool,
    cpu_throttle: str | None,
    browser_runtime: str | None,
    browser_threads: int,
    chromium: Path | None,
    app_runtime: str,
    arm_cpu: str | None,
    limit: int | None,
) -> None:
    """Size, latency, memory and accuracy of MODELs (.tflite, run dirs, .keras).

    No MODEL: the six shipped models' committed int8 files (models/<name>/model.int8.tflite)
    and Google's int8 MobileNetV2 files, scored on benchmarks/sample. A Markdown table on
    stdout (CPU named above it, ratios below), progress on stderr, every figure in the JSON.
    """
    from posterlite import bench as bench_mod

    # Every rule across options is the API's (`bench.check_options`, run by `run_bench`),
    # so the CLI refuses exactly what `posterlite.bench(...)` refuses.
    options = bench_mod.BenchOptions(
        models=tuple(models),
        formats=bench_mod.parse_formats(formats),
        data=data,
        threads=bench_mod.parse_threads(threads),
        runs=runs,
        warmup=warmup,
        rounds=rounds,
        references=references,
        keras=keras,
        target=target,  # click.Choice: one of TARGET_CHOICES
        serial=serial,
        benchmark_binary=benchmark_binary,
        use_gpu=use_gpu,
        use_nnapi=use_nnapi,
        cpu_throttle=bench_mod.parse_throttles(cpu_throttle) if cpu_throttle else None,
        browser_runtimes=bench_mod.parse_runtimes(browser_runtime) if browser_runtime else (),
        browser_threads=browser_threads,
        chromium=str(chromium) if chromium else None,
        app_runtime=app_runtime,  # click.Choice: one of APP_RUNTIMES
        arm_cpu=bench_mod.parse_arm_cpus(arm_cpu),
        limit=limit,
    )
    report = bench_mod.run_bench(options)
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    default_json, default_plot = bench_mod.default_outputs()
    json_out, plot_out = json_out or default_json, plot_out or default_plot
    bench_mod.write_json(report, json_out)
    bench_mod.plot_rows(report.rows, plot_out)
    table = bench_mod.wide_table(report) if wide else bench_mod.summary_table(report)
    click.echo(table, nl=False)
    click.echo(f"plot: {plot_out}\nevery figure: {json_out}")


# --- web --------------------------------------------------------------------------
@main.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Folder for the static page: a new or empty folder, or an earlier page (it holds "
    ".posterlite-web), which is replaced whole; never one that holds MODEL.",
)
@click.option(
    "--runtime",
    type=click.Choice(["litert", "mediapipe"]),
    default="litert",
    show_default=True,
    help="In-page runtime: LiteRT.js (genres sooner after opening the page, measured) or "
    "MediaPipe Tasks for Web (faster per poster once loaded).",
)
@click.option("--serve", is_flag=True, help="Then serve OUT on 127.0.0.1 until Ctrl-C.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port for --serve.")  # fmt: skip
@click.option(
    "--check",
    "check_poster",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Open the page in headless Chromium (phone-sized), choose this poster, print the genres.",
)
@click.option(
    "--screenshot",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="With --check: save a PNG of the page showing the result.",
)
def web(
    model: Path,
    out: Path,
    runtime: str,
    serve: bool,
    port: int,
    check_poster: Path | None,
    screenshot: Path | None,
) -> None:
    """A self-contained static page that predicts genres of a photographed or chosen poster
    in the browser with MODEL (.tflite): the model, its labels, tuned thresholds, name and
    version, and the vendored JS/WASM runtime (no CDN; works offline from any static host).

    LiteRT.js runs on up to 4 threads only in a cross-origin isolated page: the host must
    send `Cross-Origin-Opener-Policy: same-origin` and `Cross-Origin-Embedder-Policy:
    require-corp` (--serve does; OUT/_headers carries them for Netlify/Cloudflare Pages,
    OUT/README.md says how elsewhere). Without them the page works on one thread."""
    from posterlite import browser

    if screenshot and not check_poster:
        raise PosterliteError("--screenshot needs --check POSTER")
    site = browser.write_page(model, out, runtime)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    text = display  # names and labels come from the model: printed inert
    click.echo(f"{out}: {text(site.config['name'])} v{text(site.config['version']) or '-'} "
               f"({runtime}, {size / 1e6:.1f} MB)")  # fmt: skip
    if check_poster:
        result = browser.check_page(out, check_poster, screenshot=screenshot)
        last = result.last
        click.echo(
            f"{check_poster}: {text(', '.join(last['genres'])) or '(none)'} "
            f"(tuned thresholds; shown {last['choose_to_genres_wall_ms']:.0f} ms after choosing, "
            f"page ready {last['ready_ms']:.0f} ms, second visit, Chromium {result.chromium})"
        )
        if screenshot:
            click.echo(f"screenshot: {screenshot}")
    if serve:
        browser.serve_forever(out, port, echo=click.echo)


if __name__ == "__main__":
    sys.exit(main())
