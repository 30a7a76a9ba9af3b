"""Browser p50 / native LiteRT p50 at the same thread count, in interleaved rounds (issue 13).

    nice -n 10 .venv/bin/python benchmarks/browser_ratio.py          # measure + render
    .venv/bin/python benchmarks/browser_ratio.py --render-only       # JSON -> Markdown

Runtime: about 1-2 min on 2 cores (5 rounds; each round one Chromium start and three page
loads), well under 5 min on a loaded machine. Writes benchmarks/results/browser_ratio.json,
then renders browser_ratio.md from that JSON alone.

The target: per-poster p50 in the browser <= 4x native LiteRT's p50 in the same run. Fair
means the same model file, the same poster, the same thread count and the same stretch of
time, so each round measures, back to back:
1. native block: LiteRT (`ai_edge_litert`, XNNPACK) invoke p50 at 1 and at 2 threads, timed
   as `posterlite bench` times it (`bench.time_invokes`, after untimed warm-up calls);
2. browser block: one headless Chromium (Pixel 7 emulation, CPU throttle 1x) from a local
   cross-origin isolated 127.0.0.1 server, a fresh page per configuration: MediaPipe Tasks
   for Web (1 thread: it ships no threaded build), LiteRT.js at 1 thread (its relaxed-SIMD
   build) and at 2 threads (its threaded build): p50 of warm classify calls on one poster,
   decode excluded, exactly as `posterlite bench --target browser` measures its rows.
Each configuration's ratio is the median of its per-round ratios (round i's browser p50
over round i's native p50 at the thread count the page reports it ran), so load that comes
and goes between rounds cancels as far as it can. Which .wasm build each runtime fetched,
the browser's WebAssembly features, cross-origin isolation and the threads used are read
from the page in every round and recorded.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import results_io as rio

NAME = "browser_ratio"
RUNTIME = "about 1-2 min on 2 cores"
DEFAULT_MODEL = rio.REPO / "models" / "mobilenet_v2" / "model.int8.tflite"
SAMPLE = rio.REPO / "benchmarks" / "sample" / "Images"
THREADS = (1, 2)
# (runtime, threads asked): MediaPipe web has no threaded build, so it is asked for one.
CONFIGS = (("mediapipe", 1), ("litert", 1), ("litert", 2))
QUIET_LOAD = 1.0  # 1-min load average below which the machine counts as quiet (2 cores)


def native_interpreters(model: Path, poster: Path, threads: tuple[int, ...]) -> dict:
    """One LiteRT interpreter per thread count, fed the poster's pixels as `predict` feeds them."""
    from posterlite.preprocess import load_poster
    from posterlite.runtime import PosterModel

    out = {}
    for count in threads:
        model_ = PosterModel.load(model, threads=count)
        interpreter = model_.interpreter
        pixels = load_poster(poster, model_.input_size)
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], model_.prepare(pixels))
        out[count] = interpreter
    return out


def native_block(interpreters: dict, runs: int, warmup: int) -> dict[int, float]:
    """p50 (ms) of `runs` invokes per thread count, after `warmup` untimed ones."""
    import numpy as np

    from posterlite.bench import time_invokes

    return {
        count: float(np.percentile(time_invokes(interpreter.invoke, runs, warmup), 50) * 1e3)
        for count, interpreter in interpreters.items()
    }


def browser_block(model: Path, poster: Path, runs: int, warmup: int) -> list:
    """One Chromium, a fresh page per configuration in CONFIGS order."""
    from posterlite import browser

    runtimes = tuple(dict.fromkeys(r for r, _ in CONFIGS))
    measured = browser.measure(
        model, [poster], throttles=(1,), runtimes=runtimes, runs=runs, warmup=warmup,
        threads=THREADS,
    )  # fmt: skip
    by_config = {(m.runtime, int(m.wasm.get("threads_requested", 1))): m for m in measured}
    missing = [c for c in CONFIGS if c not in by_config]
    if missing:
        raise RuntimeError(f"the browser block did not run {missing}")
    return [by_config[c] for c in CONFIGS]


