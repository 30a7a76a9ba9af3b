"""ImageNet MobileNet backbones without internet: import Google's int8 TFLite MobileNets.

This module owns everything between a published `.tflite` MobileNet and a Keras backbone
with ImageNet weights:

- reading the TFLite flatbuffer (`read_tflite`): every CONV_2D / DEPTHWISE_CONV_2D /
  FULLY_CONNECTED op in execution order, its constant weights and bias dequantized with
  their own scales and zero points (per-tensor or per-channel along the tensor's
  `quantized_dimension`; int32 biases too), strides, padding and fused activation;
- mapping them onto `keras.applications.MobileNet` / `MobileNetV2` (alpha 1.0,
  include_top=False) in layer order (`import_tflite_backbone`): TFLite conv kernels
  [O,H,W,I] become Keras [H,W,I,O], depthwise [1,H,W,C] becomes [H,W,C,1]. The graphs
  have batch norm folded into the conv weights + bias, so each following Keras
  BatchNormalization becomes an exact identity-plus-bias in inference mode: gamma=1,
  beta=bias, moving_mean=0, moving_variance=1-epsilon (so sqrt(var + eps) = 1);
- writing a Keras `.weights.h5` atomically, a JSON record beside it (source sha256, arch,
  verification figures) and, when the source has one, the ImageNet classifier
  (`<name>.classifier.npz`: kernel [features, 1001], bias [1001]; index 0 = background);
- `build_backbone` and `resolve_backbone_weights`, the API the training stage calls.

Padding: TFLite SAME with stride 2 on an even input pads (0, 1) rows/columns; Keras pads
its stride-2 depthwise convs with ZeroPadding2D(((0, 1), (0, 1))) + VALID and its first
conv with 'same', which is the same (0, 1) split. Padding zeros are the real value 0 in
both (TFLite pads with the zero point). Verified numerically, see benchmarks.

PRETRAINED_INPUT: how the TFLite models' uint8 inputs meet posterlite's preprocessing.
posterlite feeds Keras models `pixel / 127.5 - 1` in [-1, 1] (`preprocess.pixels_to_input`).
- `tf2_mobilenet_v2_1.0_224_ptq.tflite` expects uint8 with scale 1/127.5, zero point 127:
  the pixel itself, read as `(pixel - 127) / 127.5`, i.e. ours shifted by +0.5/127.5
  (0.0039, half a quantization step) everywhere.
- `mobilenet_v2_1.0_224_quant.tflite` and the V1 embedding extractor expect uint8 with
  scale 1/128, zero point 128: `(pixel - 128) / 128`, range [-1, 0.992] instead of
  [-1, 1]; it differs from ours by at most 0.008 (at pixel 255), 0.0039 around mid-grey.
Both are `~ pixel / 127.5 - 1`, so the imported Keras backbones take posterlite's float
input unchanged; the difference is below one input quantization step and is part of what
verification measures. Verification (`verify_import`, `benchmarks/backbone_import.py`) feeds
each TFLite model the raw `load_poster` uint8 pixels, its own expected input, and the Keras
model `pixels_to_input(pixels)` from the same pixels.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from posterlite.archs import BACKBONE_NAMES, BackboneName, backbone_spec
from posterlite.errors import PosterliteError
from posterlite.fileio import atomic_path, atomic_write_text, json_text, sha256_file
from posterlite.interpreter import TFLITE_IDENTIFIER

if TYPE_CHECKING:  # keras is imported lazily: this module is importable without it
    import keras

log = logging.getLogger(__name__)

# Views of the architecture registry (`posterlite.archs`), where these facts live.
ARCHS: tuple[str, ...] = BACKBONE_NAMES
FEATURE_DIMS = {name: backbone_spec(name).feature_dim for name in BACKBONE_NAMES}
WEIGHTS_SUFFIX = ".weights.h5"
ENV_WEIGHTS = "POSTERLITE_BACKBONE_WEIGHTS"
ENV_PRETRAINED = "POSTERLITE_PRETRAINED"
ENV_CACHE = "POSTERLITE_CACHE"
# The files of ../shared/pretrained, in order of preference per architecture.
PREFERRED_TFLITE = {name: backbone_spec(name).pretrained_files for name in BACKBONE_NAMES}
# Keras' own ImageNet files (need internet), as keras.applications names them.
KERAS_NOTOP_URLS = {name: str(backbone_spec(name).keras_notop_url) for name in BACKBONE_NAMES}
_CONV_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
KERAS_DOWNLOAD_TIMEOUT = 60.0  # seconds without a byte before the download gives up

Arch = BackboneName


# --- reading the TFLite flatbuffer -------------------------------------------------------
@dataclass(frozen=True)
class TFLiteLayer:
    """One conv-like op of a TFLite graph, weights dequantized to float32 (TFLite layout)."""

    op_index: int
    op: str  # CONV_2D | DEPTHWISE_CONV_2D | FULLY_CONNECTED
    name: str
    kernel: np.ndarray  # conv [O,H,W,I], depthwise [1,H,W,C], fully connected [O,I]
    bias: np.ndarray  # [O]
    stride: int
    padding: str  # SAME | VALID | "" for fully connected
    activation: str  # NONE | RELU | RELU6 | ...
    quantization: str  # per-channel | per-tensor | float


@dataclass(frozen=True)
class TFLiteModelInfo:
    layers: tuple[TFLiteLayer, ...]
    input_dtype: str
    input_scale: float
    input_zero_point: int
    input_shape: tuple[int, ...]


def _schema():
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


def _enum_names(enum_class: type) -> dict[int, str]:
    return {v: k for k, v in vars(enum_class).items() if not k.startswith("_")}


def _dequantize(raw: np.ndarray, tensor) -> tuple[np.ndarray, str]:
    """Constant tensor -> float32 with its own scale(s) and zero point(s)."""
    quant = tensor.Quantization()
    scales = quant.ScaleAsNumpy() if quant is not None and quant.ScaleLength() else None
    if scales is None or raw.dtype.kind == "f":
        return raw.astype(np.float32), "float"
    zero_points = (
        quant.ZeroPointAsNumpy().astype(np.float64)
        if quant.ZeroPointLength()
        else np.zeros_like(scales, dtype=np.float64)
    )
    values = raw.astype(np.float64)
    if scales.size == 1:
        return ((values - zero_points[0]) * scales[0]).astype(np.float32), "per-tensor"
    axis = quant.QuantizedDimension()
    shape = [1] * values.ndim
    shape[axis] = scales.size
    if values.shape[axis] != scales.size:
        raise PosterliteError(
            f"tensor {tensor.Name().decode(errors='replace')}: {scales.size} scales but "
            f"dimension {axis} has size {values.shape[axis]}"
        )
    real = (values - zero_points.reshape(shape)) * scales.astype(np.float64).reshape(shape)
    return real.astype(np.float32), "per-channel"


_NUMPY_TYPES = {
    "FLOAT32": np.float32,
    "FLOAT16": np.float16,
    "INT32": np.int32,
    "UINT8": np.uint8,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT64": np.int64,
}


def read_tflite(path: Path) -> TFLiteModelInfo:
    """Parse a .tflite file: conv-like ops in execution order with dequantized constants."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PosterliteError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
        raise PosterliteError(f"{path}: not a TFLite model (no 'TFL3' flatbuffer identifier)")
    schema = _schema()
    try:
        model = schema.Model.GetRootAs(data, 0)
        return _read_model(model, schema)
    except PosterliteError:
        raise
    except Exception as exc:  # a corrupt flatbuffer raises anything from struct to index
        raise PosterliteError(f"{path}: not a readable TFLite model ({exc})") from exc


