"""What every command group of the CLI shares: the error-handling group class and the
output helpers (warnings on stderr, byte-exact data documents on stdout).

A `PosterliteError` becomes one line on stderr and exit status 1; a usage error one line
and status 2; Ctrl-C the line "interrupted" and status 130.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

import click

from posterlite.errors import PosterliteError
from posterlite.safetext import display, write_data

# click >= 8.2 raises this (a UsageError) for a bare group; it carries the help text.
_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())


class ErrorGroup(click.Group):
    """A click group whose commands' errors end as one line on stderr, never a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        """The invoked command's result; exits 1 for a `PosterliteError`, 2 for a usage
        error (a bare group still prints its help), 130 for Ctrl-C."""
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


def warn(lines: Iterable[str]) -> None:
    """Print each line on stderr (so `--json` output on stdout stays one JSON object)."""
    for line in lines:
        click.echo(line, err=True)


def write_document(text: str) -> None:
    """Write a JSON or CSV document on stdout, byte-exact: not through click.echo, which
    strips what looks like an escape sequence from a file name when stdout is not a
    terminal. Raises OSError if stdout cannot be written."""
    sys.stdout.flush()
    write_data(sys.stdout.buffer, text)
