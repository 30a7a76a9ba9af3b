"""Model builders and the pieces every fit shares: the ImageNet backbone (or a random one
for tests), the head, the small CNN, the full image-in model, class-balanced BCE, optimizers,
early stopping, the wall-clock budget and the Keras `fit` wrapper.

Keras is imported inside the functions (it costs seconds); the annotations name its
classes through a `TYPE_CHECKING` import. Keras ships no type information, so mypy reads
them as untyped; they say what each value is.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

import numpy as np

from posterlite.archs import backbone_spec
from posterlite.errors import PosterliteError
from posterlite.fileio import (
    sha256_file,
)
from posterlite.train.config import TrainConfig

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

    # What `Model.fit` takes as inputs, labels and validation data.
    FitInput: TypeAlias = np.ndarray | tf.data.Dataset | keras.utils.PyDataset


def build_backbone_for(config: TrainConfig) -> tuple[keras.Model, dict[str, str]]:
    """The frozen ImageNet MobileNet (or a random one for tests) and where it came from.

    Returns (backbone, {"weights": source[, "weights_file_sha256": hash]}); raises
    PosterliteError when an explicit weights file is missing or `backbones` is unavailable.
    """
    import keras

    arch, size = config.arch, config.size
    explicit = Path(config.backbone_weights) if config.backbone_weights else None
    if explicit is not None and not explicit.is_file():
        raise PosterliteError(f"backbone weights file not found: {explicit}")
    info: dict[str, str] = {"weights": "random init (no pretrained weights)"}
    try:
        from posterlite import backbones  # the backbone engineer's module
    except ImportError:
        backbones = None  # type: ignore[assignment]  # checked below
    if not config.pretrained:
        # Straight from keras.applications: backbones.build_backbone(weights=None) may pick
        # up Keras' cached ImageNet file, and a random backbone must stay random.
        factory = getattr(keras.applications, str(backbone_spec(arch).keras_application))
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


def build_head(
    dim: int, n_genres: int, hidden: int, dropout: float, name: str = "head"
) -> keras.Sequential:
    """The genre head: (dim,) features -> dropout [-> Dense(hidden) relu -> dropout] ->
    Dense(n_genres) sigmoid. Returns the (uncompiled) model; raises nothing."""
    import keras

    layers: list[keras.layers.Layer | keras.KerasTensor] = [
        keras.Input((dim,)),
        keras.layers.Dropout(dropout),
    ]
    if hidden > 0:
        layers += [keras.layers.Dense(hidden, activation="relu"), keras.layers.Dropout(dropout)]
    layers.append(keras.layers.Dense(n_genres, activation="sigmoid", name="genres"))
    return keras.Sequential(layers, name=name)


def build_cnn(size: int, n_genres: int, dropout: float) -> keras.Model:
    """A small from-scratch CNN (~50k parameters): depthwise-separable, phone-friendly.

    Stride-2 stem then five depthwise-separable blocks (MobileNet-style, so it converts
    and quantizes like the MobileNets), global average pooling to a 160-d embedding.
    Returns the (uncompiled) model.
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


def assemble(extractor: keras.Model, head: keras.Model, size: int, name: str) -> keras.Model:
    """The full model: image in [-1, 1] -> frozen extractor (BN inference) -> head.
    Returns the new model (sharing the two models' layers)."""
    import keras

    inputs = keras.Input((size, size, 3), name="image")
    outputs = head(extractor(inputs, training=False))
    return keras.Model(inputs, outputs, name=name)


