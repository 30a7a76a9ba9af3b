"""Benchmark of the training grid: run (or resume) it and record what it measured.

    nice -n 10 .venv/bin/python benchmarks/train_grid.py --data models/manifest.csv --out models

Runtime: about 35 min on a 2-core AMD EPYC with cold caches (30 runs: 3 architectures x
+-SMOTE x 5 optimizer settings, at most --time-budget s per fit); minutes when the grid's
state file in .cache/grid/ says the runs are done. `--render-only` takes a second.

Measures the wall time and peak RSS of the whole grid (this process: resource.getrusage),
the state of the feature caches when it started, the validation quality of the model each
of the six names keeps (read from the cards the grid writes) and SMOTE vs its plain twin.
Saves benchmarks/results/train_grid.json, then renders train_grid.md from that JSON alone.

This is the grid's reproduction record: models trained otherwise afterwards (fine-tunes)
are not part of it; models/README.md describes what models/ ships now.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import results_io as rio

NAME = "train_grid"
RUNTIME = "about 35 min on 2 cores with cold caches"
ARCHS = ("cnn", "mobilenet_v1", "mobilenet_v2")
TARGETS = {
    "grid_wall_min": 60.0,
    "peak_rss_mb": 4096.0,
    "best_mobilenet_map": 0.58,
    "best_mobilenet_macro_f1": 0.53,
}


# ------------------------------------------------------------------------------ measure
def model_rows(out: Path) -> dict[str, dict]:
    """What the grid kept under each model name (its card and file sizes)."""
    from posterlite.card import MODEL_NAME, read_card
    from posterlite.train import MODEL_NAMES

    rows = {}
    for name in MODEL_NAMES:
        folder = out / name
        if not (folder / MODEL_NAME).is_file():
            continue
        card = read_card(folder)
        v = card.validation
        rows[name] = {
            "selected_run": card.extra.get("grid", {}).get("selected_run", ""),
            "candidates": card.extra.get("grid", {}).get("candidates", {}),
            "mAP": v["mAP"],
            "macro_f1": v["macro_f1"],
            "micro_f1": v["micro_f1"],
            "paper_accuracy": v["paper_accuracy"],
            "tuned_macro_f1": v["tuned_macro_f1"],
            "per_genre_ap": v["per_genre_ap"],
            "per_genre_f1": v["per_genre_f1"],
            "params": card.extra["params"],
            "file_mb": (folder / MODEL_NAME).stat().st_size / 2**20,
            "folder_mb": sum(f.stat().st_size for f in folder.iterdir()) / 2**20,
            "train_wall_s": card.wall_time_s,
            "input_size": card.input_size,
            "smote": card.extra.get("smote"),
        }
    return rows


def cache_state(cache: Path) -> str:
    """Which feature / pixel caches existed before the grid started (cold or warm)."""
    found = sorted(
        p.relative_to(cache).as_posix()
        for sub in ("features", "pixels")
        for p in (cache / sub).glob("*.npz")
    )
    return "cold (no cached features or pixels)" if not found else f"warm: {', '.join(found)}"


def measure(data: Path, out: Path, time_budget: float, results: Path, argv: list[str]) -> dict:
    from posterlite.train import (
        GRID_OPTIMIZERS,
        SELECTION_METRIC,
        TrainConfig,
        Workspace,
        peak_rss_mb,
        run_grid,
    )

    env = rio.environment()
    ws = Workspace()
    feature_cache = cache_state(ws.cache)
    started = time.perf_counter()
    result = run_grid(data, out, TrainConfig(time_budget_s=time_budget), ws)
    grid = {
        "wall_time_s": time.perf_counter() - started,
        "peak_rss_mb": peak_rss_mb(),
        "runs_trained": len(result.redone),
        "runs_resumed": len(result.runs) - len(result.redone),
        "feature_cache": feature_cache,
        "optimizers": [f"{name} {lr:g}" for name, lr in GRID_OPTIMIZERS],
    }
    payload = {
        "command": rio.command("train_grid.py", argv),
        "environment": env,
        "time_budget_s": time_budget,
        "selection": SELECTION_METRIC,
        "targets": TARGETS,
        "grid": grid,
    }
    # Saved before reading the cards: a later bug must not lose the grid's measurement.
    rio.save_json(results, NAME, payload)
    rows = model_rows(out)
    payload["models"] = rows
    payload["smote_vs_plain"] = smote_vs_plain(rows)
    return payload


def smote_vs_plain(rows: dict[str, dict]) -> dict[str, dict]:
    """Per architecture and genre: (SMOTE - plain) AP and F1@0.5 of the kept pair."""
    table = {}
    for arch in ARCHS:
        plain, smote = rows.get(arch), rows.get(f"{arch}_smote")
        if not plain or not smote:
            continue
        table[arch] = {
            genre: {
                "ap_delta": smote["per_genre_ap"][genre] - plain["per_genre_ap"][genre],
                "f1_delta": smote["per_genre_f1"][genre] - plain["per_genre_f1"][genre],
            }
            for genre in plain["per_genre_ap"]
        }
    return table


# ------------------------------------------------------------------------------- render
def target_rows(payload: dict) -> list[tuple[str, str, str, str]]:
    """(target, measured, limit, verdict) computed from the JSON's figures."""
    limits = payload.get("targets", TARGETS)
    grid, rows = payload["grid"], payload["models"]
    out = []
    wall_min = grid["wall_time_s"] / 60
    out.append(
        (
            "grid wall time",
            f"{wall_min:.1f} min",
            f"< {limits['grid_wall_min']:g} min",
            rio.verdict(wall_min < limits["grid_wall_min"]),
        )
    )
    out.append(
        (
            "peak RSS of the whole grid",
            f"{grid['peak_rss_mb']:.0f} MB",
            f"< {limits['peak_rss_mb']:.0f} MB",
            rio.verdict(grid["peak_rss_mb"] < limits["peak_rss_mb"]),
        )
    )
    mobilenets = {n: r for n, r in rows.items() if n.startswith("mobilenet")}
    for key, label, limit_key in (
        ("mAP", "best MobileNet val mAP", "best_mobilenet_map"),
        ("macro_f1", "best MobileNet val macro F1@0.5", "best_mobilenet_macro_f1"),
    ):
        limit = limits[limit_key]
        if not mobilenets:
            out.append((label, "-", f">= {limit:g}", "not measured (no MobileNet in the JSON)"))
            continue
        best = max(mobilenets, key=lambda n, k=key: mobilenets[n][k])
        value = mobilenets[best][key]
        ok = value >= limit
        shown = rio.verdict(ok) if ok else f"missed by {limit - value:.4f}"
        out.append((label, f"{value:.4f} ({best})", f">= {limit:g}", shown))
    return out


