"""Ship the models: score each once on test, gate its int8 conversion, render the tables.

    .venv/bin/python benchmarks/ship_models.py                 # score + gate what is new, render
    .venv/bin/python benchmarks/ship_models.py --render-only   # re-render from the JSON only
    .venv/bin/python benchmarks/ship_models.py --install mobilenet_v2=runs/v2   # then as above

For each model folder under `models/` (the six + the fast `mobilenet_v2_160`):
1. a model trained on an earlier manifest is re-scored on this manifest's validation split
   (thresholds re-tuned there: `posterlite.train.rescore_validation`);
2. the test split is scored ONCE per model file (`posterlite.train.score_test`; skipped when
   the card already holds test figures for the same model.keras sha256). Nothing here reads
   test figures to choose anything: selection happened on validation before shipping;
3. the int8 gate runs exactly as a user would run it,
   `posterlite convert models/<name> --format int8 --max-drop 0.01 --out .cache/ship/<name>`,
   and its conversion.json is kept as `models/<name>/int8_gate.json` (with the model sha256).
Then `models/README.md` is rendered ENTIRELY from those JSON files (cards, int8_gate.json),
and the README's results table between `<!-- results:begin -->` and `<!-- results:end -->`.
Rendering the same JSON twice gives the same bytes (no dates, no timings of the renderer).
Runtime: ~1-2 min per MobileNet for test + gate on 2 cores (cached decodes), seconds with
`--render-only`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from posterlite.bench.models import SHIPPED_MODELS
from posterlite.card import MODEL_NAME, read_card
from posterlite.fileio import atomic_write_text, replace_dir, sha256_file
from posterlite.preprocess import PREPROCESS_VERSION
from posterlite.train.config import RUN_FILES

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "models"
MANIFEST = MODELS / "manifest.csv"
GATE_NAME = "int8_gate.json"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
MAX_DROP = 0.01
# The targets (issue 12). The hidden set is not here: test stands in, and says so.
TARGET_MAP = 0.65
TARGET_TUNED_F1 = 0.60
TARGET_WALL_MIN = 60.0
TARGET_RSS_GB = 4.0
TARGET_FAST_MAP_GAP = 0.02


# --- installing ----------------------------------------------------------------------------
def install(name: str, run_dir: Path, models: Path = MODELS) -> Path:
    """Replace `models/<name>` whole with a run folder's artifacts (never its checkpoints)."""
    import shutil

    if not (run_dir / MODEL_NAME).is_file():
        raise SystemExit(f"{run_dir}: no {MODEL_NAME}")
    staging = models / f".{name}.staging"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    for artifact in RUN_FILES:
        if (run_dir / artifact).is_file():
            shutil.copy2(run_dir / artifact, staging / artifact)
    target = models / name
    replace_dir(staging, target)
    return target


def record_selection(name: str, spec: str, models: Path = MODELS) -> dict:
    """`chosen@label:dir,label:dir`: write each candidate's validation mAP (read from its
    card, all on the current manifest) and the choice into models/<name>/card.json."""
    from posterlite.card import write_card

    chosen, _, listing = spec.partition("@")
    candidates = {}
    for item in listing.split(","):
        label, _, folder = item.partition(":")
        candidates[label] = float(read_card(Path(folder)).validation["mAP"])
    if chosen not in candidates or candidates[chosen] != max(candidates.values()):
        raise SystemExit(f"{name}: {chosen!r} is not the best on validation: {candidates}")
    card = read_card(models / name)
    card.extra["selection"] = {"candidates": candidates, "chosen": chosen, "by": "val mAP"}
    write_card(card, models / name)
    return card.extra["selection"]


# --- measuring ---------------------------------------------------------------------------
def model_dirs(models: Path = MODELS) -> list[Path]:
    return [models / n for n in SHIPPED_MODELS if (models / n / MODEL_NAME).is_file()]


