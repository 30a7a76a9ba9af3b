"""`posterlite backbone import`: a published MobileNet .tflite into Keras weights
(`posterlite.backbones`)."""

from __future__ import annotations

from pathlib import Path

import click

from posterlite import backbones
from posterlite.archs import BACKBONE_NAMES
from posterlite.cli.common import ErrorGroup


@click.group(cls=ErrorGroup)
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
