"""What travels inside a `.tflite`: labels, normalization, thresholds, name and version.

Written in the TFLite Metadata format that Android's tooling reads (tflite-support's
`metadata_schema.fbs`, file identifier `M001`): a `ModelMetadata` flatbuffer stored in a
model buffer referenced by the model's `metadata` entry named `TFLITE_METADATA`, with the
associated files (`labels.txt`, `thresholds.json`) zipped, uncompressed, onto the end of
the model file -- exactly the layout tflite-support's `MetadataPopulator` produces, so
`MetadataExtractor` (Java), `MetadataDisplayer` (Python) and the Task Library read it.

tflite-support itself cannot be installed next to TensorFlow 2.21 (it pins protobuf 3.20),
so the metadata flatbuffer is built here with the `flatbuffers` package, field slots in
schema order (only fields up to schema 1.1.0 are used; later versions append fields, so the
slots stay valid). Reading needs only `flatbuffers` + the standard library: `read_metadata`
runs on the runtime-only install. A JSON sidecar (`<model>.json`) carries the same facts for
tools that do not parse flatbuffers.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import flatbuffers
import numpy as np
from flatbuffers.table import Table

from posterlite.errors import PosterliteError
from posterlite.fileio import atomic_write_text
from posterlite.genres import DEFAULT_THRESHOLD, default_scheme
from posterlite.interpreter import TFLITE_IDENTIFIER
from posterlite.preprocess import NORM_MEAN, NORM_STD

METADATA_NAME = "TFLITE_METADATA"
METADATA_IDENTIFIER = b"M001"
# Every field used here exists since metadata schema 1.0.0.
MIN_PARSER_VERSION = "1.0.0"
LABELS_FILE = "labels.txt"
THRESHOLDS_FILE = "thresholds.json"

# Enum values of metadata_schema.fbs.
_FILE_TYPE_UNKNOWN = 0
_FILE_TYPE_TENSOR_AXIS_LABELS = 2
_COLOR_SPACE_RGB = 1
_CONTENT_FEATURE = 1  # ContentProperties union: FeatureProperties
_CONTENT_IMAGE = 2  # ContentProperties union: ImageProperties
_UNIT_NORMALIZATION = 1  # ProcessUnitOptions union: NormalizationOptions
_UNIT_SCORE_THRESHOLDING = 3  # ProcessUnitOptions union: ScoreThresholdingOptions


@dataclass(frozen=True)
class Quantization:
    """Affine quantization of a tensor: real = scale * (q - zero_point); scale 0 = none."""

    scale: float = 0.0
    zero_point: int = 0

    @property
    def quantized(self) -> bool:
        return self.scale != 0.0


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    dtype: str
    quantization: Quantization = Quantization()


@dataclass(frozen=True)
class MetadataSpec:
    """What `embed_metadata` writes into a model."""

    name: str
    version: str
    genres: tuple[str, ...]
    thresholds: tuple[float, ...]
    input_size: int
    default_threshold: float = DEFAULT_THRESHOLD
    norm_mean: float = NORM_MEAN
    norm_std: float = NORM_STD
    description: str = ""
    author: str = "posterlite"
    license: str = "Apache-2.0"
    input_quantization: Quantization = Quantization()
    output_quantization: Quantization = Quantization()
    extra: dict = field(default_factory=dict)  # sidecar-only facts (format, source, ...)


@dataclass(frozen=True)
class ModelInfo:
    """Everything `posterlite info` shows about a `.tflite`."""

    path: Path
    size_bytes: int
    name: str
    version: str
    description: str
    genres: tuple[str, ...]
    thresholds: tuple[float, ...]
    default_threshold: float
    norm_mean: float
    norm_std: float
    input: TensorInfo | None
    output: TensorInfo | None
    source: str  # where labels came from: "metadata" | "sidecar" | "default"
    associated_files: tuple[str, ...] = ()
    min_parser_version: str = ""

    def to_dict(self) -> dict:
        data = asdict(self)
        data["path"] = str(self.path)
        return data


# ----------------------------------------------------------------------------- writing
def _strings(builder: flatbuffers.Builder, values: Sequence[str]) -> int:
    offsets = [builder.CreateString(v) for v in values]
    builder.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        builder.PrependUOffsetTRelative(offset)
    return builder.EndVector()


def _tables(builder: flatbuffers.Builder, offsets: Sequence[int]) -> int:
    builder.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        builder.PrependUOffsetTRelative(offset)
    return builder.EndVector()


def _floats(builder: flatbuffers.Builder, values: Sequence[float]) -> int:
    builder.StartVector(4, len(values), 4)
    for value in reversed(values):
        builder.PrependFloat32(float(value))
    return builder.EndVector()


def _associated_file(
    builder: flatbuffers.Builder, name: str, description: str, file_type: int
) -> int:
    name_off, desc_off = builder.CreateString(name), builder.CreateString(description)
    builder.StartObject(4)  # name, description, type, locale
    builder.PrependUOffsetTRelativeSlot(0, name_off, 0)
    builder.PrependUOffsetTRelativeSlot(1, desc_off, 0)
    builder.PrependInt8Slot(2, file_type, 0)
    return builder.EndObject()


def _stats(builder: flatbuffers.Builder, low: float, high: float) -> int:
    max_off, min_off = _floats(builder, [high]), _floats(builder, [low])
    builder.StartObject(2)  # max, min
    builder.PrependUOffsetTRelativeSlot(0, max_off, 0)
    builder.PrependUOffsetTRelativeSlot(1, min_off, 0)
    return builder.EndObject()


def _content(builder: flatbuffers.Builder, kind: int, properties: int) -> int:
    builder.StartObject(3)  # content_properties_type, content_properties, range
    builder.PrependUint8Slot(0, kind, 0)
    builder.PrependUOffsetTRelativeSlot(1, properties, 0)
    return builder.EndObject()


def _process_unit(builder: flatbuffers.Builder, kind: int, options: int) -> int:
    builder.StartObject(2)  # options_type, options
    builder.PrependUint8Slot(0, kind, 0)
    builder.PrependUOffsetTRelativeSlot(1, options, 0)
    return builder.EndObject()


def _tensor(
    builder: flatbuffers.Builder,
    name: str,
    description: str,
    content: int,
    process_units: Sequence[int],
    stats: int,
    files: Sequence[int] = (),
) -> int:
    name_off, desc_off = builder.CreateString(name), builder.CreateString(description)
    units_off = _tables(builder, process_units) if process_units else 0
    files_off = _tables(builder, files) if files else 0
    builder.StartObject(7)  # name, description, dimension_names, content, process_units,
    builder.PrependUOffsetTRelativeSlot(0, name_off, 0)  # stats, associated_files
    builder.PrependUOffsetTRelativeSlot(1, desc_off, 0)
    builder.PrependUOffsetTRelativeSlot(3, content, 0)
    if units_off:
        builder.PrependUOffsetTRelativeSlot(4, units_off, 0)
    builder.PrependUOffsetTRelativeSlot(5, stats, 0)
    if files_off:
        builder.PrependUOffsetTRelativeSlot(6, files_off, 0)
    return builder.EndObject()


def _quant_text(quant: Quantization) -> str:
    if not quant.quantized:
        return "float32"
    return f"quantized: real = {quant.scale:.8g} * (q - {quant.zero_point})"


def build_metadata_buffer(spec: MetadataSpec) -> bytes:
    """The `ModelMetadata` flatbuffer (identifier M001) for `spec`."""
    builder = flatbuffers.Builder(1024)

    # Input: an RGB image, normalized (x - mean) / std; stats give the raw pixel range.
    builder.StartObject(2)  # ImageSize: width, height
    builder.PrependUint32Slot(0, spec.input_size, 0)
    builder.PrependUint32Slot(1, spec.input_size, 0)
    size = builder.EndObject()
    builder.StartObject(2)  # ImageProperties: color_space, default_size
    builder.PrependInt8Slot(0, _COLOR_SPACE_RGB, 0)
    builder.PrependUOffsetTRelativeSlot(1, size, 0)
    image = builder.EndObject()
    input_content = _content(builder, _CONTENT_IMAGE, image)
    mean_off = _floats(builder, [spec.norm_mean])
    std_off = _floats(builder, [spec.norm_std])
    builder.StartObject(2)  # NormalizationOptions: mean, std
    builder.PrependUOffsetTRelativeSlot(0, mean_off, 0)
    builder.PrependUOffsetTRelativeSlot(1, std_off, 0)
    normalization = builder.EndObject()
    input_units = [_process_unit(builder, _UNIT_NORMALIZATION, normalization)]
    input_tensor = _tensor(
        builder,
        "image",
        f"Poster, RGB, stretched to {spec.input_size}x{spec.input_size} (bilinear, aspect "
        f"not kept), (pixel - {spec.norm_mean:g}) / {spec.norm_std:g}; input tensor "
        f"{_quant_text(spec.input_quantization)}.",
        input_content,
        input_units,
        _stats(builder, 0.0, 255.0),
    )

    # Output: one sigmoid probability per genre, labelled by labels.txt.
    builder.StartObject(0)  # FeatureProperties
    feature = builder.EndObject()
    output_content = _content(builder, _CONTENT_FEATURE, feature)
    builder.StartObject(1)  # ScoreThresholdingOptions: global_score_threshold
    builder.PrependFloat32Slot(0, spec.default_threshold, 0.0)
    thresholding = builder.EndObject()
    output_units = [_process_unit(builder, _UNIT_SCORE_THRESHOLDING, thresholding)]
    output_files = [
        _associated_file(
            builder,
            LABELS_FILE,
            "Genre labels, one per output index.",
            _FILE_TYPE_TENSOR_AXIS_LABELS,
        ),
        _associated_file(
            builder,
            THRESHOLDS_FILE,
            "Per-genre decision thresholds tuned on validation (JSON).",
            _FILE_TYPE_UNKNOWN,
        ),
    ]
    output_tensor = _tensor(
        builder,
        "probability",
        f"Multi-label genre probabilities (sigmoid), one per genre; output tensor "
        f"{_quant_text(spec.output_quantization)}.",
        output_content,
        output_units,
        _stats(builder, 0.0, 1.0),
        output_files,
    )

    inputs_off = _tables(builder, [input_tensor])
    outputs_off = _tables(builder, [output_tensor])
    builder.StartObject(7)  # SubGraphMetadata: ... input_tensor_metadata(2), output(3)
    builder.PrependUOffsetTRelativeSlot(2, inputs_off, 0)
    builder.PrependUOffsetTRelativeSlot(3, outputs_off, 0)
    subgraph = builder.EndObject()

    name_off = builder.CreateString(spec.name)
    desc_off = builder.CreateString(
        spec.description
        or f"Multi-label film genre classifier from posters ({', '.join(spec.genres)})."
    )
    version_off = builder.CreateString(spec.version)
    subgraphs_off = _tables(builder, [subgraph])
    author_off = builder.CreateString(spec.author)
    license_off = builder.CreateString(spec.license)
    parser_off = builder.CreateString(MIN_PARSER_VERSION)
    builder.StartObject(8)  # ModelMetadata
    builder.PrependUOffsetTRelativeSlot(0, name_off, 0)
    builder.PrependUOffsetTRelativeSlot(1, desc_off, 0)
    builder.PrependUOffsetTRelativeSlot(2, version_off, 0)
    builder.PrependUOffsetTRelativeSlot(3, subgraphs_off, 0)
    builder.PrependUOffsetTRelativeSlot(4, author_off, 0)
    builder.PrependUOffsetTRelativeSlot(5, license_off, 0)
    builder.PrependUOffsetTRelativeSlot(7, parser_off, 0)
    root = builder.EndObject()
    builder.Finish(root, file_identifier=METADATA_IDENTIFIER)
    return bytes(builder.Output())


def _thresholds_json(spec: MetadataSpec) -> str:
    payload = {
        "genres": list(spec.genres),
        "thresholds": [float(t) for t in spec.thresholds],
        "default_threshold": spec.default_threshold,
        "normalization": {"mean": spec.norm_mean, "std": spec.norm_std},
        "input_quantization": asdict(spec.input_quantization),
        "output_quantization": asdict(spec.output_quantization),
    }
    return json.dumps(payload, indent=2) + "\n"


def _pack_aligned(model: object) -> bytes:
    """Serialize a `ModelT`, keeping every weight buffer 16-byte aligned as the converter does.

    The generated `BufferT.Pack` aligns data only to its element size (1 byte); kernels and
    XNNPACK read weights in place from the mmapped file, so keep the converter's alignment.
    """
    from ai_edge_litert import schema_py_generated as schema

    class _AlignedBuffer(schema.BufferT):
        def Pack(self, builder: flatbuffers.Builder) -> int:  # noqa: N802 (generated API)
            data_off = None
            if self.data is not None and len(self.data):
                raw = np.ascontiguousarray(self.data, dtype=np.uint8).tobytes()
                builder.StartVector(1, len(raw), 16)
                builder.head = builder.head - len(raw)
                builder.Bytes[builder.head : builder.head + len(raw)] = raw
                data_off = builder.EndVector()
            schema.BufferStart(builder)
            if data_off is not None:
                schema.BufferAddData(builder, data_off)
            schema.BufferAddOffset(builder, self.offset)
            schema.BufferAddSize(builder, self.size)
            return schema.BufferEnd(builder)

    aligned = []
    for buffer in model.buffers:  # type: ignore[attr-defined]
        copy = _AlignedBuffer()
        copy.data, copy.offset, copy.size = buffer.data, buffer.offset, buffer.size
        aligned.append(copy)
    model.buffers = aligned  # type: ignore[attr-defined]
    builder = flatbuffers.Builder(1 << 20)
    builder.Finish(model.Pack(builder), file_identifier=TFLITE_IDENTIFIER)  # type: ignore[attr-defined]
    return bytes(builder.Output())


def embed_metadata(model_bytes: bytes, spec: MetadataSpec) -> bytes:
    """`model_bytes` with `spec` as TFLite Metadata plus the zipped associated files.

    Any previous TFLITE_METADATA entry is replaced (and any previously zipped files are
    dropped with it), so embedding twice gives the same layout as embedding once.
    """
    from ai_edge_litert import schema_py_generated as schema

    if len(spec.genres) != len(spec.thresholds):
        raise PosterliteError(
            f"metadata: {len(spec.genres)} genres but {len(spec.thresholds)} thresholds"
        )
    if not schema.Model.ModelBufferHasIdentifier(model_bytes, 0):
        raise PosterliteError("metadata: input is not a TFLite flatbuffer")
    model = schema.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
    if any(buffer.offset > 1 for buffer in model.buffers or []):
        # >2 GB models keep weights outside the flatbuffer; never the case for posters.
        raise PosterliteError("metadata: models with external buffers are not supported")
    data = np.frombuffer(build_metadata_buffer(spec), dtype=np.uint8)
    existing = [m for m in (model.metadata or []) if _decode(m.name) == METADATA_NAME]
    if existing:
        # Re-embedding reuses the buffer, so no orphan buffer accumulates.
        model.buffers[existing[0].buffer].data = data
        model.metadata = [
            m for m in model.metadata if m is existing[0] or _decode(m.name) != METADATA_NAME
        ]
    else:
        buffer = schema.BufferT()
        buffer.data = data
        model.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name = METADATA_NAME
        entry.buffer = len(model.buffers) - 1
        model.metadata = [*(model.metadata or []), entry]
    packed = _pack_aligned(model)

    # Associated files: a zip appended to the flatbuffer, stored uncompressed, the way
    # MetadataPopulator writes it (Android's MetadataExtractor reads STORED entries only).
    stream = io.BytesIO(packed)
    stream.seek(0, io.SEEK_END)
    with zipfile.ZipFile(stream, "a", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(LABELS_FILE, "\n".join(spec.genres) + "\n")
        archive.writestr(THRESHOLDS_FILE, _thresholds_json(spec))
    return stream.getvalue()


def _decode(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode("utf-8") if isinstance(value, bytes) else value


def sidecar_path(model_path: Path) -> Path:
    return Path(model_path).with_suffix(".json")


def write_sidecar(model_path: Path, spec: MetadataSpec) -> Path:
    """`<model>.json` beside the model: the same facts as the embedded metadata."""
    payload = {
        "name": spec.name,
        "version": spec.version,
        "description": spec.description,
        "genres": list(spec.genres),
        "thresholds": [float(t) for t in spec.thresholds],
        "default_threshold": spec.default_threshold,
        "normalization": {"mean": spec.norm_mean, "std": spec.norm_std},
        "input_size": spec.input_size,
        "input_quantization": asdict(spec.input_quantization),
        "output_quantization": asdict(spec.output_quantization),
        **spec.extra,
    }
    target = sidecar_path(model_path)
    atomic_write_text(target, json.dumps(payload, indent=2, sort_keys=True) + "\n")
    return target


# ----------------------------------------------------------------------------- reading
def _table_at(buf: bytes, table: Table, slot: int) -> Table | None:
    offset = table.Offset(4 + 2 * slot)
    if not offset:
        return None
    return Table(buf, table.Indirect(table.Pos + offset))


def _string_at(table: Table, slot: int) -> str:
    offset = table.Offset(4 + 2 * slot)
    return _decode(table.String(table.Pos + offset)) if offset else ""


def _scalar_at(table: Table, slot: int, kind: type, default: int | float) -> int | float:
    offset = table.Offset(4 + 2 * slot)
    return table.Get(kind, table.Pos + offset) if offset else default


def _tables_at(buf: bytes, table: Table, slot: int) -> list[Table]:
    offset = table.Offset(4 + 2 * slot)
    if not offset:
        return []
    start = table.Vector(offset)
    return [
        Table(buf, table.Indirect(start + 4 * index)) for index in range(table.VectorLen(offset))
    ]


def _floats_at(table: Table, slot: int) -> list[float]:
    offset = table.Offset(4 + 2 * slot)
    if not offset:
        return []
    start = table.Vector(offset)
    return [
        float(table.Get(flatbuffers.number_types.Float32Flags, start + 4 * index))
        for index in range(table.VectorLen(offset))
    ]


def _root(buf: bytes) -> Table:
    return Table(buf, flatbuffers.encode.Get(flatbuffers.packer.uoffset, buf, 0))


def metadata_buffer(model_bytes: bytes) -> bytes | None:
    """The raw TFLITE_METADATA flatbuffer of a model, or None when it has none."""
    if len(model_bytes) < 8 or model_bytes[4:8] != TFLITE_IDENTIFIER:
        raise PosterliteError("not a TFLite model (no TFL3 identifier)")
    model = _root(model_bytes)
    buffers = _tables_at(model_bytes, model, 4)  # Model.buffers
    for entry in _tables_at(model_bytes, model, 6):  # Model.metadata
        if _string_at(entry, 0) != METADATA_NAME:
            continue
        index = int(_scalar_at(entry, 1, flatbuffers.number_types.Uint32Flags, 0))
        if index >= len(buffers):
            return None
        buffer = buffers[index]
        data_slot = buffer.Offset(4)  # Buffer.data
        if data_slot:
            start = buffer.Vector(data_slot)
            return bytes(model_bytes[start : start + buffer.VectorLen(data_slot)])
        offset = int(_scalar_at(buffer, 1, flatbuffers.number_types.Uint64Flags, 0))
        size = int(_scalar_at(buffer, 2, flatbuffers.number_types.Uint64Flags, 0))
        return bytes(model_bytes[offset : offset + size]) if offset > 1 else None
    return None


@dataclass(frozen=True)
class EmbeddedMetadata:
    """The parts of a `ModelMetadata` posterlite uses."""

    name: str
    description: str
    version: str
    min_parser_version: str
    norm_mean: float | None
    norm_std: float | None
    default_threshold: float | None
    input_size: int | None
    output_files: tuple[str, ...]
    label_file: str | None = None  # the output's first TENSOR_AXIS_LABELS file


def parse_metadata_buffer(buf: bytes) -> EmbeddedMetadata:
    if len(buf) < 8 or buf[4:8] != METADATA_IDENTIFIER:
        raise PosterliteError("TFLITE_METADATA is not a metadata flatbuffer (no M001)")
    root = _root(buf)
    norm_mean = norm_std = threshold = None
    input_size = None
    output_files: list[str] = []
    label_file: str | None = None
    subgraphs = _tables_at(buf, root, 3)
    if subgraphs:
        inputs = _tables_at(buf, subgraphs[0], 2)
        outputs = _tables_at(buf, subgraphs[0], 3)
        if inputs:
            for unit in _tables_at(buf, inputs[0], 4):
                kind = _scalar_at(unit, 0, flatbuffers.number_types.Uint8Flags, 0)
                options = _table_at(buf, unit, 1)
                if kind == _UNIT_NORMALIZATION and options is not None:
                    means, stds = _floats_at(options, 0), _floats_at(options, 1)
                    norm_mean = means[0] if means else None
                    norm_std = stds[0] if stds else None
            content = _table_at(buf, inputs[0], 3)
            if content is not None:
                kind = _scalar_at(content, 0, flatbuffers.number_types.Uint8Flags, 0)
                image = _table_at(buf, content, 1)
                if kind == _CONTENT_IMAGE and image is not None:
                    size = _table_at(buf, image, 1)
                    if size is not None:
                        input_size = int(
                            _scalar_at(size, 0, flatbuffers.number_types.Uint32Flags, 0)
                        )
        if outputs:
            for unit in _tables_at(buf, outputs[0], 4):
                kind = _scalar_at(unit, 0, flatbuffers.number_types.Uint8Flags, 0)
                options = _table_at(buf, unit, 1)
                if kind == _UNIT_SCORE_THRESHOLDING and options is not None:
                    threshold = float(
                        _scalar_at(options, 0, flatbuffers.number_types.Float32Flags, 0.0)
                    )
            files = _tables_at(buf, outputs[0], 6)
            output_files = [_string_at(f, 0) for f in files]
            labels = [
                _string_at(f, 0)
                for f in files
                if _scalar_at(f, 2, flatbuffers.number_types.Int8Flags, 0)
                == _FILE_TYPE_TENSOR_AXIS_LABELS
            ]
            label_file = labels[0] if labels else None
    return EmbeddedMetadata(
        name=_string_at(root, 0),
        description=_string_at(root, 1),
        version=_string_at(root, 2),
        min_parser_version=_string_at(root, 7),
        norm_mean=norm_mean,
        norm_std=norm_std,
        default_threshold=threshold,
        input_size=input_size,
        output_files=tuple(output_files),
        label_file=label_file,
    )


def associated_files(model_bytes: bytes) -> dict[str, bytes]:
    """Files zipped onto the end of the model (empty when there are none)."""
    try:
        with zipfile.ZipFile(io.BytesIO(model_bytes)) as archive:
            return {name: archive.read(name) for name in archive.namelist()}
    except (zipfile.BadZipFile, OSError, ValueError):
        return {}


def _tensor_infos(path: Path) -> tuple[TensorInfo | None, TensorInfo | None]:
    from posterlite.interpreter import load_interpreter

    interpreter = load_interpreter(path)

    def info(detail: dict) -> TensorInfo:
        scale, zero = detail.get("quantization", (0.0, 0))
        return TensorInfo(
            name=str(detail["name"]),
            shape=tuple(int(v) for v in detail["shape"]),
            dtype=np.dtype(detail["dtype"]).name,
            quantization=Quantization(float(scale), int(zero)),
        )

    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    return (info(inputs[0]) if inputs else None, info(outputs[0]) if outputs else None)


def _read_sidecar(path: Path) -> dict | None:
    target = sidecar_path(path)
    if not target.is_file():
        return None
    try:
        data = json.loads(target.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# What the pure-Python flatbuffer reader raises on offsets past the end of the buffer.
_FLATBUFFER_ERRORS = (struct.error, IndexError, ValueError, OverflowError, UnicodeDecodeError)


def read_metadata(path: Path, with_tensors: bool = True, n_outputs: int | None = None) -> ModelInfo:
    """Labels, thresholds, normalization, name and version of a `.tflite`.

    Source order: the embedded TFLite Metadata, then the JSON sidecar, then the default
    genre scheme with threshold 0.5 everywhere. Runtime-only (no TensorFlow). The labels
    are checked against the model's output count: read from the tensors (`with_tensors`)
    or given by a caller that already holds an interpreter (`n_outputs`).
    """
    from posterlite.interpreter import check_model_file

    path = check_model_file(Path(path))
    # The interpreter verifies the whole flatbuffer: a truncated file stops here, in one line.
    input_info, output_info = _tensor_infos(path) if with_tensors else (None, None)
    data = path.read_bytes()
    try:
        raw = metadata_buffer(data)
        embedded = parse_metadata_buffer(raw) if raw is not None else None
    except _FLATBUFFER_ERRORS as exc:
        # Offsets past the end of the file: truncated, or not written by a TFLite writer.
        raise PosterliteError(
            f"{path}: not a usable TFLite model (corrupt or truncated flatbuffer: "
            f"{type(exc).__name__})"
        ) from exc
    if n_outputs is None and output_info and output_info.shape:
        n_outputs = output_info.shape[-1]

    name, version, description, parser = path.stem, "", "", ""
    mean, std, default_threshold = NORM_MEAN, NORM_STD, DEFAULT_THRESHOLD
    genres: tuple[str, ...] = ()
    thresholds: tuple[float, ...] = ()
    files: tuple[str, ...] = ()
    source = "default"
    if embedded is not None:
        packed = associated_files(data)
        files = tuple(packed)
        name, version, description = embedded.name or name, embedded.version, embedded.description
        parser = embedded.min_parser_version
        mean = embedded.norm_mean if embedded.norm_mean is not None else mean
        std = embedded.norm_std if embedded.norm_std is not None else std
        if embedded.default_threshold is not None:
            default_threshold = embedded.default_threshold
        # Any model's labels file works (Google's ship `imagenet_labels.txt`), ours is
        # labels.txt.
        label_file = embedded.label_file or LABELS_FILE
        if label_file in packed:
            text = packed[label_file].decode("utf-8")
            genres = tuple(line.strip() for line in text.splitlines() if line.strip())
            source = "metadata"
        if THRESHOLDS_FILE in packed:
            try:
                tuned = json.loads(packed[THRESHOLDS_FILE].decode("utf-8"))
                thresholds = tuple(float(t) for t in tuned.get("thresholds", ()))
            except (ValueError, AttributeError, TypeError):
                thresholds = ()
    if not genres:
        sidecar = _read_sidecar(path)
        if sidecar and sidecar.get("genres"):
            genres = tuple(str(g) for g in sidecar["genres"])
            thresholds = tuple(float(t) for t in sidecar.get("thresholds", ()))
            name = str(sidecar.get("name") or name)
            version = str(sidecar.get("version") or version)
            description = str(sidecar.get("description") or description)
            norm = sidecar.get("normalization") or {}
            mean, std = float(norm.get("mean", mean)), float(norm.get("std", std))
            default_threshold = float(sidecar.get("default_threshold", default_threshold))
            source = "sidecar"
    if genres and n_outputs is not None and len(genres) != n_outputs:
        # Renaming the outputs would hand an app scores under the wrong genre names.
        raise PosterliteError(
            f"{path}: the model has {n_outputs} outputs but its {source} names "
            f"{len(genres)} labels ({', '.join(genres[:8])}{', ...' if len(genres) > 8 else ''})"
        )
    if not genres:
        scheme = default_scheme()
        if n_outputs is None or scheme.size == n_outputs:
            genres = scheme.names
        else:
            # Not a genre model (e.g. an ImageNet classifier): index names keep it usable.
            genres = tuple(f"class_{index}" for index in range(n_outputs))
        thresholds, source = (), "default"
    if len(thresholds) != len(genres):
        thresholds = tuple(default_threshold for _ in genres)
    return ModelInfo(
        path=path,
        size_bytes=len(data),
        name=name,
        version=version,
        description=description,
        genres=genres,
        thresholds=thresholds,
        default_threshold=default_threshold,
        norm_mean=mean,
        norm_std=std,
        input=input_info,
        output=output_info,
        source=source,
        associated_files=files,
        min_parser_version=parser,
    )


def info_text(info: ModelInfo) -> str:
    """Human-readable `posterlite info` output."""

    def tensor(label: str, t: TensorInfo | None) -> str:
        if t is None:
            return f"{label}: -"
        quant = (
            f", quantization scale={t.quantization.scale:.8g} zero_point={t.quantization.zero_point}"
            if t.quantization.quantized
            else ""
        )
        return f"{label}: {t.name} {list(t.shape)} {t.dtype}{quant}"

    width = max(len(g) for g in info.genres) if info.genres else 0
    lines = [
        f"model: {info.path} ({info.size_bytes / 1e6:.3f} MB)",
        f"name: {info.name}  version: {info.version or '-'}",
        f"labels from: {info.source}"
        + (f" (files: {', '.join(info.associated_files)})" if info.associated_files else ""),
        f"normalization: (pixel - {info.norm_mean:g}) / {info.norm_std:g}",
        tensor("input", info.input),
        tensor("output", info.output),
        f"default threshold: {info.default_threshold:g}",
        "genres (tuned threshold):",
        *(f"  {g:<{width}}  {t:.3f}" for g, t in zip(info.genres, info.thresholds, strict=True)),
    ]
    return "\n".join(lines) + "\n"
