"""`posterlite train`, `train grid`, `train export-size`: options to `posterlite.train`.

Every option of `train` that is a field of `TrainConfig` (or, with `--fine-tune all`, of
`EndToEndConfig`) is declared by `_head_option` / `_end_to_end_option`: its click
parameter is named after the field and its default is read from the dataclass, so
`train_config` maps them by name and only the few options that are not one field each
(`--fine-tune`, `--fine-tune-lr`, `--ft-schedule`, `--ft-sampler`) are mapped by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

import click

from posterlite.archs import ARCH_NAMES
from posterlite.cli.common import ErrorGroup, warn
from posterlite.data import genre_gap_warnings
from posterlite.errors import PosterliteError
from posterlite.genres import default_scheme
from posterlite.manifest import read_manifest
from posterlite.train import ARCHS, GridResult, export_at_size, run_grid, train_run
from posterlite.train.config import (
    BN_MODES,
    GRID_TIME_BUDGET_S,
    OPTIMIZERS,
    SAMPLERS,
    EndToEndConfig,
    TrainConfig,
    format_schedule,
    parse_schedule,
)

HEAD = TrainConfig()  # the defaults of a run
END_TO_END = EndToEndConfig()  # the defaults of `--fine-tune all`
# Click parameters named `e2e_<field>` are EndToEndConfig's fields.
_E2E = "e2e_"

_F = TypeVar("_F", bound=Callable[..., object])
# The `Any`s below are click's: option keyword arguments forwarded to `click.option`
# (typed `**attrs: Any` there), and the option values click hands a command (typed by each
# option's declaration, which mypy cannot read); `TrainConfig` / `EndToEndConfig` check
# them when built.


def _head_option(*flags: str, field: str, **kwargs: Any) -> Callable[[_F], _F]:
    """A click option whose value is `TrainConfig.<field>`, by default TrainConfig's."""
    return click.option(*flags, field, default=getattr(HEAD, field), **kwargs)


def _end_to_end_option(*flags: str, field: str, **kwargs: Any) -> Callable[[_F], _F]:
    """A click option whose value is `EndToEndConfig.<field>`, by default EndToEndConfig's."""
    return click.option(*flags, _E2E + field, default=getattr(END_TO_END, field), **kwargs)


def _scientific(value: float) -> str:
    """2e-4 -> "2e-4": a learning rate as people write it."""
    mantissa, exponent = f"{value:e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def check_weights_file(path: str | None) -> None:
    """Returns None; raises `PosterliteError` if `path` is given and is not a file.

    Checked before any data is read, so a typo fails in a second with one line."""
    if path is not None and not Path(path).is_file():
        raise PosterliteError(f"backbone weights file not found: {path}")


def warn_genre_gaps(manifest: Path) -> None:
    """Before training: warn (stderr) about genres of the scheme with no poster in the
    train or val split. Raises `PosterliteError` if the manifest cannot be read."""
    rows = read_manifest(manifest)
    warn(genre_gap_warnings(rows, default_scheme().names, ("train", "val"), manifest))


def train_config(options: Mapping[str, Any]) -> TrainConfig:
    """The `TrainConfig` of `train`'s options (click parameter name -> value).

    Raises click.UsageError for a `--fine-tune` that is neither a number nor `all`, or
    `--init` without `--fine-tune all`; PosterliteError for values the configs refuse.
    """
    values = dict(options)
    fine_tune: str = values.pop("fine_tune")
    fine_tune_lr: float | None = values.pop("fine_tune_lr")
    schedule: str = values.pop("ft_schedule")
    sampler: str | None = values.pop("ft_sampler")
    chosen = {name: values.pop(name) for name in list(values) if name.startswith(_E2E)}
    end_to_end = None
    if fine_tune.strip().lower() == "all":
        if fine_tune_lr is not None:  # else EndToEndConfig's own peak learning rate
            chosen[_E2E + "learning_rate"] = fine_tune_lr
        end_to_end = EndToEndConfig(
            schedule=parse_schedule(schedule),
            sampler=sampler or ("powerset" if values["smote"] else "none"),
            **{name.removeprefix(_E2E): value for name, value in chosen.items()},
        )
        blocks = 0
    elif fine_tune.strip().isdigit():
        blocks = int(fine_tune)
    else:
        raise click.UsageError(f"--fine-tune takes a number of blocks or 'all', not {fine_tune!r}")
    if values["init"] is not None and end_to_end is None:
        raise click.UsageError("--init needs --fine-tune all")
    return TrainConfig(
        **values,
        fine_tune=blocks,
        fine_tune_learning_rate=None if end_to_end else fine_tune_lr,
        end_to_end=end_to_end,
    )


