"""Fine-tuning choices measured, not picked: batch norm, crop scale, EMA, distillation.

    nice -n 10 .venv/bin/python benchmarks/finetune_ablation.py [--arch mobilenet_v2]
        [--schedule 160:2] [--variants baseline,bn_train,crop_0.5,crop_1.0] [--init DIR]

Runtime: about 8 min per variant on a 2-core AMD EPYC when the machine is otherwise idle
(2 epochs at 160 px over the 5,357 train posters, validation at 224 px after each epoch);
the head stage is trained once first (about 1 min, cached features) unless `--init` names a
trained head-only folder. Every variant starts from the same head and runs the same
schedule and seed; only the named setting changes, so validation mAP compares them.
Runs are resumable (per-epoch checkpoints under `.cache/ablation/`). `--render-only`
re-renders finetune_ablation.md from finetune_ablation.json.

Validation only: the test split is never scored here (it is scored once per shipped model
by `benchmarks/ship_models.py`).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import results_io as rio

NAME = "finetune_ablation"
RUNTIME = "about 8 min per variant on 2 idle cores"
# Each variant is one change from the baseline (the shipped recipe's settings).
VARIANTS: dict[str, dict] = {
    "baseline": {},
    "bn_train": {"bn": "train"},
    "crop_0.5": {"crop_scale": 0.5},
    "crop_0.85": {"crop_scale": 0.85},
    "crop_1.0": {"crop_scale": 1.0, "crop_ratio": 1.0},
    "head_lr_x1": {"head_lr_multiplier": 1.0},
    "ema_0.995": {"ema": 0.995},
    # Not a setting: the baseline again with another seed (augmentation draws, epoch order),
    # to show how far apart two runs of the same recipe land.
    "baseline_seed1": {"seed": 1},
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = rio.make_parser(__doc__, NAME)
    parser.add_argument("--arch", default="mobilenet_v2", help="mobilenet_v1 or mobilenet_v2")
    parser.add_argument(
        "--manifest", type=Path, default=rio.REPO / "models" / "manifest.csv", help="splits"
    )
    parser.add_argument("--schedule", default="160:2", help="SIZE:EPOCHS of every variant")
    parser.add_argument(
        "--variants",
        default="baseline,bn_train,crop_0.5,crop_1.0",
        help=f"comma-separated, from: {', '.join(VARIANTS)}; NAME@SEED runs it with that seed",
    )
    parser.add_argument(
        "--init", type=Path, default=None, help="trained head-only run folder (default: train)"
    )
    parser.add_argument(
        "--work", type=Path, default=rio.REPO / ".cache" / "ablation", help="run folders"
    )
    parser.add_argument(
        "--full-run",
        action="append",
        default=[],
        metavar="LABEL=DIR",
        help="also record a finished `posterlite train --fine-tune all` run folder (its card "
        "and history: recipe, val mAP per epoch, wall time, peak RSS) for comparison; with "
        "--render-only the ablation is not re-run, only these are (re)recorded",
    )
    parser.add_argument(
        "--append",
        action="store_true",
        help="keep the recorded variants and add (or redo) only --variants (same head, "
        "schedule and arch as the record; its command gains this one)",
    )
    args = parser.parse_args(argv)
    unknown = [v for v in args.variants.split(",") if parse_variant(v)[0] not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s): {', '.join(unknown)}")
    payload = rio.measured_or_loaded(args, NAME, lambda: measured(args, argv))
    if args.full_run:
        payload["full_runs"] = [full_run(spec) for spec in args.full_run]
        payload["full_runs_command"] = rio.command("finetune_ablation.py", argv)
        rio.save_json(args.results, NAME, payload)
        payload = rio.load_json(args.results, NAME)
    rio.publish(args.results, NAME, render(payload))
    return 0


def parse_variant(text: str) -> tuple[str, int]:
    """ "crop_0.5@1" -> ("crop_0.5", 1); a plain name runs with seed 0."""
    name, _, seed = text.partition("@")
    try:
        return name, int(seed) if seed else 0
    except ValueError:
        raise SystemExit(f"error: bad variant {text!r}: expected NAME or NAME@SEED") from None


def setting_of(row: dict) -> str:
    """The setting a row measures, whatever its seed ("baseline_seed1" is the baseline)."""
    name = parse_variant(row["variant"])[0]
    return "baseline" if name == "baseline_seed1" else name


def measured(args, argv: list[str]) -> dict:
    """A new record, or with --append the recorded one with --variants (re)measured."""
    if not args.append:
        return measure(args, argv)
    before = rio.load_json(args.results, NAME)
    if before["arch"] != args.arch or before["schedule"] != args.schedule:
        raise SystemExit("error: --append needs the recorded --arch and --schedule")
    added = measure(args, argv)
    if abs(added["start_val_map"] - before["start_val_map"]) > 1e-9:
        raise SystemExit("error: --append: the head differs from the recorded one")
    redone = {r["variant"] for r in added["rows"]}
    before["rows"] = [r for r in before["rows"] if r["variant"] not in redone] + added["rows"]
    before["appended"] = before.get("appended", []) + [
        {"command": added["command"], "environment": added["environment"]}
    ]
    before["wall_time_s"] += added["wall_time_s"]
    return before


def measure(args, argv: list[str]) -> dict:
    from posterlite.card import read_card
    from posterlite.train import EndToEndConfig, TrainConfig, Workspace, parse_schedule, train_run

    env = rio.environment()
    started = time.perf_counter()
    ws = Workspace()
    init = args.init
    if init is None:
        init = args.work / f"{args.arch}_head"
        if not (init / "model.keras").is_file():
            print(f"head stage -> {rio.rel(init)}", flush=True)
            train_run(TrainConfig(arch=args.arch, learning_rate=1e-3), args.manifest, init, ws)
    head = read_card(init)
    base = EndToEndConfig(schedule=parse_schedule(args.schedule))
    rows = []
    for variant in args.variants.split(","):
        name, seed = parse_variant(variant)
        changes = dict(VARIANTS[name])
        seed = changes.pop("seed", seed)
        e2e = replace(base, **changes)
        config = TrainConfig(
            arch=args.arch, learning_rate=1e-3, end_to_end=e2e, init=str(init), seed=seed
        )
        out = args.work / f"{args.arch}_{variant}_{args.schedule.replace(':', '-')}"
        tic = time.perf_counter()
        train_run(config, args.manifest, out, ws)
        history = json.loads((out / "history.json").read_text(encoding="utf-8"))
        card = read_card(out)
        rows.append(
            {
                "variant": variant,
                "change": VARIANTS[name] or "none (shipped recipe's settings)",
                "seed": seed,
                "val_map_per_epoch": history["fine_tune_val_map"],
                "best_val_map": card.extra["end_to_end"]["best_val_map"],
                "seconds_per_epoch": history["fine_tune_seconds"],
                "wall_s": time.perf_counter() - tic,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return {
        "command": rio.command("finetune_ablation.py", argv),
        "environment": env,
        "wall_time_s": time.perf_counter() - started,
        "arch": args.arch,
        "schedule": args.schedule,
        "start_val_map": head.validation["mAP"],
        "settings": {k: v for k, v in vars(base).items() if k != "schedule"},
        "rows": rows,
    }


def full_run(spec: str) -> dict:
    """LABEL=DIR -> what a finished end-to-end run's card and history say about it."""
    from posterlite.card import read_card

    label, _, folder = spec.partition("=")
    run = Path(folder)
    if not label or not (run / "card.json").is_file():
        raise SystemExit(f"error: --full-run {spec!r}: expected LABEL=DIR with a card.json")
    card = read_card(run)
    e2e = card.extra.get("end_to_end") or {}
    history = json.loads((run / "history.json").read_text(encoding="utf-8"))
    settings = card.hyperparameters.get("end_to_end") or {}
    return {
        "label": label,
        "dir": rio.rel(run),
        "schedule": ",".join(f"{s}:{e}" for s, e in settings.get("schedule", [])),
        "ema": settings.get("ema", 0.0),
        "distill": settings.get("distill", 0.0),
        "teachers": list(settings.get("teachers", [])),
        "start_val_map": e2e.get("start_val_map"),
        "val_map_per_epoch": history.get("fine_tune_val_map", []),
        "best_val_map": e2e.get("best_val_map"),
        "best_epoch": e2e.get("best_epoch"),
        "wall_min": card.wall_time_s / 60,
        "peak_rss_mb": card.peak_rss_mb,
    }