def measure(args, argv: list[str]) -> dict:
    import numpy as np

    from posterlite import browser
    from posterlite.fileio import sha256_file

    env = rio.environment()
    started = time.perf_counter()
    model = args.model.resolve()
    poster = (args.poster or min(SAMPLE.glob("*.jpg"))).resolve()
    interpreters = native_interpreters(model, poster, THREADS)
    native = {count: [] for count in THREADS}
    configs = [
        {"runtime": r, "threads_requested": t, "p50_ms": [], "load_ms": [], "rounds": []}
        for r, t in CONFIGS
    ]
    chromium = ""
    for index in range(args.rounds):
        for count, p50 in native_block(interpreters, args.runs, args.warmup).items():
            native[count].append(p50)
        for entry, m in zip(configs, browser_block(model, poster, args.runs, args.warmup),
                            strict=True):  # fmt: skip
            chromium = m.chromium
            record = browser.device_record(m)
            entry["p50_ms"].append(float(np.percentile(m.warm_ms, 50)))
            entry["load_ms"].append(m.model_load_ms)
            entry["rounds"].append(
                {
                    k: record.get(k)
                    for k in (
                        "wasm_variant",
                        "wasm_features_in_page",
                        "cross_origin_isolated",
                        "threads",
                        "runtime_thread_count",
                        "workers_started",
                        "why_not_threaded",
                    )
                }  # fmt: skip
            )
            entry["device"] = record  # the last round's full record
            entry["runtime_package"] = record["runtime_package"]
        print(
            f"round {index + 1}/{args.rounds}: native "
            + ", ".join(f"{c}t {native[c][-1]:.2f} ms" for c in THREADS)
            + "; browser "
            + ", ".join(
                f"{e['runtime']} {e['threads_requested']}t {e['p50_ms'][-1]:.2f} ms"
                for e in configs
            ),  # fmt: skip
            file=sys.stderr,
        )
    return {
        "command": rio.command("browser_ratio.py", argv),
        "environment": env,
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        "wall_time_s": time.perf_counter() - started,
        "model": rio.rel(model),
        "model_sha256": sha256_file(model)[:12],
        "poster": rio.rel(poster),
        "rounds": args.rounds,
        "runs_per_round": args.runs,
        "warmup": args.warmup,
        "cpu_throttle": 1,
        "chromium": chromium,
        "versions": browser.runtime_versions(browser.find_tools().modules),
        "target_ratio": browser.RATIO_TARGET,
        "native_p50_ms": {str(c): v for c, v in native.items()},
        "browser": configs,
    }


# ------------------------------------------------------------------------------ render
def ratios(payload: dict) -> list[dict]:
    """Per configuration: threads used (as the page reported, the same in every round or
    "varied"), its native p50s at that count, and `browser.ratio_to_native`'s verdict."""
    from posterlite.browser import ratio_to_native

    out = []
    for entry in payload["browser"]:
        used = sorted({str(r.get("threads")) for r in entry["rounds"]})
        variants = sorted({str(r.get("wasm_variant")) for r in entry["rounds"]})
        threads = used[0] if len(used) == 1 else "varied"
        native = payload["native_p50_ms"].get(threads)
        result = None
        if native is not None:
            result = ratio_to_native(entry["p50_ms"], native, payload["target_ratio"])
        out.append(
            {
                **entry,
                "threads_used": threads,
                "variants": variants,
                "native": native,
                "result": result,
            }
        )
    return out


LABELS = {"mediapipe": "MediaPipe web", "litert": "LiteRT.js"}


