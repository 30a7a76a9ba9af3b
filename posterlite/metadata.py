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

A model file is untrusted data (a downloaded `.tflite`): reading it never allocates by what
the file claims. The model is memory-mapped, flatbuffer vectors are read up to
MAX_TABLE_ENTRIES, the metadata buffer up to MAX_METADATA_BYTES, the zip's directory is
checked before it is parsed (MAX_ASSOCIATED_FILES entries, MAX_ZIP_DIRECTORY_BYTES) and
each zipped file is read with a bounded read, whatever size its header declares
(MAX_ASSOCIATED_FILE_BYTES each, MAX_ASSOCIATED_TOTAL_BYTES together); the sidecar is read
up to MAX_SIDECAR_BYTES. Text files must be UTF-8, JSON strict (no NaN/Infinity, no
repeated keys, nesting within the parser's recursion limit).

The rules a model's facts obey, on writing (`check_spec`) and reading alike:
- labels: 1..MAX_LABEL_CHARS characters, one line, no surrounding whitespace, unique. A
  label file with posterlite's thresholds.json (or a sidecar) is a genre list and is
  refused when a label repeats; a label file alone comes from another tool (Google's
  ImageNet file names `crane` twice), so a repeated name gets its output index
  (`crane [518]`) instead -- either way no two scores share a key.
- thresholds: a finite number in [0, 1] (not a bool, not a string), exactly one per label.
  A model whose thresholds break this is refused rather than run with 0.5: silently
  replacing tuned thresholds would change its predictions without anyone noticing.
- normalization: finite mean, finite std > 0; the default threshold is a threshold.
Anything else is a one-line `PosterliteError` naming the file and what is wrong.
"""

from __future__ import annotations

import io
import json
import lzma
import math
import mmap
import numbers
import struct
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO

import flatbuffers
import numpy as np
from flatbuffers.table import Table

from posterlite.errors import PosterliteError
from posterlite.fileio import atomic_write_text, json_text
from posterlite.genres import DEFAULT_THRESHOLD, default_scheme
from posterlite.interpreter import (
    TFLITE_IDENTIFIER,
    check_model_file,
    first_line,
    load_interpreter,
)
from posterlite.preprocess import NORM_MEAN, NORM_STD
from posterlite.safetext import display

METADATA_NAME = "TFLITE_METADATA"
METADATA_IDENTIFIER = b"M001"
# Every field used here exists since metadata schema 1.0.0.
MIN_PARSER_VERSION = "1.0.0"
LABELS_FILE = "labels.txt"
THRESHOLDS_FILE = "thresholds.json"

# What a model file can make posterlite read. Ours zip two files of a few hundred bytes;
# Google's 1001 ImageNet labels are 21 KB, its metadata flatbuffer 0.7 KB.
# Each zipped file (labels.txt, thresholds.json): room for the 150,528 labels of the
# pixel probe (`apprun.build_pixel_probe`, 1.2 MB), the largest label file posterlite writes.
MAX_ASSOCIATED_FILE_BYTES = 4 << 20
MAX_ASSOCIATED_TOTAL_BYTES = 8 << 20  # all zipped files together
MAX_ASSOCIATED_FILES = 16  # entries in the zip
MAX_ZIP_DIRECTORY_BYTES = 64 << 10  # the zip's central directory
MAX_METADATA_BYTES = 1 << 20  # the TFLITE_METADATA flatbuffer (ours: ~1.1 KB)
MAX_SIDECAR_BYTES = 1 << 20  # <model>.json
MAX_TABLE_ENTRIES = 64  # entries read of a metadata vector (subgraphs, tensors, units, files)
MAX_MODEL_METADATA_ENTRIES = 1024  # Model.metadata entries searched for TFLITE_METADATA
MAX_LABEL_CHARS = 256  # one label (ImageNet's longest: 121)

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
    return json_text(payload)


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

    check_spec(spec)
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
    check_spec(spec)
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
    atomic_write_text(target, json_text(payload, sort_keys=True))
    return target


# ----------------------------------------------------------------------------- rules
def _shown(value: object, limit: int = 40) -> str:
    """A short repr of a hostile value for an error message (the CLI escapes the line)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def check_labels(labels: Sequence[str], where: str, unique: bool = True) -> tuple[str, ...]:
    """`labels` if they obey the label rules (writing and reading alike), else one line.

    A label is text of 1..MAX_LABEL_CHARS characters, one line, no surrounding whitespace
    (labels.txt is read line by line and stripped, so anything else would not survive a
    round trip); with `unique` no label repeats (scores are keyed by label).
    """
    for index, label in enumerate(labels, 1):
        if not isinstance(label, str):
            raise PosterliteError(f"{where}: label {index} is not text ({_shown(label)})")
        if not label.strip():
            raise PosterliteError(f"{where}: label {index} is empty")
        if label != label.strip() or label.splitlines() != [label]:
            raise PosterliteError(
                f"{where}: label {index} has surrounding whitespace or a line break "
                f"({_shown(label)})"
            )
        if len(label) > MAX_LABEL_CHARS:
            raise PosterliteError(
                f"{where}: label {index} is {len(label)} characters long (at most "
                f"{MAX_LABEL_CHARS})"
            )
    if unique:
        first: dict[str, int] = {}
        for index, label in enumerate(labels, 1):
            if label in first:
                raise PosterliteError(
                    f"{where}: label {index} repeats label {first[label]} ({_shown(label)}); "
                    "labels must be unique"
                )
            first[label] = index
    return tuple(labels)


def check_threshold(value: object, where: str) -> float:
    """A threshold: a finite number in [0, 1] (not a bool, not a string), else one line."""
    if (
        isinstance(value, bool | np.bool_)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or not 0.0 <= value <= 1.0
    ):
        raise PosterliteError(f"{where} must be a number in [0, 1], not {_shown(value)}")
    return float(value)


def check_thresholds(values: Sequence[object], count: int, where: str) -> tuple[float, ...]:
    """One valid threshold per label (`count`), else one line."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise PosterliteError(f"{where}: thresholds must be a list, not {_shown(values)}")
    if len(values) != count:
        raise PosterliteError(f"{where}: {len(values)} thresholds for {count} labels")
    return tuple(
        check_threshold(value, f"{where}: threshold {index}")
        for index, value in enumerate(values, 1)
    )


def check_normalization(mean: object, std: object, where: str) -> tuple[float, float]:
    """(mean, std) of the input normalization: finite numbers, std > 0, else one line."""
    for label, value in (("mean", mean), ("std", std)):
        if (
            isinstance(value, bool | np.bool_)
            or not isinstance(value, numbers.Real)
            or not math.isfinite(value)
        ):
            raise PosterliteError(f"{where}: normalization {label} {_shown(value)} is not finite")
    if not std > 0:  # type: ignore[operator]
        raise PosterliteError(f"{where}: normalization std must be > 0, not {std!r}")
    return float(mean), float(std)  # type: ignore[arg-type]


def check_spec(spec: MetadataSpec) -> MetadataSpec:
    """`spec` if `read_metadata` would accept what it writes, else one line."""
    check_labels(spec.genres, "metadata")
    check_thresholds(spec.thresholds, len(spec.genres), "metadata")
    check_threshold(spec.default_threshold, "metadata: default threshold")
    check_normalization(spec.norm_mean, spec.norm_std, "metadata")
    return spec


# ----------------------------------------------------------------------------- reading
def _table_at(buf: bytes, table: Table, slot: int) -> Table | None:
    offset = table.Offset(4 + 2 * slot)
    if not offset:
        return None
    return Table(buf, table.Indirect(table.Pos + offset))


def _string_at(table: Table, slot: int) -> str:
    offset = table.Offset(4 + 2 * slot)
    return _decode(table.String(table.Pos + offset)) if offset else ""


def _string_is(table: Table, slot: int, expected: bytes) -> bool:
    """Whether a string field equals `expected`, without copying a string of any length."""
    offset = table.Offset(4 + 2 * slot)
    if not offset:
        return False
    start = table.Indirect(table.Pos + offset)
    length = table.Get(flatbuffers.number_types.Uint32Flags, start)
    if length != len(expected):
        return False
    return bytes(table.Bytes[start + 4 : start + 4 + length]) == expected


def _scalar_at(table: Table, slot: int, kind: type, default: int | float) -> int | float:
    offset = table.Offset(4 + 2 * slot)
    return table.Get(kind, table.Pos + offset) if offset else default


def _vector_len(table: Table, slot: int) -> int:
    offset = table.Offset(4 + 2 * slot)
    return table.VectorLen(offset) if offset else 0


def _table_in_vector(buf: bytes, table: Table, slot: int, index: int) -> Table:
    offset = table.Offset(4 + 2 * slot)
    return Table(buf, table.Indirect(table.Vector(offset) + 4 * index))


def _tables_at(buf: bytes, table: Table, slot: int) -> list[Table]:
    """The first MAX_TABLE_ENTRIES tables of a vector (a length field is not a promise)."""
    count = min(_vector_len(table, slot), MAX_TABLE_ENTRIES)
    return [_table_in_vector(buf, table, slot, index) for index in range(count)]


def _first_float(table: Table, slot: int) -> float | None:
    offset = table.Offset(4 + 2 * slot)
    if not offset or not table.VectorLen(offset):
        return None
    return float(table.Get(flatbuffers.number_types.Float32Flags, table.Vector(offset)))


def _root(buf: bytes) -> Table:
    return Table(buf, flatbuffers.encode.Get(flatbuffers.packer.uoffset, buf, 0))


def metadata_buffer(model_bytes: bytes | mmap.mmap) -> bytes | None:
    """The raw TFLITE_METADATA flatbuffer of a model, or None when it has none.

    Reads only what it needs from `model_bytes` (bytes or a read-only mmap of the file):
    the metadata entries' names are compared in place, the buffer copied only when it is
    within MAX_METADATA_BYTES.
    """
    if len(model_bytes) < 8 or model_bytes[4:8] != TFLITE_IDENTIFIER:
        raise PosterliteError("not a TFLite model (no TFL3 identifier)")
    model = _root(model_bytes)
    entries = _vector_len(model, 6)  # Model.metadata
    for position in range(min(entries, MAX_MODEL_METADATA_ENTRIES)):
        entry = _table_in_vector(model_bytes, model, 6, position)
        if not _string_is(entry, 0, METADATA_NAME.encode()):
            continue
        index = int(_scalar_at(entry, 1, flatbuffers.number_types.Uint32Flags, 0))
        if index >= _vector_len(model, 4):  # Model.buffers
            return None
        buffer = _table_in_vector(model_bytes, model, 4, index)
        data_slot = buffer.Offset(4)  # Buffer.data
        if data_slot:
            start, size = buffer.Vector(data_slot), buffer.VectorLen(data_slot)
        else:
            start = int(_scalar_at(buffer, 1, flatbuffers.number_types.Uint64Flags, 0))
            size = int(_scalar_at(buffer, 2, flatbuffers.number_types.Uint64Flags, 0))
            if start <= 1:
                return None
        if size > MAX_METADATA_BYTES:
            raise PosterliteError(
                f"TFLITE_METADATA is {size} bytes, more than the {MAX_METADATA_BYTES} read"
            )
        return bytes(model_bytes[start : start + size])
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
                    norm_mean, norm_std = _first_float(options, 0), _first_float(options, 1)
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


# The end-of-central-directory record of a zip, and the zip64 locator that may precede it.
_EOCD_SIGNATURE = b"PK\x05\x06"
_EOCD_BYTES = 22
_ZIP64_LOCATOR_SIGNATURE = b"PK\x06\x07"
_ZIP64_LOCATOR_BYTES = 20
_MAX_ZIP_COMMENT = 0xFFFF
# What zipfile and its decompressors raise on a damaged, encrypted or exotic entry.
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    NotImplementedError,
    RuntimeError,
    EOFError,
    OSError,
    ValueError,
    struct.error,
    zlib.error,
    lzma.LZMAError,
)


def _zip_directory_checked(stream: BinaryIO) -> bool:
    """Whether `stream` ends in a zip; one line if its directory is beyond the limits.

    Looks for the end record the way `zipfile` does (at the very end, else the last one in
    the 64 KiB a comment may take) and checks its entry count and directory size before
    `zipfile` parses the directory, so a file cannot make it build millions of entries.
    """
    stream.seek(0, io.SEEK_END)
    size = stream.tell()
    start = max(0, size - _EOCD_BYTES - _MAX_ZIP_COMMENT - _ZIP64_LOCATOR_BYTES)
    stream.seek(start)
    tail = stream.read(size - start)
    at = len(tail) - _EOCD_BYTES
    if at < 0 or tail[at : at + 4] != _EOCD_SIGNATURE or tail[-2:] != b"\0\0":
        at = tail.rfind(_EOCD_SIGNATURE)
        if at < 0 or len(tail) - at < _EOCD_BYTES:
            return False
    entries, directory_bytes = struct.unpack_from("<HI", tail, at + 10)
    if at >= _ZIP64_LOCATOR_BYTES and tail[at - 20 : at - 16] == _ZIP64_LOCATOR_SIGNATURE:
        raise PosterliteError("associated files: zip64 archive (not written by any TFLite tool)")
    if entries > MAX_ASSOCIATED_FILES:
        raise PosterliteError(
            f"associated files: {entries} zip entries (at most {MAX_ASSOCIATED_FILES})"
        )
    if directory_bytes > MAX_ZIP_DIRECTORY_BYTES:
        raise PosterliteError(
            f"associated files: zip directory of {directory_bytes} bytes "
            f"(at most {MAX_ZIP_DIRECTORY_BYTES})"
        )
    return True


def _zip_entries(stream: BinaryIO) -> dict[str, bytes]:
    """The files zipped onto the end of a model, each read with a bounded read.

    No entry is trusted to be the size its header declares: at most one byte more than
    the room left (MAX_ASSOCIATED_FILE_BYTES each, MAX_ASSOCIATED_TOTAL_BYTES together) is
    ever decompressed, so a small file that inflates to gigabytes costs kilobytes.
    """
    if not _zip_directory_checked(stream):
        return {}
    files: dict[str, bytes] = {}
    total = 0
    try:
        with zipfile.ZipFile(stream) as archive:
            entries = archive.infolist()
            if len(entries) > MAX_ASSOCIATED_FILES:
                raise PosterliteError(
                    f"associated files: {len(entries)} zip entries (at most {MAX_ASSOCIATED_FILES})"
                )
            for entry in entries:
                name = entry.filename
                if name in files:
                    raise PosterliteError(f"associated files: {_shown(name)} is zipped twice")
                room = min(MAX_ASSOCIATED_FILE_BYTES, MAX_ASSOCIATED_TOTAL_BYTES - total)
                with archive.open(entry) as member:
                    data = member.read(room + 1)
                if len(data) > room:
                    limit = (
                        f"{MAX_ASSOCIATED_FILE_BYTES} bytes"
                        if room == MAX_ASSOCIATED_FILE_BYTES
                        else f"{MAX_ASSOCIATED_TOTAL_BYTES} bytes for all files together"
                    )
                    raise PosterliteError(
                        f"associated file {_shown(name)} is larger than the limit ({limit})"
                    )
                total += len(data)
                files[name] = data
    except _ZIP_ERRORS as exc:
        raise PosterliteError(
            f"associated files: unreadable zip ({type(exc).__name__}: {first_line(exc)})"
        ) from exc
    return files


def associated_files(model_bytes: bytes) -> dict[str, bytes]:
    """Files zipped onto the end of the model (empty when there are none), size-capped."""
    return _zip_entries(io.BytesIO(model_bytes))


def _tensor_infos(path: Path) -> tuple[TensorInfo | None, TensorInfo | None]:
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


def _utf8(data: bytes, where: str) -> str:
    """UTF-8 text (a leading BOM allowed), else one line naming the first bad byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PosterliteError(
            f"{where}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from exc


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"key {_shown(key)} appears twice")
        result[key] = value
    return result


def strict_json(data: bytes, where: str) -> object:
    """Strict JSON from a file's bytes: UTF-8, no NaN/Infinity, no repeated keys, not nested
    beyond what the parser's recursion allows; anything else is one line."""
    text = _utf8(data, where)
    try:
        return json.loads(text, parse_constant=_refuse_constant, object_pairs_hook=_unique_keys)
    except RecursionError as exc:
        raise PosterliteError(f"{where}: JSON nested too deeply") from exc
    except ValueError as exc:  # JSONDecodeError, refused constants, too many digits
        raise PosterliteError(f"{where}: not valid JSON ({first_line(exc)})") from exc


def _label_lines(data: bytes, where: str) -> list[str]:
    """The labels of a label file: one per line, stripped; blank lines only at the end."""
    lines = [line.strip() for line in _utf8(data, where).split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise PosterliteError(f"{where}: no labels")
    return lines


def _numbered_repeats(labels: tuple[str, ...], where: str) -> tuple[str, ...]:
    """Repeated names made unique by their output index: `crane`, ..., `crane [518]`."""
    seen: set[str] = set()
    named = []
    for index, label in enumerate(labels):
        named.append(f"{label} [{index}]" if label in seen else label)
        seen.add(label)
    if len(set(named)) != len(named):  # a file naming both `crane` twice and `crane [1]`
        check_labels(named, where)
    return tuple(named)


@dataclass(frozen=True)
class _Labelling:
    """What one source (embedded files or the sidecar) says about the outputs."""

    genres: tuple[str, ...]
    thresholds: tuple[float, ...] | None  # None: the source tunes none (default everywhere)


def _embedded_labelling(packed: dict[str, bytes], label_file: str, where: str) -> _Labelling | None:
    """Labels (+ tuned thresholds) from the zipped files, None when there is no label file.

    With posterlite's thresholds.json beside it the label file is a genre list: its labels
    must obey `check_labels` and the thresholds must be one valid value per label. A label
    file alone comes from another tool (Google's ImageNet file names `crane` twice): its
    repeated names get their output index so no score hides another.
    """
    if label_file not in packed:
        return None
    labels = _label_lines(packed[label_file], f"{where}: {label_file}")
    if THRESHOLDS_FILE not in packed:
        labels = check_labels(labels, f"{where}: {label_file}", unique=False)
        return _Labelling(_numbered_repeats(labels, f"{where}: {label_file}"), None)
    genres = check_labels(labels, f"{where}: {label_file}")
    tuned = strict_json(packed[THRESHOLDS_FILE], f"{where}: {THRESHOLDS_FILE}")
    if not isinstance(tuned, dict) or "thresholds" not in tuned:
        raise PosterliteError(f'{where}: {THRESHOLDS_FILE} holds no "thresholds" list')
    if "genres" in tuned and tuned["genres"] != list(genres):
        raise PosterliteError(f"{where}: {THRESHOLDS_FILE} names other genres than {label_file}")
    thresholds = check_thresholds(tuned["thresholds"], len(genres), f"{where}: {THRESHOLDS_FILE}")
    return _Labelling(genres, thresholds)


def _read_capped(path: Path, limit: int) -> bytes:
    """At most `limit` bytes of a file; one line when it holds more or cannot be read."""
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise PosterliteError(f"{path}: cannot read ({first_line(exc)})") from exc
    if len(data) > limit:
        raise PosterliteError(f"{path}: larger than {limit} bytes")
    return data


def _sidecar_text(value: object, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise PosterliteError(f"{where} must be text, not {_shown(value)}")
    return str(value)


@dataclass(frozen=True)
class _Sidecar:
    labelling: _Labelling
    name: str | None
    version: str | None
    description: str | None
    norm: tuple[float, float] | None
    default_threshold: float | None


def _read_sidecar(path: Path) -> _Sidecar | None:
    """`<model>.json`, when it holds a genre list; None when absent or not a sidecar.

    Read like the embedded files (capped, strict JSON, the same label and threshold
    rules): a sidecar that is there but broken is one line, not a silent fallback.
    """
    target = sidecar_path(path)
    if not target.is_file():
        return None
    data = strict_json(_read_capped(target, MAX_SIDECAR_BYTES), str(target))
    if not isinstance(data, dict) or not data.get("genres"):
        return None
    where = str(target)
    raw_genres = data["genres"]
    if not isinstance(raw_genres, list):
        raise PosterliteError(f'{where}: "genres" must be a list, not {_shown(raw_genres)}')
    genres = check_labels(raw_genres, where)
    thresholds = None
    if data.get("thresholds") is not None:
        thresholds = check_thresholds(data["thresholds"], len(genres), where)
    norm = data.get("normalization")
    if norm is not None:
        if not isinstance(norm, dict):
            raise PosterliteError(f'{where}: "normalization" must be an object')
        norm = check_normalization(norm.get("mean", NORM_MEAN), norm.get("std", NORM_STD), where)
    default = data.get("default_threshold")
    texts = {
        key: _sidecar_text(data[key], f"{where}: {key}") if data.get(key) else None
        for key in ("name", "version", "description")
    }
    return _Sidecar(
        labelling=_Labelling(genres, thresholds),
        norm=norm,
        default_threshold=None
        if default is None
        else check_threshold(default, f"{where}: default threshold"),
        **texts,
    )


# What the pure-Python flatbuffer reader raises on offsets past the end of the buffer.
_FLATBUFFER_ERRORS = (struct.error, IndexError, ValueError, OverflowError, UnicodeDecodeError)


def _embedded_metadata(path: Path) -> tuple[EmbeddedMetadata | None, int]:
    """The parsed TFLITE_METADATA of a model file (None: none) and the file's size.

    The file is mapped, not read: only the pages the flatbuffer walk touches are loaded,
    whatever the file's size.
    """
    try:
        with path.open("rb") as handle:
            mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError) as exc:  # ValueError: an empty file
        raise PosterliteError(f"{path}: cannot read ({first_line(exc)})") from exc
    with mapped:
        try:
            raw = metadata_buffer(mapped)
            return (parse_metadata_buffer(raw) if raw is not None else None), len(mapped)
        except _FLATBUFFER_ERRORS as exc:
            raise _corrupt(path, exc) from exc


def _corrupt(path: Path, exc: BaseException) -> PosterliteError:
    # Offsets past the end of the file: truncated, or not written by a TFLite writer.
    return PosterliteError(
        f"{path}: not a usable TFLite model (corrupt or truncated flatbuffer: {type(exc).__name__})"
    )


def read_metadata(path: Path, with_tensors: bool = True, n_outputs: int | None = None) -> ModelInfo:
    """Labels, thresholds, normalization, name and version of a `.tflite`.

    Source order: the embedded TFLite Metadata, then the JSON sidecar, then the default
    genre scheme with threshold 0.5 everywhere. Runtime-only (no TensorFlow). The labels
    are checked against the model's output count: read from the tensors (`with_tensors`)
    or given by a caller that already holds an interpreter (`n_outputs`). Everything read
    obeys the limits and rules of the module docstring; a file that breaks one is refused
    with a one-line `PosterliteError`.
    """
    path = check_model_file(Path(path))
    # The interpreter verifies the whole flatbuffer: a truncated file stops here, in one line.
    input_info, output_info = _tensor_infos(path) if with_tensors else (None, None)
    embedded, size = _embedded_metadata(path)
    if n_outputs is None and output_info and output_info.shape:
        n_outputs = output_info.shape[-1]

    name, version, description, parser = path.stem, "", "", ""
    mean, std, default_threshold = NORM_MEAN, NORM_STD, DEFAULT_THRESHOLD
    labelling: _Labelling | None = None
    files: tuple[str, ...] = ()
    source = "default"
    if embedded is not None:
        with path.open("rb") as handle:
            try:
                packed = _zip_entries(handle)
            except PosterliteError as exc:
                raise PosterliteError(f"{path}: {exc}") from exc
        files = tuple(packed)
        name, version, description = embedded.name or name, embedded.version, embedded.description
        parser = embedded.min_parser_version
        if embedded.norm_mean is not None or embedded.norm_std is not None:
            mean, std = check_normalization(
                mean if embedded.norm_mean is None else embedded.norm_mean,
                std if embedded.norm_std is None else embedded.norm_std,
                f"{path}: metadata",
            )
        if embedded.default_threshold is not None:
            default_threshold = check_threshold(
                embedded.default_threshold, f"{path}: metadata: default threshold"
            )
        # Any model's labels file works (Google's ship `imagenet_labels.txt`), ours is
        # labels.txt.
        labelling = _embedded_labelling(packed, embedded.label_file or LABELS_FILE, str(path))
        if labelling is not None:
            source = "metadata"
    if labelling is None:
        sidecar = _read_sidecar(path)
        if sidecar is not None:
            labelling, source = sidecar.labelling, "sidecar"
            name = sidecar.name or name
            version = sidecar.version or version
            description = sidecar.description or description
            mean, std = sidecar.norm or (mean, std)
            if sidecar.default_threshold is not None:
                default_threshold = sidecar.default_threshold
    genres = labelling.genres if labelling is not None else ()
    if genres and n_outputs is not None and len(genres) != n_outputs:
        # Renaming the outputs would hand an app scores under the wrong genre names.
        raise PosterliteError(
            f"{path}: the model has {n_outputs} outputs but its {source} names "
            f"{len(genres)} labels ({', '.join(genres[:8])}{', ...' if len(genres) > 8 else ''})"
        )
    thresholds = labelling.thresholds if labelling is not None else None
    if not genres:
        scheme = default_scheme()
        if n_outputs is None or scheme.size == n_outputs:
            genres = scheme.names
        else:
            # Not a genre model (e.g. an ImageNet classifier): index names keep it usable.
            genres = tuple(f"class_{index}" for index in range(n_outputs))
        thresholds, source = None, "default"
    return ModelInfo(
        path=path,
        size_bytes=size,
        name=name,
        version=version,
        description=description,
        genres=genres,
        thresholds=thresholds or tuple(default_threshold for _ in genres),
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
    """Human-readable `posterlite info` output; every line `display`-escaped."""

    def tensor(label: str, t: TensorInfo | None) -> str:
        if t is None:
            return f"{label}: -"
        quant = (
            f", quantization scale={t.quantization.scale:.8g} zero_point={t.quantization.zero_point}"
            if t.quantization.quantized
            else ""
        )
        return f"{label}: {t.name} {list(t.shape)} {t.dtype}{quant}"

    genres = [display(g) for g in info.genres]
    width = max((len(g) for g in genres), default=0)
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
        *(f"  {g:<{width}}  {t:.3f}" for g, t in zip(genres, info.thresholds, strict=True)),
    ]
    return "".join(display(line) + "\n" for line in lines)