def _read_model(model, schema) -> TFLiteModelInfo:
    op_names = _enum_names(schema.BuiltinOperator)
    type_names = _enum_names(schema.TensorType)
    act_names = _enum_names(schema.ActivationFunctionType)
    pad_names = _enum_names(schema.Padding)
    codes = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        # Newer files store ops >= 127 in BuiltinCode; older ones only the deprecated byte.
        codes.append(op_names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "?"))
    graph = model.Subgraphs(0)
    producers: dict[int, tuple[str, object]] = {}
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        for out in op.OutputsAsNumpy():
            producers[int(out)] = (codes[op.OpcodeIndex()], op)

    def constant(index: int) -> tuple[np.ndarray, str, str]:
        tensor = graph.Tensors(index)
        buffer = model.Buffers(tensor.Buffer())
        if buffer is None or buffer.DataLength() == 0:
            # float16 / dynamic models feed weights through a DEQUANTIZE op.
            producer = producers.get(index)
            if producer and producer[0] == "DEQUANTIZE":
                return constant(int(producer[1].Inputs(0)))
            raise PosterliteError(f"tensor {tensor.Name().decode()} is not a constant")
        dtype = _NUMPY_TYPES[type_names[tensor.Type()]]
        raw = np.frombuffer(buffer.DataAsNumpy().tobytes(), dtype=dtype)
        raw = raw.reshape(tuple(int(d) for d in tensor.ShapeAsNumpy()))
        real, kind = _dequantize(raw, tensor)
        return real, kind, tensor.Name().decode(errors="replace")

    layers: list[TFLiteLayer] = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        name = codes[op.OpcodeIndex()]
        if name not in _CONV_OPS:
            continue
        inputs = [int(x) for x in op.InputsAsNumpy()]
        kernel, kind, tensor_name = constant(inputs[1])
        if len(inputs) > 2 and inputs[2] >= 0:
            bias = constant(inputs[2])[0].reshape(-1)
        else:
            bias = np.zeros(kernel.shape[0] if name != "DEPTHWISE_CONV_2D" else kernel.shape[-1])
        stride, padding, activation = 1, "", "NONE"
        table = op.BuiltinOptions()
        if name == "CONV_2D":
            options = schema.Conv2DOptions()
        elif name == "DEPTHWISE_CONV_2D":
            options = schema.DepthwiseConv2DOptions()
        else:
            options = schema.FullyConnectedOptions()
        if table is not None:
            options.Init(table.Bytes, table.Pos)
            activation = act_names.get(options.FusedActivationFunction(), "?")
            if name != "FULLY_CONNECTED":
                stride = int(options.StrideH())
                padding = pad_names.get(options.Padding(), "?")
        layers.append(
            TFLiteLayer(
                op_index=i,
                op=name,
                name=tensor_name,
                kernel=kernel,
                bias=bias.astype(np.float32),
                stride=stride,
                padding=padding,
                activation=activation,
                quantization=kind,
            )
        )
    tensor = graph.Tensors(int(graph.Inputs(0)))
    quant = tensor.Quantization()
    scale = float(quant.ScaleAsNumpy()[0]) if quant is not None and quant.ScaleLength() else 0.0
    zero = int(quant.ZeroPointAsNumpy()[0]) if quant is not None and quant.ZeroPointLength() else 0
    return TFLiteModelInfo(
        layers=tuple(layers),
        input_dtype=type_names[tensor.Type()].lower(),
        input_scale=scale,
        input_zero_point=zero,
        input_shape=tuple(int(d) for d in tensor.ShapeAsNumpy()),
    )


