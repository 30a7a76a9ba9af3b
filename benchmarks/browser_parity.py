"""Browser parity and speed: the shipped int8 model in headless Chromium vs `posterlite predict`.

Measured on the bundled labelled sample (benchmarks/sample, 200 validation posters):
(a) the page fed posterlite's own decoded + resized pixels (`load_poster`, sent as ImageData
    at the model's input size, so the web runtime's resize is a no-op): isolates the runtime;
(b) the page decoding the JPEG files itself and resizing them with posterlite.js (what users
    get: the same integer resize as posterlite's preprocess), and
    MediaPipe resizing the browser-decoded image itself;
for both web runtimes (MediaPipe Tasks for Web, LiteRT.js), at Chromium CPU throttling 1x
and 4x, plus the user page as a person meets it (second visit: page ready, poster chosen,
genres shown) and native LiteRT on the same poster in the same run.

    nice -n 10 .venv/bin/python benchmarks/browser_parity.py            # measure + render
    .venv/bin/python benchmarks/browser_parity.py --render-only         # JSON -> Markdown

Runtime: about 5 min on 2 shared cores (both web runtimes at 1x and 4x, the page visits,
`posterlite bench --target browser`). Writes benchmarks/results/browser_parity.json, then
renders browser_parity.md from that JSON alone. Paths are recorded repository-relative; a
model outside the repository is recorded by file name (`<outside the repository>/NAME`)
beside its sha256.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import results_io as rio

NAME = "browser_parity"
REPO = rio.REPO
DEFAULT_MODEL = REPO / "models" / "mobilenet_v2" / "model.int8.tflite"
MODEL_COMMAND = "posterlite convert models/mobilenet_v2 --format int8 --out DIR"
TARGET_SAME = 0.99
TARGET_MAP_DELTA = 0.005
TARGET_RATIO = 4.0
TARGET_PAGE_MS = 1000.0
TARGET_BENCH_S = 120.0


def _rel(path: Path | str) -> str:
    """Repo-relative inside the checkout, `../shared/...` beside it, else the file name
    (`<outside the repository>/NAME`; the model's sha256 is recorded beside it)."""
    return rio.rel(Path(path).resolve())


def _scrub(text: str, model: Path) -> str:
    """Text from `posterlite bench` with the machine's paths made as `_rel` records them."""
    return text.replace(str(model), _rel(model)).replace(f"{REPO}/", "")


def _tracked(path: Path) -> bool:
    """Whether git tracks `path` (a committed model) or it was made for this run."""
    import subprocess

    done = subprocess.run(
        ["git", "ls-files", "--error-unmatch", _rel(path)], cwd=REPO, capture_output=True
    )
    return done.returncode == 0


def compare(scores: np.ndarray, host: np.ndarray, labels: np.ndarray, genres: list[str]) -> dict:
    """Same genre set at 0.5, score differences and mAP of `scores` against the host's."""
    from posterlite.metrics import evaluate

    ok = ~np.isnan(scores).any(axis=1)
    diff = np.abs(scores[ok] - host[ok])
    same = ((scores[ok] >= 0.5) == (host[ok] >= 0.5)).all(axis=1)
    return {
        "posters": int(ok.sum()),
        "same_set_at_0_5": float(same.mean()),
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "map": float(evaluate(labels[ok], scores[ok], genres, 0.5).mean_average_precision),
    }


def timing(m) -> dict:
    warm, e2e = np.asarray(m.warm_ms), np.asarray(m.end_to_end_ms)
    return {
        "runtime": m.runtime,
        "runtime_version": m.runtime_version,
        "throttle": m.throttle,
        "model_load_ms": m.model_load_ms,
        "model_fetch_ms": m.model_fetch_ms,
        "first_ms": m.first_ms,
        "warm_p50_ms": float(np.percentile(warm, 50)),
        "warm_p90_ms": float(np.percentile(warm, 90)),
        "e2e_p50_ms": float(np.percentile(e2e, 50)),
        "e2e_p90_ms": float(np.percentile(e2e, 90)),
        "runs": len(warm),
        "posters": len(e2e),
    }


def native_p50(model: Path, pixels: np.ndarray, runs: int, warmup: int) -> float:
    """LiteRT invoke p50 (ms, 1 thread) on one poster, as `posterlite bench` times it."""
    from posterlite.bench import time_invokes
    from posterlite.runtime import PosterModel

    poster = PosterModel.load(model, threads=1)
    interpreter = poster.interpreter
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], poster.prepare(pixels[0]))
    return float(np.percentile(time_invokes(interpreter.invoke, runs, warmup), 50) * 1e3)