def gate(folder: Path, cache: Path) -> dict:
    """The int8 conversion gate, as `posterlite convert MODEL --format int8 --max-drop
    MAX_DROP` runs it (`convert.convert_model`, which writes conversion.json and raises when
    the gate fails: the CLI's exit status 1); keep its report beside the model."""
    from posterlite.convert import convert_model
    from posterlite.errors import PosterliteError

    out = cache / "ship" / folder.name
    try:
        convert_model(folder, formats=("int8",), out_dir=out, max_drop=MAX_DROP)
        exit_code = 0
    except PosterliteError as exc:
        if not (out / "conversion.json").is_file():
            raise
        print(f"{folder.name}: {exc}", file=sys.stderr)
        exit_code = 1
    report = json.loads((out / "conversion.json").read_text(encoding="utf-8"))
    entry = {
        "command": f"posterlite convert models/{folder.name} --format int8 --max-drop {MAX_DROP} "
        f"--out .cache/ship/{folder.name}",
        "exit_code": exit_code,
        "model_sha256": sha256_file(folder / MODEL_NAME),
        "conversion": report,
    }
    atomic_write_text(folder / GATE_NAME, json.dumps(entry, indent=2, sort_keys=True) + "\n")
    return entry


def measure(models: Path, manifest: Path, only: list[str] | None = None) -> None:
    from posterlite.manifest import manifest_sha256
    from posterlite.train import Workspace, rescore_validation, score_test
    from posterlite.train.config import cache_root

    ws = Workspace()
    current = manifest_sha256(manifest)
    for folder in model_dirs(models):
        if only and folder.name not in only:
            continue
        card = read_card(folder)
        sha = sha256_file(folder / MODEL_NAME)
        if card.manifest_sha256 != current:
            print(f"{folder.name}: re-scoring validation on {manifest}", flush=True)
            rescore_validation(folder, manifest, ws)
            card = read_card(folder)
        if card.extra.get("test", {}).get("model_sha256") != sha:
            print(f"{folder.name}: scoring test (once)", flush=True)
            score_test(folder, manifest, ws)
        gate_path = folder / GATE_NAME
        old = json.loads(gate_path.read_text()) if gate_path.is_file() else {}
        if old.get("model_sha256") != sha:
            print(f"{folder.name}: int8 gate", flush=True)
            gate(folder, cache_root())


# --- rendering (pure: JSON in, Markdown out) ----------------------------------------------
def model_row(folder: Path) -> dict:
    card = read_card(folder)
    gate_path = folder / GATE_NAME
    int8 = None
    if gate_path.is_file():
        entry = json.loads(gate_path.read_text(encoding="utf-8"))
        results = entry["conversion"]["results"]
        if results and entry["model_sha256"] == sha256_file(folder / MODEL_NAME):
            int8 = {**results[0], "exit_code": entry["exit_code"]}
    e2e = card.extra.get("end_to_end")
    return {
        "name": folder.name,
        "arch": card.arch,
        "input_size": card.input_size,
        "smote": card.smote,
        "val": card.validation,
        "test": card.extra.get("test"),
        "int8": int8,
        "params": card.extra.get("params"),
        "file_mb": (folder / MODEL_NAME).stat().st_size / 2**20,
        "wall_s": card.wall_time_s,
        "rss_mb": card.peak_rss_mb,
        "end_to_end": e2e,
        "history": _history(folder),
        "hyper": card.hyperparameters,
        "recipe": recipe(card),
        "old_manifest": "trained_on_manifest" in card.extra,
        "exported_from": card.extra.get("exported_from"),
        "selection": card.extra.get("selection"),
        "features": card.extra.get("features"),
        "versions": card.library_versions,
        "preprocess": card.extra.get("preprocess_version"),
    }


