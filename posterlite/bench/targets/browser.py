"""The browser target (`posterlite bench --target browser`): the model in headless Chromium
emulating a phone, beside native LiteRT on the same CPU, in the same interleaved rounds.

`measure` runs one model in the page (`posterlite.browser` builds the page, serves it on
127.0.0.1 and drives Chromium): for every runtime x thread count x throttle, the model's
load time, its warm classify calls on one prepared poster (decode excluded), and, over the
posters given, decode + resize + classify per poster and the scores.

The run (`run_browser`) takes `rounds` rounds; each round times the native LiteRT rows (one
interleaved round) and then every model in the page (the models' order rotating each
round). The first round passes every labelled poster (accuracy, end to end); the others
one poster (timing only). So each browser row has one p50 per round, like its native row,
and its ratio to native LiteRT at the same thread count is `timing.round_ratio`: the
median of the per-round ratios (`ratios.compute_ratios`), the same figure
`benchmarks/browser_ratio.py` records.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from posterlite.bench.options import BenchOptions
from posterlite.bench.records import BenchRow, LatencyStats
from posterlite.bench.targets.base import RunContext, TargetName
from posterlite.bench.targets.cpu import prepare_cpu, progress
from posterlite.bench.timing import interleaved_rounds
from posterlite.browser import (
    DEFAULT_RUNTIME,
    DEVICE,
    RUNTIME_LABELS,
    RUNTIME_PACKAGES,
    RUNTIMES,
    THROTTLES,
    WASM_VARIANTS,
    build_site,
    find_tools,
    host_pixels,
    job_error,
    poster_links,
    run_driver,
    serve,
)
from posterlite.errors import PosterliteError
from posterlite.genres import DEFAULT_THRESHOLD
from posterlite.metrics import MultiLabelReport, evaluate


@dataclass
class BrowserMeasurement:
    """One model x runtime x throttle in the page: raw timings and scores."""

    model: Path
    runtime: str
    throttle: int
    chromium: str
    runtime_version: str
    device: dict[str, object]  # Playwright's device descriptor as the driver reported it
    model_load_ms: float
    model_fetch_ms: float
    first_ms: float
    warm_ms: list[float]
    end_to_end_ms: list[float]
    scores: np.ndarray  # (N, G) from the browser's own decode, NaN rows where it failed
    pixel_scores: np.ndarray | None  # (N, G) fed posterlite's decoded pixels
    genres: tuple[str, ...] = ()  # the model's genres (its metadata, as the page read it)
    user_agent: str = ""
    # Read from the page: fetched .wasm, WebAssembly features, isolation, threads used
    wasm: dict[str, object] = field(default_factory=dict)

    @property
    def threads(self) -> int:
        """Threads the runtime ran with, as the page reports it."""
        return _int(self.wasm.get("threads"), 1)


def _int(value: object, default: int) -> int:
    return int(value) if isinstance(value, int | float | str) and str(value) else default


def _floats(values: object) -> list[float]:
    return [float(v) for v in values if v is not None] if isinstance(values, list) else []


def measure(
    model: Path,
    posters: Sequence[Path],
    *,
    throttles: Sequence[int] = THROTTLES,
    runtimes: Sequence[str] = (DEFAULT_RUNTIME,),
    runs: int = 50,
    warmup: int = 5,
    with_host_pixels: bool = False,
    resize: str = "page",
    chromium: str | Path | None = None,
    threads: int | Sequence[int] = 1,
    init_script: Path | None = None,
) -> list[BrowserMeasurement]:
    """Every runtime x thread count x throttle for one model, in one Chromium, from one local
    (cross-origin isolated) server. A thread count > 1: LiteRT.js's threaded build with that
    many threads, checked in the page (a page that could not use them is an error); MediaPipe
    web has no threaded build: it runs once, on one thread (asked for the first count, so
    its rows record what was asked and why it ran one). `init_script`: a verification aid
    run in the page before its scripts (`browser.NO_RELAXED_SIMD`). Raises PosterliteError
    for no poster, a bad thread count, missing tools or a page that failed."""
    if not posters:
        raise PosterliteError("the browser bench needs at least one poster")
    counts = [threads] if isinstance(threads, int) else list(dict.fromkeys(threads))
    if not counts or any(t < 1 for t in counts):
        raise PosterliteError(f"--browser-threads must be >= 1 (got {threads})")
    tools = find_tools(chromium)
    tools.check()
    with tempfile.TemporaryDirectory(prefix="posterlite-site-") as tmp:
        site = build_site(model, Path(tmp), runtimes, tools=tools, bench=True, link=True)
        urls = poster_links(site.root, posters)
        pixels_url = None
        if with_host_pixels:
            pixels = host_pixels(posters, int(site.config["size"]))
            (site.root / "pixels.bin").write_bytes(np.ascontiguousarray(pixels).tobytes())
            pixels_url = "pixels.bin"
        jobs: list[dict[str, object]] = [
            {
                "kind": "bench",
                "throttle": throttle,
                "init_script": str(init_script) if init_script else None,
                "job": {
                    "config": "model.json",
                    "runtime": runtime,
                    "threads": count,
                    "posters": urls,
                    "warmup": warmup,
                    "runs": runs,
                    # the runtime's scores do not depend on the throttle: fed once
                    "pixels": pixels_url if throttle == throttles[0] else None,
                    "resize": resize,
                },
            }
            for runtime in runtimes
            for count in (counts if runtime == "litert" else counts[:1])
            for throttle in throttles
        ]
        with serve(site.root) as base:
            answer = run_driver(tools, base, jobs)
    genres = tuple(str(g) for g in site.config["genres"])
    measurements = []
    for spec, result in zip(jobs, answer["results"], strict=True):
        job = spec["job"]
        assert isinstance(job, dict)
        runtime, asked = str(job["runtime"]), int(job["threads"])
        if not result.get("ok"):
            raise job_error(result, f"{model.name} in {RUNTIME_LABELS[runtime]}")
        scores = np.array(
            [s if s is not None else [np.nan] * len(genres) for s in result["scores"]],
            np.float64,
        )
        pixel = result.get("pixel_scores")
        wasm = dict(result.get("wasm") or {})
        if runtime == "litert" and _int(wasm.get("threads"), 1) != asked:
            raise PosterliteError(
                f"{model.name} in LiteRT.js: asked for {asked} threads, the page ran "
                f"{wasm.get('threads')} ({wasm.get('why_not_threaded') or 'no reason given'})"
            )
        measurements.append(
            BrowserMeasurement(
                model=Path(model),
                runtime=runtime,
                throttle=_int(spec["throttle"], 1),
                chromium=str(answer["chromium"]),
                runtime_version=str(result["runtime_version"]),
                device=dict(answer["device"]),
                model_load_ms=float(result["model_load_ms"]),
                model_fetch_ms=float(result["model_fetch_ms"]),
                first_ms=float(result["first_ms"]),
                warm_ms=_floats(result["warm_ms"]),
                end_to_end_ms=_floats(result["end_to_end_ms"]),
                scores=scores,
                pixel_scores=None if pixel is None else np.asarray(pixel, np.float64),
                genres=genres,
                user_agent=str(result.get("user_agent", "")),
                wasm=wasm,
            )
        )
    return measurements


# ----------------------------------------------------------------------------- the rows
def device_record(m: BrowserMeasurement) -> dict[str, str]:
    """What every browser row records about where it ran (all strings, like adb's)."""
    viewport = m.device.get("viewport")
    size = viewport if isinstance(viewport, Mapping) else {}
    label = RUNTIME_LABELS[m.runtime]
    return {
        "model": f"{m.device.get('name', DEVICE)} emulated, CPU {m.throttle}x, {label}",
        "emulated_device": str(m.device.get("name", DEVICE)),
        "viewport": f"{size.get('width')}x{size.get('height')}"
        f"@{m.device.get('device_scale_factor')}",
        "touch": str(bool(m.device.get("has_touch"))).lower(),
        "mobile": str(bool(m.device.get("is_mobile"))).lower(),
        "user_agent": m.user_agent or str(m.device.get("user_agent", "")),
        "cpu_throttle": str(m.throttle),
        "browser": f"Chromium {m.chromium} (headless)",
        "runtime": m.runtime,
        "runtime_package": f"{RUNTIME_PACKAGES[m.runtime]}@{m.runtime_version}",
        **wasm_record(m.wasm),
    }


def wasm_variant(files: Sequence[str]) -> str:
    """`file (what it is)` for the .wasm file(s) a page fetched; "unknown" for none."""
    if not files:
        return "unknown (no .wasm fetched by the page was seen)"
    return "; ".join(
        f"{f} ({WASM_VARIANTS.get(f, 'build not known to posterlite')})" for f in files
    )


def wasm_record(wasm: Mapping[str, object]) -> dict[str, str]:
    """The WebAssembly facts the page reported, as device-record strings."""
    if not wasm:
        return {}
    probes = {"simd": "simd", "relaxed_simd": "relaxed_simd", "threads_supported": "threads",
              "jspi": "jspi"}  # fmt: skip
    features = [name for key, name in probes.items() if wasm.get(key)]
    files = wasm.get("wasm_files")
    record = {
        "wasm_variant": wasm_variant([str(f) for f in files] if isinstance(files, list) else []),
        "wasm_features_in_page": ",".join(features) or "none",
        "cross_origin_isolated": str(bool(wasm.get("cross_origin_isolated"))).lower(),
        "threads_requested": str(wasm.get("threads_requested", 1)),
        "threads": str(wasm.get("threads", 1)),
        "hardware_concurrency": str(wasm.get("hardware_concurrency", "")),
        "workers_started": str(wasm.get("workers_started", "")),
    }
    if wasm.get("runtime_thread_count") is not None:
        record["runtime_thread_count"] = str(wasm["runtime_thread_count"])
    if wasm.get("why_not_threaded"):
        record["why_not_threaded"] = str(wasm["why_not_threaded"])
    return record


def bench_row(
    rounds: Sequence[BrowserMeasurement], labels: np.ndarray | None, name: str, fmt: str
) -> BenchRow:
    """A `BenchRow` (target "browser") from one configuration's measurements, one per round
    (the first carries the labelled pass); `labels` (N, G) or None. Raises ValueError for no
    measurement."""
    if not rounds:
        raise ValueError("no browser measurement")
    m = rounds[0]
    e2e = np.asarray(m.end_to_end_ms, dtype=np.float64)
    warm = [[v / 1e3 for v in r.warm_ms] for r in rounds]
    row = BenchRow(
        model=name,
        format=fmt,
        kind="posterlite",
        path=str(m.model),
        target="browser",
        threads=m.threads,
        size_bytes=m.model.stat().st_size,
        latency=LatencyStats.from_rounds(warm, first_s=m.first_ms / 1e3),
        load_ms=m.model_load_ms,
        end_to_end_ms=float(e2e.mean()) if e2e.size else None,
        device=device_record(m),
        delegate=f"{RUNTIME_LABELS[m.runtime]} (WebAssembly, XNNPACK, "
        f"{m.threads} thread{'s' if m.threads > 1 else ''})",
        model_fetch_ms=m.model_fetch_ms,
    )
    if e2e.size:
        p50, p90 = (float(v) for v in np.percentile(e2e, [50, 90]))
        row.end_to_end_p50_ms, row.end_to_end_p90_ms = p50, p90
        row.notes.append(
            f"decode + resize + classify in the page: p50 {p50:.1f} ms, p90 {p90:.1f} ms "
            f"over {e2e.size} posters"
        )
    if m.threads > 1 and m.throttle > 1:
        row.notes.append(
            "Chromium's CPU throttling is aimed at the page's main thread: the runtime's "
            "worker threads are slowed far less, so this threaded row understates a slower CPU"
        )
    row.notes.append(
        "load = fetch the model + load the runtime's WebAssembly + compile the model, in the page"
    )
    if labels is not None:
        ok = ~np.isnan(m.scores).any(axis=1)
        if ok.any():
            row.accuracy = score_page(labels, m.scores, ok, m.genres)
        if (~ok).any():
            row.notes.append(f"{int((~ok).sum())} posters the browser could not decode")
    return row


def score_page(
    labels: np.ndarray, scores: np.ndarray, ok: np.ndarray, genres: Sequence[str]
) -> MultiLabelReport:
    """Accuracy (default threshold) of the page's scores on the posters it decoded (`ok`)."""
    return evaluate(labels[ok], scores[ok], list(genres), DEFAULT_THRESHOLD)


def run_browser(context: RunContext) -> list[BenchRow]:
    """Native LiteRT rows and a browser row per `.tflite` spec x runtime x thread count x
    throttle (Keras baselines and ImageNet references are host-only), in `rounds`
    interleaved rounds (see the module). Raises PosterliteError without posters or a
    `.tflite` model."""
    o, posters = context.options, context.posters
    if posters is None:
        raise PosterliteError("the browser bench needs posters to decode: pass --data")
    chosen = [s for s in context.specs if s.kind == "posterlite" and s.path.suffix == ".tflite"]
    if not chosen:
        raise PosterliteError("no .tflite model to run in the browser")
    native = prepare_cpu(context.specs, o.native_threads, posters, o.measure_memory)
    measured: dict[tuple[int, str, int, int], list[BrowserMeasurement]] = {}
    with progress(o.rounds * len(chosen), "bench browser", unit="page run") as bar:
        for index in range(o.rounds):
            interleaved_rounds(native, 1, o.runs, o.warmup)
            paths = list(posters.paths) if index == 0 else list(posters.paths[:1])
            for offset in range(len(chosen)):
                position = (index + offset) % len(chosen)  # the order rotates each round
                spec = chosen[position]
                bar.set_postfix_str(f"round {index + 1}: {spec.name}/{spec.format}")
                for m in measure(spec.path, paths, throttles=o.throttles, runtimes=o.runtimes,
                                 runs=o.runs, warmup=o.warmup, chromium=o.chromium,
                                 threads=o.browser_threads):  # fmt: skip
                    measured.setdefault((position, m.runtime, m.throttle, m.threads), []).append(m)
                bar.update(1)
    rows = [item.row for item in native]
    for (position, *_), rounds in measured.items():
        spec = chosen[position]
        labels = posters.targets(rounds[0].genres)
        rows.append(bench_row(rounds, labels, spec.name, spec.format))
    return rows


class BrowserTarget:
    """`--target browser`: headless Chromium emulating a phone, beside native LiteRT."""

    @property
    def name(self) -> TargetName:
        """The registry key."""
        return "browser"

    def refusal(self, options: BenchOptions) -> str | None:
        """The browser's options need this target, with valid values."""
        if options.browser_threads < 1:
            return f"--browser-threads must be >= 1 (got {options.browser_threads})"
        if options.cpu_throttle is not None and (
            not options.cpu_throttle or any(t < 1 for t in options.cpu_throttle)
        ):
            return f"--cpu-throttle rates must be >= 1 (got {options.cpu_throttle})"
        unknown = [r for r in options.browser_runtimes if r not in RUNTIMES]
        if unknown:
            return f"unknown browser runtime {unknown[0]!r} (choose from {RUNTIMES})"
        mine = (
            options.browser_runtimes,
            options.browser_threads != 1,
            options.chromium,
            options.cpu_throttle is not None,
        )
        if options.target != "browser" and any(mine):
            return "--browser-runtime/--browser-threads/--chromium/--cpu-throttle need --target browser"
        return None

    def preflight(self, options: BenchOptions) -> None:
        """Chromium, node and the npm runtimes must be there before the CPU rows run."""
        find_tools(options.chromium).check()

    def run(self, context: RunContext) -> list[BenchRow]:
        """Native rows and browser rows in the same rounds (`run_browser`)."""
        return run_browser(context)


TARGET = BrowserTarget()
