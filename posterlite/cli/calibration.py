"""`posterlite calibration build`: the int8 calibration poster set (`posterlite.calibration`)."""

from __future__ import annotations

from pathlib import Path

import click

from posterlite.calibration import SET_SIZE, build_calibration_set
from posterlite.cli.common import ErrorGroup
from posterlite.genres import default_scheme


@click.group(cls=ErrorGroup)
def calibration() -> None:
    """Build the poster set that calibrates full-integer (int8) conversion."""


@calibration.command("build")
@click.argument("src", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--n",
    "count",
    type=click.IntRange(min=1),
    default=SET_SIZE,
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
    result = build_calibration_set(src, out, n=count, seed=seed, exclude=exclude)
    counts = ", ".join(f"{g} {c}" for g, c in result.genre_counts(default_scheme()).items())
    click.echo(f"{out}: {len(result.items)} posters ({counts})")