def limit_tf_threads(threads: int) -> None:
    """Cap TensorFlow's thread pools (shared 2-core machines); no-op once TF is running."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TF already initialised its pools in this process
        pass


# --- building Keras backbones --------------------------------------------------------------
def _check_arch(arch: str) -> Arch:
    return backbone_spec(arch).name  # type: ignore[return-value]  # raises for a non-backbone


def _keras_model(arch: str, input_size: int) -> keras.Model:
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
    """
    arch = _check_arch(arch)
    model = _keras_model(arch, input_size)
    source: Path | None = Path(weights) if weights is not None else _keras_cached_file(arch)
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
    classifier (if the graph has one) and the Keras layer names that were set."""
    import keras

    arch = _check_arch(arch)
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


# --- verification --------------------------------------------------------------------------
@dataclass
class VerifyFigures:
    """Agreement of the imported Keras backbone with the TFLite model on the same pixels."""

    images: int
    image_source: str
    feature_cosine_mean: float | None = None
    feature_cosine_min: float | None = None
    # vs the TFLite model's output (uint8 softmax, steps of 1/256: ties are common)
    top1_agreement: float | None = None
    top5_overlap_mean: float | None = None
    # vs the TFLite model's pre-softmax logits (finer; no ties)
    top1_agreement_logits: float | None = None
    top5_overlap_mean_logits: float | None = None


def tflite_input(pixels: np.ndarray, dtype: str, scale: float, zero_point: int) -> np.ndarray:
    """The TFLite model's own expected input from uint8 pixels (see PRETRAINED_INPUT)."""
    from posterlite.preprocess import pixels_to_input

    if dtype == "uint8":
        return pixels.astype(np.uint8)
    real = pixels_to_input(pixels, "float32")
    if dtype == "int8":
        return np.clip(np.round(real / scale + zero_point), -128, 127).astype(np.int8)
    return real


