"""`posterlite bench` on the six shipped models (what `make demo` runs), recorded.

    nice -n 10 .venv/bin/python benchmarks/bench_shipped.py [--threads 1,2] [--runs 50]

Runtime: about 4 min on a 2-core AMD EPYC when the conversions are cached, about 7 min on a
fresh clone (the six models are converted first into .cache/bench/). `--render-only`
re-renders bench.md and bench.png from bench.json in a few seconds.

Runs the same measurement as `posterlite bench` with no MODEL argument (six shipped models in
fp32, fp16, dynamic-range and int8, their Keras float baselines, Google's two int8
MobileNetV2 files as latency-only references; XNNPACK; accuracy on the bundled
benchmarks/sample/), saves it as benchmarks/results/bench.json (posterlite's bench schema
plus the command, the environment and the wall time), then renders bench.md (the table and
the ratios computed from it) and bench.png (latency vs mAP) from that JSON alone.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from types import SimpleNamespace

import results_io as rio

NAME = "bench"
RUNTIME = "about 4 min on 2 cores with cached conversions, 7 min on a fresh clone"
LIMITS = {"int8_vs_fp32": 0.5, "int8_vs_reference": 1.10, "ensemble_vs_single": 2.3}
RATIO_MODEL = "mobilenet_v2"
ENSEMBLE_MODEL = "ensemble_v1smote_v2"  # the accuracy-first file: its cost is x RATIO_MODEL


# ------------------------------------------------------------------------------ measure
def measure(args, argv: list[str]) -> dict:
    import json

    from posterlite import bench

    env = rio.environment()
    started = time.perf_counter()
    options = bench.BenchOptions(
        threads=bench.parse_threads(args.threads), runs=args.runs, warmup=args.warmup
    )
    report = bench.run_bench(options)
    payload = json.loads(bench.report_json(report))
    for row in payload["rows"]:
        row["path"] = rio.rel(row["path"])
    if payload["data"].get("path"):
        payload["data"]["path"] = rio.rel(payload["data"]["path"])
    payload.update(
        command=rio.command("bench_shipped.py", argv),
        environment=env,
        wall_time_s=time.perf_counter() - started,
    )
    return payload


# ------------------------------------------------------------------------------- render
def _fmt(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "-"
    if 0 < abs(value) < 1 and digits < 3:  # tiny models: keep three decimals
        digits = 3
    return f"{value:.{digits}f}"


def table(rows: list[dict]) -> list[str]:
    lines = [
        "| model | format | threads | size MB | load ms | mean ms | p50 ms | p90 ms | p99 ms "
        "| e2e ms/poster | peak MB | mAP | macro F1 | micro F1 | subset acc | hamming "
        "| paper acc |",
        "|---|---|" + "---:|" * 15,
    ]
    for row in rows:
        lat, acc = row.get("latency") or {}, row.get("accuracy") or {}
        cells = [
            row["model"],
            row["format"],
            "-" if row.get("threads") is None else str(row["threads"]),
            _fmt(row["size_bytes"] / 1e6),
            _fmt(row.get("load_ms"), 1),
            _fmt(lat.get("mean_ms")),
            _fmt(lat.get("p50_ms")),
            _fmt(lat.get("p90_ms")),
            _fmt(lat.get("p99_ms")),
            _fmt(row.get("end_to_end_ms")),
            _fmt(row.get("peak_memory_mb"), 1),
            *(
                _fmt(acc.get(key), 4)
                for key in (
                    "mean_average_precision",
                    "macro_f1",
                    "micro_f1",
                    "subset_accuracy",
                    "hamming_loss",
                    "paper_accuracy",
                )
            ),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def p50(rows: list[dict], model: str, fmt: str, threads: int = 1) -> float | None:
    for row in rows:
        if row["model"] == model and row["format"] == fmt and row.get("threads") == threads:
            return (row.get("latency") or {}).get("p50_ms")
    return None


def ratio_lines(payload: dict) -> list[str]:
    """The int8 speed-up targets, computed from this run's 1-thread p50 rows."""
    rows = payload["rows"]
    int8, fp32 = p50(rows, RATIO_MODEL, "int8"), p50(rows, RATIO_MODEL, "fp32")
    refs = {
        r["model"]: r["latency"]["p50_ms"]
        for r in rows
        if r.get("kind") == "reference" and r.get("threads") == 1 and r.get("latency")
    }
    lines = []
    if int8 and fp32:
        ratio = int8 / fp32
        lines.append(
            f"- {RATIO_MODEL} int8 p50 {int8:.2f} ms / its fp32 p50 {fp32:.2f} ms = "
            f"{ratio:.3f} (target <= {LIMITS['int8_vs_fp32']}: {rio.verdict(ratio <= LIMITS['int8_vs_fp32'])})"
        )
    else:
        lines.append(f"- {RATIO_MODEL} int8 / fp32 p50: not measured (a row is missing)")
    if int8 and refs:
        best = min(refs, key=refs.get)
        ratio = int8 / refs[best]
        lines.append(
            f"- {RATIO_MODEL} int8 p50 / the faster Google file ({best}, {refs[best]:.2f} ms) = "
            f"{ratio:.3f} (target <= {LIMITS['int8_vs_reference']:.2f}: "
            f"{rio.verdict(ratio <= LIMITS['int8_vs_reference'])})"
        )
    else:
        lines.append(
            f"- {RATIO_MODEL} int8 p50 / Google's int8 MobileNetV2: not measured "
            "(no reference rows: ../shared/pretrained absent, or no int8 row)"
        )
    ensemble = p50(rows, ENSEMBLE_MODEL, "int8")
    if int8 and ensemble:
        ratio = ensemble / int8
        limit = LIMITS["ensemble_vs_single"]
        lines.append(
            f"- {ENSEMBLE_MODEL} int8 p50 {ensemble:.2f} ms / {RATIO_MODEL} int8 p50 = "
            f"{ratio:.2f} (target <= {limit}: {rio.verdict(ratio <= limit)})"
        )
    return lines


