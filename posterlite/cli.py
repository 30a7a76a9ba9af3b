"""Command line: parses options and calls the stage modules, nothing else.

Stage modules are imported inside each command so that `posterlite predict` and
`posterlite info` run on the runtime-only install (no TensorFlow import).
A `PosterliteError` becomes one line on stderr and exit status 1.
"""

from __future__ import annotations

import sys

import click

from posterlite import __version__
from posterlite.errors import PosterliteError


class _Group(click.Group):
    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except PosterliteError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(1)
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


# --- backbone ---------------------------------------------------------------------
@main.group(cls=_Group)
def backbone() -> None:
    """ImageNet MobileNet backbones from published TFLite files (offline)."""


# --- train ------------------------------------------------------------------------


# --- calibration ------------------------------------------------------------------
@main.group(cls=_Group)
def calibration() -> None:
    """Build the poster set that calibrates full-integer (int8) conversion."""


# --- convert ----------------------------------------------------------------------


# --- predict / info ---------------------------------------------------------------


# --- bench ------------------------------------------------------------------------


if __name__ == "__main__":
    sys.exit(main())
