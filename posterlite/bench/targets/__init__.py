"""The registry of bench targets, and the option rules every run is checked against.

Each target (`cpu`, `android`, `browser`, `arm64`, `mediapipe`) lives in its own module and turns
model specs into typed `BenchRow`s; `TARGETS` maps its name to it. `check_options` is the
one place a run's options are refused (ranges, and each target's own options used without
it), so `posterlite bench` and `posterlite.bench(...)` refuse the same things with the same
message. A new target is one module and one line here.
"""

from __future__ import annotations

from posterlite.bench.options import APP_RUNTIMES, TARGET_CHOICES, BenchOptions
from posterlite.bench.targets.android import TARGET as ANDROID
from posterlite.bench.targets.arm64 import TARGET as ARM64
from posterlite.bench.targets.arm64 import arm_cpu_names
from posterlite.bench.targets.base import RunContext, Target, TargetName
from posterlite.bench.targets.browser import TARGET as BROWSER
from posterlite.bench.targets.cpu import TARGET as CPU
from posterlite.bench.targets.mediapipe import TARGET as MEDIAPIPE
from posterlite.errors import PosterliteError

TARGETS: dict[TargetName, Target] = {t.name: t for t in (CPU, ANDROID, BROWSER, ARM64, MEDIAPIPE)}


def check_options(options: BenchOptions) -> None:
    """Raise PosterliteError (one line) for options no run can honour."""
    if options.runs < 1 or options.warmup < 0 or options.rounds < 1:
        raise PosterliteError("--runs and --rounds must be >= 1 and --warmup >= 0")
    if options.target not in TARGET_CHOICES:
        raise PosterliteError(f"unknown target {options.target!r} ({', '.join(TARGET_CHOICES)})")
    if options.app_runtime not in APP_RUNTIMES:
        raise PosterliteError(
            f"unknown runtime {options.app_runtime!r} ({', '.join(APP_RUNTIMES)})"
        )
    if not options.threads or any(t < 1 for t in options.threads):
        raise PosterliteError(f"--threads must be positive integers (got {options.threads})")
    if options.limit is not None and options.limit < 1:
        raise PosterliteError(f"--limit must be >= 1 (got {options.limit})")
    for target in TARGETS.values():
        refusal = target.refusal(options)
        if refusal:
            raise PosterliteError(refusal)


def chosen_targets(options: BenchOptions) -> list[Target]:
    """The targets a run measures, in order: `--target`'s, then MediaPipe's app-side rows."""
    chosen = [TARGETS[options.target]]
    if options.app_runtime == "mediapipe":
        chosen.append(TARGETS["mediapipe"])
    return chosen


__all__ = [
    "TARGETS",
    "RunContext",
    "arm_cpu_names",
    "Target",
    "TargetName",
    "check_options",
    "chosen_targets",
]
