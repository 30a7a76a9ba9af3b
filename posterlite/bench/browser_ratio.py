"""The browser / native ratio record (issue 13): browser p50 over native LiteRT p50 at the
same thread count, in interleaved rounds, for an int8 model and other formats of it
(`benchmarks/browser_ratio.py` records it; `posterlite bench --target browser` measures the
same ratio for its own rows).

Each round, for each format back to back (the formats' order rotating from round to round,
so none always goes first): a native block (LiteRT invoke p50 at 1 and 2 threads, timed as
the bench times it) and a browser block (one headless Chromium, a fresh page per
configuration: MediaPipe web at 1 thread, LiteRT.js at 1 and 2). A configuration's ratio
is `timing.round_ratio` (median of per-round ratios) over native at the threads the page
reports it ran; the 4x verdict is judged on int8 rows; another format's row is read against
the int8 page of the same runtime and threads.

`measure` returns the record as JSON values (the script saves them); `analyse` reads any
record (the older int8-only one included) into typed `RatioRow`s for rendering.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from posterlite.bench.environment import capture
from posterlite.bench.paths import repo_relative
from posterlite.bench.ratios import BROWSER_RATIO_GOAL
from posterlite.bench.records import JSONObject, JSONReader
from posterlite.bench.targets.browser import BrowserMeasurement, device_record
from posterlite.bench.targets.browser import measure as page
from posterlite.bench.timing import round_ratio, time_invokes
from posterlite.errors import PosterliteError
from posterlite.formats import FORMAT_NAMES, SHIPPED_FORMAT, format_spec, is_format

SCHEMA = 2
THREADS: tuple[int, ...] = (1, 2)
BrowserRuntime = Literal["mediapipe", "litert"]
# (runtime, threads asked): MediaPipe web has no threaded build, so it is asked for one.
CONFIGS: tuple[tuple[BrowserRuntime, int], ...] = (("mediapipe", 1), ("litert", 1), ("litert", 2))
REFERENCE = SHIPPED_FORMAT  # the shipped format: the target is judged on it, the others against it
# What each round records from the page's device record.
ROUND_KEYS: tuple[str, ...] = (
    "wasm_variant",
    "wasm_features_in_page",
    "cross_origin_isolated",
    "threads",
    "runtime_thread_count",
    "workers_started",
    "why_not_threaded",
)


def ratio_formats(text: str) -> tuple[str, ...]:
    """`int8,fp32` -> ("int8", "fp32"): known formats, no repeats, int8 first. Raises
    ValueError for an unknown format or without int8."""
    formats = tuple(dict.fromkeys(f.strip() for f in text.split(",") if f.strip()))
    unknown = [f for f in formats if not is_format(f)]
    if unknown:
        known = ", ".join(FORMAT_NAMES)
        raise ValueError(f"unknown format(s) {', '.join(unknown)} (known: {known})")
    if REFERENCE not in formats:
        raise ValueError(
            f"--formats must include {REFERENCE}, the reference every row is read against"
        )
    return (REFERENCE, *(f for f in formats if f != REFERENCE))


def format_files(int8: Path, folder: Path, formats: Sequence[str]) -> dict[str, Path]:
    """Each format's file: int8 is `int8` itself, another is the one `*.<format>.tflite` in
    `folder`. Raises PosterliteError for no such file, or several."""
    out: dict[str, Path] = {REFERENCE: Path(int8)}
    for fmt in formats:
        if fmt == REFERENCE:
            continue
        found = sorted(Path(folder).glob(f"*{format_spec(fmt).suffix}"))
        if len(found) != 1:
            what = "no" if not found else f"{len(found)}"
            raise PosterliteError(
                f"{what} *.{fmt}.tflite in {repo_relative(folder)}: convert one with "
                f"`posterlite convert MODEL_DIR --format {fmt} --out DIR` and pass "
                "--format-dir DIR"
            )
        out[fmt] = found[0]
    return out


def round_order(formats: Sequence[str], index: int) -> list[str]:
    """Round `index`'s order of formats: rotated by one each round."""
    shift = index % len(formats)
    return [*formats[shift:], *formats[:shift]]


