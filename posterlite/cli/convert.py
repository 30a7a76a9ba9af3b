"""`posterlite convert`: a trained model to checked .tflite files (`posterlite.convert`)."""

from __future__ import annotations

from pathlib import Path

import click

from posterlite.convert import DEFAULT_MAX_DROP, FAILED_TAG, convert_model
from posterlite.formats import ALL, FORMAT_CHOICES, FORMAT_NAMES, FORMATS_HELP


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "formats",
    type=click.Choice(FORMAT_CHOICES),
    multiple=True,
    default=(ALL,),
    show_default=True,
    help=f"Repeat for several formats. {FORMATS_HELP}.",
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
    default=DEFAULT_MAX_DROP,
    show_default=True,
    help="Fail a format that loses more mAP than this against Keras (0 or more). A failing "
    f"format is written as NAME.FMT.{FAILED_TAG}.tflite; an earlier passing file is kept.",
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
    chosen = tuple(f for f in FORMAT_NAMES if ALL in formats or f in formats)
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