@dataclass
class TFLiteOutputs:
    pooled: np.ndarray | None  # [N, features] dequantized, if the graph exposes it
    output: np.ndarray  # [N, ...] dequantized model output (probabilities or embedding)
    logits: np.ndarray | None = None  # [N, classes] pre-softmax, if the graph has a head


def run_tflite(path: Path, pixels: np.ndarray, threads: int = 1) -> TFLiteOutputs:
    """Run the TFLite model one image at a time; also read its pooled features (the
    AVERAGE_POOL_2D / MEAN output) by keeping intermediate tensors."""
    from ai_edge_litert.interpreter import Interpreter

    with warnings.catch_warnings():  # "for debugging only": we do read intermediate tensors
        warnings.simplefilter("ignore", UserWarning)
        interpreter = Interpreter(
            model_path=str(path), num_threads=threads, experimental_preserve_all_tensors=True
        )
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    pooled_index = logits_index = None
    for op in interpreter._get_ops_details():  # the only op-level view the Interpreter has
        if op["op_name"] in ("AVERAGE_POOL_2D", "MEAN"):
            pooled_index = int(op["outputs"][0])
        elif op["op_name"] in _CONV_OPS and pooled_index is not None:
            logits_index = int(op["outputs"][0])  # the head after the pool: pre-softmax
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    scale, zero = inp["quantization"]
    rows: dict[str, list[np.ndarray]] = {"pooled": [], "output": [], "logits": []}
    for image in pixels:
        x = tflite_input(image[None], np.dtype(inp["dtype"]).name, scale, zero)
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        rows["output"].append(
            _dequantized(interpreter.get_tensor(out["index"]), out["quantization"]).reshape(-1)
        )
        for key, index in (("pooled", pooled_index), ("logits", logits_index)):
            if index is not None:
                value = interpreter.get_tensor(index)
                rows[key].append(_dequantized(value, details[index]["quantization"]).reshape(-1))
    return TFLiteOutputs(
        pooled=np.stack(rows["pooled"]) if rows["pooled"] else None,
        output=np.stack(rows["output"]),
        logits=np.stack(rows["logits"]) if rows["logits"] else None,
    )


def _dequantized(values: np.ndarray, quantization: tuple[float, int]) -> np.ndarray:
    scale, zero = quantization
    if values.dtype.kind == "f" or not scale:
        return values.astype(np.float32)
    return ((values.astype(np.float32) - zero) * scale).astype(np.float32)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.reshape(len(a), -1).astype(np.float64)
    b = b.reshape(len(b), -1).astype(np.float64)
    denominator = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.sum(a * b, axis=1) / np.maximum(denominator, 1e-12)


def topk_agreement(reference: np.ndarray, candidate: np.ndarray, k: int = 5) -> tuple[float, float]:
    """(share of rows with the same top-1, mean size of the top-k overlap)."""
    top1 = float(np.mean(reference.argmax(1) == candidate.argmax(1)))
    # stable sort: among tied (quantized) scores the lower class index ranks first, as argmax
    ref_k = np.argsort(-reference, axis=1, kind="stable")[:, :k]
    cand_k = np.argsort(-candidate, axis=1, kind="stable")[:, :k]
    overlap = [len(set(r) & set(c)) for r, c in zip(ref_k, cand_k, strict=True)]
    return top1, float(np.mean(overlap))