@dataclass
class NativeModel:
    """One format's LiteRT interpreters (one per thread count), fed the poster as
    `predict` feeds it, and its scores on the poster."""

    invokes: dict[int, Callable[[], object]]
    scores: list[float]


def native_model(model: Path, poster: Path, threads: Sequence[int]) -> NativeModel:
    """`NativeModel` for `model` on `poster` at each thread count."""
    from posterlite.preprocess import load_poster
    from posterlite.runtime import PosterModel

    invokes: dict[int, Callable[[], object]] = {}
    scores: list[float] = []
    for count in threads:
        loaded = PosterModel.load(model, threads=count)
        pixels = load_poster(poster, loaded.input_size)
        if not scores:
            scores = [float(v) for v in loaded.predict_pixels(pixels)[0]]
        interpreter = loaded.interpreter
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], loaded.prepare(pixels))
        invokes[count] = interpreter.invoke
    return NativeModel(invokes, scores)


def model_record(path: Path, reference: Path) -> dict[str, object]:
    """What the run records about a format's file. Raises PosterliteError when it is not
    the same model as the int8 reference (name, genres, input size from the metadata)."""
    import json

    from posterlite.fileio import sha256_file
    from posterlite.metadata import read_metadata

    info, ref = read_metadata(path), read_metadata(reference)
    mine = (info.name, tuple(info.genres), info.input and tuple(info.input.shape))
    theirs = (ref.name, tuple(ref.genres), ref.input and tuple(ref.input.shape))
    if mine != theirs:
        raise PosterliteError(
            f"{repo_relative(path)} is not the same model as {repo_relative(reference)} "
            f"(name, genres, input: {mine} vs {theirs})"
        )
    sidecar = path.with_suffix(".json")
    source = None
    if sidecar.is_file():
        try:
            source = json.loads(sidecar.read_text(encoding="utf-8")).get("source_model")
        except ValueError:
            source = None
    return {
        "path": repo_relative(path),
        "sha256": sha256_file(path)[:12],
        "size_bytes": path.stat().st_size,
        "sidecar_source_model": repo_relative(source) if source else None,
    }


def native_block(native: NativeModel, runs: int, warmup: int) -> dict[int, float]:
    """p50 (ms) of `runs` invokes per thread count, after `warmup` untimed ones."""
    return {
        count: float(np.percentile(time_invokes(invoke, runs, warmup), 50) * 1e3)
        for count, invoke in native.invokes.items()
    }


def browser_block(model: Path, poster: Path, runs: int, warmup: int) -> list[BrowserMeasurement]:
    """One Chromium, a fresh page per configuration, in CONFIGS order. Raises
    PosterliteError when a configuration did not run."""
    runtimes = tuple(dict.fromkeys(r for r, _ in CONFIGS))
    measured = page(model, [poster], throttles=(1,), runtimes=runtimes, runs=runs,
                    warmup=warmup, threads=THREADS)  # fmt: skip
    by_config = {(m.runtime, int(str(m.wasm.get("threads_requested", 1)))): m for m in measured}
    missing = [c for c in CONFIGS if c not in by_config]
    if missing:
        raise PosterliteError(f"the browser block did not run {missing}")
    return [by_config[c] for c in CONFIGS]