def balanced_weights(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-genre (positive, negative) weights of class-balanced BCE: n / (2 * count).
    Returns two float32 (G,) arrays."""
    n = max(len(labels), 1)
    positives = np.clip(labels.sum(axis=0), 1, None)
    negatives = np.clip(n - labels.sum(axis=0), 1, None)
    return (n / (2 * positives)).astype(np.float32), (n / (2 * negatives)).astype(np.float32)


def make_loss(
    labels: np.ndarray | None,
) -> keras.losses.Loss | Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """Class-balanced BCE when `labels` is given, else plain BCE.
    Returns a Keras loss object or a loss function (y_true, y_pred) -> per-example loss."""
    import keras
    from keras import ops

    if labels is None:
        return keras.losses.BinaryCrossentropy()
    positive, negative = balanced_weights(labels)

    def balanced_bce(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        eps = keras.config.epsilon()
        y_pred = ops.clip(y_pred, eps, 1.0 - eps)
        y_true = ops.cast(y_true, y_pred.dtype)
        terms = positive * y_true * ops.log(y_pred) + negative * (1 - y_true) * ops.log(1 - y_pred)
        return -ops.mean(terms, axis=-1)

    return balanced_bce


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """SGD (momentum 0.9) for "sgd", else Adam, at `learning_rate`. Returns the optimizer."""
    import keras

    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=learning_rate, momentum=0.9)
    return keras.optimizers.Adam(learning_rate=learning_rate)


def compile_for_training(
    model: keras.Model, config: TrainConfig, labels: np.ndarray, lr: float
) -> None:
    """Compile `model` in place: the config's optimizer at `lr`, (class-balanced) BCE,
    accuracy and PR-AUC. Returns nothing."""
    import keras

    model.compile(
        optimizer=make_optimizer(config.optimizer, lr),
        loss=make_loss(labels if config.class_weighted else None),
        metrics=[
            keras.metrics.BinaryAccuracy(name="accuracy"),
            keras.metrics.AUC(curve="PR", multi_label=True, name="pr_auc"),
        ],
    )


def early_stopping(config: TrainConfig) -> keras.callbacks.EarlyStopping:
    """Early stopping on validation PR-AUC (the config's patience and min_delta), best
    weights restored. Returns the callback."""
    import keras

    # PR-AUC (~mAP) is the selection metric too; min_delta stops runs that barely move.
    return keras.callbacks.EarlyStopping(
        monitor="val_pr_auc",
        mode="max",
        patience=config.patience,
        min_delta=config.min_delta,
        restore_best_weights=True,
    )


def time_budget(seconds: float | None) -> list[keras.callbacks.Callback]:
    """A callback that stops training after `seconds` of wall time (checked per epoch).
    Returns [that callback], or [] when `seconds` is None."""
    import keras

    if seconds is None:
        return []
    budget = seconds

    class TimeBudget(keras.callbacks.Callback):  # type: ignore[misc]  # Keras is untyped
        def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            if time.perf_counter() - self.started > budget:
                self.model.stop_training = True

    return [TimeBudget()]


def top_blocks(model: keras.Model, n: int) -> list[keras.layers.Layer]:
    """Layers of the top `n` blocks of a MobileNet (conv_dw_13 / block_16 style names).
    Returns them in model order ([] for n <= 0)."""
    pattern = re.compile(r"(?:conv_(?:dw|pw)|block)_(\d+)")
    order: list[str] = []
    groups: dict[str, list[keras.layers.Layer]] = {}
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


def fit(
    model: keras.Model,
    x: FitInput,
    y: np.ndarray | None,
    val: tuple[np.ndarray, np.ndarray] | FitInput,
    config: TrainConfig,
    epochs: int,
    batch: int | None,
) -> dict[str, list[float]]:
    """`model.fit` with early stopping and the time budget, quietly (`batch` None: `x` is
    a batched tf.data pipeline). Returns the history: metric name -> value per epoch."""
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


def fine_tune_cut(backbone: keras.Model, n: int) -> str:
    """Name of the layer whose output feeds the top `n` blocks (the cached activation).

    V1 with n=1: `conv_pw_12_relu` (7x7x1024); V2 with n=2: `block_15_add`. Weightless
    padding in front of the first unfrozen layer is recomputed, not cached. Raises
    PosterliteError when `n` is 0 or covers the whole backbone.
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
    return str(backbone.layers[index].name)


def strip_compile(model: keras.Model) -> None:
    """Forget the compile state of a model and its nested models before saving.

    Keras stores a compiled (sub)model's loss in the .keras file; ours is a training-only
    closure, and loading would then fail in convert / predict. Training is over here.
    Returns nothing (changes `model` in place).
    """
    import keras

    model.compiled = False
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            strip_compile(layer)


def count_params(model: keras.Model) -> int:
    """The number of weights (trainable or not) of `model`."""
    return int(sum(int(np.prod(w.shape)) for w in model.weights))