def compare_with_tflite(
    source: Path,
    model: keras.Model,
    classifier: Classifier | None,
    pixels: np.ndarray,
    image_source: str,
    threads: int = 1,
    batch: int = 16,
) -> tuple[VerifyFigures, dict[str, np.ndarray]]:
    """Feed the same pixels to TFLite (its own uint8 input) and Keras ([-1,1] float)."""
    from posterlite.preprocess import pixels_to_input

    reference = run_tflite(source, pixels, threads)
    pooled = np.concatenate(
        [
            np.asarray(model(pixels_to_input(pixels[i : i + batch]), training=False))
            for i in range(0, len(pixels), batch)
        ]
    )
    figures = VerifyFigures(images=len(pixels), image_source=image_source)
    arrays: dict[str, np.ndarray] = {"keras_pooled": pooled, "tflite_output": reference.output}
    tflite_features = reference.pooled
    if tflite_features is None and reference.output.shape[1] == pooled.shape[1]:
        tflite_features = reference.output  # an embedding extractor's output is the pool
    if tflite_features is not None:
        cosine = cosine_rows(pooled, tflite_features)
        figures.feature_cosine_mean = float(cosine.mean())
        figures.feature_cosine_min = float(cosine.min())
        arrays["tflite_pooled"] = tflite_features
    if classifier is not None and reference.output.shape[1] == classifier.bias.shape[0]:
        logits = classifier.logits(pooled)
        figures.top1_agreement, figures.top5_overlap_mean = topk_agreement(reference.output, logits)
        arrays["keras_logits"] = logits
        if reference.logits is not None and reference.logits.shape == logits.shape:
            figures.top1_agreement_logits, figures.top5_overlap_mean_logits = topk_agreement(
                reference.logits, logits
            )
            arrays["tflite_logits"] = reference.logits
    return figures, arrays


def synthetic_pixels(count: int, size: int = 224, seed: int = 0) -> np.ndarray:
    """Smooth random colour fields (upsampled noise): a deterministic stand-in for posters."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        images.append(np.asarray(Image.fromarray(small).resize((size, size), Image.BILINEAR)))
    return np.stack(images)


def poster_pixels(folder: Path, count: int, size: int = 224) -> np.ndarray:
    """The first `count` decodable images of `folder` (sorted), as `load_poster` pixels."""
    from posterlite.preprocess import PosterDecodeError, load_poster

    files = sorted(
        p for p in Path(folder).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")
    )
    images = []
    for file in files:
        if len(images) >= count:
            break
        try:
            images.append(load_poster(file, size))
        except PosterDecodeError:
            continue
    if not images:
        raise PosterliteError(f"{folder}: no decodable images to verify with")
    return np.stack(images)


# --- import: TFLite file -> .weights.h5 + record ---------------------------------------------
@dataclass
class ImportRecord:
    """The JSON record written beside an imported `.weights.h5`."""

    arch: str
    source: str
    source_sha256: str
    weights_file: str
    classifier_file: str | None
    input_size: int
    tflite_input: dict
    quantization: dict[str, int]
    layers_set: int
    verification: dict = field(default_factory=dict)
    posterlite_version: str = ""


def record_path(weights: Path) -> Path:
    """`X.weights.h5` -> `X.import.json` (beside it)."""
    return weights.with_name(_stem(weights) + ".import.json")


def classifier_path(weights: Path) -> Path:
    return weights.with_name(_stem(weights) + ".classifier.npz")


def _stem(weights: Path) -> str:
    name = weights.name
    return name[: -len(WEIGHTS_SUFFIX)] if name.endswith(WEIGHTS_SUFFIX) else weights.stem


def _save_weights_atomic(model: keras.Model, target: Path) -> None:
    """Keras insists on a `.weights.h5` name, so save into a temp folder beside the target
    and rename: the target appears whole or not at all."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        tmp = tmp_dir / ("part" + WEIGHTS_SUFFIX)
        model.save_weights(str(tmp))
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def _save_classifier_atomic(classifier: Classifier, target: Path) -> None:
    import io

    from posterlite.fileio import atomic_write_bytes

    buffer = io.BytesIO()
    np.savez(buffer, kernel=classifier.kernel, bias=classifier.bias)
    atomic_write_bytes(target, buffer.getvalue())


def load_classifier(weights: Path) -> Classifier | None:
    path = classifier_path(Path(weights))
    if not path.is_file():
        return None
    with np.load(path) as data:
        return Classifier(kernel=data["kernel"], bias=data["bias"])


