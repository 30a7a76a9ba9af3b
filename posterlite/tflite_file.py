"""The `.tflite` file: the one place posterlite reads, patches and writes TFLite flatbuffers.

Owns the file identifier (`TFL3`) and the first-bytes check every reader runs
(`has_tflite_identifier`); LiteRT's generated schema (`schema()`, imported when first
needed: `ai_edge_litert.schema_py_generated`); the schema's two views of a model, the
accessor over the bytes (`model_root`, read in place) and the object tree
(`unpack_model` / `pack_model`, the packer keeping weight buffers 16-byte aligned as the
converter does); the one in-place patch (`static_batch_model`, for LiteRT.js); and bounded
reads of any flatbuffer through `flatbuffers.table.Table` (`root_table`, `table_at`,
`tables_at`, ...) that never allocate by what a file claims, with which
`named_metadata_buffer` finds a model's metadata buffer in an untrusted file.

Who uses it: `interpreter` (the identifier check), `metadata` (finding and replacing the
metadata buffer; its own schema is read with the bounded readers), `backbones` (reading a
MobileNet's ops and weights), `browser` (the static batch patch), `apprun` (building a
probe model) and `convert_formats.py` (the int8 size breakdown). Imports flatbuffers only;
never TensorFlow.
"""

from __future__ import annotations

import mmap
import struct
from types import ModuleType
from typing import Protocol, cast

import flatbuffers
import numpy as np
from flatbuffers.table import Table

from posterlite.errors import PosterliteError

TFLITE_IDENTIFIER = b"TFL3"
# The smallest valid flatbuffer: root offset (4) + file identifier (4).
MIN_MODEL_BYTES = 8
NOT_TFLITE = "not a TFLite model (no TFL3 identifier)"
# Converted models keep every weight buffer 16-byte aligned (kernels and XNNPACK read
# weights in place from the mapped file).
BUFFER_ALIGNMENT = 16
# What the pure-Python flatbuffer reader raises on offsets past the end of the buffer.
FLATBUFFER_ERRORS: tuple[type[Exception], ...] = (
    struct.error,
    IndexError,
    ValueError,
    OverflowError,
    UnicodeDecodeError,
)
# Field slots of schema.fbs' Model (0 version, 1 operator_codes, 2 subgraphs, 3 description,
# 4 buffers, 5 metadata_buffer, 6 metadata), Metadata (0 name, 1 buffer), Buffer (0 data,
# 1 offset, 2 size) and Tensor (7 shape_signature): the bounded reader's view.
_MODEL_BUFFERS, _MODEL_METADATA = 4, 6
_METADATA_NAME, _METADATA_BUFFER = 0, 1
_BUFFER_DATA, _BUFFER_OFFSET, _BUFFER_SIZE = 0, 1, 2
_TENSOR_SHAPE_SIGNATURE = 7

ModelBytes = bytes | bytearray | mmap.mmap


class BufferTree(Protocol):
    """A `BufferT` of the object tree: its bytes (or, outside the flatbuffer, offset + size)."""

    data: np.ndarray | None
    offset: int
    size: int


class MetadataTree(Protocol):
    """A `MetadataT` of the object tree: a name and the index of the buffer it names."""

    name: bytes | str | None
    buffer: int


class ModelTree(Protocol):
    """The parts of the schema's object-API model (`ModelT`) posterlite reads or sets."""

    buffers: list[BufferTree]
    metadata: list[MetadataTree] | None

    def Pack(self, builder: flatbuffers.Builder) -> int:  # noqa: N802 (generated API)
        """Serialize the model into `builder`; returns the root table's offset."""
        ...


def has_tflite_identifier(head: ModelBytes) -> bool:
    """True when `head` (a model's first bytes, or all of them) carries the TFL3 identifier."""
    return len(head) >= MIN_MODEL_BYTES and bytes(head[4:MIN_MODEL_BYTES]) == TFLITE_IDENTIFIER


def check_tflite_bytes(data: ModelBytes, where: str = "") -> None:
    """Returns None when `data` starts like a TFLite model; raises PosterliteError
    (`<where>: not a TFLite model (no TFL3 identifier)`) otherwise."""
    if not has_tflite_identifier(data):
        raise PosterliteError(f"{where}: {NOT_TFLITE}" if where else NOT_TFLITE)


def schema() -> ModuleType:
    """LiteRT's generated TFLite schema module (`ai_edge_litert.schema_py_generated`).

    Raises PosterliteError when LiteRT is not installed.
    """
    try:
        from ai_edge_litert import schema_py_generated
    except ImportError as exc:
        raise PosterliteError(
            "no TFLite schema: pip install 'posterlite[runtime]' (ai-edge-litert)"
        ) from exc
    return cast(ModuleType, schema_py_generated)