def render(payload: dict) -> str:
    lines = rio.header(
        "Browser p50 vs native LiteRT p50 at the same thread count (issue 13)", payload, RUNTIME
    )
    target = payload["target_ratio"]
    versions = payload.get("versions", {})
    load_end = payload.get("load_average_1min_at_end")
    lines += [
        f"Model `{payload['model']}` (sha256 {payload['model_sha256']}), poster "
        f"`{payload['poster']}`; Chromium {payload['chromium']} headless, Pixel 7 emulated, "
        f"CPU throttle {payload['cpu_throttle']}x, `@mediapipe/tasks-vision` "
        f"{versions.get('mediapipe', '?')}, `@litertjs/core` {versions.get('litert', '?')}. "
        f"{payload['rounds']} interleaved rounds (native block, then browser block) x "
        f"{payload['runs_per_round']} timed calls per configuration after "
        f"{payload['warmup']} untimed; 1-min load average at the end "
        f"{'-' if load_end is None else load_end}.",
        "",
        f"Target: browser p50 <= {target:g}x native LiteRT p50 at the same thread count, same "
        "run. Ratio = median of the per-round ratios.",
        "",
    ]
    loads = [payload.get("environment", {}).get("load_average_1min_at_start"), load_end]
    loads = [v for v in loads if v is not None]
    if not loads or max(loads) >= QUIET_LOAD:
        shown_loads = " / ".join(f"{v:g}" for v in loads) or "not recorded"
        lines += [
            f"**Not a record: the machine was not quiet** (1-min load average at start / end: "
            f"{shown_loads}; quiet means < {QUIET_LOAD:g}). Other work competes for the cores, "
            "most of all at 2 threads: rerun `python benchmarks/browser_ratio.py` on a quiet "
            "machine before quoting these ratios.",
            "",
        ]
    lines += [
        "| runtime | WebAssembly build fetched (read from the page) | threads asked / used "
        "| cross-origin isolated | browser p50 ms | native p50 ms (same threads) | ratio "
        "| per-round ratios | verdict |",
        "|---|---|---:|---|---:|---:|---:|---|---|",
    ]
    rows = ratios(payload)
    for row in rows:
        isolated = sorted({str(r.get("cross_origin_isolated")) for r in row["rounds"]})
        browser_p50 = statistics.median(row["p50_ms"])
        if row["result"] is None:
            native, ratio, per_round = "-", "-", "-"
            shown = f"not measured (no native LiteRT p50 at {row['threads_used']} threads)"
        else:
            native = f"{statistics.median(row['native']):.2f}"
            ratio = f"{row['result']['ratio']:.2f}x"
            per_round = ", ".join(f"{v:.2f}" for v in row["result"]["per_round"])
            shown = rio.verdict(row["result"]["met"])
        lines.append(
            f"| {LABELS.get(row['runtime'], row['runtime'])} | {'; '.join(row['variants'])} | "
            f"{row['threads_requested']} / {row['threads_used']} | {', '.join(isolated)} | "
            f"{browser_p50:.2f} | {native} | {ratio} | {per_round} | {shown} |"
        )
    judged = [r for r in rows if r["result"] is not None]
    met = [r for r in judged if r["result"]["met"]]
    lines.append("")
    if not judged:
        lines.append(f"Overall: {rio.verdict(None)}.")
    elif met:
        names = ", ".join(
            f"{LABELS.get(r['runtime'], r['runtime'])} at {r['threads_used']} thread(s) "
            f"({r['result']['ratio']:.2f}x)"
            for r in met
        )
        lines.append(f"Overall: **{rio.verdict(True)}** by {names}.")
    else:
        best = min(judged, key=lambda r: r["result"]["ratio"])
        lines.append(
            f"Overall: **{rio.verdict(False)}**: the best is "
            f"{LABELS.get(best['runtime'], best['runtime'])} at {best['threads_used']} "
            f"thread(s), {best['result']['ratio']:.2f}x."
        )
    native_rows = ", ".join(
        f"{c} thread(s): {', '.join(f'{v:.2f}' for v in values)}"
        for c, values in payload["native_p50_ms"].items()
    )
    lines += [
        "",
        f"Native LiteRT p50 per round (ms): {native_rows}.",
        "",
        "| runtime | threads used | browser p50 per round (ms) | model load per round (ms) "
        "| WebAssembly features in the page | runtime thread count | workers started |",
        "|---|---:|---|---|---|---|---|",
    ]
    for row in rows:
        features = sorted({str(r.get("wasm_features_in_page")) for r in row["rounds"]})
        counts = sorted({str(r.get("runtime_thread_count") or "-") for r in row["rounds"]})
        workers = sorted({str(r.get("workers_started")) for r in row["rounds"]})
        lines.append(
            f"| {LABELS.get(row['runtime'], row['runtime'])} | {row['threads_used']} | "
            f"{', '.join(f'{v:.2f}' for v in row['p50_ms'])} | "
            f"{', '.join(f'{v:.0f}' for v in row['load_ms'])} | {'; '.join(features)} | "
            f"{', '.join(counts)} | {', '.join(workers)} |"
        )
    asked = {(r["runtime"], r["threads_requested"]) for r in rows}
    absent = [
        f"{LABELS.get(runtime, runtime)} at {count} threads"
        for runtime in dict.fromkeys(r["runtime"] for r in rows)
        for count in (int(c) for c in payload["native_p50_ms"])
        if (runtime, count) not in asked
    ]
    lines.append("")
    if absent:
        lines.append(
            rio.note(
                f"not run: {', '.join(absent)}. MediaPipe Tasks for Web ships no threaded "
                "WebAssembly build (its memory is not shared) and has no thread option."
            )
        )
        lines.append("")
    lines.append(
        rio.note(
            "the browser p50 is the page's warm classify call on one prepared poster "
            "(decode excluded; LiteRT.js's includes the page's pixel-to-tensor copy and "
            "output read-back, MediaPipe's its own image-to-tensor step), timed with "
            "performance.now() on the page's main thread; native is LiteRT's invoke alone."
        )
    )
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = rio.make_parser(__doc__, NAME)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="int8 .tflite")
    parser.add_argument("--poster", type=Path, default=None,
                        help="poster to time (default: the sample's first)")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--runs", type=int, default=50, help="timed calls per config per round")
    parser.add_argument("--warmup", type=int, default=10, help="untimed calls first")
    args = parser.parse_args(argv)
    from posterlite.errors import PosterliteError

    try:
        payload = rio.measured_or_loaded(args, NAME, lambda: measure(args, argv))
    except PosterliteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    rio.publish(args.results, NAME, render(payload))
    return 0


if __name__ == "__main__":
    sys.exit(main())