def import_tflite_backbone(
    source: Path,
    arch: str,
    out: Path,
    verify_pixels: np.ndarray | None = None,
    verify_source: str = "synthetic",
    verify_count: int = 4,
    threads: int = 1,
) -> ImportRecord:
    """TFLite MobileNet -> Keras `.weights.h5` + `.import.json` (+ `.classifier.npz`).

    Verification runs both models on `verify_pixels` (default: `verify_count` synthetic
    images) and stores the agreement figures in the record.
    """
    from posterlite import __version__

    arch = _check_arch(arch)
    source, out = Path(source), Path(out)
    if not out.name.endswith(WEIGHTS_SUFFIX):
        raise PosterliteError(f"{out}: output must end with {WEIGHTS_SUFFIX} (Keras weights file)")
    info = read_tflite(source)
    if not info.layers:
        raise PosterliteError(f"{source}: TFLite model has no conv ops; not a MobileNet")
    # Weights do not depend on the input size; verify at the size the TFLite graph was
    # built for (224 for Google's files, smaller for test models).
    shape = info.input_shape
    size = shape[1] if len(shape) == 4 and shape[1] == shape[2] and shape[1] >= 32 else 224
    model = _keras_model(arch, size)
    classifier, names = map_onto_keras(info, arch, model)
    if verify_pixels is None and verify_count > 0:
        verify_pixels = synthetic_pixels(verify_count, size)
    verification: dict = {}
    if verify_pixels is not None and len(verify_pixels):
        figures, _ = compare_with_tflite(
            source, model, classifier, verify_pixels, verify_source, threads
        )
        verification = asdict(figures)
    quantization: dict[str, int] = {}
    for layer in info.layers:
        quantization[layer.quantization] = quantization.get(layer.quantization, 0) + 1
    _save_weights_atomic(model, out)
    classifier_file = None
    if classifier is not None:
        _save_classifier_atomic(classifier, classifier_path(out))
        classifier_file = classifier_path(out).name
    record = ImportRecord(
        arch=arch,
        source=str(source),
        source_sha256=sha256_file(source),
        weights_file=out.name,
        classifier_file=classifier_file,
        input_size=size,
        tflite_input={
            "dtype": info.input_dtype,
            "scale": info.input_scale,
            "zero_point": info.input_zero_point,
            "shape": list(info.input_shape),
        },
        quantization=quantization,
        layers_set=len(names),
        verification=verification,
        posterlite_version=__version__,
    )
    atomic_write_text(record_path(out), json_text(asdict(record)))
    return record


# --- resolving weights for training --------------------------------------------------------
def cache_dir() -> Path:
    root = os.environ.get(ENV_CACHE)
    if root:
        return Path(root).expanduser() / "backbones"
    return Path.home() / ".cache" / "posterlite" / "backbones"


def pretrained_dirs() -> list[Path]:
    """Where to look for Google's .tflite MobileNets, in order."""
    dirs: list[Path] = []
    env = os.environ.get(ENV_PRETRAINED)
    if env:
        dirs.append(Path(env).expanduser())
    dirs.append(Path.cwd().parent / "shared" / "pretrained")
    repo_root = Path(__file__).resolve().parent.parent
    dirs.append(repo_root.parent / "shared" / "pretrained")
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique


def find_pretrained_tflite(arch: str, dirs: Sequence[Path] | None = None) -> Path | None:
    arch = _check_arch(arch)
    for folder in dirs if dirs is not None else pretrained_dirs():
        if not folder.is_dir():
            continue
        for name in PREFERRED_TFLITE[arch]:
            if (folder / name).is_file():
                return folder / name
        matches = sorted(folder.glob(str(backbone_spec(arch).pretrained_glob)))
        if matches:
            return matches[0]
    return None


def cached_import(source: Path, arch: str) -> Path:
    """Import `source` once; later calls with the same file content reuse the cache
    (keyed by the source's sha256, so a replaced file is re-imported)."""
    digest = sha256_file(source)
    target = cache_dir() / f"{arch}-{digest[:16]}{WEIGHTS_SUFFIX}"
    record = record_path(target)
    if target.is_file() and record.is_file():
        try:
            if json.loads(record.read_text()).get("source_sha256") == digest:
                log.info("reusing imported %s weights %s", arch, target)
                return target
        except (OSError, ValueError):
            pass  # unreadable record: import again
    log.info("importing %s from %s into %s", arch, source, target)
    import_tflite_backbone(source, arch, target)
    return target