def _echo_grid(result: GridResult, out: Path) -> None:
    """Print the grid's kept run per model and its totals."""
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


_WEIGHTS_HELP = (
    "Keras .weights.h5 or Google .tflite MobileNet (else POSTERLITE_PRETRAINED, ../shared)."
)
_MANIFEST_HELP = "Manifest CSV from `data split`."


@click.group(cls=ErrorGroup, invoke_without_command=True)
@click.option(
    "--data", "manifest", type=click.Path(path_type=Path, dir_okay=False), help=_MANIFEST_HELP
)
@_head_option(
    "--model", field="arch", type=click.Choice(ARCH_NAMES), show_default=True, help="Architecture."
)
@_head_option(
    "--smote", field="smote", is_flag=True, help="SMOTE (label powerset) on frozen embeddings."
)
@_head_option(
    "--optimizer",
    field="optimizer",
    type=click.Choice(OPTIMIZERS),
    show_default=True,
    help="SGD uses momentum 0.9.",
)
@_head_option("--lr", field="learning_rate", type=float, show_default=True, help="Learning rate.")
@_head_option(
    "--epochs", field="epochs", type=int, show_default=True, help="Max epochs (early stop)."
)
@_head_option("--batch-size", field="batch_size", type=int, show_default=True, help="Batch size.")
@_head_option("--input-size", field="input_size", type=int, help="Default: 224 MobileNets, 96 cnn.")
@_head_option(
    "--backbone-weights",
    field="backbone_weights",
    type=click.Path(path_type=str),
    help=_WEIGHTS_HELP,
)
@click.option(
    "--fine-tune",
    default=str(HEAD.fine_tune),
    show_default=True,
    metavar="N|all",
    help="After the head: N = train the top N backbone blocks on cached activations; all = "
    "train every layer end to end on augmented posters (resumable; --ft-* options).",
)
@click.option(
    "--fine-tune-lr",
    type=float,
    default=None,
    help="Fine-tune learning rate (N blocks: default lr/10; all: backbone peak, default "
    f"{_scientific(END_TO_END.learning_rate)}).",
)
@_head_option(
    "--fine-tune-flip",
    field="fine_tune_flip",
    is_flag=True,
    help="Fine-tune on mirrored train posters too (cached).",
)
@_head_option(
    "--init",
    field="init",
    type=click.Path(path_type=str),
    help="--fine-tune all: start from this trained model folder instead of a head stage.",
)
@click.option(
    "--ft-schedule",
    default=format_schedule(END_TO_END.schedule),
    show_default=True,
    help="--fine-tune all: SIZE:EPOCHS pairs in order (progressive resizing).",
)
@_end_to_end_option(
    "--ft-head-lr-mult",
    field="head_lr_multiplier",
    type=float,
    show_default=True,
    help="--fine-tune all: head peak lr = this x the backbone's.",
)
@_end_to_end_option(
    "--ft-warmup",
    field="warmup_epochs",
    type=float,
    show_default=str(Fraction(END_TO_END.warmup_epochs).limit_denominator(100)),
    help="--fine-tune all: linear warm-up length in epochs (then cosine decay to 0).",
)
@_end_to_end_option(
    "--ft-weight-decay",
    field="weight_decay",
    type=float,
    show_default=True,
    help="--fine-tune all: AdamW weight decay.",
)
@_end_to_end_option(
    "--ft-bn",
    field="bn",
    type=click.Choice(BN_MODES),
    show_default=True,
    help="--fine-tune all: batch norm with frozen moving statistics, or trained.",
)
@_end_to_end_option(
    "--ft-crop-scale",
    field="crop_scale",
    type=float,
    show_default=True,
    help="--fine-tune all: random-resized crop keeps at least this share of the area.",
)
@_end_to_end_option(
    "--ft-jitter",
    field="jitter",
    type=float,
    show_default=True,
    help="--fine-tune all: brightness/contrast/saturation jitter strength (0: none).",
)
@click.option(
    "--ft-sampler",
    type=click.Choice(SAMPLERS),
    default=None,
    help="--fine-tune all: label-powerset balanced sampler (default: powerset with --smote).",
)
@_end_to_end_option(
    "--ft-patience",
    field="patience",
    type=int,
    show_default=True,
    help="--fine-tune all: stop after this many epochs without a better val mAP.",
)
@_end_to_end_option(
    "--ft-ema",
    field="ema",
    type=float,
    show_default=True,
    help="--fine-tune all: weight moving-average momentum (e.g. 0.995; 0: off); validation "
    "and the kept epoch use the averaged weights.",
)
@_end_to_end_option(
    "--ft-teacher",
    field="teachers",
    type=click.Path(path_type=str),
    multiple=True,
    help="--fine-tune all: a trained model folder to distil from (repeat for an ensemble; "
    "their mean probabilities on the train posters are cached).",
)
@_end_to_end_option(
    "--ft-distill",
    field="distill",
    type=float,
    show_default=True,
    help="--fine-tune all: weight of the teachers' soft targets (target = (1-w) x labels + "
    "w x teachers; needs --ft-teacher).",
)
@_head_option(
    "--head-hidden",
    field="head_hidden",
    type=int,
    show_default=True,
    help="Hidden units in the head (0: none).",
)
@_head_option("--seed", field="seed", type=int, show_default=True, help="Seed (repeatable runs).")
@_head_option(
    "--time-budget", field="time_budget_s", type=float, help="Max seconds per fit (best kept)."
)
@click.option("--grid", "grid_mode", is_flag=True, help="Run the paper's grid (= `train grid`).")
@click.option(
    "--out", type=click.Path(path_type=Path, file_okay=False), help="Run folder to write."
)
@click.pass_context
def train(
    ctx: click.Context, /, manifest: Path | None, grid_mode: bool, out: Path | None, **options: Any
) -> None:
    """Train one genre model (or, with --grid / `train grid`, the paper's grid).

    Writes model.keras, card.json, history.json, report.{json,md}, thresholds.json,
    curves.png and confusion.png into --out.
    """
    if ctx.invoked_subcommand is not None:
        return
    if manifest is None or out is None:
        # Optional for `train grid`, so click cannot enforce them: say which, as click does.
        missing = [flag for flag, value in (("--data", manifest), ("--out", out)) if value is None]
        raise click.UsageError(f"Missing option {' and '.join(repr(m) for m in missing)}.", ctx)
    check_weights_file(options["backbone_weights"])
    warn_genre_gaps(manifest)
    config = train_config(options)
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
    help=_MANIFEST_HELP,
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("models"),
    show_default=True,
    help="Where the best run of each of the six is written.",
)
@_head_option("--epochs", field="epochs", type=int, show_default=True, help="Max epochs per run.")
@_head_option("--batch-size", field="batch_size", type=int, show_default=True, help="Batch size.")
@_head_option(
    "--backbone-weights",
    field="backbone_weights",
    type=click.Path(path_type=str),
    help=_WEIGHTS_HELP,
)
@_head_option(
    "--head-hidden",
    field="head_hidden",
    type=int,
    show_default=True,
    help="Hidden units (0: none).",
)
@_head_option("--seed", field="seed", type=int, show_default=True, help="Seed (repeatable runs).")
@click.option(
    "--time-budget",
    "time_budget_s",
    type=float,
    default=GRID_TIME_BUDGET_S,
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
def train_grid(manifest: Path, out: Path, archs: tuple[str, ...], **options: Any) -> None:
    """3 architectures x +-SMOTE x {Adam 1e-3, 1e-4, 1e-5; SGD 1e-4, 1e-5}; keeps the best
    run of each of the six by validation mAP in OUT/<name>. Resumable: finished runs
    (state in the cache) are not redone."""
    check_weights_file(options["backbone_weights"])
    warn_genre_gaps(manifest)
    _echo_grid(run_grid(manifest, out, TrainConfig(**options), archs=archs or ARCHS), out)


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
    summary = export_at_size(source, size, out)
    click.echo(
        f"{out}: {size} px, val mAP {summary['mAP']:.4f}, macro F1@0.5 {summary['macro_f1']:.4f}"
    )


@train.command("ensemble")
@click.argument(
    "members", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=Path)
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Folder of the ensemble (ensemble.json, card.json, reports; model.keras rebuilt).",
)
@click.option("--name", default=None, help="Model name in the card and metadata (default: OUT's).")
def train_ensemble(members: tuple[Path, ...], out: Path, name: str | None) -> None:
    """One model averaging the sigmoid scores of trained MEMBERS (model folders, two or
    more) fed the same poster; smaller members get a resize inside the graph. Thresholds
    are tuned on validation for the ensemble's own scores. model.keras is rebuilt from the
    members (recorded with their sha256 in ensemble.json), so it need not be committed."""
    from posterlite.train.ensemble import train_ensemble as build

    summary = build(list(members), out, name or out.resolve().name)
    click.echo(f"{out}: val mAP {summary['mAP']:.4f}, macro F1@0.5 {summary['macro_f1']:.4f}")
