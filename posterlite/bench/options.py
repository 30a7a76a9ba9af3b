"""A bench run's options, one typed record for the CLI and the Python API alike.

`BenchOptions` holds every choice `posterlite bench` takes; `from_api` builds it from
`posterlite.bench(...)`'s keyword arguments (strings like "int8,fp32" parsed the CLI's way).
The rules across options (which target an option needs, value ranges) are checked by
`posterlite.bench.targets.check_options`, which `run_bench` calls first, so the CLI and
Python refuse exactly the same combinations with the same message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Literal, get_args

from posterlite.bench.models import DEFAULT_FORMATS
from posterlite.browser import DEFAULT_RUNTIME, RUNTIMES, THROTTLES
from posterlite.errors import PosterliteError
from posterlite.formats import ALL, FORMAT_NAMES

# What `--target` chooses: where the rows run. (`--runtime mediapipe` adds the registry's
# "mediapipe" target beside "cpu".)
TargetChoice = Literal["cpu", "android", "browser", "arm64"]
AppRuntime = Literal["litert", "mediapipe"]
TARGET_CHOICES: tuple[TargetChoice, ...] = get_args(TargetChoice)
APP_RUNTIMES: tuple[AppRuntime, ...] = get_args(AppRuntime)
DEFAULT_ROUNDS = 5
DEFAULT_RUNS = 30
DEFAULT_WARMUP = 5
# Posters of the labelled set a run scores when `--limit` is not given: all of them, except
# on the arm64 target, where each poster is emulated once per CPU class (a second of emulator
# CPU or more per MobileNetV2 inference: the README's "What the phone's
# CPU computes" says what a run costs).
ARM_DEFAULT_POSTERS = 50


@dataclass(frozen=True)
class BenchOptions:
    """Every choice of one bench run (the CLI's options, field for field)."""

    models: tuple[str, ...] = ()
    formats: tuple[str, ...] = DEFAULT_FORMATS
    data: Path | None = None
    threads: tuple[int, ...] = (1,)
    runs: int = DEFAULT_RUNS
    warmup: int = DEFAULT_WARMUP
    rounds: int = DEFAULT_ROUNDS
    references: bool = True
    keras: bool = True
    target: TargetChoice = "cpu"
    limit: int | None = None  # the first N posters of the labelled set (None: see poster_limit)
    # android
    serial: str | None = None
    benchmark_binary: Path | None = None
    use_gpu: bool = False
    use_nnapi: bool = False
    measure_memory: bool = True
    # browser: Chromium CPU throttling rates (None: browser.THROTTLES), runtimes (():
    # browser.DEFAULT_RUNTIME), LiteRT.js threads (> 1: its threaded build in a
    # cross-origin isolated page; native LiteRT rows at this count join the run for the
    # ratio), the Chromium binary (None: Debian's)
    cpu_throttle: tuple[int, ...] | None = None
    browser_runtimes: tuple[str, ...] = ()
    browser_threads: int = 1
    chromium: str | None = None
    # "mediapipe": app-side rows (MediaPipe Tasks' ImageClassifier) beside LiteRT's
    app_runtime: AppRuntime = "litert"
    # arm64: the CPU classes (posterlite.arm.profiles names; (): its default set)
    arm_cpu: tuple[str, ...] = ()

    @property
    def poster_limit(self) -> int | None:
        """How many posters of the labelled set the run scores (None: all): `limit`, else
        `ARM_DEFAULT_POSTERS` on the arm64 target."""
        if self.limit is not None:
            return self.limit
        return ARM_DEFAULT_POSTERS if self.target == "arm64" else None

    @property
    def throttles(self) -> tuple[int, ...]:
        """The browser's CPU throttling rates in force."""
        return self.cpu_throttle or THROTTLES

    @property
    def runtimes(self) -> tuple[str, ...]:
        """The browser runtimes in force."""
        return self.browser_runtimes or (DEFAULT_RUNTIME,)

    @property
    def native_threads(self) -> tuple[int, ...]:
        """Thread counts of the host LiteRT rows: `threads`, plus the browser's count on the
        browser target (its ratio is to native LiteRT at the page's own thread count)."""
        if self.target != "browser":
            return self.threads
        return tuple(sorted({*self.threads, self.browser_threads}))

    @classmethod
    def from_api(cls, models: Sequence[str | Path] = (), **options: object) -> BenchOptions:
        """Options from `posterlite.bench(models, **options)`: field names as keywords;
        `formats`, `threads`, `cpu_throttle` and `arm_cpu` also as the CLI's comma-separated text,
        `data` / `benchmark_binary` as str. Raises TypeError for an unknown keyword and
        PosterliteError for text that does not parse."""
        known = {f.name for f in fields(cls)} - {"models"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise TypeError(f"posterlite.bench() got unknown option(s) {', '.join(unknown)}")
        parsers = {
            "formats": parse_formats,
            "threads": lambda t: parse_threads(t, "--threads"),
            "cpu_throttle": parse_throttles,
            "browser_runtimes": parse_runtimes,
            "arm_cpu": parse_arm_cpus,
        }
        values: dict[str, object] = {}
        for key, value in options.items():
            if isinstance(value, str) and key in parsers:
                value = parsers[key](value)
            elif isinstance(value, list | tuple):
                value = tuple(value)
            elif isinstance(value, int) and key in ("threads", "cpu_throttle"):
                value = (value,)
            elif isinstance(value, str) and key in ("data", "benchmark_binary"):
                value = Path(value)
            elif key == "app_runtime" and value is None:
                value = "litert"
            values[key] = value
        chosen = cls(models=tuple(str(m) for m in models))
        return replace(chosen, **values)  # type: ignore[arg-type]  # checked by check_options


def parse_formats(text: str) -> tuple[str, ...]:
    """`int8`, `fp32,int8` or `all` -> the formats; raises PosterliteError for others."""
    chosen = tuple(part.strip() for part in text.split(",") if part.strip())
    if chosen == (ALL,):
        return FORMAT_NAMES
    unknown = [f for f in chosen if f not in FORMAT_NAMES]
    if unknown or not chosen:
        raise PosterliteError(
            f"unknown format(s) {unknown or text!r}: choose from {', '.join(FORMAT_NAMES)} or {ALL}"
        )
    return chosen


def positive_ints(text: str, option: str, example: str, rule: str) -> tuple[int, ...]:
    """`1,2` -> (1, 2); raises PosterliteError (`option`, the `example`, the `rule` broken)
    unless comma-separated integers >= 1."""
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise PosterliteError(f"{option} takes integers like {example} (got {text!r})") from exc
    if not values or any(v < 1 for v in values):
        raise PosterliteError(f"{option} {rule} (got {text!r})")
    return values


def parse_threads(text: str, option: str = "--threads") -> tuple[int, ...]:
    """`1,2` -> (1, 2); raises PosterliteError unless positive integers."""
    return positive_ints(text, option, "1,2", "must be positive integers")


def parse_throttles(text: str) -> tuple[int, ...]:
    """`--cpu-throttle 1,4` -> (1, 4); rates are >= 1 (1 = no slowdown); raises
    PosterliteError otherwise."""
    return positive_ints(text, "--cpu-throttle", "1,4", "rates must be >= 1")


def parse_runtimes(text: str | None) -> tuple[str, ...]:
    """`mediapipe`, `litert`, `both` or None (the default runtime); raises PosterliteError
    for another name."""
    if text is None:
        return (DEFAULT_RUNTIME,)
    if text == "both":
        return (DEFAULT_RUNTIME, *(r for r in RUNTIMES if r != DEFAULT_RUNTIME))
    if text not in RUNTIMES:
        raise PosterliteError(f"unknown browser runtime {text!r} (choose from {RUNTIMES})")
    return (text,)


def parse_arm_cpus(text: str | None) -> tuple[str, ...]:
    """`--arm-cpu a53,a76` -> ("a53", "a76"); None -> () (the default set). The names are
    checked against posterlite.arm.profiles by `check_options`. Raises PosterliteError for
    an empty name."""
    if text is None:
        return ()
    names = tuple(part.strip() for part in text.split(","))
    if not names or any(not n for n in names):
        raise PosterliteError(
            f"--arm-cpu takes names separated by commas, like a53,a76 (got {text!r})"
        )
    return names