def measure_all(model: Path, data: Path, runs: int, warmup: int, argv: list[str]) -> dict:
    from posterlite import browser
    from posterlite.bench import load_labelled_set
    from posterlite.bench.environment import cpu_model
    from posterlite.bench.targets.browser import device_record
    from posterlite.bench.targets.browser import measure as measure_page
    from posterlite.fileio import sha256_file
    from posterlite.runtime import PosterModel

    started = time.perf_counter()
    posters = load_labelled_set(data)
    paths = list(posters.paths)
    host_model = PosterModel.load(model)
    genres = list(host_model.genres)
    pixels = browser.host_pixels(paths, host_model.input_size)
    host = host_model.predict_pixels(pixels).astype(np.float64)
    labels = posters.targets(genres)
    from posterlite.metrics import evaluate

    host_map = float(evaluate(labels, host, genres, 0.5).mean_average_precision)
    native_before = native_p50(model, pixels, runs * 2, warmup)

    results: dict = {"runtimes": {}, "timings": [], "bench_wall_s": {}}
    for runtime in browser.RUNTIMES:
        t0 = time.perf_counter()
        measured = measure_page(
            model, paths, throttles=(1, 4), runtimes=(runtime,), runs=runs, warmup=warmup,
            with_host_pixels=True,
        )  # fmt: skip
        results["bench_wall_s"][runtime] = time.perf_counter() - t0
        first = measured[0]
        entry = {
            "a_host_pixels": compare(first.pixel_scores, host, labels, genres),
            "b_browser_decode_page_resize": compare(first.scores, host, labels, genres),
        }
        results["timings"] += [timing(m) for m in measured]
        results["chromium"] = first.chromium
        results["device"] = device_record(first)
        results["runtimes"][runtime] = entry
    # MediaPipe resizing the browser-decoded poster itself (its own image-to-tensor path).
    own = measure_page(
        model, paths, throttles=(1,), runtimes=("mediapipe",), runs=runs, warmup=warmup,
        resize="runtime",
    )[0]  # fmt: skip
    results["runtimes"]["mediapipe"]["b_browser_decode_mediapipe_resize"] = compare(
        own.scores, host, labels, genres
    )
    results["timings"].append({**timing(own), "resize": "mediapipe's own"})
    native_after = native_p50(model, pixels, runs * 2, warmup)

    # `posterlite bench MODEL --target browser` as shipped (default runtime, 1x and 4x,
    # beside native LiteRT in the same run), timed as a whole.
    from posterlite.bench import BenchOptions, run_bench, summary_table

    t0 = time.perf_counter()
    bench = run_bench(BenchOptions(models=[str(model)], target="browser"))
    bench_wall = time.perf_counter() - t0
    native_ratio = {  # browser row label -> its ratio to native LiteRT (same run)
        r.numerator + str(r.threads): r.value for r in bench.ratios if r.name.startswith("browser")
    }
    bench_rows = [
        {
            "target": row.target,
            "model": row.model,
            "device": row.device,
            "end_to_end_p50_ms": row.end_to_end_p50_ms,
            "end_to_end_p90_ms": row.end_to_end_p90_ms,
            "p50_vs_native_litert": native_ratio.get(row.label + str(row.threads)),
            "load_ms": row.load_ms,
            "p50_ms": row.latency.p50_ms if row.latency else None,
            "p90_ms": row.latency.p90_ms if row.latency else None,
            "end_to_end_ms": row.end_to_end_ms,
            "map": row.accuracy.mean_average_precision if row.accuracy else None,
        }
        for row in bench.rows
        if row.kind == "posterlite"
    ]
    results["bench_command"] = {
        "command": f"posterlite bench {_rel(model)} --target browser",
        "wall_s": bench_wall,
        "table": _scrub(summary_table(bench), model),
        "rows": bench_rows,
        "settings": json.loads(_scrub(json.dumps(bench.settings.to_json_value()), model)),
    }

    # The page as a person meets it, per runtime, on the first poster of the sample.
    pages = {}
    poster = paths[0]
    tuned = host_model.decide(host[0], "tuned")
    import tempfile

    for runtime in browser.RUNTIMES:
        with tempfile.TemporaryDirectory() as tmp:
            site = browser.write_page(model, Path(tmp) / "page", runtime)
            check = browser.check_page(site.root, poster, visits=4)
        later = check.visits[1:]  # after the first visit (HTTP cache warm)
        pages[runtime] = {
            "poster": _rel(poster),
            "host_genres_tuned": list(tuned),
            "page_genres": [v["genres"] for v in check.visits],
            "ready_ms": [v["ready_ms"] for v in later],
            "choose_to_genres_ms": [v["choose_to_genres_wall_ms"] for v in later],
            "open_to_genres_ms": [v["ready_ms"] + v["choose_to_genres_wall_ms"] for v in later],
            "first_visit_ready_ms": check.visits[0]["ready_ms"],
        }
    return {
        "command": rio.command("browser_parity.py", argv),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": _rel(model),
        "model_sha256": sha256_file(model),
        "model_made_by": "committed" if _tracked(model) else MODEL_COMMAND,
        "data": _rel(data),
        "posters": len(paths),
        "genres": genres,
        "host": {"map": host_map, "native_litert_p50_ms": [native_before, native_after]},
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "load_average_at_end": list(os.getloadavg()),
        "versions": browser.runtime_versions(browser.find_tools().modules),
        "runs": runs,
        "warmup": warmup,
        "pages": pages,
        "wall_s": time.perf_counter() - started,
        **results,
    }