def smote_summary(rows: dict[str, dict]) -> list[str]:
    """Overall SMOTE minus plain per architecture, computed from the kept pair."""
    lines = []
    for arch in ARCHS:
        plain, smote = rows.get(arch), rows.get(f"{arch}_smote")
        if not plain or not smote:
            continue
        d_map = smote["mAP"] - plain["mAP"]
        d_f1 = smote["macro_f1"] - plain["macro_f1"]
        genres = plain["per_genre_ap"]
        ap_up = sum(smote["per_genre_ap"][g] > plain["per_genre_ap"][g] for g in genres)
        f1_up = sum(smote["per_genre_f1"][g] > plain["per_genre_f1"][g] for g in genres)
        lines.append(
            f"- {arch}: mAP {d_map:+.4f}, macro F1@0.5 {d_f1:+.4f}; SMOTE raises AP on "
            f"{ap_up} of {len(genres)} genres and F1@0.5 on {f1_up} of {len(genres)}."
        )
    return lines


def render(payload: dict) -> str:
    rows, deltas, grid = payload["models"], payload["smote_vs_plain"], payload["grid"]
    lines = rio.header("Training grid benchmark", payload, RUNTIME)
    n_runs = grid["runs_trained"] + grid["runs_resumed"]
    optimizers = grid.get("optimizers")
    lines += [
        f"- grid: {n_runs} runs ({grid['runs_trained']} trained by this measurement, "
        f"{grid['runs_resumed']} resumed from the state file), at most "
        f"{payload['time_budget_s']:.0f} s per fit"
        + (f"; optimizer settings: {', '.join(optimizers)}" if optimizers else ""),
        f"- feature cache at start: {grid['feature_cache']}",
        f"- each model name keeps its best run by {payload.get('selection', 'validation mAP')}, "
        "on the validation split; the figures below are on that same split, so they are "
        "optimistic by the selection",
        "",
        "## Targets",
        "",
        "| target | measured | limit | verdict |",
        "|---|---:|---:|---|",
        *(f"| {t} | {m} | {lim} | {v} |" for t, m, lim, v in target_rows(payload)),
        "",
        "## The six models the grid kept (validation split)",
        "",
        "| model | selected run | val mAP | macro F1@0.5 | micro F1@0.5 | paper accuracy | "
        "macro F1 (tuned thr.) | params | model.keras MB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['selected_run']} | {r['mAP']:.4f} | {r['macro_f1']:.4f} | "
            f"{r['micro_f1']:.4f} | {r['paper_accuracy']:.4f} | {r['tuned_macro_f1']:.4f} | "
            f"{r['params']:,} | {r['file_mb']:.1f} |"
        )
    genres = list(next(iter(rows.values()))["per_genre_ap"]) if rows else []
    lines += [
        "",
        "## SMOTE minus plain (the kept pair)",
        "",
        *smote_summary(rows),
        "",
        'Per genre, val AP / F1@0.5 ("helps" = both rise):',
        "",
        "| architecture | " + " | ".join(genres) + " |",
        "|---|" + "---:|" * len(genres),
    ]
    for arch, per in deltas.items():
        cells = [
            f"{per[g]['ap_delta']:+.3f} / {per[g]['f1_delta']:+.3f}"
            + (" helps" if per[g]["ap_delta"] > 0 and per[g]["f1_delta"] > 0 else "")
            for g in genres
        ]
        lines.append(f"| {arch} | " + " | ".join(cells) + " |")
    lines += ["", "## Every grid run", "", "| run | val mAP | macro F1@0.5 |", "|---|---:|---:|"]
    for r in rows.values():
        for run, c in r["candidates"].items():
            mark = " **(kept)**" if run == r["selected_run"] else ""
            val_map = "-" if c["val_map"] is None else f"{c['val_map']:.4f}"
            lines.append(f"| {run}{mark} | {val_map} | {c['val_macro_f1']:.4f} |")
    lines += [
        "",
        rio.note(
            "this file records the grid run only. Models trained after it (for example a "
            "fine-tuned MobileNet copied into models/) are not part of it; "
            "models/README.md describes what models/ ships now."
        ),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = rio.make_parser(__doc__, NAME)
    parser.add_argument(
        "--data",
        type=Path,
        default=rio.REPO / "models" / "manifest.csv",
        help="the training manifest",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=rio.REPO / "models",
        help="where the six kept models are written",
    )
    parser.add_argument(
        "--time-budget", type=float, default=120.0, help="seconds at most per fit (default 120)"
    )
    args = parser.parse_args(argv)
    kept = [a for a in argv if a != "--render-only"]
    payload = rio.measured_or_loaded(
        args, NAME, lambda: measure(args.data, args.out, args.time_budget, args.results, kept)
    )
    rio.publish(args.results, NAME, render(payload))
    return 0


if __name__ == "__main__":
    sys.exit(main())