def render(payload: dict) -> str:
    s, data = payload["settings"], payload["data"]
    lines = rio.header(
        "`posterlite bench`: the shipped models, every format, host CPU", payload, RUNTIME
    )
    if data.get("path"):
        where = f"`{data['path']}` ({data['posters']} posters)"
    else:
        where = "no labelled posters (no accuracy columns)"
    lines += [
        f"Models: {', '.join(s['models'])}; formats {', '.join(s['formats'])}; threads "
        f"{', '.join(map(str, s['threads']))}; {s['warmup']} warm-up + {s['runs']} timed "
        f"`invoke()` per row on one fixed input (decoding excluded); accuracy on {where} at "
        f"threshold {s['threshold']}. Bench run started {payload.get('created', '-')}.",
        "",
        *table(payload["rows"]),
        "",
        "Plot (1-thread p50 latency vs mAP, Pareto front highlighted): `bench.png`.",
        "",
        "Ratios from this run (1 thread, p50):",
        "",
        *ratio_lines(payload),
        "",
        rio.note(
            "`e2e ms/poster` adds decode + preprocessing to the invoke; `peak MB` is "
            f"{payload.get('memory_method', 'the interpreter RSS growth')} (1-thread rows); "
            "Keras rows are the float baseline (`model(x)` on one poster); the google_* rows "
            "are Google's published int8 MobileNetV2 files, latency and size only (1001 "
            "ImageNet classes, no genre accuracy). The interleaved measurement of the same "
            "ratios is bench_overhead.md."
        ),
        "",
    ]
    return "\n".join(lines)


def plot(payload: dict, out: Path) -> None:
    """bench.png from the JSON rows, through posterlite's own plot."""
    from posterlite import bench

    rows = []
    for r in payload["rows"]:
        lat, acc = r.get("latency"), r.get("accuracy")
        if acc and acc.get("mean_average_precision") is None:
            acc = {**acc, "mean_average_precision": float("nan")}
        fields = {
            **r,
            "label": f"{r['model']}/{r['format']}",
            "device": r.get("device") or {},
            "latency": SimpleNamespace(**lat) if lat else None,
            "accuracy": SimpleNamespace(**acc) if acc else None,
        }
        rows.append(SimpleNamespace(**fields))
    bench.plot_rows(rows, out, threads=1)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = rio.make_parser(__doc__, NAME)
    parser.add_argument("--threads", default="1,2", help="interpreter thread counts")
    parser.add_argument("--runs", type=int, default=50, help="timed invokes per row")
    parser.add_argument("--warmup", type=int, default=5, help="untimed invokes first")
    parser.add_argument(
        "--no-plot", action="store_true", help="skip bench.png (matplotlib not needed)"
    )
    args = parser.parse_args(argv)
    payload = rio.measured_or_loaded(args, NAME, lambda: measure(args, argv))
    rio.publish(args.results, NAME, render(payload))
    if not args.no_plot:
        plot(payload, Path(args.results) / "bench.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