def _pct(value: float) -> str:
    return f"{100 * value:.1f} %"


def render(report: dict) -> str:
    host_map = report["host"]["map"]
    native = report["host"]["native_litert_p50_ms"]
    native_mid = float(np.median(native))
    command = report.get("command", "python benchmarks/browser_parity.py --model MODEL")
    lines = [
        "# The shipped int8 model in a mobile browser engine (headless Chromium)",
        "",
        f"Reproduce: `{command}` (run with `nice -n 10`; "
        "`--render-only` re-renders this file from the JSON).",
        "",
        f"- CPU: {report['cpu']} ({report['logical_cores']} logical cores)",
        f"- date: {report['created']}",
        f"- libraries: Chromium {report['chromium']}, @mediapipe/tasks-vision "
        f"{report['versions']['mediapipe']}, @litertjs/core {report['versions']['litert']}, "
        f"playwright-core {report['versions']['playwright']}",
        "",
        f"Measured {report['created']} on **{report['cpu']}** ({report['logical_cores']} logical "
        f"cores, shared with other jobs: load average {report['load_average_at_end'][0]:.1f} "
        "at the end), Chromium "
        f"{report['chromium']} headless, emulating a {report['device']['emulated_device']} "
        f"({report['device']['viewport']}, touch, mobile UA), "
        f"`@mediapipe/tasks-vision` {report['versions']['mediapipe']}, "
        f"`@litertjs/core` {report['versions']['litert']} (WebAssembly, 1 thread). "
        f"Model `{report['model']}` (sha256 {report['model_sha256'][:12]}, made by "
        f"`{report['model_made_by']}`), {report['posters']} posters of `{report['data']}`.",
        "",
        "This is a browser engine on this CPU, optionally slowed by Chromium's CPU throttling "
        "(4x stands for a mid-range phone in Lighthouse); it is not a phone: no phone "
        "NPU/GPU, memory bandwidth or thermal throttling is measured.",
        "",
        "## Parity with `posterlite predict` (host LiteRT, same model file)",
        "",
        f"Host mAP at 0.5: **{host_map:.4f}**. Targets: same genre set at 0.5 on >= "
        f"{_pct(TARGET_SAME)} of posters for (a); mAP within {TARGET_MAP_DELTA} of the host.",
        "",
        "| runtime | pixels the page classifies | same set @0.5 | max / mean abs diff "
        "| mAP | mAP - host |",
        "|---|---|---:|---:|---:|---:|",
    ]
    names = {
        "a_host_pixels": "(a) posterlite's decoded + resized pixels (ImageData)",
        "b_browser_decode_page_resize": "(b) browser decode + the page's resize (posterlite.js)",
        "b_browser_decode_mediapipe_resize": "(b') browser decode, MediaPipe's own resize",
    }
    for runtime, entry in report["runtimes"].items():
        for key, label in names.items():
            if key not in entry:
                continue
            c = entry[key]
            lines.append(
                f"| {runtime} | {label} | {_pct(c['same_set_at_0_5'])} | "
                f"{c['max_abs_diff']:.4f} / {c['mean_abs_diff']:.4f} | {c['map']:.4f} | "
                f"{c['map'] - host_map:+.4f} |"
            )
    lines += [
        "",
        "## Speed in the page",
        "",
        "p50 / p90 per poster: *warm* = one prepared poster classified "
        f"{report['runs']} times after {report['warmup']} untimed calls (decode excluded); "
        "*e2e* = every poster from its file bytes: decode + resize + classify. Load = fetch the "
        "model + load the runtime's WebAssembly + compile the model. Native LiteRT (1 thread, "
        f"same poster, same run, before / after the browser runs): "
        f"{native[0]:.2f} / {native[1]:.2f} ms. Chromium throttles by freezing the page's main "
        "thread for a fixed share of wall time (a helper thread interrupts it), so time spent "
        "waiting for the decoder thread absorbs freezes: throttled e2e figures understate a "
        "slower CPU; the back-to-back warm calls show the full slowdown.",
        "",
        "| runtime | resize | CPU throttle | load ms | first ms | warm p50 | warm p90 "
        "| e2e p50 | e2e p90 | warm p50 / native |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for t in report["timings"]:
        lines.append(
            f"| {t['runtime']} {t['runtime_version']} | {t.get('resize', 'posterlite.js')} | "
            f"{t['throttle']}x | {t['model_load_ms']:.0f} | {t['first_ms']:.0f} | "
            f"{t['warm_p50_ms']:.1f} | {t['warm_p90_ms']:.1f} | {t['e2e_p50_ms']:.1f} | "
            f"{t['e2e_p90_ms']:.1f} | {t['warm_p50_ms'] / native_mid:.1f}x |"
        )
    walls = ", ".join(f"{k} {v:.0f} s" for k, v in report["bench_wall_s"].items())
    lines += [
        "",
        f"Wall time of one model's browser measurement at 1x and 4x (incl. the host-pixel "
        f"pass and Chromium start): {walls} (target <= {TARGET_BENCH_S:.0f} s for "
        "`posterlite bench --target browser`, which skips the host-pixel pass).",
        "",
        "## The page as a person meets it (unthrottled)",
        "",
        "`posterlite web MODEL --out DIR`, served from 127.0.0.1, opened in the phone context; "
        "visits after the first (HTTP cache warm). *open to genres* = page ready + the time "
        f"from choosing the poster to its genres on screen (target < {TARGET_PAGE_MS:.0f} ms).",
        "",
        "| runtime | genres shown (tuned thresholds) | same as `predict --tuned-thresholds` "
        "| ready ms | choose to genres ms | open to genres ms |",
        "|---|---|---|---:|---:|---:|",
    ]
    for runtime, page in report["pages"].items():
        shown = page["page_genres"][-1]
        lines.append(
            f"| {runtime} | {', '.join(shown)} | "
            f"{'yes' if all(g == page['host_genres_tuned'] for g in page['page_genres']) else 'no'}"
            f" | {', '.join(f'{v:.0f}' for v in page['ready_ms'])} | "
            f"{', '.join(f'{v:.0f}' for v in page['choose_to_genres_ms'])} | "
            f"{', '.join(f'{v:.0f}' for v in page['open_to_genres_ms'])} |"
        )
    lines += ["", f"Poster: `{next(iter(report['pages'].values()))['poster']}`.", ""]
    bench = report.get("bench_command")
    if bench:
        lines += [
            "## `posterlite bench --target browser` (default runtime, beside native LiteRT)",
            "",
            f"`{bench['command']}`: whole command {bench['wall_s']:.0f} s (target <= "
            f"{TARGET_BENCH_S:.0f} s).",
            "",
        ]
        for row in bench["rows"]:
            if row["target"] != "browser":
                continue
            d = row["device"]
            lines.append(
                f"- {d['model']}: load {row['load_ms']:.0f} ms, warm p50 {row['p50_ms']:.1f} / "
                f"p90 {row['p90_ms']:.1f} ms, decode + resize + classify p50 "
                f"{_figure(row, 'end_to_end_p50_ms')} / p90 {_figure(row, 'end_to_end_p90_ms')} "
                f"ms, p50 = {_figure(row, 'p50_vs_native_litert')}x native LiteRT, mAP "
                f"{row['map']:.4f}"
            )
        lines += ["", bench["table"]]
    return "\n".join(lines)


def _figure(row: dict, key: str) -> str:
    """A bench row's figure as recorded: a number in the row (2 decimals); a record from
    before figures were numbers kept it as text in the row's device record."""
    value = row.get(key, row["device"].get(key))
    return "-" if value is None else f"{value:.2f}" if isinstance(value, float) else str(value)


def _measure(args: argparse.Namespace, argv: list[str]) -> dict:
    """The measuring run: check the model, then measure from the repository root."""
    from posterlite.errors import PosterliteError

    model, data = args.model.resolve(), args.data.resolve()
    if not model.is_file():
        raise PosterliteError(
            f"{args.model} not found: posterlite convert models/mobilenet_v2 "
            "--format int8 --out DIR, then pass --model"
        )
    os.chdir(REPO)  # the bench's own relative paths (sample, references) resolve here
    return measure_all(model, data, args.runs, args.warmup, argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = rio.make_parser(__doc__, NAME)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="int8 .tflite")
    parser.add_argument("--data", type=Path, default=REPO / "benchmarks" / "sample")
    parser.add_argument("--runs", type=int, default=30, help="warm classify calls per row")
    parser.add_argument("--warmup", type=int, default=5, help="untimed calls first")
    parser.add_argument(
        "--record",
        default=NAME,
        help=f"record name: writes <record>.json / .md (default {NAME}; e.g. browser_parity_ensemble "
        "for the ensemble's file, so the default model's record stays)",
    )
    args = parser.parse_args(argv)
    args.results = args.results.resolve()  # before the measuring run's chdir
    from posterlite.errors import PosterliteError

    try:
        report = rio.measured_or_loaded(args, args.record, lambda: _measure(args, argv))
        path = rio.save_markdown(args.results, args.record, render(report))
    except PosterliteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(_rel(path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
