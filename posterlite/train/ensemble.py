"""Ensembles on the training side: members' validation scores, candidates scored on
validation, and an ensemble folder written like a trained run (`train_ensemble`).

The graph and the recipe are `posterlite.ensemble`. Validation decides everything here
(which members, thresholds); the test split is scored once afterwards by `run.score_test`.
A member's scores are computed the way the ensemble computes them: posters decoded at the
ensemble's input size, resized inside the graph for a smaller member; they are cached per
(member model, input size, posters, preprocessing) so candidates cost one pass per member.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from posterlite.card import MODEL_NAME, ModelCard, read_card, write_card
from posterlite.ensemble import (
    ARCH,
    COMBINE,
    Recipe,
    build_model,
    member_branch,
    recipe_for,
    save_deterministic,
    write_recipe,
)
from posterlite.errors import PosterliteError
from posterlite.fileio import (
    atomic_path,
    atomic_write_text,
    jsonable,
    library_versions,
    sha256_file,
)
from posterlite.preprocess import PREPROCESS_VERSION
from posterlite.train.config import (
    CONFUSION_PNG,
    REPORT_JSON,
    REPORT_MD,
    SELECTION_METRIC,
    THRESHOLDS_NAME,
    peak_rss_mb,
    write_json,
)
from posterlite.train.dataset import Dataset, Split, Workspace
from posterlite.train.heads import predict_images
from posterlite.train.models import count_params
from posterlite.train.reports import plot_confusion, report_md_titled, summary


@dataclass(frozen=True)
class Candidate:
    members: tuple[str, ...]  # member folder names
    val_map: float


def shared_manifest(members: Sequence[Path]) -> tuple[Path, str]:
    """The manifest every member was trained and validated on (they must agree)."""
    cards = [read_card(m) for m in members]
    shas = {c.manifest_sha256 for c in cards}
    if len(shas) != 1:
        raise PosterliteError("ensemble members were trained on different manifests")
    return Path(cards[0].manifest), cards[0].manifest_sha256


def member_scores(ws: Workspace, split: Split, member: Path, input_size: int) -> np.ndarray:
    """One member's scores on `split` as it sees them inside an ensemble of `input_size`
    (cached by member model, size, posters and preprocessing)."""
    import keras

    model_sha = sha256_file(Path(member) / MODEL_NAME)
    key = hashlib.sha256(
        f"{model_sha}|{input_size}|{PREPROCESS_VERSION}|".encode() + "\n".join(split.keys).encode()
    ).hexdigest()[:20]
    path = ws.cache / "ensemble_scores" / f"{Path(member).name}-{input_size}px-{key}.npy"
    if path.is_file():
        return np.load(path)
    keras.backend.clear_session()
    model = keras.models.load_model(Path(member) / MODEL_NAME, compile=False)
    image = keras.Input((input_size, input_size, 3), name="image")
    branch = keras.Model(image, member_branch(model, 0, input_size, image))
    scores = predict_images(ws, split, branch, input_size)
    with atomic_path(path) as tmp:
        with tmp.open("wb") as handle:
            np.save(handle, scores)
    return scores


def int8_member_scores(ws: Workspace, split: Split, member: Path, input_size: int) -> np.ndarray:
    """A member's shipped int8 file (`model.int8.tflite`, LiteRT) on `split`, posters
    decoded at the member's own size: for a member at `input_size` exactly what it computes
    inside the int8 ensemble (up to the final average's rounding); for a smaller member an
    approximation (the ensemble resizes a decoded poster instead). Cached like
    `member_scores`."""
    from posterlite.runtime import PosterModel
    from posterlite.train.dataset import cached_pixels

    tflite = Path(member) / "model.int8.tflite"
    if not tflite.is_file():
        raise PosterliteError(f"{member}: no model.int8.tflite (benchmarks/export_int8.py)")
    size = int(read_card(member).input_size)
    key = hashlib.sha256(
        f"{sha256_file(tflite)}|{size}|{PREPROCESS_VERSION}|".encode()
        + "\n".join(split.keys).encode()
    ).hexdigest()[:20]
    path = ws.cache / "ensemble_scores" / f"{Path(member).name}-int8-{size}px-{key}.npy"
    if path.is_file():
        return np.load(path)
    scores = PosterModel.load(tflite).predict_pixels(cached_pixels(split, size, ws.cache))
    scores = np.asarray(scores, dtype=np.float64)
    with atomic_path(path) as tmp:
        with tmp.open("wb") as handle:
            np.save(handle, scores)
    return scores


def score_candidates(
    ws: Workspace,
    data: Dataset,
    members: Sequence[Path],
    combos: Sequence[Sequence[int]],
    input_size: int,
    int8: bool = False,
) -> tuple[list[Candidate], dict[str, float]]:
    """Validation mAP of each combination (indices into `members`) of averaged scores, and
    of each member the combinations use, alone (at `input_size`, as in the ensemble).
    `int8`: the members' shipped int8 files' scores instead of their Keras models'."""
    from posterlite.metrics import evaluate

    used = sorted({i for combo in combos for i in combo})
    score = int8_member_scores if int8 else member_scores
    scores = {i: score(ws, data.val, members[i], input_size) for i in used}

    def val_map(p: np.ndarray) -> float:
        return evaluate(data.val.labels, p, data.genres).mean_average_precision

    singles = {Path(members[i]).name: val_map(s) for i, s in scores.items()}
    candidates = [
        Candidate(
            tuple(Path(members[i]).name for i in combo),
            val_map(np.mean([scores[i] for i in combo], axis=0)),
        )
        for combo in combos
    ]
    return candidates, singles


def all_combinations(n: int, max_size: int) -> list[tuple[int, ...]]:
    return [c for k in range(2, max_size + 1) for c in itertools.combinations(range(n), k)]


def train_ensemble(
    members: Sequence[Path], out_dir: Path, name: str, ws: Workspace | None = None
) -> dict:
    """Write an ensemble folder: recipe, rebuilt model.keras, card, thresholds tuned on
    validation for the ensemble's own scores, reports. Returns the validation summary."""
    import keras

    from posterlite.metrics import evaluate, tune_thresholds

    started = time.perf_counter()
    ws = ws or Workspace()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest, manifest_sha = shared_manifest(members)
    data = ws.dataset(manifest)
    if manifest_sha and data.manifest_sha256 != manifest_sha:
        raise PosterliteError(f"{manifest} changed since the members were trained")
    recipe = recipe_for([Path(m) for m in members], name, out_dir)
    keras.backend.clear_session()
    model = build_model(recipe, out_dir)
    save_deterministic(model, out_dir / MODEL_NAME)
    recipe = replace(recipe, keras_sha256=sha256_file(out_dir / MODEL_NAME))
    model = keras.models.load_model(out_dir / MODEL_NAME, compile=False)  # what ships
    probabilities = predict_images(ws, data.val, model, recipe.input_size)
    member_val = {
        m.name: read_card(Path(p)).validation.get("mAP")
        for m, p in zip(recipe.members, members, strict=True)
    }
    averaged = np.mean(
        [member_scores(ws, data.val, Path(p), recipe.input_size) for p in members], axis=0
    )
    at_half = evaluate(data.val.labels, probabilities, data.genres, 0.5)
    thresholds = tune_thresholds(data.val.labels, probabilities)
    tuned = evaluate(data.val.labels, probabilities, data.genres, thresholds)
    write_json(
        out_dir / REPORT_JSON, {"threshold_0.5": at_half.to_dict(), "tuned": tuned.to_dict()}
    )
    title = f"{name} (ensemble: {COMBINE} of {', '.join(m.name for m in recipe.members)})"
    atomic_write_text(out_dir / REPORT_MD, report_md_titled(title, at_half, tuned))
    write_json(
        out_dir / THRESHOLDS_NAME,
        {"genres": list(data.genres), "thresholds": [float(t) for t in thresholds]},
    )
    plot_confusion(at_half, out_dir / CONFUSION_PNG, name)
    write_recipe(recipe, out_dir)
    wall = time.perf_counter() - started
    card = ModelCard(
        name=name,
        arch=ARCH,
        genres=list(data.genres),
        input_size=recipe.input_size,
        thresholds=[float(t) for t in thresholds],
        manifest=str(manifest),
        manifest_sha256=data.manifest_sha256,
        hyperparameters={
            "members": [m.name for m in recipe.members],
            "combine": COMBINE,
            "input_size": recipe.input_size,
        },
        wall_time_s=round(wall, 2),
        peak_rss_mb=round(peak_rss_mb(), 1),
        library_versions=library_versions(),
        validation=summary(at_half, tuned),
        extra=jsonable(
            {
                "members": [{**m.__dict__, "val_map": member_val[m.name]} for m in recipe.members],
                "recipe": "ensemble.json (model.keras is rebuilt from the members, not stored)",
                "keras_sha256": recipe.keras_sha256,
                "params": count_params(model),
                "n_val": len(data.val.paths),
                "preprocess_version": PREPROCESS_VERSION,
                "selection_metric": SELECTION_METRIC,
                # the saved graph's scores vs the members' cached scores averaged: proves
                # the shipped graph is the average that was scored
                "graph_vs_member_mean_max_abs_diff": float(
                    np.max(np.abs(probabilities - averaged))
                ),
            }
        ),
    )
    write_card(card, out_dir)
    return card.validation


__all__ = [
    "Candidate",
    "Recipe",
    "all_combinations",
    "member_scores",
    "score_candidates",
    "shared_manifest",
    "train_ensemble",
]
