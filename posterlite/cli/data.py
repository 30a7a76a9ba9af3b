"""`posterlite data scan | split | download`: options to `posterlite.data`'s configs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from posterlite import data as stage
from posterlite.cli.common import ErrorGroup, warn

_FORMATS = "|".join(stage.FORMATS)
SPLIT = stage.SplitOptions()  # the defaults of `data split`
LIMITS = stage.DownloadLimits()  # the defaults of `data download`


@click.group(cls=ErrorGroup)
def data() -> None:
    """Read, split and download poster data sets."""


@data.command("scan")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--format", "fmt", metavar=_FORMATS, help="Force a layout (default: detect).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def data_scan(path: Path, fmt: str | None, as_json: bool) -> None:
    """Count the usable labelled posters of a data set and every row or file left out."""
    start = time.perf_counter()
    result = stage.scan_dataset(path, fmt)
    seconds = time.perf_counter() - start
    if as_json:
        click.echo(json.dumps({**result.to_json(), "seconds": round(seconds, 2)}, indent=1))
    else:
        click.echo(stage.format_scan_summary(result, seconds))
    warn(result.warnings())


@data.command("split")
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Manifest CSV.")
@click.option(
    "--val-fraction",
    default=SPLIT.val_fraction,
    show_default=True,
    type=float,
    help="Share of films in val.",
)
@click.option(
    "--test-fraction",
    default=SPLIT.test_fraction,
    show_default=True,
    type=float,
    help="Share of films in test (scored once per shipped model; 0: no test split).",
)
@click.option(
    "--seed", default=SPLIT.seed, show_default=True, type=int, help="Split/reduction seed."
)
@click.option("--per-genre", type=int, default=SPLIT.per_genre, help="At most N posters per genre.")
@click.option("--format", "fmt", metavar=_FORMATS, help="Force a layout for every source.")
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
    options = stage.SplitOptions(val_fraction, test_fraction, seed, per_genre, fmt)
    start = time.perf_counter()
    report = stage.split_sources(list(sources), out, options)
    seconds = time.perf_counter() - start
    if as_json:
        click.echo(json.dumps({**report.to_json(), "seconds": round(seconds, 2)}, indent=1))
    else:
        click.echo(stage.format_split_summary(report, seconds))
    warn(report.warnings())


@data.command("download")
@click.argument("csv_file", metavar="CSV", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Poster folder.")
@click.option(
    "--workers",
    default=stage.DEFAULT_WORKERS,
    show_default=True,
    type=int,
    help="Parallel downloads.",
)
@click.option(
    "--retries", default=LIMITS.retries, show_default=True, type=int, help="Retries per URL."
)
@click.option(
    "--timeout",
    default=LIMITS.timeout,
    show_default=True,
    type=float,
    help="Seconds per connect or read.",
)
@click.option(
    "--deadline",
    type=float,
    default=LIMITS.deadline,
    help="Most seconds one poster may take, every URL, retry and slow read included "
    f"[default: {stage.DEADLINE_TIMEOUTS} x --timeout].",
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
    limits = stage.DownloadLimits(timeout=timeout, deadline=deadline, retries=retries)
    result = stage.download_posters(csv_file, out, workers, limits)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=1))
    else:
        click.echo(stage.format_download_summary(result))
