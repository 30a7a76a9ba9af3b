"""One training run (`train_run`): pick the path by architecture, evaluate on validation,
tune thresholds there, and write every artifact of the run into its folder.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from posterlite.card import MODEL_NAME, ModelCard, write_card
from posterlite.errors import PosterliteError
from posterlite.fileio import (
    JSONValue,
    atomic_path,
    atomic_write_text,
    jsonable,
    library_versions,
)
from posterlite.preprocess import PREPROCESS_VERSION
from posterlite.train.config import (
    CONFUSION_PNG,
    CURVES_PNG,
    HISTORY_NAME,
    REPORT_JSON,
    REPORT_MD,
    SELECTION_METRIC,
    THRESHOLDS_NAME,
    RunResult,
    TrainConfig,
    peak_rss_mb,
    write_json,
)
from posterlite.train.dataset import Workspace
from posterlite.train.finetune import train_end_to_end
from posterlite.train.heads import predict_images, train_cnn, train_mobilenet
from posterlite.train.models import count_params, strip_compile
from posterlite.train.reports import (
    consistency_check,
    plot_confusion,
    plot_curves,
    report_md_titled,
    summary,
)


def train_run(
    config: TrainConfig,
    manifest: Path,
    out_dir: Path,
    ws: Workspace | None = None,
    trunk_model: Path | None = None,
) -> RunResult:
    """Train one model and write every artifact into `out_dir` (each file atomically)."""
    import keras

    from posterlite.metrics import evaluate, tune_thresholds

    started = time.perf_counter()
    ws = ws or Workspace()
    data = ws.dataset(manifest)
    keras.utils.set_random_seed(config.seed)
    keras.backend.clear_session()
    keras.utils.set_random_seed(config.seed)
    if config.arch == "cnn":
        trained = train_cnn(ws, data, config, trunk_model)
    elif config.end_to_end is not None:
        trained = train_end_to_end(ws, data, config, out_dir)
    else:
        trained = train_mobilenet(ws, data, config)
    y_val = data.val.labels
    probabilities = trained.val_probabilities
    report = evaluate(y_val, probabilities, data.genres, 0.5)
    thresholds = tune_thresholds(y_val, probabilities)
    tuned = evaluate(y_val, probabilities, data.genres, thresholds)
    consistency = consistency_check(ws, data, trained.model, probabilities, config.size)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / MODEL_NAME) as tmp:
        # Keras insists on the .keras suffix; save beside, then move onto the temp name.
        staged = tmp.with_suffix(".keras")
        strip_compile(trained.model)
        trained.model.save(staged)
        os.replace(staged, tmp)
    write_json(out_dir / HISTORY_NAME, trained.history)
    write_json(out_dir / REPORT_JSON, {"threshold_0.5": report.to_dict(), "tuned": tuned.to_dict()})
    atomic_write_text(
        out_dir / REPORT_MD, report_md_titled(f"{config.name} ({config.run_id})", report, tuned)
    )
    write_json(
        out_dir / THRESHOLDS_NAME,
        {"genres": list(data.genres), "thresholds": [float(t) for t in thresholds]},
    )
    plot_curves(trained.history, out_dir / CURVES_PNG, config.run_id)
    plot_confusion(report, out_dir / CONFUSION_PNG, config.run_id)
    wall = time.perf_counter() - started
    params = count_params(trained.model)
    hyper = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
    hyper["input_size"] = config.size
    card = ModelCard(
        name=config.name,
        arch=config.arch,
        genres=list(data.genres),
        input_size=config.size,
        thresholds=[float(t) for t in thresholds],
        smote=config.smote,
        manifest=str(manifest),
        manifest_sha256=data.manifest_sha256,
        hyperparameters=hyper,
        seed=config.seed,
        wall_time_s=round(wall, 2),
        peak_rss_mb=round(peak_rss_mb(), 1),
        library_versions=library_versions(),
        validation=summary(report, tuned),
        extra=jsonable(
            {
                **trained.extra,
                "run_id": config.run_id,
                "epochs_run": len(trained.history.get("loss", [])),
                "best_epoch": int(np.argmax(trained.history["val_pr_auc"])) + 1
                if trained.history.get("val_pr_auc")
                else None,
                "params": params,
                "n_train": len(data.train.paths),
                "n_val": len(data.val.paths),
                "skipped_posters": data.skipped,
                "preprocess_version": PREPROCESS_VERSION,
                "loss": "class-balanced BCE" if config.class_weighted else "BCE",
                "full_model_vs_cached_features_max_abs_diff": consistency,
                "selection_metric": SELECTION_METRIC,
            }
        ),
    )
    write_card(card, out_dir)
    return RunResult(
        name=config.name,
        run_id=config.run_id,
        out_dir=out_dir,
        val_map=report.mean_average_precision,
        val_macro_f1=report.macro_f1,
        val_micro_f1=report.micro_f1,
        paper_accuracy=report.paper_accuracy,
        per_genre_ap={m.genre: m.average_precision for m in report.per_genre},
        per_genre_f1={m.genre: m.f1 for m in report.per_genre},
        params=params,
        wall_time_s=wall,
        peak_rss_mb=peak_rss_mb(),
    )


def score_test(
    model_dir: Path, manifest: Path | None = None, ws: Workspace | None = None
) -> dict[str, JSONValue]:
    """Score a finished model ONCE on the manifest's test split; write it beside the model.

    Called per shipped model after every choice is made on validation (nothing reads this to
    select anything). At 0.5 and at the card's thresholds (tuned on validation). Adds
    `test` to report.json, a section to report.md and `extra.test` to the card; returns it.
    """
    import keras

    from posterlite.card import read_card
    from posterlite.fileio import sha256_file
    from posterlite.metrics import evaluate, report_markdown

    model_dir = Path(model_dir)
    card = read_card(model_dir)
    ws = ws or Workspace()
    data = ws.dataset(Path(manifest or card.manifest))
    if data.test is None:
        raise PosterliteError(f"{data.manifest}: no test split to score")
    model = keras.models.load_model(model_dir / MODEL_NAME, compile=False)
    probabilities = predict_images(ws, data.test, model, card.input_size)
    at_half = evaluate(data.test.labels, probabilities, data.genres, 0.5)
    tuned = evaluate(data.test.labels, probabilities, data.genres, card.thresholds)
    entry = jsonable(
        {
            **summary(at_half, tuned),
            "manifest_sha256": data.manifest_sha256,
            "model_sha256": sha256_file(model_dir / MODEL_NAME),
            "input_size": card.input_size,
        }
    )
    report_path = model_dir / REPORT_JSON
    report = json.loads(report_path.read_text(encoding="utf-8")) if report_path.is_file() else {}
    report["test"] = {"threshold_0.5": at_half.to_dict(), "tuned": tuned.to_dict()}
    write_json(report_path, report)
    md_path = model_dir / REPORT_MD
    md = md_path.read_text(encoding="utf-8") if md_path.is_file() else ""
    md = md.split("\n## Test split", 1)[0].rstrip("\n") + "\n"
    md += (
        "\n## Test split (scored once, after selection on validation), threshold 0.5\n\n"
        + report_markdown(at_half)
        + "\n## Test split at the thresholds tuned on validation\n\n"
        + report_markdown(tuned)
    )
    atomic_write_text(md_path, md)
    card.extra["test"] = entry
    write_card(card, model_dir)
    return entry


def rescore_validation(
    model_dir: Path, manifest: Path, ws: Workspace | None = None
) -> dict[str, JSONValue]:
    """Re-score a model trained on another manifest on THIS manifest's validation split.

    For models kept (not retrained) after the split changed: thresholds are re-tuned on the
    new validation split only (the old ones were tuned on posters now in test), the
    validation report and card are rewritten, and the card records the manifest and that
    the model was trained/selected on the earlier one (`extra.trained_on_manifest`).
    """
    import keras

    from posterlite.card import read_card
    from posterlite.metrics import evaluate, tune_thresholds

    model_dir = Path(model_dir)
    card = read_card(model_dir)
    ws = ws or Workspace()
    data = ws.dataset(Path(manifest))
    model = keras.models.load_model(model_dir / MODEL_NAME, compile=False)
    probabilities = predict_images(ws, data.val, model, card.input_size)
    at_half = evaluate(data.val.labels, probabilities, data.genres, 0.5)
    thresholds = tune_thresholds(data.val.labels, probabilities)
    tuned = evaluate(data.val.labels, probabilities, data.genres, thresholds)
    report_path = model_dir / REPORT_JSON
    report = json.loads(report_path.read_text(encoding="utf-8")) if report_path.is_file() else {}
    report.update({"threshold_0.5": at_half.to_dict(), "tuned": tuned.to_dict()})
    report.pop("test", None)
    write_json(report_path, report)
    write_json(
        model_dir / THRESHOLDS_NAME,
        {"genres": list(data.genres), "thresholds": [float(t) for t in thresholds]},
    )
    title = f"{card.name} (re-scored on {Path(manifest).name}'s validation split)"
    atomic_write_text(model_dir / REPORT_MD, report_md_titled(title, at_half, tuned))
    if card.manifest_sha256 != data.manifest_sha256:
        card.extra.setdefault(
            "trained_on_manifest",
            {"manifest_sha256": card.manifest_sha256, "validation": card.validation},
        )
    card.manifest = str(manifest)
    card.manifest_sha256 = data.manifest_sha256
    card.thresholds = [float(t) for t in thresholds]
    card.validation = summary(at_half, tuned)
    card.extra["n_val"] = len(data.val.paths)
    card.extra["preprocess_version_scored"] = PREPROCESS_VERSION
    card.extra.pop("test", None)
    write_card(card, model_dir)
    return card.validation