@dataclass
class PageConfig:
    """One (format, runtime, threads asked) configuration's figures, round by round."""

    format: str
    runtime: str
    threads_requested: int
    p50_ms: list[float] = field(default_factory=list)
    load_ms: list[float] = field(default_factory=list)
    rounds: list[dict[str, str | None]] = field(default_factory=list)  # ROUND_KEYS per round
    device: dict[str, str] = field(default_factory=dict)  # the last round's full record
    runtime_package: str = ""
    page_scores: list[float] = field(default_factory=list)  # the last round's, on the poster

    def add_round(self, m: BrowserMeasurement) -> None:
        """Record one round's measurement of this configuration."""
        record = device_record(m)
        self.p50_ms.append(float(np.percentile(m.warm_ms, 50)))
        self.load_ms.append(m.model_load_ms)
        self.rounds.append({k: record.get(k) for k in ROUND_KEYS})
        self.device = record
        self.runtime_package = record["runtime_package"]
        self.page_scores = [float(v) for v in m.scores[0]]


def _echo(line: str) -> None:
    print(line, file=sys.stderr)


def measure(
    model: Path,
    poster: Path,
    format_dir: Path,
    formats: Sequence[str],
    *,
    rounds: int,
    runs: int,
    warmup: int,
    log: Callable[[str], None] = _echo,
) -> dict[str, object]:
    """The record (JSON values; the caller adds its command): every format's native and
    browser p50 per round, what the page reported each round, the files' records. Raises
    PosterliteError for a missing or mismatched format file, or a page that failed."""
    from posterlite import browser

    env = capture()
    started = time.perf_counter()
    files = format_files(model, format_dir, formats)
    models = {fmt: model_record(path, model) for fmt, path in files.items()}
    natives = {}
    for fmt, path in files.items():
        natives[fmt] = native_model(path, poster, THREADS)
        models[fmt]["native_scores"] = natives[fmt].scores
    native: dict[str, dict[int, list[float]]] = {fmt: {c: [] for c in THREADS} for fmt in files}
    configs = {fmt: [PageConfig(fmt, r, t) for r, t in CONFIGS] for fmt in files}
    chromium = ""
    orders = []
    for index in range(rounds):
        order = round_order(formats, index)
        orders.append(order)
        for fmt in order:
            for count, p50 in native_block(natives[fmt], runs, warmup).items():
                native[fmt][count].append(p50)
            measured = browser_block(files[fmt], poster, runs, warmup)
            for config, m in zip(configs[fmt], measured, strict=True):
                chromium = m.chromium
                config.add_round(m)
            log(
                f"round {index + 1}/{rounds} {fmt}: native "
                + ", ".join(f"{c}t {native[fmt][c][-1]:.2f} ms" for c in THREADS)
                + "; browser "
                + ", ".join(
                    f"{c.runtime} {c.threads_requested}t {c.p50_ms[-1]:.2f} ms"
                    for c in configs[fmt]
                )
            )
    return {
        "schema": SCHEMA,
        "environment": env.to_json_value(),
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        "wall_time_s": time.perf_counter() - started,
        "formats": list(formats),
        "models": models,
        "model": models[REFERENCE]["path"],
        "model_sha256": models[REFERENCE]["sha256"],
        "poster": repo_relative(poster),
        "rounds": rounds,
        "round_orders": orders,
        "runs_per_round": runs,
        "warmup": warmup,
        "cpu_throttle": 1,
        "chromium": chromium,
        "versions": browser.runtime_versions(browser.find_tools().modules),
        "target_ratio": BROWSER_RATIO_GOAL,
        "native_p50_ms": {
            fmt: {str(c): v for c, v in per_count.items()} for fmt, per_count in native.items()
        },
        "browser": [asdict(config) for fmt in files for config in configs[fmt]],
    }


# ---------------------------------------------------------------------------- reading
def normalized(payload: JSONObject) -> JSONObject:
    """The record in the multi-format shape. A record from before --formats (int8 only:
    `native_p50_ms` keyed by thread count, browser entries without a format) reads as one
    int8 format; nothing else changes."""
    if "formats" in payload:
        return payload
    entries = [e.data for e in JSONReader(payload, "browser_ratio").children("browser")]
    return {
        **payload,
        "formats": [REFERENCE],
        "models": {REFERENCE: {"path": payload["model"], "sha256": payload["model_sha256"]}},
        "native_p50_ms": {REFERENCE: payload["native_p50_ms"]},
        "browser": [{**entry, "format": REFERENCE} for entry in entries],
    }


