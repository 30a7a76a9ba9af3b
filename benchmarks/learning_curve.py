"""How much data buys: the MobileNetV2 recipe trained on 25 %, 50 % and 100 % of the train
split, and on the train split + the kaggle-extra posters; validation and test mAP per size.

    nice -n 10 .venv/bin/python benchmarks/learning_curve.py --extra DIR
        [--sizes 25,50,100,extra] [--seeds 0,1]

DIR is the extracted kaggle-extra set (`Images/` + `train.csv`, the imdb-7k layout), made by
`../shared/data/kaggle-extra/extract.py GIT_DIR DIR` from the repository PROVENANCE.md names
(fetched once); nothing is downloaded here.

Runtime: about 2.5 h on a 2-core AMD EPYC for two seeds of all four sizes (a 100 % run
about 15 min, a 100 % + extra run about 45 min with cold caches). Runs go in this order:
100 %, 100 % + extra, 25 %, 50 % with seed 0, then the same with seed 1, so the first two
points answer the main question first. Each run lives in `.cache/learning_curve/<size>-s<seed>/`
and trains in its own process (so wall time and peak RSS are that run's). Resumable: a
finished run is read back, an interrupted one resumes after its last finished epoch (the
trainer's per-epoch checkpoints); a run already in learning_curve.json (same schedule,
same manifest sha256) is read back from it rather than trained again; after each run the record is saved and
learning_curve.{md,png} re-rendered, so a partial curve is always on disk.
`--render-only` re-renders the .md and .png from learning_curve.json.

The recipe, the same for every size: head stage (Adam 1e-3 on cached frozen features, as the
shipped V2), then every layer end to end with the shipped settings except a cheaper fixed
schedule (`--schedule`, default 160:2,224:1 instead of the shipped 160:5,224:1).
Subsets are chosen by film with a fixed seed and nested (the 25 % films are a subset of
the 50 % ones); extra posters are train rows only (source `kaggle-extra`); validation and
test rows are the shipped manifest's, unchanged. The best epoch is chosen on validation;
the test split is scored once per run, on the chosen weights, and chooses nothing.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import results_io as rio

NAME = "learning_curve"
RUNTIME = "about 2.5 h on 2 cores for two seeds of four sizes"
ARCH = "mobilenet_v2"
HEAD_LR = 1e-3  # the shipped V2's head stage (Adam)
DEFAULT_SCHEDULE = "160:2,224:1"
SUBSET_SEED = 20  # film order of the nested subsets
EXTRA = "extra"  # the size name of "100 % of train + every kaggle-extra poster"
EXTRA_SOURCE = "kaggle-extra"
SIZES = ("25", "50", "100", EXTRA)
RUN_RECORD = "learning_curve_run.json"  # written by a run's process when it has finished
EXTRA_HELP = (
    "extract them with ../shared/data/kaggle-extra/extract.py GIT_DIR DIR from the repository "
    "named in ../shared/data/kaggle-extra/PROVENANCE.md (fetched once)"
)


@dataclass(frozen=True)
class Run:
    size: str  # "25", "50", "100" or EXTRA
    seed: int

    @property
    def folder(self) -> str:
        return f"{self.label}-s{self.seed}"

    @property
    def label(self) -> str:
        return "100pct+extra" if self.size == EXTRA else f"{self.size}pct"


def run_order(sizes: list[str], seeds: list[int]) -> list[Run]:
    """100 % and 100 % + extra first (the question), then the smaller subsets, seed by seed."""
    first = [s for s in ("100", EXTRA) if s in sizes]
    rest = [s for s in sizes if s not in first]
    return [Run(size, seed) for seed in seeds for size in first + rest]


# ------------------------------------------------------------------------------ manifests
def film_of(row) -> str:
    return row.film_id or Path(row.path).stem


def subset_films(train_rows: list, fraction: float, seed: int = SUBSET_SEED) -> set[str]:
    """The first `fraction` of the train films in one fixed seeded order (so subsets nest)."""
    import numpy as np

    films = sorted({film_of(r) for r in train_rows})
    order = [films[i] for i in np.random.default_rng(seed).permutation(len(films))]
    return set(order[: math.ceil(fraction * len(films))])


def relative_row(row, folder: Path):
    """A manifest row with its (absolute) path made relative to the manifest's `folder`."""
    from dataclasses import replace

    return replace(row, path=os.path.relpath(Path(row.path).resolve(), folder.resolve()))