def render(payload: dict) -> str:
    rows = payload["rows"]
    lines = rio.header(f"End-to-end fine-tuning choices ({payload['arch']})", payload, RUNTIME)
    lines += [
        f"Every variant: the same head (validation mAP {payload['start_val_map']:.4f}), "
        f"schedule {payload['schedule']}, seed 0 unless the change names another; one setting "
        "changed from the baseline. "
        "Validation split only (224 px, after each epoch).",
        "",
        "| variant | change | val mAP per epoch | best (incl. the head) | vs baseline | s/epoch |",
        "|---|---|---|---:|---:|---|",
    ]
    baseline = next((r["best_val_map"] for r in rows if r["variant"] == "baseline"), None)
    for r in rows:
        change = r["change"] if isinstance(r["change"], str) else json.dumps(r["change"])
        delta = "-" if baseline is None else f"{r['best_val_map'] - baseline:+.4f}"
        lines.append(
            f"| {r['variant']} | {change} | "
            + ", ".join(f"{v:.4f}" for v in r["val_map_per_epoch"])
            + f" | {r['best_val_map']:.4f} | {delta} | "
            + ", ".join(f"{s:.0f}" for s in r["seconds_per_epoch"])
            + " |"
        )
    for extra in payload.get("appended", []):
        env = extra.get("environment") or {}
        lines += [
            "",
            f"Rows added by `{extra['command']}` ({env.get('date', 'date not recorded')}, "
            f"1-min load average at start {env.get('load_average_1min_at_start', '-')}).",
        ]
    groups: dict[str, list[float]] = {}
    for r in rows:
        groups.setdefault(setting_of(r), []).append(r["best_val_map"])
    if any(len(v) > 1 for v in groups.values()):
        base_mean = statistics.mean(groups["baseline"]) if "baseline" in groups else None
        lines += [
            "",
            "Mean over the seeds run for each setting:",
            "",
            "| setting | runs | mean best val mAP | min-max | vs baseline mean |",
            "|---|---:|---:|---|---:|",
        ]
        for name, values in groups.items():
            mean = statistics.mean(values)
            delta = "-" if base_mean is None else f"{mean - base_mean:+.4f}"
            lines.append(
                f"| {name} | {len(values)} | {mean:.4f} | {min(values):.4f}-{max(values):.4f} "
                f"| {delta} |"
            )
    seeds = [r["best_val_map"] for r in rows if r["variant"] in ("baseline", "baseline_seed1")]
    if len(seeds) == 2:
        lines += [
            "",
            f"Same recipe, seeds 0 and 1: {seeds[0]:.4f} and {seeds[1]:.4f} "
            f"(difference {abs(seeds[0] - seeds[1]):.4f}): a gap between variants smaller "
            "than this is within run-to-run noise.",
        ]
    if rows:
        best = max(rows, key=lambda r: r["best_val_map"])
        spread = best["best_val_map"] - min(r["best_val_map"] for r in rows)
        lines += [
            "",
            f"Best on validation: {best['variant']} ({best['best_val_map']:.4f}); "
            f"spread across variants {spread:.4f} mAP.",
        ]
    runs = payload.get("full_runs") or []
    if runs:
        lines += [
            "",
            "## Full runs compared",
            "",
            f"Recorded by `{payload['full_runs_command']}` from each run's card.json and "
            "history.json (every run: head stage, then every layer; validation at 224 px).",
            "",
            "| run | schedule | EMA | distillation | val mAP per epoch | best (epoch) | wall min "
            "| peak RSS MB |",
            "|---|---|---:|---|---|---:|---:|---:|",
        ]
        for r in runs:
            distill = (
                f"{r['distill']:g} from {len(r['teachers'])} teacher(s)" if r["distill"] else "-"
            )
            lines.append(
                f"| {r['label']} | {r['schedule']} | {r['ema'] or '-'} | {distill} | "
                + ", ".join(f"{v:.4f}" for v in r["val_map_per_epoch"])
                + f" | {r['best_val_map']:.4f} ({r['best_epoch']}) | {r['wall_min']:.1f} | "
                f"{r['peak_rss_mb']:.0f} |"
            )
        top = max(runs, key=lambda r: r["best_val_map"])
        lines += ["", f"Best full run on validation: {top['label']} ({top['best_val_map']:.4f})."]
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