def _history(folder: Path) -> dict:
    path = folder / "history.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def recipe(card) -> str:
    """One line naming how the model was trained, from its card."""
    hyper, extra = card.hyperparameters, card.extra
    if extra.get("exported_from"):
        return f"mobilenet_v2 re-exported at {card.input_size} px (same weights)"
    parts = []
    if card.arch == "cnn":
        parts.append(f"from scratch, {hyper.get('optimizer')} {hyper.get('learning_rate'):g}")
    elif hyper.get("init"):
        init = extra.get("init_card") or {}
        how = []
        if init.get("run_id"):
            how.append(f"run {init['run_id']}")
        if init.get("fine_tuned_blocks"):
            how.append(f"top {init['fine_tuned_blocks']} block(s) fine-tuned")
        if init.get("smote"):
            how.append("SMOTE head")
        if init.get("preprocess_version"):
            how.append(f"preprocessing {init['preprocess_version'].split(':')[0]}")
        parts.append(f"init {hyper['init']}" + (f" ({', '.join(how)})" if how else ""))
    else:
        parts.append(f"head ({hyper.get('optimizer')} {hyper.get('learning_rate'):g})")
    if card.smote:
        parts.append("SMOTE on embeddings")
    if hyper.get("fine_tune"):
        parts.append(f"top {hyper['fine_tune']} block(s) fine-tuned")
    e2e = extra.get("end_to_end")
    if e2e:
        sched = ",".join(f"{s}:{n}" for s, n in e2e["schedule"])
        parts.append(
            f"all layers {sched} (lr {e2e['learning_rate']:g}, BN {e2e['bn']}, "
            f"sampler {(hyper.get('end_to_end') or {}).get('sampler', '?')}, "
            f"best epoch {e2e['best_epoch']}/{e2e['epochs_run']})"
        )
    return ", ".join(parts)


