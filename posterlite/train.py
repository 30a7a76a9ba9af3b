"""Training: one run (`train_run`) and the paper's grid (`run_grid`), CPU-first.

Owns: the training configuration, the content-keyed caches (decoded pixels, frozen
backbone features), the small custom CNN, the heads trained on frozen features, SMOTE's
place in training (see `posterlite.smote`), and every artifact a run writes.

How a run trains, by architecture:
- mobilenet_v1 / mobilenet_v2: the ImageNet backbone (`posterlite.backbones`) is frozen with
  batch norm in inference mode, so its pooled features depend only on the image: they are
  computed once per image and cached by content (sha256 of the file's bytes + the weights'
  sha256 + input size + PREPROCESS_VERSION). A head (Dropout + Dense(256, relu) + Dropout +
  Dense(6, sigmoid); the hidden layer won on validation) is trained on the cached features
  in seconds. SMOTE runs on the same features. With `fine_tune=N`, the top N backbone
  blocks (BN frozen) + that head are then trained on activations at the blocks' input
  (V1, N=1: conv_pw_12_relu, 7x7x1024), computed once and cached as float16 memmapped .npy
  keyed like the features plus the cut layer; an epoch only runs the top blocks.
- cnn: a small depthwise-separable CNN trained from scratch on 96 px posters (decoded once
  into a cached uint8 array) with early stopping on validation. Its SMOTE twin freezes that
  CNN, oversamples its 160-d penultimate embeddings and retrains the head.
The grid (`run_grid`) gives every fit a wall-clock budget (`time_budget_s`, best epoch kept)
so 30 runs fit in an hour on 2 cores; history.json shows the epochs actually run.
The saved `model.keras` is always the full model: image in [-1, 1] -> backbone -> head ->
one sigmoid probability per genre, so convert / predict work on images.

Class imbalance: the loss is class-balanced binary cross-entropy (per genre, positives
weigh n / (2 * positives), negatives n / (2 * negatives), from the training labels), so a
rare genre gets recall at the default threshold 0.5. Everything is tuned on the validation
split only (there is no test split in the manifest); figures on it are therefore optimistic.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import resource
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from posterlite.card import CARD_NAME, MODEL_NAME, ModelCard, read_card, write_card
from posterlite.errors import PosterliteError
from posterlite.fileio import (
    atomic_path,
    atomic_write_text,
    jsonable,
    library_versions,
    sha256_file,
)
from posterlite.genres import GenreScheme, default_scheme
from posterlite.manifest import ManifestRow, manifest_sha256, read_manifest
from posterlite.preprocess import PosterDecodeError, load_poster, pixels_to_input

ARCHS = ("cnn", "mobilenet_v1", "mobilenet_v2")
OPTIMIZERS = ("adam", "sgd")
# Bump when load_poster / pixels_to_input change the pixels a model sees: it keys the caches.
PREPROCESS_VERSION = "posterlite-preprocess-1:stretch-bilinear-rgb-white-alpha:[-1,1]"
CNN_INPUT_SIZE = 96
MOBILENET_INPUT_SIZE = 224
# The paper's optimizer grid; each architecture x SMOTE pair keeps its best run.
GRID_OPTIMIZERS: tuple[tuple[str, float], ...] = (
    ("adam", 1e-3),
    ("adam", 1e-4),
    ("adam", 1e-5),
    ("sgd", 1e-4),
    ("sgd", 1e-5),
)
SELECTION_METRIC = "validation mAP (mean over genres of average precision)"
FEATURE_BATCH = 64
HISTORY_NAME = "history.json"
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
CURVES_PNG = "curves.png"
CONFUSION_PNG = "confusion.png"
THRESHOLDS_NAME = "thresholds.json"


# --- configuration and results ------------------------------------------------------
@dataclass(frozen=True)
class TrainConfig:
    arch: str = "mobilenet_v1"
    smote: bool = False
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    epochs: int = 50
    batch_size: int = 32
    input_size: int | None = None  # None: 96 for cnn, 224 for the MobileNets
    backbone_weights: str | None = None  # explicit weights file; None: resolve_backbone_weights
    pretrained: bool = True  # False: random backbone (tests only)
    # Top N backbone blocks trained after the head, on cached activations at their input.
    fine_tune: int = 0
    fine_tune_learning_rate: float | None = None  # None: learning_rate / 10
    fine_tune_flip: bool = False  # also cache mirrored train posters; pick one per epoch
    seed: int = 0
    # 256: Dropout + Dense(256, relu) + Dropout + Dense(6). Picked on validation (V1, Adam
    # 1e-3, imdb-7k split): mAP 0.592 vs 0.575 for Dropout + Dense(6) alone (hidden=0).
    head_hidden: int = 256
    dropout: float = 0.3
    class_weighted: bool = True
    patience: int = 8  # early stopping on validation PR-AUC
    min_delta: float = 1e-3
    smote_k: int = 5
    smote_target_fraction: float = 0.5
    smote_max_synthetic: int | None = None
    smote_max_ratio: float = 0.5  # synthetic rows <= this x training rows
    smote_max_bytes: int = 1 << 30
    # Wall-clock cap per fit (seconds); the best epoch so far is kept. The grid uses it so
    # the from-scratch CNN's slow optimizers (SGD 1e-5 barely moves) cannot eat the hour.
    time_budget_s: float | None = None

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise PosterliteError(f"unknown model {self.arch!r}; choose one of {', '.join(ARCHS)}")
        if self.optimizer not in OPTIMIZERS:
            raise PosterliteError(f"unknown optimizer {self.optimizer!r}; choose adam or sgd")
        if self.epochs < 1 or self.batch_size < 1 or self.learning_rate <= 0:
            raise PosterliteError("epochs, batch size and learning rate must be positive")

    @property
    def size(self) -> int:
        if self.input_size is not None:
            return self.input_size
        return CNN_INPUT_SIZE if self.arch == "cnn" else MOBILENET_INPUT_SIZE

    @property
    def name(self) -> str:
        return self.arch + ("_smote" if self.smote else "")

    @property
    def run_id(self) -> str:
        return f"{self.name}-{self.optimizer}-{self.learning_rate:g}"

    def key(self) -> str:
        """Content key of the configuration (grid resume: a changed config is redone)."""
        fields = asdict(self)
        for name, default in (("fine_tune_learning_rate", None), ("fine_tune_flip", False)):
            if fields[name] == default:
                del fields[name]  # keys of runs from before these fields stay valid
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RunResult:
    name: str
    run_id: str
    out_dir: Path
    val_map: float
    val_macro_f1: float
    val_micro_f1: float
    paper_accuracy: float
    per_genre_ap: dict[str, float]
    per_genre_f1: dict[str, float]
    params: int
    wall_time_s: float
    peak_rss_mb: float


@dataclass
class Split:
    paths: list[str]
    keys: list[str]  # sha256 of each poster file's bytes: the cache key
    labels: np.ndarray  # (n, genres) float32 multi-hot


@dataclass
class Dataset:
    train: Split
    val: Split
    genres: tuple[str, ...]
    manifest: Path
    manifest_sha256: str
    skipped: dict[str, str] = field(default_factory=dict)  # path -> reason


# --- small helpers ------------------------------------------------------------------
def cache_root() -> Path:
    """$POSTERLITE_CACHE, else <repo>/.cache (gitignored), else ./.cache."""
    configured = os.environ.get("POSTERLITE_CACHE")
    if configured:
        return Path(configured)
    repo = Path(__file__).resolve().parents[1]
    return (repo if (repo / "pyproject.toml").is_file() else Path.cwd()) / ".cache"


def peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux: the process's peak so far.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def write_json(path: Path, payload: Any) -> None:
    atomic_write_text(path, json.dumps(jsonable(payload), indent=2, sort_keys=True) + "\n")


# --- data ---------------------------------------------------------------------------
def load_dataset(manifest: Path, scheme: GenreScheme | None = None) -> Dataset:
    """Train/val splits of a manifest, each poster keyed by the sha256 of its bytes.

    Missing or unreadable files are skipped and listed (they cannot be trained on); a
    manifest without a train or val split is an error.
    """
    scheme = scheme or default_scheme()
    rows = read_manifest(manifest)
    splits: dict[str, list[tuple[ManifestRow, str]]] = {"train": [], "val": []}
    skipped: dict[str, str] = {}
    for row in rows:
        if row.split not in splits:
            continue  # a test split is never used for training or tuning
        try:
            key = sha256_file(Path(row.path))
        except OSError as exc:
            skipped[row.path] = f"unreadable ({exc.__class__.__name__})"
            continue
        splits[row.split].append((row, key))
    for name, members in splits.items():
        if not members:
            raise PosterliteError(f"{manifest}: no readable posters in the {name!r} split")

    def to_split(members: list[tuple[ManifestRow, str]]) -> Split:
        labels = np.stack([scheme.to_multi_hot(row.genres) for row, _ in members])
        return Split([row.path for row, _ in members], [key for _, key in members], labels)

    return Dataset(
        train=to_split(splits["train"]),
        val=to_split(splits["val"]),
        genres=scheme.names,
        manifest=Path(manifest),
        manifest_sha256=manifest_sha256(manifest),
        skipped=skipped,
    )


class ArrayStore:
    """A content-keyed array cache on disk: one row per key, in one .npz file.

    Rows are looked up by key (sha256 of a poster's bytes); only missing keys are computed,
    then the store is rewritten atomically. The file name carries everything else the rows
    depend on (input size, weights, preprocessing version), so a change there starts a
    new store instead of reusing stale rows.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._keys: list[str] = []
        self._rows: np.ndarray | None = None
        if self.path.is_file():
            try:
                with np.load(self.path, allow_pickle=False) as data:
                    self._keys = [str(k) for k in data["keys"]]
                    self._rows = data["rows"]
            except (OSError, ValueError, KeyError):
                self._keys, self._rows = [], None  # a corrupt cache is just recomputed
        self._index = {k: i for i, k in enumerate(self._keys)}
        self.hits = 0
        self.computed = 0

    def get(
        self,
        keys: Sequence[str],
        sources: Sequence[str],
        compute: Callable[[list[str]], np.ndarray],
        batch: int = FEATURE_BATCH,
        progress: str | None = None,
    ) -> np.ndarray:
        """Rows for `keys`; the missing ones come from `compute(paths)` in batches."""
        missing = [(k, s) for k, s in dict(zip(keys, sources, strict=True)).items()]
        missing = [(k, s) for k, s in missing if k not in self._index]
        self.hits = len(keys) - len(missing)
        self.computed = len(missing)
        if missing:
            from tqdm import tqdm

            chunks = []
            starts = range(0, len(missing), batch)
            for start in tqdm(starts, desc=progress, disable=progress is None, leave=False):
                chunks.append(compute([s for _, s in missing[start : start + batch]]))
            new_rows = np.concatenate(chunks)
            rows = new_rows if self._rows is None else np.concatenate([self._rows, new_rows])
            new_keys = self._keys + [k for k, _ in missing]
            self._save(new_keys, rows)
            self._keys, self._rows = new_keys, rows
            self._index = {k: i for i, k in enumerate(self._keys)}
        assert self._rows is not None
        return self._rows[[self._index[k] for k in keys]]

    def _save(self, keys: list[str], rows: np.ndarray) -> None:
        with atomic_path(self.path) as tmp:
            with tmp.open("wb") as handle:
                np.savez(handle, keys=np.array(keys), rows=rows)


def decode_batch(paths: Sequence[str], size: int) -> np.ndarray:
    """uint8 (n, size, size, 3) through the one preprocessing path."""
    try:
        return np.stack([load_poster(p, size) for p in paths])
    except PosterDecodeError as exc:
        raise PosterliteError(f"cannot train on {exc}") from exc


def cached_pixels(split: Split, size: int, cache: Path, progress: str | None = None) -> np.ndarray:
    """Decoded posters (uint8) at `size`, decoded once and cached by file content."""
    tag = hashlib.sha256(PREPROCESS_VERSION.encode()).hexdigest()[:12]
    store = ArrayStore(cache / "pixels" / f"{size}px-{tag}.npz")
    return store.get(
        split.keys, split.paths, lambda paths: decode_batch(paths, size), 256, progress
    )


def weights_sha256(model: Any) -> str:
    """sha256 over a model's weight arrays (covers weight files and random inits alike)."""
    digest = hashlib.sha256()
    for weight in model.weights:
        array = np.ascontiguousarray(weight.numpy())
        digest.update(f"{weight.path}:{array.shape}:{array.dtype}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def feature_store_path(cache: Path, arch: str, size: int, weights_sha: str) -> Path:
    key = hashlib.sha256(f"{arch}|{size}|{weights_sha}|{PREPROCESS_VERSION}".encode())
    return cache / "features" / f"{arch}-{size}px-{key.hexdigest()[:20]}.npz"


def cached_features(
    split: Split,
    extractor: Any,
    store_path: Path,
    size: int,
    progress: str | None = None,
) -> tuple[np.ndarray, ArrayStore]:
    """Frozen-extractor features per poster, computed once per (image bytes, weights)."""
    store = ArrayStore(store_path)

    def compute(paths: list[str]) -> np.ndarray:
        inputs = pixels_to_input(decode_batch(paths, size), "float32")
        if hasattr(extractor, "predict"):
            # predict() runs a compiled graph: measured 2x faster than an eager call, and
            # peak RSS 1.4 GB instead of 6.6 GB for MobileNetV2 at 224 px.
            return np.asarray(extractor.predict(inputs, batch_size=32, verbose=0), np.float32)
        return np.asarray(extractor(inputs, training=False), dtype=np.float32)

    return store.get(split.keys, split.paths, compute, FEATURE_BATCH, progress), store


# --- models -------------------------------------------------------------------------
def build_backbone_for(config: TrainConfig) -> tuple[Any, dict[str, str]]:
    """The frozen ImageNet MobileNet (or a random one for tests) and where it came from."""
    import keras

    arch, size = config.arch, config.size
    explicit = Path(config.backbone_weights) if config.backbone_weights else None
    if explicit is not None and not explicit.is_file():
        raise PosterliteError(f"backbone weights file not found: {explicit}")
    info: dict[str, str] = {"weights": "random init (no pretrained weights)"}
    try:
        from posterlite import backbones  # the backbone engineer's module
    except ImportError:
        backbones = None
    if not config.pretrained:
        # Straight from keras.applications: backbones.build_backbone(weights=None) may pick
        # up Keras' cached ImageNet file, and a random backbone must stay random.
        factory = (
            keras.applications.MobileNet
            if arch == "mobilenet_v1"
            else keras.applications.MobileNetV2
        )
        model = factory(
            input_shape=(size, size, 3), alpha=1.0, include_top=False, pooling="avg", weights=None
        )
    else:
        if backbones is None:
            raise PosterliteError(
                "posterlite.backbones is not available: cannot load ImageNet MobileNet weights"
            )
        weights = backbones.resolve_backbone_weights(arch, explicit)
        model = backbones.build_backbone(arch, input_size=size, weights=weights)
        info["weights"] = str(weights) if weights else "keras imagenet download"
        if weights is not None:
            info["weights_file_sha256"] = sha256_file(Path(weights))
    model.trainable = False
    return model, info


def build_head(dim: int, n_genres: int, hidden: int, dropout: float, name: str = "head") -> Any:
    import keras

    layers: list[Any] = [keras.Input((dim,)), keras.layers.Dropout(dropout)]
    if hidden > 0:
        layers += [keras.layers.Dense(hidden, activation="relu"), keras.layers.Dropout(dropout)]
    layers.append(keras.layers.Dense(n_genres, activation="sigmoid", name="genres"))
    return keras.Sequential(layers, name=name)


def build_cnn(size: int, n_genres: int, dropout: float) -> Any:
    """A small from-scratch CNN (~50k parameters): depthwise-separable, phone-friendly.

    Stride-2 stem then five depthwise-separable blocks (MobileNet-style, so it converts
    and quantizes like the MobileNets), global average pooling to a 160-d embedding.
    """
    import keras
    from keras import layers

    inputs = keras.Input((size, size, 3), name="image")
    x = layers.Conv2D(24, 3, strides=2, padding="same", use_bias=False)(inputs)
    x = layers.ReLU(6.0)(layers.BatchNormalization()(x))
    # Downsample early (96 -> 48 -> 24): the 2-core CPU budget goes to depth, not to
    # full-resolution maps. 96 -> 48 -> 24 -> 24 -> 12 -> 6 -> 3.
    for filters, stride in ((32, 2), (64, 1), (96, 2), (128, 2), (160, 2)):
        x = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(x)
        x = layers.ReLU(6.0)(layers.BatchNormalization()(x))
        x = layers.Conv2D(filters, 1, use_bias=False)(x)
        x = layers.ReLU(6.0)(layers.BatchNormalization()(x))
    embedding = layers.GlobalAveragePooling2D(name="embedding")(x)
    x = layers.Dropout(dropout)(embedding)
    outputs = layers.Dense(n_genres, activation="sigmoid", name="genres")(x)
    return keras.Model(inputs, outputs, name="posterlite_cnn")


def assemble(extractor: Any, head: Any, size: int, name: str) -> Any:
    """The full model: image in [-1, 1] -> frozen extractor (BN inference) -> head."""
    import keras

    inputs = keras.Input((size, size, 3), name="image")
    outputs = head(extractor(inputs, training=False))
    return keras.Model(inputs, outputs, name=name)


def balanced_weights(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-genre (positive, negative) weights of class-balanced BCE: n / (2 * count)."""
    n = max(len(labels), 1)
    positives = np.clip(labels.sum(axis=0), 1, None)
    negatives = np.clip(n - labels.sum(axis=0), 1, None)
    return (n / (2 * positives)).astype(np.float32), (n / (2 * negatives)).astype(np.float32)


def make_loss(labels: np.ndarray | None) -> Any:
    """Class-balanced BCE when `labels` is given, else plain BCE."""
    import keras
    from keras import ops

    if labels is None:
        return keras.losses.BinaryCrossentropy()
    positive, negative = balanced_weights(labels)

    def balanced_bce(y_true: Any, y_pred: Any) -> Any:
        eps = keras.config.epsilon()
        y_pred = ops.clip(y_pred, eps, 1.0 - eps)
        y_true = ops.cast(y_true, y_pred.dtype)
        terms = positive * y_true * ops.log(y_pred) + negative * (1 - y_true) * ops.log(1 - y_pred)
        return -ops.mean(terms, axis=-1)

    return balanced_bce


def make_optimizer(name: str, learning_rate: float) -> Any:
    import keras

    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=learning_rate, momentum=0.9)
    return keras.optimizers.Adam(learning_rate=learning_rate)


def compile_for_training(model: Any, config: TrainConfig, labels: np.ndarray, lr: float) -> None:
    import keras

    model.compile(
        optimizer=make_optimizer(config.optimizer, lr),
        loss=make_loss(labels if config.class_weighted else None),
        metrics=[
            keras.metrics.BinaryAccuracy(name="accuracy"),
            keras.metrics.AUC(curve="PR", multi_label=True, name="pr_auc"),
        ],
    )


def early_stopping(config: TrainConfig) -> Any:
    import keras

    # PR-AUC (~mAP) is the selection metric too; min_delta stops runs that barely move.
    return keras.callbacks.EarlyStopping(
        monitor="val_pr_auc",
        mode="max",
        patience=config.patience,
        min_delta=config.min_delta,
        restore_best_weights=True,
    )


def time_budget(seconds: float | None) -> list[Any]:
    """A callback that stops training after `seconds` of wall time (checked per epoch)."""
    import keras

    if seconds is None:
        return []

    class TimeBudget(keras.callbacks.Callback):
        def on_train_begin(self, logs: dict | None = None) -> None:
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if time.perf_counter() - self.started > seconds:
                self.model.stop_training = True

    return [TimeBudget()]


def image_dataset(pixels: np.ndarray, labels: np.ndarray, batch: int, train: bool, seed: int):
    """tf.data over the cached uint8 posters; float [-1, 1] is made per batch (RAM-lean)."""
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices((pixels, labels))
    if train:
        data = data.shuffle(len(pixels), seed=seed, reshuffle_each_iteration=True)
    data = data.batch(batch)

    def prepare(x: Any, y: Any) -> tuple[Any, Any]:
        x = tf.cast(x, tf.float32) / 127.5 - 1.0
        if train:
            # Posters are not mirror-symmetric, but genre cues (colour, layout) mostly are.
            x = tf.image.random_flip_left_right(x, seed=seed)
        return x, y

    return data.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)


def top_blocks(model: Any, n: int) -> list[Any]:
    """Layers of the top `n` blocks of a MobileNet (conv_dw_13 / block_16 style names)."""
    pattern = re.compile(r"(?:conv_(?:dw|pw)|block)_(\d+)")
    order: list[str] = []
    groups: dict[str, list[Any]] = {}
    for layer in model.layers:
        if not layer.weights:
            continue
        match = pattern.search(layer.name)
        key = f"block{match.group(1)}" if match else layer.name.removesuffix("_bn")
        if key not in groups:
            order.append(key)
            groups[key] = []
        groups[key].append(layer)
    return [layer for key in order[-n:] for layer in groups[key]] if n > 0 else []


# --- training -----------------------------------------------------------------------
@dataclass
class Workspace:
    """Caches shared by the runs of one process (features stay in RAM across a grid)."""

    cache: Path = field(default_factory=cache_root)
    features: dict[str, tuple[np.ndarray, np.ndarray, dict]] = field(default_factory=dict)
    datasets: dict[str, Dataset] = field(default_factory=dict)

    def dataset(self, manifest: Path) -> Dataset:
        key = str(Path(manifest).resolve())
        if key not in self.datasets:
            self.datasets[key] = load_dataset(manifest)
        return self.datasets[key]


@dataclass
class Trained:
    """What a training path hands to the artifact writer."""

    model: Any  # full model
    val_probabilities: np.ndarray
    history: dict[str, list[float]]
    extra: dict[str, Any]


def _fit(
    model: Any, x: Any, y: Any, val: Any, config: TrainConfig, epochs: int, batch: int | None
) -> dict:
    history = model.fit(
        x,
        y,
        validation_data=val,
        epochs=epochs,
        batch_size=batch,
        callbacks=[early_stopping(config), *time_budget(config.time_budget_s)],
        verbose=0,
        shuffle=batch is not None,  # tf.data inputs shuffle themselves
    )
    return {k: [float(v) for v in values] for k, values in history.history.items()}


def _train_head(
    features: np.ndarray,
    labels: np.ndarray,
    val_features: np.ndarray,
    val_labels: np.ndarray,
    config: TrainConfig,
) -> tuple[Any, dict, dict]:
    """Head on features, with SMOTE first when configured. Returns (head, history, extra)."""
    extra: dict[str, Any] = {}
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
    history = _fit(
        head,
        features,
        labels,
        (val_features, val_labels),
        config,
        config.epochs,
        config.batch_size,
    )
    return head, history, extra


def _features(
    ws: Workspace, data: Dataset, extractor: Any, tag: str, size: int
) -> tuple[np.ndarray, np.ndarray, dict]:
    """(train, val) features of a frozen extractor, from RAM, the disk cache or computed."""
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


def _train_mobilenet(ws: Workspace, data: Dataset, config: TrainConfig) -> Trained:
    backbone, source = build_backbone_for(config)
    train_x, val_x, info = _features(ws, data, backbone, config.arch, config.size)
    head, history, extra = _train_head(train_x, data.train.labels, val_x, data.val.labels, config)
    model = assemble(backbone, head, config.size, config.name)
    extra.update(backbone=source, features=info)
    if config.fine_tune > 0:
        history, val_p, tuned_extra = _fine_tune(ws, data, backbone, head, config, history)
        extra.update(tuned_extra)
    else:
        val_p = np.asarray(head.predict(val_x, verbose=0, batch_size=256), dtype=np.float64)
    return Trained(model, val_p, history, extra)


def fine_tune_cut(backbone: Any, n: int) -> str:
    """Name of the layer whose output feeds the top `n` blocks (the cached activation).

    V1 with n=1: `conv_pw_12_relu` (7x7x1024); V2 with n=2: `block_15_add`. Weightless
    padding in front of the first unfrozen layer is recomputed, not cached.
    """
    import keras

    unfrozen = top_blocks(backbone, n)
    if not unfrozen:
        raise PosterliteError("fine-tune needs at least one block")
    index = min(backbone.layers.index(layer) for layer in unfrozen) - 1
    while index > 0 and isinstance(backbone.layers[index], keras.layers.ZeroPadding2D):
        index -= 1
    if index <= 0:
        raise PosterliteError(f"cannot fine-tune {n} blocks: that is the whole backbone")
    return backbone.layers[index].name


def activation_store_path(
    cache: Path,
    arch: str,
    size: int,
    weights_sha: str,
    cut: str,
    keys: Sequence[str],
    flipped: bool = False,
) -> Path:
    """One .npy per (data set, cut): keyed by image shas, weights, size, preprocessing, cut
    (and mirroring)."""
    mirror = "|flip" if flipped else ""
    config = hashlib.sha256(
        f"{arch}|{size}|{weights_sha}|{PREPROCESS_VERSION}|{cut}{mirror}".encode()
    )
    content = hashlib.sha256("\n".join(keys).encode())
    tag = "-flip" if flipped else ""
    name = f"{arch}-{size}px-{cut}{tag}-{config.hexdigest()[:16]}-{content.hexdigest()[:16]}.npy"
    return cache / "activations" / name


def cached_activations(
    split: Split,
    extractor: Any,
    path: Path,
    size: int,
    progress: str | None = None,
    flipped: bool = False,
) -> tuple[np.ndarray, bool]:
    """float16 activations at the cut, one row per poster, as a read-only memmap.

    Computed once in batches straight into a memmap (RAM stays one batch), then renamed
    into place; (array, computed_now).
    """
    if path.is_file():
        try:
            rows = np.load(path, mmap_mode="r")
            if rows.shape[0] == len(split.keys):
                return rows, False
        except (OSError, ValueError):
            pass  # a damaged file is recomputed
    from tqdm import tqdm

    shape = tuple(int(d) for d in extractor.output.shape[1:])
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        out = np.lib.format.open_memmap(tmp, "w+", np.float16, (len(split.keys), *shape))
        starts = range(0, len(split.keys), FEATURE_BATCH)
        for start in tqdm(starts, desc=progress, disable=progress is None, leave=False):
            paths = split.paths[start : start + FEATURE_BATCH]
            inputs = pixels_to_input(decode_batch(paths, size), "float32")
            if flipped:
                inputs = np.ascontiguousarray(inputs[:, :, ::-1])  # mirrored left-right
            out[start : start + len(paths)] = extractor.predict(inputs, batch_size=32, verbose=0)
        out.flush()
        del out
    return np.load(path, mmap_mode="r"), True


def activation_batches(
    rows: np.ndarray,
    labels: np.ndarray,
    batch: int,
    shuffle: bool,
    seed: int,
    flipped: np.ndarray | None = None,
) -> Any:
    """A Keras PyDataset over memmapped float16 rows: float32 batches, reshuffled per epoch.

    With `flipped` (the mirrored posters' rows), each poster is drawn mirrored or not at
    random (p = 0.5) in each epoch: flip augmentation at the cost of one epoch.
    """
    import keras

    class Batches(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__()
            self.rng = np.random.default_rng(seed)
            self.order = np.arange(len(rows))
            self.on_epoch_end()

        def __len__(self) -> int:
            return math.ceil(len(rows) / batch)

        def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
            index = np.sort(self.order[i * batch : (i + 1) * batch])  # sorted: sequential reads
            x = np.asarray(rows[index], np.float32)
            if flipped is not None:
                mirror = self.mirror[index]
                x[mirror] = flipped[index[mirror]]
            return x, labels[index]

        def on_epoch_end(self) -> None:
            if shuffle:
                self.rng.shuffle(self.order)
            self.mirror = self.rng.random(len(rows)) < 0.5

    return Batches()


def _fine_tune(
    ws: Workspace,
    data: Dataset,
    backbone: Any,
    head: Any,
    config: TrainConfig,
    history: dict,
) -> tuple[dict, np.ndarray, dict]:
    """Train the top N blocks + the trained head on cached activations at the cut.

    The layers below the cut stay frozen, so their output is computed once per poster and
    cached (float16, memmapped); each epoch then only runs the top blocks. Batch norm stays
    frozen (inference mode, moving statistics). The blocks are the backbone's own layers,
    so the full model (image -> backbone -> head) carries the tuned weights.
    Returns (history, validation probabilities of the cached path, extra).
    """
    import keras

    weights = weights_sha256(backbone)  # before training: the key of the frozen part
    cut = fine_tune_cut(backbone, config.fine_tune)
    unfrozen = {id(layer) for layer in top_blocks(backbone, config.fine_tune)}
    extractor = keras.Model(backbone.input, backbone.get_layer(cut).output, name="below_cut")
    acts = {}
    computed = 0
    for name, split in (("train", data.train), ("val", data.val)):
        path = activation_store_path(ws.cache, config.arch, config.size, weights, cut, split.keys)
        acts[name], fresh = cached_activations(
            split, extractor, path, config.size, f"{config.arch} {cut} {name}"
        )
        computed += len(split.keys) if fresh else 0
    flipped = None
    if config.fine_tune_flip:
        path = activation_store_path(
            ws.cache, config.arch, config.size, weights, cut, data.train.keys, flipped=True
        )
        flipped, fresh = cached_activations(
            data.train, extractor, path, config.size, f"{config.arch} {cut} train mirrored", True
        )
        computed += len(data.train.keys) if fresh else 0
    del extractor
    top = keras.Model(backbone.get_layer(cut).output, backbone.output, name="top_blocks")
    backbone.trainable = True
    for layer in backbone.layers:
        frozen_bn = isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = id(layer) in unfrozen and not frozen_bn
    inputs = keras.Input(acts["train"].shape[1:], name="activation")
    trainer = keras.Model(inputs, head(top(inputs, training=False)), name="fine_tune")
    lr = config.fine_tune_learning_rate or config.learning_rate / 10
    compile_for_training(trainer, config, data.train.labels, lr)
    tuned = _fit(
        trainer,
        activation_batches(
            acts["train"], data.train.labels, config.batch_size, True, config.seed, flipped
        ),
        None,
        activation_batches(acts["val"], data.val.labels, 128, False, 0),
        config,
        config.epochs,
        None,
    )
    trainable = int(sum(int(np.prod(w.shape)) for w in trainer.trainable_weights))
    backbone.trainable = False
    val_p = trainer.predict(
        activation_batches(acts["val"], data.val.labels, 128, False, 0), verbose=0
    )
    extra = {
        "fine_tuned_blocks": config.fine_tune,
        "fine_tune": {
            "cut_layer": cut,
            "learning_rate": lr,
            "trainable_params": trainable,
            "activation_shape": list(acts["train"].shape[1:]),
            "activation_dtype": "float16",
            "activations_computed": computed,
            "activation_stores": [str(Path(a.filename)) for a in acts.values()],
            "flip_augmentation": flipped is not None,
            "bn": "frozen (inference mode, moving statistics)",
            "head": "initialised from the head trained on pooled features",
        },
    }
    merged = {**history, **{f"fine_tune_{k}": v for k, v in tuned.items()}}
    return merged, np.asarray(val_p, dtype=np.float64), extra


def _predict_images(ws: Workspace, split: Split, model: Any, size: int) -> np.ndarray:
    pixels = cached_pixels(split, size, ws.cache)
    data = image_dataset(pixels, split.labels, 128, False, 0).map(lambda x, y: x)
    return np.asarray(model.predict(data, verbose=0), dtype=np.float64)


def train_cnn_trunk(ws: Workspace, data: Dataset, config: TrainConfig) -> tuple[Any, dict]:
    """The plain from-scratch CNN, trained end to end on cached 96 px posters."""
    train_px = cached_pixels(data.train, config.size, ws.cache, "decode train")
    val_px = cached_pixels(data.val, config.size, ws.cache, "decode val")
    model = build_cnn(config.size, data.train.labels.shape[1], config.dropout)
    compile_for_training(model, config, data.train.labels, config.learning_rate)
    history = _fit(
        model,
        image_dataset(train_px, data.train.labels, config.batch_size, True, config.seed),
        None,
        image_dataset(val_px, data.val.labels, config.batch_size, False, config.seed),
        config,
        config.epochs,
        None,
    )
    return model, history


def _train_cnn(
    ws: Workspace, data: Dataset, config: TrainConfig, trunk_model: Path | None
) -> Trained:
    import keras

    if not config.smote:
        model, history = train_cnn_trunk(ws, data, config)
        val_p = _predict_images(ws, data.val, model, config.size)
        return Trained(model, val_p, history, {})
    # SMOTE twin: freeze the plain CNN (same hyperparameters), SMOTE its embeddings,
    # retrain the head. The grid passes the plain twin's saved model; alone, train it here.
    extra: dict[str, Any] = {}
    if trunk_model is not None and trunk_model.is_file():
        plain = keras.models.load_model(trunk_model, compile=False)
        extra["trunk"] = str(trunk_model)
        trunk_history: dict = {}
    else:
        plain, trunk_history = train_cnn_trunk(ws, data, replace(config, smote=False))
        extra["trunk"] = "trained in this run (plain twin's hyperparameters)"
    extractor = keras.Model(plain.input, plain.get_layer("embedding").output, name="cnn_trunk")
    extractor.trainable = False
    train_x, val_x, info = _features(ws, data, extractor, "cnn", config.size)
    head, history, head_extra = _train_head(
        train_x, data.train.labels, val_x, data.val.labels, config
    )
    model = assemble(extractor, head, config.size, config.name)
    val_p = np.asarray(head.predict(val_x, verbose=0, batch_size=256), dtype=np.float64)
    extra.update(head_extra, features=info)
    history = {**{f"trunk_{k}": v for k, v in trunk_history.items()}, **history}
    return Trained(model, val_p, history, extra)


def strip_compile(model: Any) -> None:
    """Forget the compile state of a model and its nested models before saving.

    Keras stores a compiled (sub)model's loss in the .keras file; ours is a training-only
    closure, and loading would then fail in convert / predict. Training is over here.
    """
    import keras

    model.compiled = False
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            strip_compile(layer)


def count_params(model: Any) -> int:
    return int(sum(int(np.prod(w.shape)) for w in model.weights))


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
        trained = _train_cnn(ws, data, config, trunk_model)
    else:
        trained = _train_mobilenet(ws, data, config)
    y_val = data.val.labels
    probabilities = trained.val_probabilities
    report = evaluate(y_val, probabilities, data.genres, 0.5)
    thresholds = tune_thresholds(y_val, probabilities)
    tuned = evaluate(y_val, probabilities, data.genres, thresholds)
    consistency = _consistency_check(ws, data, trained.model, probabilities, config.size)

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
    atomic_write_text(out_dir / REPORT_MD, _report_md(config, report, tuned))
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
        validation=_summary(report, tuned),
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


def _consistency_check(
    ws: Workspace, data: Dataset, model: Any, probabilities: np.ndarray, size: int
) -> float:
    """Max |full model on images - probabilities used for the report| on a few val posters.

    Proves the saved image-in model is the model that was evaluated (cache, preprocessing
    and head wiring agree).
    """
    n = min(8, len(data.val.paths))
    inputs = pixels_to_input(decode_batch(data.val.paths[:n], size), "float32")
    direct = np.asarray(model(inputs, training=False), dtype=np.float64)
    return float(np.max(np.abs(direct - probabilities[:n])))


def _summary(report: Any, tuned: Any) -> dict:
    return jsonable(
        {
            "n_samples": report.n_samples,
            "mAP": report.mean_average_precision,
            "macro_f1": report.macro_f1,
            "micro_f1": report.micro_f1,
            "hamming_loss": report.hamming_loss,
            "subset_accuracy": report.subset_accuracy,
            "paper_accuracy": report.paper_accuracy,
            "paper_f1": report.paper_f1,
            "per_genre_ap": {m.genre: m.average_precision for m in report.per_genre},
            "per_genre_f1": {m.genre: m.f1 for m in report.per_genre},
            "tuned_macro_f1": tuned.macro_f1,
            "tuned_micro_f1": tuned.micro_f1,
        }
    )


def _report_md(config: TrainConfig, report: Any, tuned: Any) -> str:
    from posterlite.metrics import report_markdown

    return (
        f"# Validation report: {config.name} ({config.run_id})\n\n"
        "## At the default threshold 0.5\n\n"
        + report_markdown(report)
        + "\n## At per-genre thresholds tuned on this same validation set (optimistic)\n\n"
        + report_markdown(tuned)
    )


def plot_curves(history: dict[str, list[float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [("loss", "loss"), ("accuracy", "binary accuracy"), ("pr_auc", "PR-AUC (~mAP)")]
    fig, axes = plt.subplots(1, len(metrics), figsize=(13, 3.6))
    for axis, (key, label) in zip(axes, metrics, strict=True):
        for prefix in ("trunk_", "", "fine_tune_"):
            for split in ("", "val_"):
                values = history.get(f"{prefix}{split}{key}")
                if values:
                    axis.plot(
                        range(1, len(values) + 1), values, label=f"{prefix}{split or 'train_'}"
                    )
        axis.set_title(label)
        axis.set_xlabel("epoch")
        axis.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)


def plot_confusion(report: Any, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(report.per_genre)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), squeeze=False)
    for axis, metrics in zip(axes.ravel(), report.per_genre, strict=False):
        tn, fp, fn, tp = metrics.confusion
        grid = np.array([[tn, fp], [fn, tp]])
        axis.imshow(grid, cmap="Blues")
        for (i, j), value in np.ndenumerate(grid):
            color = "white" if value > grid.max() / 2 else "black"
            axis.text(j, i, str(value), ha="center", va="center", color=color)
        axis.set_xticks([0, 1], ["pred 0", "pred 1"])
        axis.set_yticks([0, 1], ["true 0", "true 1"])
        axis.set_title(f"{metrics.genre} (F1 {metrics.f1:.2f})", fontsize=9)
    for axis in axes.ravel()[n:]:
        axis.axis("off")
    fig.suptitle(f"{title}: validation, threshold 0.5")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)


# --- the grid -----------------------------------------------------------------------
MODEL_NAMES = tuple(f"{a}{s}" for a in ARCHS for s in ("", "_smote"))


@dataclass(frozen=True)
class GridResult:
    runs: dict[str, dict]  # run_id -> state entry
    best: dict[str, str]  # model name -> run_id
    wall_time_s: float
    peak_rss_mb: float
    redone: list[str]  # run ids trained by this call (the others came from the state file)


def grid_configs(base: TrainConfig, archs: Iterable[str] = ARCHS) -> list[TrainConfig]:
    """3 architectures x +-SMOTE x the paper's optimizers; plain runs precede their twins."""
    configs = []
    for arch in archs:
        for smote in (False, True):
            for optimizer, lr in GRID_OPTIMIZERS:
                configs.append(
                    replace(base, arch=arch, smote=smote, optimizer=optimizer, learning_rate=lr)
                )
    return configs


def _load_state(path: Path, manifest_sha: str) -> dict:
    if path.is_file():
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
            if state.get("manifest_sha256") == manifest_sha:
                return state
        except ValueError:
            pass  # a damaged state file means starting over, not crashing
    return {"manifest_sha256": manifest_sha, "runs": {}}


def _finished(entry: dict | None, config: TrainConfig) -> bool:
    return bool(
        entry
        and entry.get("config_key") == config.key()
        and (Path(entry["dir"]) / MODEL_NAME).is_file()
        and (Path(entry["dir"]) / CARD_NAME).is_file()
    )


def run_grid(
    manifest: Path,
    out: Path,
    base: TrainConfig | None = None,
    ws: Workspace | None = None,
    archs: Iterable[str] = ARCHS,
    progress: bool = True,
) -> GridResult:
    """Run (or resume) the grid; publish each model name's best run to `out/<name>`.

    Grid runs live in `<cache>/grid/<manifest sha>/`, with `state.json` rewritten after each
    run: an interrupted grid resumes where it stopped and finished runs are not redone.
    """
    from tqdm import tqdm

    started = time.perf_counter()
    ws = ws or Workspace()
    base = base or TrainConfig()
    data = ws.dataset(manifest)
    grid_dir = ws.cache / "grid" / data.manifest_sha256[:16]
    state_path = grid_dir / "state.json"
    state = _load_state(state_path, data.manifest_sha256)
    configs = grid_configs(base, archs)
    redone: list[str] = []
    bar = tqdm(configs, desc="grid", unit="run", disable=not progress)
    for config in bar:
        entry = state["runs"].get(config.run_id)
        bar.set_postfix_str(config.run_id)
        if _finished(entry, config):
            continue
        run_dir = grid_dir / config.run_id
        trunk = None
        if config.arch == "cnn" and config.smote:
            trunk = grid_dir / replace(config, smote=False).run_id / MODEL_NAME
        result = train_run(config, manifest, run_dir, ws, trunk_model=trunk)
        state["runs"][config.run_id] = jsonable(
            {
                "name": config.name,
                "config_key": config.key(),
                "dir": str(run_dir),
                "val_map": result.val_map,
                "val_macro_f1": result.val_macro_f1,
                "val_micro_f1": result.val_micro_f1,
                "paper_accuracy": result.paper_accuracy,
                "per_genre_ap": result.per_genre_ap,
                "per_genre_f1": result.per_genre_f1,
                "params": result.params,
                "wall_time_s": result.wall_time_s,
            }
        )
        write_json(state_path, state)
        redone.append(config.run_id)
    bar.close()
    best = publish_best(state, configs, Path(out))
    return GridResult(
        runs=state["runs"],
        best=best,
        wall_time_s=time.perf_counter() - started,
        peak_rss_mb=peak_rss_mb(),
        redone=redone,
    )


def _score(entry: dict) -> tuple[float, float]:
    # Selection: validation mAP; macro F1 at 0.5 breaks ties. None (no AP) ranks last.
    return (entry.get("val_map") or -1.0, entry.get("val_macro_f1") or -1.0)


def publish_best(state: dict, configs: list[TrainConfig], out: Path) -> dict[str, str]:
    """Copy each model name's best finished run to `out/<name>` (swap in whole)."""
    best: dict[str, str] = {}
    by_name: dict[str, list[str]] = {}
    for config in configs:
        if config.run_id in state["runs"]:
            by_name.setdefault(config.name, []).append(config.run_id)
    for name, run_ids in by_name.items():
        winner = max(run_ids, key=lambda r: _score(state["runs"][r]))
        best[name] = winner
        source = Path(state["runs"][winner]["dir"])
        target = out / name
        staging = out / f".{name}.staging"
        if staging.exists():
            shutil.rmtree(staging)
        shutil.copytree(source, staging)
        card = read_card(staging)
        card.extra["grid"] = {
            "selected_run": winner,
            "selected_by": SELECTION_METRIC,
            "candidates": {
                r: {
                    "val_map": state["runs"][r]["val_map"],
                    "val_macro_f1": state["runs"][r]["val_macro_f1"],
                }
                for r in run_ids
            },
        }
        write_card(card, staging)
        old = out / f".{name}.old"
        if target.exists():
            os.replace(target, old)
        os.replace(staging, target)
        if old.exists():
            shutil.rmtree(old)
    return best
