"""Heads on frozen features (with SMOTE in embedding space when configured) and the
from-scratch CNN (plus its SMOTE twin: frozen trunk, oversampled embeddings, new head).
SMOTE itself lives in `posterlite.smote`; this module decides where it runs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from posterlite.train.blocks import fine_tune_blocks
from posterlite.train.config import TrainConfig
from posterlite.train.dataset import (
    Dataset,
    Split,
    Workspace,
    cached_features,
    cached_pixels,
    feature_store_path,
    image_dataset,
    weights_sha256,
)
from posterlite.train.models import (
    assemble,
    build_backbone_for,
    build_cnn,
    build_head,
    compile_for_training,
    fit,
)

if TYPE_CHECKING:
    import keras


@dataclass
class Trained:
    """What a training path hands to the artifact writer."""

    model: keras.Model  # full model: image in, genre probabilities out
    val_probabilities: np.ndarray
    history: dict[str, list[float]]
    extra: dict[str, object]  # run facts for the report (JSON-able)


def train_head(
    features: np.ndarray,
    labels: np.ndarray,
    val_features: np.ndarray,
    val_labels: np.ndarray,
    config: TrainConfig,
) -> tuple[keras.Model, dict[str, list[float]], dict[str, object]]:
    """Head on features, with SMOTE first when configured. Returns (head, history, extra);
    raises PosterliteError (from `smote`) when SMOTE would exceed its limits."""
    extra: dict[str, object] = {}
    if config.smote:
        import tracemalloc

        import imblearn.over_sampling  # noqa: F401  (imported first: not part of the peak)

        from posterlite.smote import smote_multilabel

        tracemalloc.start()
        result = smote_multilabel(
            features,
            labels,
            seed=config.seed,
            k_neighbors=config.smote_k,
            target_fraction=config.smote_target_fraction,
            max_synthetic=config.smote_max_synthetic,
            max_bytes=config.smote_max_bytes,
            max_ratio=config.smote_max_ratio,
        )
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        features, labels = result.features, result.labels
        extra["smote"] = {**result.summary(), "measured_peak_bytes": int(peak)}
    head = build_head(features.shape[1], labels.shape[1], config.head_hidden, config.dropout)
    compile_for_training(head, config, labels, config.learning_rate)
    history = fit(
        head,
        features,
        labels,
        (val_features, val_labels),
        config,
        config.epochs,
        config.batch_size,
    )
    return head, history, extra


def frozen_features(
    ws: Workspace, data: Dataset, extractor: keras.Model, tag: str, size: int
) -> tuple[np.ndarray, np.ndarray, dict[str, object]]:
    """(train, val) features of a frozen extractor, from RAM, the disk cache or computed.
    Returns (train features, val features, where they came from)."""
    weights = weights_sha256(extractor)
    store_path = feature_store_path(ws.cache, tag, size, weights)
    memo = f"{store_path}|{data.manifest_sha256}"
    if memo not in ws.features:
        train, store = cached_features(data.train, extractor, store_path, size, f"{tag} train")
        train_stats = (store.hits, store.computed)
        val, store = cached_features(data.val, extractor, store_path, size, f"{tag} val")
        info = {
            "store": str(store_path),
            "extractor_weights_sha256": weights,
            "cache_hits": train_stats[0] + store.hits,
            "computed": train_stats[1] + store.computed,
        }
        ws.features[memo] = (train, val, info)
    return ws.features[memo]


def train_mobilenet(ws: Workspace, data: Dataset, config: TrainConfig) -> Trained:
    """A head on the frozen MobileNet's features (then the top blocks with --fine-tune).
    Returns the full model, its validation probabilities, history and run facts."""
    backbone, source = build_backbone_for(config)
    train_x, val_x, info = frozen_features(ws, data, backbone, config.arch, config.size)
    head, history, extra = train_head(train_x, data.train.labels, val_x, data.val.labels, config)
    model = assemble(backbone, head, config.size, config.name)
    extra.update(backbone=source, features=info)
    if config.fine_tune > 0:
        history, val_p, tuned_extra = fine_tune_blocks(ws, data, backbone, head, config, history)
        extra.update(tuned_extra)
    else:
        val_p = np.asarray(head.predict(val_x, verbose=0, batch_size=256), dtype=np.float64)
    return Trained(model, val_p, history, extra)


def predict_images(ws: Workspace, split: Split, model: keras.Model, size: int) -> np.ndarray:
    """`model`'s probabilities (N, G) float64 for `split`'s posters at `size` px."""
    pixels = cached_pixels(split, size, ws.cache)
    data = image_dataset(pixels, split.labels, 128, False, 0).map(lambda x, y: x)
    return np.asarray(model.predict(data, verbose=0), dtype=np.float64)


def train_cnn_trunk(
    ws: Workspace, data: Dataset, config: TrainConfig
) -> tuple[keras.Model, dict[str, list[float]]]:
    """The plain from-scratch CNN, trained end to end on cached 96 px posters.
    Returns (model, history)."""
    train_px = cached_pixels(data.train, config.size, ws.cache, "decode train")
    val_px = cached_pixels(data.val, config.size, ws.cache, "decode val")
    model = build_cnn(config.size, data.train.labels.shape[1], config.dropout)
    compile_for_training(model, config, data.train.labels, config.learning_rate)
    history = fit(
        model,
        image_dataset(train_px, data.train.labels, config.batch_size, True, config.seed),
        None,
        image_dataset(val_px, data.val.labels, config.batch_size, False, config.seed),
        config,
        config.epochs,
        None,
    )
    return model, history


def train_cnn(
    ws: Workspace, data: Dataset, config: TrainConfig, trunk_model: Path | None
) -> Trained:
    """The from-scratch CNN; with SMOTE, a new head on its frozen trunk's oversampled
    embeddings (`trunk_model`: the plain twin's saved model, else trained here).
    Returns the full model, its validation probabilities, history and run facts."""
    import keras

    if not config.smote:
        model, history = train_cnn_trunk(ws, data, config)
        val_p = predict_images(ws, data.val, model, config.size)
        return Trained(model, val_p, history, {})
    # SMOTE twin: freeze the plain CNN (same hyperparameters), SMOTE its embeddings,
    # retrain the head. The grid passes the plain twin's saved model; alone, train it here.
    extra: dict[str, object] = {}
    if trunk_model is not None and trunk_model.is_file():
        plain = keras.models.load_model(trunk_model, compile=False)
        extra["trunk"] = str(trunk_model)
        trunk_history: dict[str, list[float]] = {}
    else:
        plain, trunk_history = train_cnn_trunk(ws, data, replace(config, smote=False))
        extra["trunk"] = "trained in this run (plain twin's hyperparameters)"
    extractor = keras.Model(plain.input, plain.get_layer("embedding").output, name="cnn_trunk")
    extractor.trainable = False
    train_x, val_x, info = frozen_features(ws, data, extractor, "cnn", config.size)
    head, history, head_extra = train_head(
        train_x, data.train.labels, val_x, data.val.labels, config
    )
    model = assemble(extractor, head, config.size, config.name)
    val_p = np.asarray(head.predict(val_x, verbose=0, batch_size=256), dtype=np.float64)
    extra.update(head_extra, features=info)
    history = {**{f"trunk_{k}": v for k, v in trunk_history.items()}, **history}
    return Trained(model, val_p, history, extra)
