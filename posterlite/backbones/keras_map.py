"""Mapping a TFLite MobileNet's weights onto `keras.applications.MobileNet` / `MobileNetV2`
(alpha 1.0, include_top=False) in layer order, and building backbones for training.

TFLite conv kernels [O,H,W,I] become Keras [H,W,I,O], depthwise [1,H,W,C] becomes
[H,W,C,1]. The graphs have batch norm folded into the conv weights + bias, so each
following Keras BatchNormalization becomes an exact identity-plus-bias in inference mode:
gamma=1, beta=bias, moving_mean=0, moving_variance=1-epsilon (so sqrt(var + eps) = 1).
Keras is imported inside the functions that need it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from posterlite.archs import backbone_spec
from posterlite.backbones.sources import FEATURE_DIMS, check_arch, keras_cached_file
from posterlite.backbones.tflite_reader import TFLiteLayer, TFLiteModelInfo
from posterlite.errors import PosterliteError

if TYPE_CHECKING:  # keras is imported lazily: this module is importable without it
    import keras

log = logging.getLogger(__name__)


def limit_tf_threads(threads: int) -> None:
    """Cap TensorFlow's thread pools (shared 2-core machines); no-op once TF is running."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TF already initialised its pools in this process
        pass


def empty_backbone(arch: str, input_size: int) -> keras.Model:
    """A randomly initialised Keras backbone of `arch` (alpha 1.0, no top, average pool) for
    `input_size` px; raises PosterliteError for an unknown backbone."""
    import keras

    factory = getattr(keras.applications, str(backbone_spec(arch).keras_application))
    return factory(
        input_shape=(input_size, input_size, 3),
        alpha=1.0,
        include_top=False,
        weights=None,
        pooling="avg",
    )


def build_backbone(arch: str, input_size: int = 224, weights: Path | None = None) -> keras.Model:
    """Keras MobileNet (alpha 1.0, include_top=False, pooling="avg"): pooled 1024/1280-d.

    `weights`: a `.weights.h5` written by `backbone import` (or resolved by
    `resolve_backbone_weights`), or a Keras ImageNet `.h5`. None means "Keras' own ImageNet
    file": loaded if `resolve_backbone_weights` found it in Keras' cache (~/.keras/models),
    else the backbone is randomly initialised (never a network access from here).

    Input: float32 in [-1, 1] (`preprocess.pixels_to_input`). Freeze with
    `model.trainable = False`: Keras 3 then runs every BatchNormalization in inference mode
    (moving statistics), even under `training=True`, which the imported BN-folded weights
    need (their BN layers are identity + bias only with moving statistics).
    Raises PosterliteError for an unknown backbone, missing weights or weights that do not
    fit.
    """
    arch = check_arch(arch)
    model = empty_backbone(arch, input_size)
    source: Path | None = Path(weights) if weights is not None else keras_cached_file(arch)
    if source is None:
        log.warning("%s: no ImageNet weights given; backbone is randomly initialised", arch)
        return model
    if not source.is_file():
        raise PosterliteError(f"backbone weights not found: {source}")
    try:
        model.load_weights(str(source))
    except Exception as exc:  # Keras raises ValueError/KeyError/OSError on a mismatched file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PosterliteError(f"{source}: does not fit {arch} ({first})") from exc
    return model


def _keras_layer_pairs(model: keras.Model) -> list[tuple[object, object]]:
    """(conv or depthwise layer, the BatchNormalization that follows it) in model order."""
    import keras

    pairs: list[tuple[object, object]] = []
    layers = model.layers
    for i, layer in enumerate(layers):
        if isinstance(layer, keras.layers.Conv2D | keras.layers.DepthwiseConv2D):
            bn = next(
                (x for x in layers[i + 1 :] if isinstance(x, keras.layers.BatchNormalization)),
                None,
            )
            if bn is None:
                raise PosterliteError(
                    f"Keras layer {layer.name} has no following BatchNormalization"
                )
            pairs.append((layer, bn))
    return pairs


def _tflite_layout(layer) -> tuple[int, ...]:
    """The TFLite shape a Keras conv/depthwise kernel corresponds to."""
    import keras

    kernel_shape = tuple(int(d) for d in layer.kernel.shape)
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        h, w, c, m = kernel_shape
        return (1, h, w, c * m)
    h, w, i, o = kernel_shape
    return (o, h, w, i)