def _explicit_weights(arch: str, path: Path, what: str) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise PosterliteError(f"{what} not found: {path}")
    if path.name.endswith(".tflite"):
        return cached_import(path, arch)
    if path.name.endswith(".h5"):
        return path
    raise PosterliteError(f"{what} {path}: expected a .weights.h5 or a .tflite file")


def _keras_file_path(arch: str) -> Path:
    """Where Keras keeps its ImageNet no-top file: $KERAS_HOME/models, else ~/.keras/models."""
    keras_home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    return keras_home / "models" / KERAS_NOTOP_URLS[arch].rsplit("/", 1)[1]


def _keras_cached_file(arch: str) -> Path | None:
    """Keras' ImageNet no-top file if a previous download left it in ~/.keras/models."""
    path = _keras_file_path(arch)
    return path if path.is_file() else None


def _keras_download(arch: str, timeout: float = KERAS_DOWNLOAD_TIMEOUT) -> Path:
    """Keras' own ImageNet weights (the file weights="imagenet" fetches) into Keras' cache,
    written whole or not at all. Fetched with urllib rather than `keras.utils.get_file`,
    which turns every failure into a bare `Exception`: here offline, refused, timed-out and
    HTTP-error downloads raise `OSError` (`URLError`, `HTTPError`, `TimeoutError`), a broken
    response `http.client.HTTPException`, and a body that is not HDF5 (a proxy's error page)
    `ValueError`."""
    import urllib.request

    from tqdm import tqdm

    url = KERAS_NOTOP_URLS[arch]
    target = _keras_file_path(arch)
    with urllib.request.urlopen(url, timeout=timeout) as response, atomic_path(target) as tmp:
        size = int(response.headers.get("Content-Length") or 0) or None
        with (
            open(tmp, "wb") as handle,
            tqdm(total=size, unit="B", unit_scale=True, desc=target.name, disable=None) as bar,
        ):
            while chunk := response.read(1 << 20):
                handle.write(chunk)
                bar.update(len(chunk))
        with open(tmp, "rb") as handle:
            if handle.read(len(_HDF5_MAGIC)) != _HDF5_MAGIC:
                raise ValueError(f"{url} did not send an HDF5 file")
    return target


def resolve_backbone_weights(arch: str, explicit: Path | None = None) -> Path | None:
    """Which ImageNet weights to train with. Order:

    1. `explicit` (`--backbone-weights`): a `.weights.h5`, or a `.tflite` (imported, cached);
    2. env `POSTERLITE_BACKBONE_WEIGHTS` (same);
    3. a matching `.tflite` in `$POSTERLITE_PRETRAINED`, `../shared/pretrained` (from the
       CWD) or `<repo>/../shared/pretrained`, imported once, cached by sha256 under
       `$POSTERLITE_CACHE/backbones` or `~/.cache/posterlite/backbones`;
    4. Keras' own download: returns None ("use Keras' ImageNet file") only if it succeeded;
    5. else PosterliteError naming the three ways to get weights.
    """
    arch = _check_arch(arch)
    if explicit is not None:
        return _explicit_weights(arch, explicit, "--backbone-weights")
    env = os.environ.get(ENV_WEIGHTS)
    if env:
        return _explicit_weights(arch, Path(env), ENV_WEIGHTS)
    tflite = find_pretrained_tflite(arch)
    if tflite is not None:
        return cached_import(tflite, arch)
    try:
        _keras_download(arch)
        return None
    except (OSError, http.client.HTTPException, ValueError) as exc:  # see _keras_download
        log.info("Keras ImageNet download failed: %s", exc)
    raise PosterliteError(
        f"no ImageNet weights for {arch}: pass --backbone-weights FILE (.weights.h5 or "
        f".tflite) or set {ENV_WEIGHTS}, put Google's MobileNet .tflite in "
        f"${ENV_PRETRAINED} or ../shared/pretrained, or run once with internet so Keras "
        f"can download its own"
    )
