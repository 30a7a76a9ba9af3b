"""Command line: parses options, builds the stage's config object, calls the stage.

One module per command group, each a thin layer over its stage:

- `data`: `data scan | split | download` (`posterlite.data`);
- `backbone`: `backbone import` (`posterlite.backbones`);
- `train`: `train`, `train grid | export-size` (`posterlite.train`);
- `calibration`: `calibration build` (`posterlite.calibration`);
- `convert`: `convert` (`posterlite.convert`);
- `predict`: `predict` and `info` (`posterlite.runtime`, `posterlite.metadata`);
- `bench`: `bench` (`posterlite.bench`);
- `web`: `web` (`posterlite.browser`);
- `common`: the error-handling group class and output helpers they share.

Option defaults are read from the stage's config dataclass or constants, so each default
is written once. A command's module is imported only when that command runs (or when the
root `--help` lists them all): `posterlite predict` and `posterlite info` then load the
runtime modules alone, so they run on the runtime-only install (no TensorFlow) and start
without importing the training and bench packages.
"""

from __future__ import annotations

import importlib

import click

from posterlite import __version__
from posterlite.cli.common import ErrorGroup

# Command name -> the module of this package that defines it (under the same name).
COMMAND_MODULES: dict[str, str] = {
    "backbone": "backbone",
    "bench": "bench",
    "calibration": "calibration",
    "convert": "convert",
    "data": "data",
    "info": "predict",
    "predict": "predict",
    "train": "train",
    "web": "web",
}


class _Commands(ErrorGroup):
    """The root group: its commands are loaded from `COMMAND_MODULES` on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command name, sorted (as click lists a group's commands)."""
        return sorted(COMMAND_MODULES)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command named `cmd_name`, its module imported now; None for an unknown name
        (click then reports "No such command")."""
        module = COMMAND_MODULES.get(cmd_name)
        if module is None:
            return None
        command = getattr(importlib.import_module(f"{__name__}.{module}"), cmd_name)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=_Commands)
@click.version_option(__version__, prog_name="posterlite")
def main() -> None:
    """posterlite: film posters to multi-label genre predictions on a phone.

    Pipeline: data -> backbone -> train -> convert -> predict / info -> bench.
    """
