"""`posterlite predict` and `posterlite info`: a .tflite model's genres and what it carries.

Runs on the runtime-only install: this module imports LiteRT's side of posterlite
(`posterlite.runtime`, `posterlite.metadata`) and never TensorFlow.
"""

from __future__ import annotations

from pathlib import Path

import click

from posterlite.cli.common import write_document
from posterlite.errors import PosterliteError
from posterlite.fileio import json_text
from posterlite.genres import DEFAULT_THRESHOLD
from posterlite.metadata import check_threshold, info_text, read_metadata
from posterlite.posterfiles import expand_posters
from posterlite.runtime import PosterModel, prediction_text, predictions_csv, predictions_json
from posterlite.safetext import display


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("posters", nargs=-1, required=True)
@click.option(
    "--threshold",
    type=float,
    default=DEFAULT_THRESHOLD,
    show_default=True,
    help="Per-genre cut, in [0, 1].",
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
            why = f"{prediction.error}" + (f" ({prediction.detail})" if prediction.detail else "")
            click.echo(f"skipped: {display(prediction.path)}: {display(why)}", err=True)
        elif not (as_json or as_csv):
            click.echo(prediction_text(prediction))
    if as_json:
        write_document(predictions_json(poster_model, predictions, poster_model.cut(cut)))
    elif as_csv:
        write_document(predictions_csv(poster_model, predictions))
    if not any(p.ok for p in predictions):
        raise PosterliteError(f"none of the {len(predictions)} posters could be predicted")


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def info(model: Path, as_json: bool) -> None:
    """Show what a .tflite MODEL carries: name, version, genres, thresholds, I/O tensors."""
    details = read_metadata(model)
    if as_json:
        write_document(json_text(details.to_dict()))
    else:
        click.echo(info_text(details), nl=False)