def model_root(data: ModelBytes) -> object:
    """The schema's `Model` accessor over `data`, read in place (no copy); raises
    PosterliteError unless `data` carries the TFL3 identifier. Offsets are not checked:
    reading a field of a corrupt file raises one of FLATBUFFER_ERRORS."""
    check_tflite_bytes(data)
    return cast(object, schema().Model.GetRootAs(data, 0))


def unpack_model(data: ModelBytes) -> ModelTree:
    """The schema's object tree (`ModelT`) of `data`, every table copied out; raises
    PosterliteError unless `data` carries the TFL3 identifier, one of FLATBUFFER_ERRORS
    for a corrupt file."""
    check_tflite_bytes(data)
    return cast(ModelTree, schema().ModelT.InitFromPackedBuf(bytearray(data), 0))


def pack_model(model: ModelTree) -> bytes:
    """The `.tflite` bytes of an object tree (`ModelT`), every weight buffer kept
    BUFFER_ALIGNMENT-aligned as the converter writes it (the generated `BufferT.Pack`
    aligns data only to its element size, one byte). Never raises for a well-formed tree."""
    generated = schema()

    class _AlignedBuffer(generated.BufferT):  # type: ignore[misc,name-defined]
        def Pack(self, builder: flatbuffers.Builder) -> int:  # noqa: N802 (generated API)
            data_off = None
            if self.data is not None and len(self.data):
                raw = np.ascontiguousarray(self.data, dtype=np.uint8).tobytes()
                builder.StartVector(1, len(raw), BUFFER_ALIGNMENT)
                builder.head = builder.head - len(raw)
                builder.Bytes[builder.head : builder.head + len(raw)] = raw
                data_off = builder.EndVector()
            generated.BufferStart(builder)
            if data_off is not None:
                generated.BufferAddData(builder, data_off)
            generated.BufferAddOffset(builder, self.offset)
            generated.BufferAddSize(builder, self.size)
            return cast(int, generated.BufferEnd(builder))

    aligned: list[BufferTree] = []
    for buffer in model.buffers or []:
        copy = _AlignedBuffer()
        copy.data, copy.offset, copy.size = buffer.data, buffer.offset, buffer.size
        aligned.append(copy)
    model.buffers = aligned
    builder = flatbuffers.Builder(1 << 20)
    builder.Finish(model.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
    return bytes(builder.Output())


def static_batch_model(data: bytes) -> bytes:
    """The model with every `-1` (dynamic) dimension of its tensors' shape signatures set to
    the static shape the file already carries (batch 1).

    LiteRT.js compiles a model once for its signature and refuses a [1, S, S, 3] input for
    a [-1, S, S, 3] signature (what Keras conversion writes). Only those int32 slots change,
    in place: weights, ops, metadata and the zipped label files are byte for byte the same,
    so the model computes exactly what the file it came from computes. Raises
    PosterliteError for bytes that are not a TFLite flatbuffer.
    """
    buf = bytearray(data)
    try:
        model = schema().Model.GetRootAsModel(buf, 0)
        for g in range(model.SubgraphsLength()):
            graph = model.Subgraphs(g)
            for t in range(graph.TensorsLength()):
                tensor = graph.Tensors(t)
                if tensor.ShapeSignatureLength() != tensor.ShapeLength():
                    continue
                slot = tensor._tab.Offset(_slot(_TENSOR_SHAPE_SIGNATURE))
                if not slot:
                    continue
                start = tensor._tab.Vector(slot)
                for dim in range(tensor.ShapeSignatureLength()):
                    if tensor.ShapeSignature(dim) == -1 and tensor.Shape(dim) > 0:
                        flatbuffers.encode.Write(
                            flatbuffers.packer.int32, buf, start + 4 * dim, tensor.Shape(dim)
                        )
    except (IndexError, ValueError, TypeError, struct.error) as exc:  # junk bytes
        raise PosterliteError(f"not a TFLite flatbuffer ({exc})") from exc
    return bytes(buf)


# ------------------------------------------------------------------ bounded table reads
def _slot(field: int) -> int:
    """The vtable offset of a table's field number `field`."""
    return 4 + 2 * field


def root_table(buf: ModelBytes) -> Table:
    """The root table of flatbuffer `buf` (its identifier is the caller's to check)."""
    return Table(buf, flatbuffers.encode.Get(flatbuffers.packer.uoffset, buf, 0))


def table_at(buf: ModelBytes, table: Table, field: int) -> Table | None:
    """The sub-table in field `field` of `table`, or None when the field is absent."""
    offset = table.Offset(_slot(field))
    if not offset:
        return None
    return Table(buf, table.Indirect(table.Pos + offset))


def string_at(table: Table, field: int) -> str:
    """The UTF-8 string in field `field` ("" when absent); raises UnicodeDecodeError for
    bytes that are not UTF-8."""
    offset = table.Offset(_slot(field))
    if not offset:
        return ""
    return bytes(table.String(table.Pos + offset)).decode("utf-8")


def string_is(table: Table, field: int, expected: bytes) -> bool:
    """Whether string field `field` equals `expected`, without copying a string of any
    length."""
    offset = table.Offset(_slot(field))
    if not offset:
        return False
    start = table.Indirect(table.Pos + offset)
    length = table.Get(flatbuffers.number_types.Uint32Flags, start)
    if length != len(expected):
        return False
    return bytes(table.Bytes[start + 4 : start + 4 + length]) == expected


def scalar_at(table: Table, field: int, kind: type, default: float) -> float:
    """The scalar of flatbuffers number type `kind` in field `field`, else `default`."""
    offset = table.Offset(_slot(field))
    return cast(float, table.Get(kind, table.Pos + offset)) if offset else default


def vector_len(table: Table, field: int) -> int:
    """The length a vector field declares (0 when absent): a claim, not a promise."""
    offset = table.Offset(_slot(field))
    return int(table.VectorLen(offset)) if offset else 0


def table_in_vector(buf: ModelBytes, table: Table, field: int, index: int) -> Table:
    """Table `index` of the vector of tables in field `field` (the caller bounds `index`)."""
    offset = table.Offset(_slot(field))
    return Table(buf, table.Indirect(table.Vector(offset) + 4 * index))


def tables_at(buf: ModelBytes, table: Table, field: int, limit: int) -> list[Table]:
    """The first `limit` tables of a vector field, however many its length claims."""
    count = min(vector_len(table, field), limit)
    return [table_in_vector(buf, table, field, index) for index in range(count)]


def first_float(table: Table, field: int) -> float | None:
    """The first float32 of a vector field, or None when it is absent or empty."""
    offset = table.Offset(_slot(field))
    if not offset or not table.VectorLen(offset):
        return None
    return float(table.Get(flatbuffers.number_types.Float32Flags, table.Vector(offset)))


def named_metadata_buffer(
    model_bytes: ModelBytes, name: bytes, *, max_entries: int, max_bytes: int
) -> bytes | None:
    """The bytes of the model buffer its `metadata` entry `name` points at, or None when
    no entry of that name (among the first `max_entries`) has data in the file.

    Reads only what it needs from `model_bytes` (bytes or a read-only mmap of the file):
    entry names are compared in place, the buffer copied only when it is within
    `max_bytes`. Raises PosterliteError for a file without the TFL3 identifier or a
    buffer over `max_bytes`; one of FLATBUFFER_ERRORS for offsets past the end.
    """
    check_tflite_bytes(model_bytes)
    model = root_table(model_bytes)
    entries = vector_len(model, _MODEL_METADATA)
    for position in range(min(entries, max_entries)):
        entry = table_in_vector(model_bytes, model, _MODEL_METADATA, position)
        if not string_is(entry, _METADATA_NAME, name):
            continue
        index = int(scalar_at(entry, _METADATA_BUFFER, flatbuffers.number_types.Uint32Flags, 0))
        if index >= vector_len(model, _MODEL_BUFFERS):
            return None
        buffer = table_in_vector(model_bytes, model, _MODEL_BUFFERS, index)
        data_slot = buffer.Offset(_slot(_BUFFER_DATA))
        if data_slot:
            start, size = buffer.Vector(data_slot), buffer.VectorLen(data_slot)
        else:  # a buffer outside the flatbuffer (models over 2 GB): offset + size
            start = int(scalar_at(buffer, _BUFFER_OFFSET, flatbuffers.number_types.Uint64Flags, 0))
            size = int(scalar_at(buffer, _BUFFER_SIZE, flatbuffers.number_types.Uint64Flags, 0))
            if start <= 1:
                return None
        if size > max_bytes:
            raise PosterliteError(
                f"{name.decode(errors='replace')} is {size} bytes, more than the {max_bytes} read"
            )
        return bytes(model_bytes[start : start + size])
    return None
