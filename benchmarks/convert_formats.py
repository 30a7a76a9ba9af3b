"""Size and accuracy of every shipped model in every TFLite format, next to Keras.

    nice -n 10 .venv/bin/python benchmarks/convert_formats.py [--models models] [--eval-limit N]

Runtime: about 25-40 min on a 2-core AMD EPYC for the six shipped models (24 conversions,
each checked through LiteRT on the 2,282 validation posters; posters are decoded once per
input size). `--eval-limit 200` makes it a few minutes. `--render-only` takes a second.

For each trained run under models/ (`<name>/model.keras` + `card.json`), converts to fp32,
fp16, dynamic-range and int8 with `posterlite.convert.convert_model` (int8 calibrated on the
committed calibration/ set; the default 0.01 mAP gate on), which checks each file through
the LiteRT runtime on the model's validation split, and measures how many bytes of each
int8 file are quantization parameters. Writes the .tflite files into each run folder (where
`posterlite bench` finds them), saves benchmarks/results/convert_formats.json, then renders
convert_formats.md from that JSON alone.

Targets: int8 file <= 0.30x the float32 file; int8 mAP within 0.01 of Keras for the
MobileNets.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import results_io as rio

NAME = "convert_formats"
RUNTIME = "about 25-40 min on 2 cores for the six shipped models"
SIZE_TARGET = 0.30
MAP_TARGET = 0.01


# ------------------------------------------------------------------------------ measure
def runs(models: Path) -> list[Path]:
    from posterlite.card import CARD_NAME, MODEL_NAME

    return sorted(
        p for p in models.iterdir() if (p / MODEL_NAME).is_file() and (p / CARD_NAME).is_file()
    )


def int8_breakdown(path: Path) -> dict[str, int]:
    """Bytes of an int8 file by kind: weight/bias data, quantization parameters, the rest.

    Per-channel quantization stores a float32 scale and an int64 zero point for every
    output channel of every weight and bias tensor; the measured share is in the results.
    """
    from posterlite.tflite_file import unpack_model

    model = unpack_model(path.read_bytes())
    quant = 0
    for tensor in model.subgraphs[0].tensors:
        q = tensor.quantization
        if q is not None and q.scale is not None:
            zero_points = q.zeroPoint if q.zeroPoint is not None else []
            quant += 4 * len(q.scale) + 8 * len(zero_points)
    data = sum(len(b.data) for b in model.buffers if b.data is not None)
    total = path.stat().st_size
    return {"total": total, "buffers": data, "quant_params": quant, "other": total - data - quant}


def relative_report(report: dict) -> dict:
    """A conversion report with every path made repository-relative."""
    out = dict(report)
    for key in ("keras_path",):
        if out.get(key):
            out[key] = rio.rel(out[key])
    if out.get("eval_source"):
        path, _, rest = str(out["eval_source"]).partition(" ")
        out["eval_source"] = f"{rio.rel(path)} {rest}".strip()
    out["results"] = [{**r, "path": rio.rel(r["path"])} for r in report.get("results", [])]
    return out


def measure(args, argv: list[str]) -> dict:
    from posterlite.convert import (
        calibration_paths,
        convert_model,
        load_calibration,
        load_eval_set,
        resolve_model,
    )
    from posterlite.errors import PosterliteError
    from posterlite.formats import FORMAT_NAMES

    found = runs(args.models)
    if not found:
        raise SystemExit(f"error: no trained runs (model.keras + card.json) under {args.models}")
    env = rio.environment()
    started = time.perf_counter()
    eval_sets: dict = {}
    calibrations: dict = {}
    rows: list[dict] = []
    for run in found:
        source = resolve_model(run)
        size = source.card.input_size
        key = (source.card.manifest, size)
        if key not in eval_sets:
            eval_sets[key] = load_eval_set(source, limit=args.eval_limit)
        if size not in calibrations:
            paths, _ = calibration_paths(source, None)
            calibrations[size] = load_calibration(paths, size)
        run_started = time.perf_counter()
        error = ""
        try:
            convert_model(
                run,
                formats=FORMAT_NAMES,
                eval_set=eval_sets[key],
                calibration_inputs=calibrations[size],
                max_drop=args.max_drop,
                log=lambda line, name=source.name: print(f"[{name}] {line}", flush=True),
            )
        except PosterliteError as exc:
            error = str(exc)
            print(f"[{source.name}] {error}", flush=True)
        report_path = run / "conversion.json"
        report = json.loads(report_path.read_text()) if report_path.is_file() else None
        row = {
            "model": source.name,
            "arch": source.card.arch,
            "input_size": size,
            "seconds": time.perf_counter() - run_started,
            "error": error,
            "report": relative_report(report) if report else None,
        }
        int8 = [r for r in (report or {}).get("results", []) if r["format"] == "int8"]
        if int8 and Path(int8[0]["path"]).is_file():
            row["int8_breakdown"] = int8_breakdown(Path(int8[0]["path"]))
        rows.append(row)
    return {
        "command": rio.command("convert_formats.py", argv),
        "environment": env,
        "wall_time_s": time.perf_counter() - started,
        "max_drop": args.max_drop,
        "eval_limit": args.eval_limit,
        "targets": {"int8_size_ratio": SIZE_TARGET, "int8_map_drop": MAP_TARGET},
        "rows": rows,
    }


# ------------------------------------------------------------------------------- render
def by_format(row: dict) -> dict[str, dict]:
    report = row.get("report") or {}
    return {r["format"]: r for r in report.get("results", [])}


def _targets(row: dict, targets: dict) -> tuple[str, str]:
    formats = by_format(row)
    fp32, int8 = formats.get("fp32"), formats.get("int8")
    size = "not measured"
    if fp32 and int8:
        ratio = int8["size_bytes"] / fp32["size_bytes"]
        size = f"{ratio:.4f} ({rio.verdict(ratio <= targets['int8_size_ratio'])})"
    accuracy = "not measured"
    if int8 and int8.get("map_delta") is not None:
        met = -int8["map_delta"] <= targets["int8_map_drop"]
        accuracy = f"{int8['map_delta']:+.4f} ({rio.verdict(met)})"
    return size, accuracy


def _span(values: list[float], fmt: str) -> str:
    if not values:
        return "none measured"
    low, high = min(values), max(values)
    return format(low, fmt) if low == high else f"{format(low, fmt)}-{format(high, fmt)}"


def summary(rows: list[dict], targets: dict) -> list[str]:
    """Ranges and verdicts over the measured rows (MobileNets vs the small CNNs)."""
    lines = []
    for label, wanted in (("MobileNets", True), ("CNNs", False)):
        group = [r for r in rows if r["arch"].startswith("mobilenet") == wanted]
        ratios, shares, drops = [], [], []
        for r in group:
            formats = by_format(r)
            if "fp32" in formats and "int8" in formats:
                ratios.append(formats["int8"]["size_bytes"] / formats["fp32"]["size_bytes"])
                if formats["int8"].get("map_delta") is not None:
                    drops.append(-formats["int8"]["map_delta"])
            if r.get("int8_breakdown"):
                parts = r["int8_breakdown"]
                shares.append(parts["quant_params"] / parts["total"])
        if not group:
            continue
        met = sum(x <= targets["int8_size_ratio"] for x in ratios)
        line = (
            f"- {label} ({len(group)}): int8 / float32 size {_span(ratios, '.3f')} "
            f"(<= {targets['int8_size_ratio']:.2f}: met by {met} of {len(ratios)}); "
            f"quantization parameters {_span([s * 100 for s in shares], '.1f')} % of the "
            "int8 file"
        )
        if drops:
            worst = max(drops)
            line += f"; worst int8 d mAP vs Keras {-worst:+.4f}"
            if wanted:
                ok = sum(d <= targets["int8_map_drop"] for d in drops)
                line += f" (drop <= {targets['int8_map_drop']}: met by {ok} of {len(drops)})"
        lines.append(line + ".")
    return lines


def render(payload: dict) -> str:
    rows, targets = payload["rows"], payload["targets"]
    lines = rio.header("Formats: size and accuracy next to Keras", payload, RUNTIME)
    lines += [
        "Each model converted by `posterlite convert` (int8 calibrated on calibration/), checked "
        "through the LiteRT runtime on its validation split. mAP and macro F1 at 0.5; "
        f"d = TFLite minus Keras; gate: max mAP drop {payload['max_drop']}.",
        "",
        "| model | format | size MB | x fp32 | mAP | d mAP | macro F1 | d F1 | max abs dp | gate |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        report = row["report"]
        if not report:
            lines.append(f"| {row['model']} | - | | | | | | | | error: {row['error']} |")
            continue
        keras = report.get("keras_quality")
        if keras:
            lines.append(
                f"| {row['model']} | keras | {report['keras_size_bytes'] / 1e6:.2f} | | "
                f"{keras['mean_average_precision']:.4f} | | {keras['macro_f1']:.4f} | | | |"
            )
        for r in report["results"]:
            q = r.get("quality")
            ratio = f"{r['ratio_to_fp32']:.3f}" if r.get("ratio_to_fp32") else "-"
            quality = (
                f"{q['mean_average_precision']:.4f} | {r['map_delta']:+.4f} | "
                f"{q['macro_f1']:.4f} | {r['macro_f1_delta']:+.4f}"
                if q
                else "- | - | - | -"
            )
            gate = "pass" if r["passed"] else "FAILED"
            lines.append(
                f"| {row['model']} | {r['format']} | {r['size_bytes'] / 1e6:.2f} | {ratio} | "
                f"{quality} | {r['max_abs_diff']:.4f} | {gate} |"
            )
    lines += [
        "",
        "## Targets",
        "",
        f"int8 file <= {targets['int8_size_ratio']:.2f}x float32; int8 mAP within "
        f"{targets['int8_map_drop']} of Keras (MobileNets).",
        "",
        "| model | int8 / fp32 size | int8 d mAP | int8 quant params KB (share) | check set |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        size, accuracy = _targets(row, targets)
        report = row["report"] or {}
        where = f"{report.get('eval_count', 0)} posters" if report else "-"
        quant = "not measured"
        if row.get("int8_breakdown"):
            parts = row["int8_breakdown"]
            share = parts["quant_params"] / parts["total"]
            quant = f"{parts['quant_params'] / 1e3:.0f} ({share:.1%})"
        lines.append(f"| {row['model']} | {size} | {accuracy} | {quant} | {where} |")
    lines += [
        "",
        *summary(rows, targets),
        "",
        rio.note(
            "int8 files carry a float32 scale and an int64 zero point per output channel of "
            "every weight and bias tensor (per-channel quantization) besides the int8 weights, "
            "and every file carries its graph and metadata; the table above gives the measured share "
            "of the quantization parameters in each int8 file."
        ),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = rio.make_parser(__doc__, NAME)
    parser.add_argument(
        "--models", type=Path, default=rio.REPO / "models", help="folder of trained runs"
    )
    parser.add_argument(
        "--eval-limit", type=int, default=None, help="check on the first N validation posters"
    )
    parser.add_argument(
        "--max-drop", type=float, default=0.01, help="conversion gate: max mAP drop vs Keras"
    )
    args = parser.parse_args(argv)
    payload = rio.measured_or_loaded(args, NAME, lambda: measure(args, argv))
    rio.publish(args.results, NAME, render(payload))
    return 0


if __name__ == "__main__":
    sys.exit(main())
