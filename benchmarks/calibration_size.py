"""How int8 accuracy depends on the calibration set's size (25 / 50 / 100 / 200 posters).

    nice -n 10 .venv/bin/python benchmarks/calibration_size.py [--model models/mobilenet_v2]
        [--sizes 25,50,100,200] [--seeds 0,1] [--eval-limit N]

Runtime: about 6-10 min on a 2-core AMD EPYC (Keras once on the 2,282 validation posters,
then 9 int8 conversions, each checked through LiteRT). `--render-only` re-renders
calibration_size.md from calibration_size.json in a second.

On a shipped MobileNet (models/mobilenet_v2*, else mobilenet_v1*), for each size and seed
draws a stratified calibration set from the train split of the model's manifest with
`posterlite.calibration.build_calibration_set`, converts to int8 with it, and checks the
int8 file through the LiteRT runtime on the validation split next to Keras (Keras runs
once; posters are decoded once). The committed calibration/ set is measured as well.
Saves benchmarks/results/calibration_size.json, then renders calibration_size.md from it.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import results_io as rio

NAME = "calibration_size"
RUNTIME = "about 6-10 min on 2 cores"


def pick_model(models: Path) -> Path:
    for pattern in ("mobilenet_v2", "mobilenet_v2*", "mobilenet_v1", "mobilenet_v1*"):
        found = sorted(p for p in models.glob(pattern) if (p / "model.keras").is_file())
        if found:
            return found[0]
    raise SystemExit(f"error: no trained MobileNet under {rio.rel(models)}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = rio.make_parser(__doc__, NAME)
    parser.add_argument(
        "--models", type=Path, default=rio.REPO / "models", help="where to pick a MobileNet"
    )
    parser.add_argument("--model", type=Path, default=None, help="a trained run folder")
    parser.add_argument("--sizes", default="25,50,100,200", help="calibration set sizes")
    parser.add_argument("--seeds", default="0,1", help="one drawn set per size and seed")
    parser.add_argument(
        "--eval-limit", type=int, default=None, help="check on the first N validation posters"
    )
    args = parser.parse_args(argv)
    payload = rio.measured_or_loaded(args, NAME, lambda: measure(args, argv))
    rio.publish(args.results, NAME, render(payload))
    return 0


def measure(args, argv: list[str]) -> dict:
    from posterlite.calibration import build_calibration_set
    from posterlite.convert import (
        REPO_CALIBRATION,
        card_manifest,
        convert_model,
        image_files,
        keras_probabilities,
        load_calibration,
        load_eval_set,
        load_keras,
        resolve_model,
    )

    env = rio.environment()
    started = time.perf_counter()
    run = args.model or pick_model(args.models)
    source = resolve_model(run)
    manifest = card_manifest(source)
    if manifest is None:
        raise SystemExit(f"error: {rio.rel(run)}: the card names no readable manifest to draw from")
    size = source.card.input_size
    eval_set = load_eval_set(source, limit=args.eval_limit)
    if eval_set is None:
        raise SystemExit(f"error: {rio.rel(run)}: no validation split to measure on")
    reference = keras_probabilities(load_keras(source), eval_set.pixels)
    print(f"{source.name}: {len(eval_set.pixels)} check posters; Keras done", flush=True)

    plans: list[tuple[str, int, int | None]] = [
        ("drawn", n, seed)
        for n in (int(v) for v in args.sizes.split(","))
        for seed in (int(v) for v in args.seeds.split(","))
    ]
    if image_files(REPO_CALIBRATION):
        plans.append(("committed", len(image_files(REPO_CALIBRATION)), None))
    rows: list[dict] = []
    keras_quality = None
    with tempfile.TemporaryDirectory(prefix="posterlite-calsize-") as tmp:
        for kind, n, seed in plans:
            if kind == "drawn":
                folder = Path(tmp) / f"n{n}_s{seed}"
                build_calibration_set(manifest, folder, n=n, seed=seed or 0)
            else:
                folder = REPO_CALIBRATION
            inputs = load_calibration(image_files(folder), size)
            report = convert_model(
                run,
                formats=("int8",),
                out_dir=Path(tmp) / "out",
                eval_set=eval_set,
                calibration_inputs=inputs,
                keras_reference=reference,
                max_drop=math.inf,
            )
            keras_quality = report.keras_quality
            result = report.results[0]
            rows.append(
                {
                    "set": kind,
                    "n": len(inputs),
                    "seed": seed,
                    "map": result.quality.mean_average_precision,
                    "map_delta": result.map_delta,
                    "macro_f1": result.quality.macro_f1,
                    "macro_f1_delta": result.macro_f1_delta,
                    "max_abs_diff": result.max_abs_diff,
                    "mean_abs_diff": result.mean_abs_diff,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return {
        "command": rio.command("calibration_size.py", argv),
        "environment": env,
        "wall_time_s": time.perf_counter() - started,
        "model": source.name,
        "check_posters": len(eval_set.pixels),
        "keras": {
            "map": keras_quality.mean_average_precision,
            "macro_f1": keras_quality.macro_f1,
        },
        "rows": rows,
    }


def render(payload: dict) -> str:
    name, count, keras, rows = (
        payload["model"],
        payload["check_posters"],
        payload["keras"],
        payload["rows"],
    )
    lines = rio.header(f"int8 accuracy vs calibration set size ({name})", payload, RUNTIME)
    lines += [
        f"Check set: the validation split, {count} posters. Keras: mAP "
        f"{keras['map']:.4f}, macro F1 @0.5 {keras['macro_f1']:.4f}. "
        "d = int8 minus Keras; sets drawn stratified from the train split "
        "(`build_calibration_set`, one row per seed).",
        "",
        "| set | n | seed | mAP | d mAP | macro F1 | d F1 | max abs dp | mean abs dp |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['set']} | {r['n']} | {r['seed'] if r['seed'] is not None else '-'} | "
            f"{r['map']:.4f} | {r['map_delta']:+.4f} | {r['macro_f1']:.4f} | "
            f"{r['macro_f1_delta']:+.4f} | {r['max_abs_diff']:.4f} | {r['mean_abs_diff']:.5f} |"
        )
    lines += ["", "Mean over seeds:", "", "| n | mean d mAP | mean d F1 |", "|---:|---:|---:|"]
    for n in sorted({r["n"] for r in rows if r["set"] == "drawn"}):
        same = [r for r in rows if r["set"] == "drawn" and r["n"] == n]
        lines.append(
            f"| {n} | {statistics.mean(r['map_delta'] for r in same):+.4f} | "
            f"{statistics.mean(r['macro_f1_delta'] for r in same):+.4f} |"
        )
    drawn = [r for r in rows if r["set"] == "drawn"]
    if drawn:
        worst = min(drawn, key=lambda r: r["map_delta"])
        best = max(drawn, key=lambda r: r["map_delta"])
        lines += [
            "",
            f"Across the drawn sets, int8 d mAP ranges from {worst['map_delta']:+.4f} "
            f"(n {worst['n']}, seed {worst['seed']}) to {best['map_delta']:+.4f} "
            f"(n {best['n']}, seed {best['seed']}).",
        ]
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
