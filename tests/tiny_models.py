"""Tiny trained-run folders for the convert / runtime / metadata tests (seconds, 32 px)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from conftest import make_poster

from posterlite.card import ModelCard, write_card
from posterlite.genres import DEFAULT_GENRES
from posterlite.manifest import ManifestRow, write_manifest

SIZE = 32
THRESHOLDS = [0.3, 0.4, 0.5, 0.5, 0.6, 0.45]


def make_posters(root: Path, count: int, seed: int = 0) -> list[ManifestRow]:
    """`count` random posters with random genres; odd ones in the val split."""
    rng = np.random.default_rng(seed)
    rows = []
    for index in range(count):
        path = make_poster(root / "posters" / f"p{index:03d}.jpg", seed * 1000 + index)
        genres = tuple(g for g in DEFAULT_GENRES if rng.random() < 0.4) or ("Other",)
        split = "val" if index % 2 else "train"
        rows.append(ManifestRow(str(path), genres, split, "test", f"tt{index:07d}"))
    return rows


def make_run(root: Path, name: str = "tiny", posters: int = 24) -> Path:
    """root/<name>/model.keras + card.json, trained for nothing (weights seeded), plus
    root/manifest.csv with train/val posters the card points at."""
    import keras

    rows = make_posters(root, posters)
    manifest = root / "manifest.csv"
    write_manifest(rows, manifest)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    # A wide bias spread keeps probabilities away from 0.5 so decisions are stable.
    outputs = keras.layers.Dense(
        len(DEFAULT_GENRES),
        activation="sigmoid",
        bias_initializer=keras.initializers.Constant(np.linspace(-2, 2, len(DEFAULT_GENRES))),
    )(x)
    model = keras.Model(inputs, outputs)
    run = root / name
    run.mkdir(parents=True, exist_ok=True)
    model.save(run / "model.keras")
    write_card(
        ModelCard(
            name=name,
            arch="cnn",
            genres=list(DEFAULT_GENRES),
            input_size=SIZE,
            thresholds=list(THRESHOLDS),
            version="7",
            manifest=str(manifest),
        ),
        run,
    )
    return run


def convert_tiny_run(root: Path) -> dict[str, Path]:
    """A tiny trained run converted to fp32 and int8 (gate off), calibrated on its posters."""
    from posterlite.convert import convert_model

    run = make_run(root)
    out = root / "out"
    convert_model(
        run, formats=("fp32", "int8"), out_dir=out, calibration=root / "posters", max_drop=1.0
    )
    return {"fp32": out / "tiny.fp32.tflite", "int8": out / "tiny.int8.tflite", "root": root}