def extra_rows(extra: Path, known_films: set[str]) -> tuple[list, dict]:
    """kaggle-extra posters as train rows (films already in the manifest are left out)."""
    from posterlite.data import scan_dataset
    from posterlite.manifest import ManifestRow

    if not (extra / "Images").is_dir() or not (extra / "train.csv").is_file():
        raise SystemExit(f"error: --extra {extra}: no Images/ + train.csv there; {EXTRA_HELP}")
    scan = scan_dataset(extra, progress=True)
    rows, overlap = [], 0
    for poster in scan.posters:
        if poster.film_id in known_films:
            overlap += 1
            continue
        rows.append(
            ManifestRow(
                str(poster.path.resolve()), poster.genres, "train", EXTRA_SOURCE, poster.film_id
            )
        )
    info = {
        "posters": len(rows),
        "left_out_film_in_manifest": overlap,
        "skipped": scan.skipped_counts(),
        "genre_counts": {g: sum(g in r.genres for r in rows) for g in scan.scheme.names},
    }
    return rows, info


def build_manifests(base: Path, extra: Path | None, sizes: list[str], folder: Path) -> dict:
    """One manifest per size under `folder`; val/test rows are `base`'s. -> description."""
    from posterlite.manifest import manifest_sha256, read_manifest, write_manifest

    rows = read_manifest(base)
    train = [r for r in rows if r.split == "train"]
    held = [r for r in rows if r.split != "train"]
    folder.mkdir(parents=True, exist_ok=True)
    out: dict = {"base": rio.rel(base), "base_sha256": manifest_sha256(base), "sizes": {}}
    for size in sizes:
        path = folder / f"{size}.csv"
        if size == EXTRA:
            if extra is None:
                raise SystemExit(f"error: size {EXTRA!r} needs --extra DIR; {EXTRA_HELP}")
            added, info = extra_rows(extra, {film_of(r) for r in rows})
            chosen = train + added
            out["extra"] = {"dir": rio.rel(extra), **info}
        else:
            films = subset_films(train, int(size) / 100)
            chosen = [r for r in train if film_of(r) in films]
        write_manifest([relative_row(r, folder) for r in chosen + held], path)
        out["sizes"][size] = {
            "manifest": rio.rel(path),
            "sha256": manifest_sha256(path),
            "train_posters": len(chosen),
            "train_films": len({film_of(r) for r in chosen}),
        }
    # Nesting and the unchanged held-out rows, checked on what was written.
    written = {s: read_manifest(folder / f"{s}.csv") for s in sizes}
    key = lambda r: (str(Path(r.path).resolve()), r.genres, r.split, r.source, r.film_id)  # noqa: E731
    for size, got in written.items():
        if sorted(map(key, (r for r in got if r.split != "train"))) != sorted(map(key, held)):
            raise SystemExit(f"error: {size}.csv: val/test rows differ from {base}")
    numeric = sorted(int(s) for s in sizes if s != EXTRA)
    for small, large in zip(numeric, numeric[1:], strict=False):
        a = {film_of(r) for r in written[str(small)] if r.split == "train"}
        b = {film_of(r) for r in written[str(large)] if r.split == "train"}
        if not a <= b:
            raise SystemExit(f"error: the {small} % films are not inside the {large} % ones")
    out["held_out_rows"] = {split: sum(r.split == split for r in held) for split in ("val", "test")}
    return out