def _to_keras_kernel(tfl: TFLiteLayer, layer) -> np.ndarray:
    import keras

    if isinstance(layer, keras.layers.DepthwiseConv2D):
        _, h, w, cm = tfl.kernel.shape
        multiplier = int(layer.kernel.shape[-1])
        return tfl.kernel.reshape(h, w, cm // multiplier, multiplier)
    return np.transpose(tfl.kernel, (1, 2, 3, 0))


@dataclass
class Classifier:
    """The ImageNet head taken from the TFLite graph: logits = pooled @ kernel + bias."""

    kernel: np.ndarray  # [features, classes]
    bias: np.ndarray  # [classes]

    def logits(self, pooled: np.ndarray) -> np.ndarray:
        """ImageNet logits (N, classes) of pooled features (N, features)."""
        return pooled @ self.kernel + self.bias


def _fit_error(arch: str, index: int, tfl: TFLiteLayer, layer, expected: tuple[int, ...]) -> str:
    return (
        f"{arch}: conv {index} ({tfl.op} {tfl.name[:60]!r}) has shape "
        f"{tuple(tfl.kernel.shape)} but Keras layer {layer.name} expects {expected} "
        f"(TFLite layout)"
    )


def map_onto_keras(
    info: TFLiteModelInfo, arch: str, model: keras.Model
) -> tuple[Classifier | None, list[str]]:
    """Set `model`'s conv kernels and folded-BN parameters from `info`; returns the
    classifier (if the graph has one) and the Keras layer names that were set. Raises
    PosterliteError naming the first layer whose kind, shape or stride does not fit."""
    import keras

    arch = check_arch(arch)
    pairs = _keras_layer_pairs(model)
    set_names: list[str] = []
    for index, (layer, bn) in enumerate(pairs):
        expected = _tflite_layout(layer)
        if index >= len(info.layers):
            raise PosterliteError(
                f"{arch}: TFLite model has only {len(info.layers)} conv ops but Keras layer "
                f"{layer.name} (conv {index} of {len(pairs)}) expects {expected}"
            )
        tfl = info.layers[index]
        depthwise = isinstance(layer, keras.layers.DepthwiseConv2D)
        kind_ok = (tfl.op == "DEPTHWISE_CONV_2D") == depthwise and tfl.op != "FULLY_CONNECTED"
        if not kind_ok or tuple(tfl.kernel.shape) != expected:
            raise PosterliteError(_fit_error(arch, index, tfl, layer, expected))
        stride = int(layer.strides[0])
        if tfl.stride != stride:
            raise PosterliteError(
                f"{arch}: conv {index} ({tfl.op}) has stride {tfl.stride} but Keras layer "
                f"{layer.name} has stride {stride}"
            )
        layer.kernel.assign(_to_keras_kernel(tfl, layer))
        channels = int(bn.gamma.shape[0])
        if tfl.bias.shape != (channels,):
            raise PosterliteError(
                f"{arch}: conv {index} bias has shape {tfl.bias.shape} but Keras layer "
                f"{bn.name} expects ({channels},)"
            )
        # Folded BN: y = x * gamma / sqrt(var + eps) + (beta - mean * gamma / sqrt(...))
        # with gamma=1, mean=0, var=1-eps reduces to y = x + bias exactly.
        bn.gamma.assign(np.ones(channels, np.float32))
        bn.beta.assign(tfl.bias)
        bn.moving_mean.assign(np.zeros(channels, np.float32))
        bn.moving_variance.assign(np.full(channels, 1.0 - bn.epsilon, np.float32))
        set_names.extend([layer.name, bn.name])
    extra = info.layers[len(pairs) :]
    classifier = None
    features = FEATURE_DIMS[arch]
    if extra:
        head = extra[0]
        in_features = head.kernel.shape[-1]
        if len(extra) > 1 or in_features != features or head.op == "DEPTHWISE_CONV_2D":
            raise PosterliteError(
                f"{arch}: {len(extra)} conv op(s) after the backbone's {len(pairs)} "
                f"(first: {head.op} {tuple(head.kernel.shape)}); expected at most one "
                f"classifier taking {features} features"
            )
        kernel = head.kernel.reshape(head.kernel.shape[0], -1).T  # [features, classes]
        classifier = Classifier(kernel=kernel.astype(np.float32), bias=head.bias)
    return classifier, set_names