def _f(value, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _delta(row: dict) -> str:
    int8 = row["int8"]
    if not int8 or int8.get("map_delta") is None:
        return "-"
    return f"{int8['map_delta']:+.4f}" + ("" if int8["passed"] else " FAILED")


def results_table(rows: list[dict]) -> str:
    lines = [
        "| model | input | val mAP | val macro F1@0.5 | val macro F1 (tuned) | test mAP | "
        "test macro F1@0.5 | test macro F1 (tuned) | int8 - Keras mAP (val) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        v, t = row["val"], row["test"] or {}
        lines.append(
            f"| {row['name']} | {row['input_size']} | {_f(v.get('mAP'))} | "
            f"{_f(v.get('macro_f1'))} | {_f(v.get('tuned_macro_f1'))} | {_f(t.get('mAP'))} | "
            f"{_f(t.get('macro_f1'))} | {_f(t.get('tuned_macro_f1'))} | {_delta(row)} |"
        )
    return "\n".join(lines) + "\n"


def targets(rows: list[dict]) -> list[str]:
    by = {r["name"]: r for r in rows}
    out = []

    def verdict(ok: bool | None) -> str:
        return "not measured" if ok is None else ("met" if ok else "MISSED")

    v2 = by.get("mobilenet_v2")
    if v2:
        t = v2["test"] or {}
        test_map = t.get("mAP")
        ok = None if test_map is None else test_map >= TARGET_MAP
        out.append(
            f"- MobileNetV2 mAP >= {TARGET_MAP} on the hidden set: not measurable here; "
            f"on this test split (Keras) {_f(test_map)}: {verdict(ok)}."
        )
        tuned = t.get("tuned_macro_f1")
        ok = None if tuned is None else tuned >= TARGET_TUNED_F1
        out.append(
            f"- MobileNetV2 macro F1 at its tuned thresholds >= {TARGET_TUNED_F1} (test): "
            f"{_f(tuned)}: {verdict(ok)}."
        )
        if v2["end_to_end"] and v2["end_to_end"].get("init", "").startswith("head stage"):
            pass
        wall_min = v2["wall_s"] / 60 if v2["wall_s"] else None
        ok = None if wall_min is None else wall_min <= TARGET_WALL_MIN
        from_imagenet = not (v2["hyper"] or {}).get("init")
        out.append(
            f"- MobileNetV2 training wall time <= {TARGET_WALL_MIN:.0f} min "
            f"({'from the imported ImageNet weights, head stage included' if from_imagenet else 'from --init, head stage NOT included'}): "
            f"{_f(wall_min, 1)} min: {verdict(ok)}"
            + (
                f" (frozen features came from a warm cache: {v2['features']['cache_hits']:,} "
                "hits, 0 computed; a cold cache adds their extraction)"
                if from_imagenet
                and v2["features"]
                and not v2["features"].get("computed")
                and v2["features"].get("cache_hits")
                else ""
            )
            + f"; peak RSS {v2['rss_mb']:.0f} MB "
            f"(<= {TARGET_RSS_GB:.0f} GB: {verdict(v2['rss_mb'] <= TARGET_RSS_GB * 1024)})."
        )
    drops = [(r["name"], r["int8"]) for r in rows if r["int8"]]
    if drops:
        worst = min(drops, key=lambda d: d[1]["map_delta"] if d[1]["map_delta"] is not None else 0)
        passed = all(d[1]["passed"] for d in drops)
        out.append(
            f"- int8 within {MAX_DROP} mAP of Keras (validation, `posterlite convert ... "
            f"--format int8 --max-drop {MAX_DROP}`): {len(drops)} model(s) gated, worst "
            f"{worst[0]} {worst[1]['map_delta']:+.4f}: {verdict(passed)}."
        )
    missing = [r["name"] for r in rows if not r["int8"]]
    if missing:
        out.append(f"- int8 gate not run (or stale) for: {', '.join(missing)}.")
    fast = by.get("mobilenet_v2_160")
    if fast and v2 and fast["test"] and v2["test"]:
        gap = v2["test"]["mAP"] - fast["test"]["mAP"]
        out.append(
            f"- Fast variant (160 px) test mAP within {TARGET_FAST_MAP_GAP} of the 224 px "
            f"model: {fast['test']['mAP']:.4f} vs {v2['test']['mAP']:.4f} (gap {gap:+.4f}): "
            f"{verdict(gap <= TARGET_FAST_MAP_GAP)}. Its latency is measured by "
            "`posterlite bench`, not here."
        )
    return out


def epochs_table(row: dict) -> str:
    h = row["history"]
    if not h.get("fine_tune_size"):
        return ""
    lines = ["| epoch | input px | train loss | val mAP | seconds |", "|---:|---:|---:|---:|---:|"]
    for i, (size, loss, vmap, sec) in enumerate(
        zip(
            h["fine_tune_size"],
            h["fine_tune_loss"],
            h["fine_tune_val_map"],
            h["fine_tune_seconds"],
            strict=True,
        ),
        start=1,
    ):
        lines.append(f"| {i} | {size} | {loss:.4f} | {vmap:.4f} | {sec:.0f} |")
    return "\n".join(lines) + "\n"


def selection_lines(rows: list[dict]) -> str:
    lines = []
    for row in rows:
        chosen = row["selection"]
        if not chosen:
            continue
        cands = ", ".join(f"{k} {v:.4f}" for k, v in chosen["candidates"].items())
        lines.append(f"- {row['name']}: {cands} -> shipped: {chosen['chosen']}")
    return "\n".join(lines) + "\n" if lines else ""


def smote_table(rows: list[dict]) -> str:
    by = {r["name"]: r for r in rows}
    lines = []
    for arch in ("cnn", "mobilenet_v1", "mobilenet_v2"):
        plain, twin = by.get(arch), by.get(f"{arch}_smote")
        if not plain or not twin:
            continue
        pa, ta = plain["val"]["per_genre_ap"], twin["val"]["per_genre_ap"]
        pf, tf = plain["val"]["per_genre_f1"], twin["val"]["per_genre_f1"]
        cells = []
        for genre in pa:
            da, df = ta[genre] - pa[genre], tf[genre] - pf[genre]
            cells.append(f"{da:+.3f} / {df:+.3f}" + (" helps" if da > 0 and df > 0 else ""))
        if not lines:
            lines += [
                "| architecture | " + " | ".join(pa) + " | same recipe? |",
                "|---|" + "---:|" * len(pa) + "---|",
            ]
        schedule = [(r["end_to_end"] or {}).get("schedule") for r in (plain, twin)]
        same = schedule[0] == schedule[1] and plain["old_manifest"] == twin["old_manifest"]
        verdict = "yes" if same else "NO: the gap is not SMOTE's alone"
        lines.append(f"| {arch} | " + " | ".join(cells) + f" | {verdict} |")
    return "\n".join(lines) + "\n" if lines else ""


FIXED_INTRO = """# models/: the shipped genre models

Rendered by `benchmarks/ship_models.py` from each folder's `card.json`, `history.json` and
`int8_gate.json`; every figure below comes from those files (do not edit by hand).

Each folder holds `model.keras` (image in [-1, 1] at the card's input size -> network -> 6
sigmoid probabilities for Action, Drama, Comedy, Crime, Romance, Other), `card.json`
(manifest sha256, preprocessing, hyperparameters, seed, wall time, peak RSS, library
versions, validation and test summaries, per-genre thresholds tuned on validation; 0.5
stays the default), `report.{json,md}` (validation at 0.5 and at the tuned thresholds, then
test), `thresholds.json`, `history.json`, plots, and `int8_gate.json` (the int8
conversion's check against Keras). `manifest.csv` is the merged imdb-7k + Kaggle manifest:
70/15/15 train/val/test by film (`posterlite data split ../shared/data/imdb-7k
../shared/data/kaggle-moviegenre --out models/manifest.csv --seed 0`); its train rows are
exactly those of the earlier 70/30 manifest.

Validation chose everything (early stopping, thresholds, recipes, which model ships). The
test split was scored once per shipped model, after those choices, and chose nothing.
"""

FIXED_CHOICES = """## Choices (fixed text, not measurements)

- End-to-end fine-tuning (`posterlite train --fine-tune all`): every backbone layer and the
  head train from the trained head (head stage on cached frozen features first, or
  `--init DIR`); two AdamW optimizers (backbone at the peak lr, head at 3x), linear warm-up
  then cosine decay, class-balanced BCE; progressive resizing (most epochs at 160 px, the
  last at 224); validation mAP after every epoch at 224 px decides early stopping and the
  best epoch is kept. Posters are decoded once with `load_poster` into a uint8 memmap
  (`.cache/decoded/`); tf.data reads rows, augments in parallel and prefetches.
  Checkpoint, optimizer state and `state.json` are written after each epoch
  (`<out>/finetune/`): an interrupted run resumes after its last finished epoch.
- Augmentation: random-resized crop keeping >= 70 % of the area (aspect 0.8-1.25), resized
  with plain bilinear WITHOUT antialiasing (what phone-side scalers do), horizontal flip,
  brightness / contrast / saturation jitter 0.15; stateless ops keyed by (seed, epoch,
  position), so a seed reproduces the same posters.
- Batch norm stays frozen (moving statistics): the imported ImageNet weights are BN-folded.
  Measured against trainable BN, a >= 50 % crop, no crop, a 1x head lr, a second seed, and
  distillation + EMA on validation: `benchmarks/results/finetune_ablation.md` (only BN is
  decided beyond run-to-run noise there).
- SMOTE: in embedding space for the head stage (synthetic embeddings have no pixels); while
  the backbone trains, the `_smote` twins draw their epochs from a label-powerset balanced
  pool (imbalanced-learn RandomOverSampler with SMOTE's targets) of real posters.
- The fast variant is the fine-tuned MobileNetV2 re-exported at 160 px (`posterlite train
  export-size models/mobilenet_v2 --size 160 --out models/mobilenet_v2_160`): same weights,
  validation re-scored and thresholds re-tuned at 160 px.
- Models marked "earlier manifest" were trained and selected on the earlier 70/30 split,
  whose validation half is now this test split: their test figures are optimistic.
"""


def render_models_readme(rows: list[dict]) -> str:
    parts = [FIXED_INTRO, "\n## Results\n\n", results_table(rows)]
    detail = [
        "| model | recipe | params | model.keras MB | train wall min | peak RSS MB | note |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        notes = ["earlier manifest"] if row["old_manifest"] else []
        if row["preprocess"] and row["preprocess"] != PREPROCESS_VERSION:
            notes.append(f"trained on preprocessing {row['preprocess'].split(':')[0]}")
        note = "; ".join(notes)
        wall = row["wall_s"] / 60 if row["wall_s"] else None
        detail.append(
            f"| {row['name']} | {row['recipe']} | {row['params'] or 0:,} | "
            f"{row['file_mb']:.1f} | {_f(wall, 1)} | {row['rss_mb']:.0f} | {note} |"
        )
    parts += ["\n## How each was trained\n\n", "\n".join(detail) + "\n"]
    for row in rows:
        table = epochs_table(row)
        if table:
            parts += [f"\n### {row['name']}: end-to-end epochs\n\n", table]
    parts += [
        "\n## Targets (issue 12), computed from the figures above\n\n",
        "\n".join(targets(rows)) + "\n",
    ]
    selection = selection_lines(rows)
    if selection:
        parts += [
            "\n## Which model ships: validation mAP of the candidates\n\n"
            "(previous = the model shipped before this round, re-scored on this validation split "
            "with re-tuned thresholds; head-only = the same recipe without the end-to-end stage)\n\n",
            selection,
        ]
    smote = smote_table(rows)
    if smote:
        parts += [
            "\n## SMOTE minus plain, per genre (validation AP / F1 at 0.5; helps = both up)\n\n",
            smote,
        ]
    versions = {k: v for r in rows for k, v in (r["versions"] or {}).items()}
    if versions:
        parts.append(
            "\nLibrary versions (cards): "
            + ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))
            + "\n"
        )
    parts += ["\n" + FIXED_CHOICES]
    return "".join(parts)


def render_readme_section(rows: list[dict], readme: str) -> str:
    if BEGIN not in readme or END not in readme:
        raise SystemExit(f"README.md lacks the {BEGIN} / {END} markers")
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    table = results_table(rows)
    return f"{head}{BEGIN}\n{table}{END}{tail}"


def render(models: Path = MODELS, readme: Path = REPO / "README.md") -> tuple[str, str]:
    rows = [model_row(folder) for folder in model_dirs(models)]
    text = render_models_readme(rows)
    atomic_write_text(models / "README.md", text)
    updated = render_readme_section(rows, readme.read_text(encoding="utf-8"))
    atomic_write_text(readme, updated)
    return text, updated


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--render-only", action="store_true", help="Only re-render from JSON.")
    parser.add_argument("--models", type=Path, default=MODELS, help="Models folder.")
    parser.add_argument("--manifest", type=Path, default=MANIFEST, help="Manifest with test.")
    parser.add_argument("--readme", type=Path, default=REPO / "README.md", help="README to update.")
    parser.add_argument(
        "--install",
        action="append",
        default=[],
        metavar="NAME=RUN_DIR",
        help="First replace models/NAME with RUN_DIR's artifacts (repeatable; chosen on "
        "validation beforehand).",
    )
    parser.add_argument(
        "--only", action="append", default=None, metavar="NAME", help="Measure only these."
    )
    parser.add_argument(
        "--select",
        action="append",
        default=[],
        metavar="NAME=CHOSEN@LABEL:DIR,...",
        help="Record in models/NAME's card the validation mAP of each candidate (their cards) "
        "and the chosen one (must be the best on validation).",
    )
    args = parser.parse_args(argv)
    for spec in args.install:
        name, _, run_dir = spec.partition("=")
        print(f"installed {install(name, Path(run_dir), args.models)}")
    for spec in args.select:
        name, _, rest = spec.partition("=")
        print(f"{name}: {record_selection(name, rest, args.models)}")
    if not args.render_only:
        measure(args.models, args.manifest, args.only)
    render(args.models, args.readme)
    print(f"wrote {args.models / 'README.md'} and the results table in {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