# ------------------------------------------------------------------------------ one run
def train_one(manifest: str, out_dir: str, seed: int, schedule: str, smoke: bool) -> None:
    """Train and score one run, in its own process; writes RUN_RECORD when done."""
    import resource

    from posterlite.card import read_card
    from posterlite.fileio import atomic_write_text
    from posterlite.train import (
        EndToEndConfig,
        TrainConfig,
        Workspace,
        parse_schedule,
        score_test,
        train_run,
    )

    load = round(os.getloadavg()[0], 2)
    tic = time.perf_counter()
    out = Path(out_dir)
    e2e = EndToEndConfig(schedule=parse_schedule(schedule), steps_per_epoch=2 if smoke else None)
    config = TrainConfig(
        arch=ARCH, learning_rate=HEAD_LR, end_to_end=e2e, seed=seed, epochs=2 if smoke else 50
    )
    ws = Workspace()
    train_run(config, Path(manifest), out, ws)
    trained_s = time.perf_counter() - tic
    card = read_card(out)
    test = card.extra.get("test") or score_test(out, Path(manifest), ws)
    tuned = card.extra["end_to_end"]
    history = json.loads((out / "history.json").read_text(encoding="utf-8"))
    record = {
        "train_posters": card.extra["n_train"],
        "val_posters": card.extra["n_val"],
        "test_posters": test["n_samples"],
        "head_val_map": tuned["start_val_map"],
        "val_map_per_epoch": history.get("fine_tune_val_map", []),
        "seconds_per_epoch": history.get("fine_tune_seconds", []),
        "val_map": card.validation["mAP"],
        "val_per_genre_ap": card.validation["per_genre_ap"],
        "test_map": test["mAP"],
        "test_per_genre_ap": test["per_genre_ap"],
        "best_epoch": tuned["best_epoch"],
        "fine_tune_epochs_run": tuned["epochs_run"],
        "head_epochs_run": len(history.get("loss", [])),
        "resumed_from_epoch": tuned["resumed_from_epoch"],
        "train_s": round(trained_s, 1),
        "wall_s": round(time.perf_counter() - tic, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "load_average_1min_at_start": load,
        "cpu": rio.environment()["cpu_model"],
        "date": rio.environment()["date"],
        "manifest_sha256": card.manifest_sha256,
    }
    atomic_write_text(out / RUN_RECORD, json.dumps(record, indent=2, sort_keys=True) + "\n")


def run_in_process(manifest: Path, out: Path, seed: int, schedule: str, smoke: bool) -> dict:
    """One run in a fresh process (its own peak RSS; memory freed after); -> its record."""
    import multiprocessing

    record = out / RUN_RECORD
    if not record.is_file():
        process = multiprocessing.get_context("spawn").Process(
            target=train_one, args=(str(manifest), str(out), seed, schedule, smoke)
        )
        process.start()
        process.join()
        if process.exitcode != 0 or not record.is_file():
            raise SystemExit(f"error: run {rio.rel(out)} failed (exit {process.exitcode})")
    return json.loads(record.read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------ measure
def measure(args, argv: list[str]) -> dict:
    sizes = args.sizes.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    env = rio.environment()
    started = time.perf_counter()
    manifests = build_manifests(args.manifest, args.extra, sizes, args.work / "manifests")
    payload = {
        "command": rio.command("learning_curve.py", argv),
        "environment": env,
        "arch": ARCH,
        "schedule": args.schedule,
        "head": f"Adam {HEAD_LR:g} on cached frozen features (early stopping, patience 8)",
        "subset_seed": SUBSET_SEED,
        "smoke": args.smoke,
        "manifests": manifests,
        "shipped_reference": shipped_reference(),
        "planned": [r.folder for r in run_order(sizes, seeds)],
        "runs": [],
        "wall_time_s": 0.0,
    }
    order = run_order(sizes, seeds)
    recorded = recorded_runs(args.results, args.schedule, args.smoke)
    for i, run in enumerate(order, 1):
        manifest = args.work / "manifests" / f"{run.size}.csv"
        out = args.work / run.folder
        earlier = recorded.get(run.folder)
        sha256 = manifests["sizes"][run.size]["sha256"]
        if earlier and earlier["manifest_sha256"] == sha256 and not (out / RUN_RECORD).is_file():
            print(f"[{i}/{len(order)}] {run.folder}: read back from the record", flush=True)
            record = earlier
        else:
            print(f"[{i}/{len(order)}] {run.folder} -> {rio.rel(out)}", flush=True)
            record = run_in_process(manifest, out, run.seed, args.schedule, args.smoke)
        payload["runs"].append({"run": run.folder, "size": run.size, "seed": run.seed, **record})
        payload["wall_time_s"] = time.perf_counter() - started
        save_and_render(args.results, payload, args.no_plot)
        print(eta_line(payload, order[i:], manifests), flush=True)
    return payload


def recorded_runs(results: Path, schedule: str, smoke: bool) -> dict[str, dict]:
    """Finished runs of the committed record with this schedule, by run folder: a run whose
    manifest has the same sha256 is not trained again (its .cache folder may be gone)."""
    path = Path(results) / f"{NAME}.json"
    if smoke or not path.is_file():
        return {}
    saved = json.loads(path.read_text(encoding="utf-8"))
    if saved.get("schedule") != schedule or saved.get("smoke"):
        return {}
    return {r["run"]: r for r in saved["runs"]}


def shipped_reference() -> dict:
    """The shipped V2's validation/test mAP (its longer 160:5,224:1 schedule), for scale."""
    from posterlite.card import read_card

    card = read_card(rio.REPO / "models" / ARCH)
    return {
        "model": f"models/{ARCH}",
        "schedule": card.hyperparameters["end_to_end"]["schedule"],
        "train_posters": card.extra["n_train"],
        "val_map": card.validation["mAP"],
        "test_map": (card.extra.get("test") or {}).get("mAP"),
    }


def eta_line(payload: dict, remaining: list[Run], manifests: dict) -> str:
    """Time left, from the seconds per train poster of the runs done so far."""
    done = payload["runs"]
    rate = sum(r["wall_s"] for r in done) / max(sum(r["train_posters"] for r in done), 1)
    left = sum(manifests["sizes"][r.size]["train_posters"] for r in remaining) * rate
    return f"done {len(done)} run(s); about {left / 60:.0f} min left for {len(remaining)}"


def save_and_render(results: Path, payload: dict, no_plot: bool) -> None:
    rio.save_json(results, NAME, payload)
    saved = rio.load_json(results, NAME)
    rio.save_markdown(results, NAME, render(saved))
    if not no_plot:
        plot(saved, Path(results) / f"{NAME}.png")


# ------------------------------------------------------------------------------ render
def by_size(runs: list[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for r in runs:
        groups.setdefault(r["size"], []).append(r)
    return {s: groups[s] for s in SIZES if s in groups}


def mean(values: list[float]) -> float:
    return statistics.mean(values)


def size_label(size: str) -> str:
    return "100 % + kaggle-extra" if size == EXTRA else f"{size} %"


def render(payload: dict) -> str:
    runs = payload["runs"]
    lines = rio.header("Learning curve: MobileNetV2 vs number of train posters", payload, RUNTIME)
    ref = payload["shipped_reference"]
    m = payload["manifests"]
    extra = m.get("extra")
    lines += [
        f"Recipe for every run: head stage ({payload['head']}), then every layer end to end "
        f"with the shipped settings and the fixed schedule {payload['schedule']} (the shipped "
        f"model used {','.join(f'{s}:{e}' for s, e in ref['schedule'])}). Best epoch chosen "
        "on validation (224 px); test scored once per run on the chosen weights. Train subsets "
        f"chosen by film (seed {payload['subset_seed']}, nested); validation "
        f"({m['held_out_rows']['val']} posters) and test ({m['held_out_rows']['test']}) are "
        f"the rows of `{m['base']}`, unchanged, in every run.",
        "",
    ]
    if payload.get("smoke"):
        lines += ["**Smoke run (2 steps per epoch, tiny head stage): not a measurement.**", ""]
    if extra:
        genres = ", ".join(f"{g} {n:,}" for g, n in extra["genre_counts"].items())
        lines += [
            f"kaggle-extra (`{extra['dir']}`): {extra['posters']:,} posters added to train "
            f"({extra['left_out_film_in_manifest']} left out: film already in the manifest); "
            f"genres {genres}.",
            "",
        ]
    done = {r["run"] for r in runs}
    waiting = [p for p in payload["planned"] if p not in done]
    lines += [
        "| run | train posters | films | head val mAP | val mAP per epoch | best val mAP "
        "| test mAP | wall min | peak RSS MB | load at start |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        films = m["sizes"][r["size"]]["train_films"]
        lines.append(
            f"| {r['run']} | {r['train_posters']:,} | {films:,} | {r['head_val_map']:.4f} | "
            + ", ".join(f"{v:.4f}" for v in r["val_map_per_epoch"])
            + f" | {r['val_map']:.4f} | {r['test_map']:.4f} | {r['wall_s'] / 60:.1f} | "
            f"{r['peak_rss_mb']:.0f} | {r['load_average_1min_at_start']} |"
        )
    if waiting:
        lines += ["", f"Not yet run: {', '.join(waiting)}."]
    groups = by_size(runs)
    lines += [
        "",
        "Mean over the seeds run per size:",
        "",
        "| train set | posters | seeds | mean val mAP | mean test mAP | mean wall min |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for size, rows in groups.items():
        lines.append(
            f"| {size_label(size)} | {rows[0]['train_posters']:,} | {len(rows)} | "
            f"{mean([r['val_map'] for r in rows]):.4f} | {mean([r['test_map'] for r in rows]):.4f}"
            f" | {mean([r['wall_s'] for r in rows]) / 60:.1f} |"
        )
    lines += [
        "",
        f"Shipped `{ref['model']}` for scale (longer schedule, {ref['train_posters']:,} "
        f"posters): val mAP {ref['val_map']:.4f}, test mAP {ref['test_map']:.4f}.",
    ]
    lines += ["", *doubling_lines(groups)]
    lines += ["", "Plot: `learning_curve.png` (mAP vs train posters, log scale).", ""]
    return "\n".join(lines)


def doubling_lines(groups: dict[str, list[dict]]) -> list[str]:
    """What each step up in data bought, in mean val and test mAP."""
    steps = [("25", "50"), ("50", "100"), ("100", EXTRA)]
    lines = []
    for small, large in steps:
        if small in groups and large in groups:
            a, b = groups[small], groups[large]
            dv = mean([r["val_map"] for r in b]) - mean([r["val_map"] for r in a])
            dt = mean([r["test_map"] for r in b]) - mean([r["test_map"] for r in a])
            ratio = b[0]["train_posters"] / a[0]["train_posters"]
            lines.append(
                f"- {size_label(small)} -> {size_label(large)} ({ratio:.1f}x the posters): "
                f"val mAP {dv:+.4f}, test mAP {dt:+.4f} (means over {len(a)} and {len(b)} "
                "seed(s))."
            )
    if not lines:
        return ["No two sizes measured yet."]
    return ["What more posters bought:", "", *lines]


def plot(payload: dict, out: Path) -> None:
    """learning_curve.png: val and test mAP vs train posters (each run, and per-size means)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from posterlite.fileio import atomic_path

    groups = by_size(payload["runs"])
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, marker, colour in (("val_map", "o", "tab:blue"), ("test_map", "s", "tab:orange")):
        split = "validation" if key == "val_map" else "test"
        curve = [(g[0]["train_posters"], mean([r[key] for r in g])) for s, g in groups.items()]
        curve = [p for s, p in zip(groups, curve, strict=True) if s != EXTRA]
        if curve:
            xs, ys = [p[0] for p in curve], [p[1] for p in curve]
            ax.plot(xs, ys, "-", color=colour, label=f"{split} (mean over seeds)")
        for size, rows in groups.items():
            for r in rows:
                ax.plot(
                    r["train_posters"],
                    r[key],
                    marker if size != EXTRA else "*",
                    color=colour,
                    markersize=6 if size != EXTRA else 11,
                    alpha=0.8,
                )
    if EXTRA in groups:
        r = groups[EXTRA][0]
        ax.annotate(
            "+ kaggle-extra\n(Comedy/Drama films)",
            (r["train_posters"], r["val_map"]),
            textcoords="offset points",
            xytext=(-120, 12),
            fontsize=8,
        )
    ref = payload["shipped_reference"]
    ax.axhline(ref["test_map"], color="grey", ls=":", lw=1, label="shipped V2, test")
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x:,.0f}"))
    ax.set_xlabel("train posters (log scale)")
    ax.set_ylabel("mAP")
    ax.set_title(f"MobileNetV2, schedule {payload['schedule']}: mAP vs train posters")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = rio.make_parser(__doc__, NAME)
    parser.add_argument(
        "--extra", type=Path, default=None, help="the extracted kaggle-extra folder (see above)"
    )
    parser.add_argument(
        "--manifest", type=Path, default=rio.REPO / "models" / "manifest.csv", help="splits"
    )
    parser.add_argument(
        "--sizes", default=",".join(SIZES), help=f"comma-separated, from: {', '.join(SIZES)}"
    )
    parser.add_argument("--seeds", default="0,1", help="comma-separated training seeds")
    parser.add_argument(
        "--schedule", default=DEFAULT_SCHEDULE, help="SIZE:EPOCHS of the end-to-end stage"
    )
    parser.add_argument(
        "--work",
        type=Path,
        default=rio.REPO / ".cache" / NAME,
        help="run folders and the built manifests (default: .cache/learning_curve)",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="check the pipeline in minutes: 2 steps per epoch and 2 head epochs "
        "(use another --work and --results; its figures mean nothing)",
    )
    parser.add_argument("--no-plot", action="store_true", help="skip learning_curve.png")
    args = parser.parse_args(argv)
    bad = [s for s in args.sizes.split(",") if s not in SIZES]
    if bad:
        parser.error(f"unknown size(s) {', '.join(bad)}: choose from {', '.join(SIZES)}")
    if args.render_only:
        payload = rio.load_json(args.results, NAME)
        if not args.no_plot:
            plot(payload, Path(args.results) / f"{NAME}.png")
    else:
        payload = measure(args, argv)
    rio.publish(args.results, NAME, render(rio.load_json(args.results, NAME)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
