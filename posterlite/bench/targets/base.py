"""What a bench target is: a named runner that turns model specs into typed rows, and the
options it owns (refused, with one message, when its target is not the one chosen)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from posterlite.bench.labelled import LabelledSet
from posterlite.bench.options import BenchOptions
from posterlite.bench.records import BenchRow, ModelSpec

# The registry's targets: "mediapipe" (app-side rows on the host CPU) joins "cpu" through
# `--runtime mediapipe`; the others are `--target` choices.
TargetName = Literal["cpu", "android", "browser", "arm64", "mediapipe"]


@dataclass(frozen=True)
class RunContext:
    """What every target runs on: the resolved specs, the labelled set, the options."""

    specs: Sequence[ModelSpec]
    posters: LabelledSet | None
    options: BenchOptions


class Target(Protocol):
    """A bench target: `refusal` says what it refuses in `options` (None: nothing),
    `preflight` fails fast on missing tools before anything is measured, `run` measures."""

    @property
    def name(self) -> TargetName:
        """The registry key."""
        ...

    def refusal(self, options: BenchOptions) -> str | None:
        """The one-line reason these options cannot run (this target's own rules), or None."""
        ...

    def preflight(self, options: BenchOptions) -> None:
        """Raise PosterliteError now for a missing tool this run will need."""
        ...

    def run(self, context: RunContext) -> list[BenchRow]:
        """The rows this target measures for `context`."""
        ...