@dataclass(frozen=True)
class Verdict:
    """A ratio (median of per-round ratios) and whether it is within the target."""

    ratio: float
    per_round: tuple[float, ...]
    target: float
    met: bool


def verdict(numerator: Sequence[float], denominator: Sequence[float], target: float) -> Verdict:
    """`round_ratio` of per-round p50s, judged against `target` (at most)."""
    ratio, per_round = round_ratio(numerator, denominator)
    return Verdict(ratio, per_round, target, ratio <= target)


@dataclass(frozen=True)
class PageComparison:
    """A format's page against the int8 page of the same runtime and threads."""

    ratio: float
    per_round: tuple[float, ...]
    faster_rounds: int


@dataclass(frozen=True)
class RatioRow:
    """One (format, runtime, threads) configuration of a record, with its ratios."""

    format: str
    runtime: str
    threads_requested: int
    threads_used: str  # as the page reported it in every round, else "varied"
    p50_ms: tuple[float, ...]  # browser p50 per round
    load_ms: tuple[float, ...]
    rounds: tuple[Mapping[str, object], ...]  # what the page reported, per round
    variants: tuple[str, ...]
    page_scores: tuple[float, ...] | None
    native: tuple[float, ...] | None  # native p50 per round, same format and threads
    result: Verdict | None  # to native, same format
    to_int8: Verdict | None  # to native int8, same threads
    vs_int8_page: PageComparison | None

    def seen(self, key: str) -> list[str]:
        """The distinct values the page reported for `key` over the rounds, sorted."""
        return sorted({str(r.get(key)) for r in self.rounds})


def analyse(payload: JSONObject) -> list[RatioRow]:
    """Every configuration of a record with its ratios (see `RatioRow`); raises
    PosterliteError for a record it cannot read."""
    record = JSONReader(normalized(payload), "browser_ratio")
    target = record.number("target_ratio")
    natives = record.child("native_p50_ms")
    entries = record.children("browser")
    reference = {
        (e.text("runtime"), e.integer("threads_requested")): e
        for e in entries
        if e.text("format") == REFERENCE
    }
    out = []
    for entry in entries:
        fmt, runtime = entry.text("format"), entry.text("runtime")
        asked = entry.integer("threads_requested")
        rounds = tuple(r.data for r in entry.children("rounds"))
        used = sorted({str(r.get("threads")) for r in rounds})
        threads = used[0] if len(used) == 1 else "varied"
        p50 = entry.numbers("p50_ms")
        same, int8 = (natives.child(f, {}) for f in (fmt, REFERENCE))
        native = same.numbers(threads) if threads in same.data else None
        int8_native = int8.numbers(threads) if threads in int8.data else None
        page = reference.get((runtime, asked))
        scores = entry.get("page_scores", None)
        vs_page = None
        if fmt != REFERENCE and page is not None:
            ratio, per_round = round_ratio(p50, page.numbers("p50_ms"))
            vs_page = PageComparison(ratio, per_round, sum(v < 1 for v in per_round))
        out.append(
            RatioRow(
                format=fmt,
                runtime=runtime,
                threads_requested=asked,
                threads_used=threads,
                p50_ms=p50,
                load_ms=entry.numbers("load_ms"),
                rounds=rounds,
                variants=tuple(sorted({str(r.get("wasm_variant")) for r in rounds})),
                page_scores=None if scores is None else entry.numbers("page_scores"),
                native=native,
                result=None if native is None else verdict(p50, native, target),
                to_int8=None if int8_native is None else verdict(p50, int8_native, target),
                vs_int8_page=vs_page,
            )
        )
    return out
