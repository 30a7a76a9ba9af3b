"""Reading a published TFLite MobileNet: every CONV_2D / DEPTHWISE_CONV_2D /
FULLY_CONNECTED op in execution order, its constant weights and bias dequantized with their
own scales and zero points (per-tensor or per-channel along the tensor's
`quantized_dimension`; int32 biases too), strides, padding and fused activation.

The flatbuffer is read through `posterlite.tflite_file` (identifier, LiteRT's schema).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from posterlite.errors import PosterliteError
from posterlite.tflite_file import check_tflite_bytes, model_root
from posterlite.tflite_file import schema as tflite_schema

CONV_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


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
    """A TFLite MobileNet as `read_tflite` sees it: its conv ops and its input tensor."""

    layers: tuple[TFLiteLayer, ...]
    input_dtype: str
    input_scale: float
    input_zero_point: int
    input_shape: tuple[int, ...]


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
    """Parse a .tflite file: conv-like ops in execution order with dequantized constants.
    Raises PosterliteError for an unreadable file, no TFL3 identifier or a corrupt
    flatbuffer."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PosterliteError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    check_tflite_bytes(data, str(path))
    try:
        return _read_model(model_root(data), tflite_schema())
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
        if name not in CONV_OPS:
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
