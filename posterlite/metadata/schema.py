"""The `ModelMetadata` flatbuffer (tflite-support's `metadata_schema.fbs`, identifier `M001`):
built from a `MetadataSpec` and parsed, bounded, into `EmbeddedMetadata`.

tflite-support itself cannot be installed next to TensorFlow 2.21 (it pins protobuf 3.20),
so the flatbuffer is built here with the `flatbuffers` package, field slots in schema order
(only fields up to schema 1.1.0 are used; later versions append fields, so the slots stay
valid), and read with `posterlite.tflite_file`'s bounded table readers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import flatbuffers

from posterlite.errors import PosterliteError
from posterlite.metadata.limits import (
    LABELS_FILE,
    MAX_TABLE_ENTRIES,
    METADATA_IDENTIFIER,
    MIN_PARSER_VERSION,
    THRESHOLDS_FILE,
)
from posterlite.metadata.records import MetadataSpec, Quantization
from posterlite.tflite_file import (
    first_float,
    root_table,
    scalar_at,
    string_at,
    table_at,
    tables_at,
)

# Enum values of metadata_schema.fbs.
_FILE_TYPE_UNKNOWN = 0
_FILE_TYPE_TENSOR_AXIS_LABELS = 2
_COLOR_SPACE_RGB = 1
_CONTENT_FEATURE = 1  # ContentProperties union: FeatureProperties
_CONTENT_IMAGE = 2  # ContentProperties union: ImageProperties
_UNIT_NORMALIZATION = 1  # ProcessUnitOptions union: NormalizationOptions
_UNIT_SCORE_THRESHOLDING = 3  # ProcessUnitOptions union: ScoreThresholdingOptions


# ----------------------------------------------------------------------------- building
def _strings(builder: flatbuffers.Builder, values: Sequence[str]) -> int:
    offsets = [builder.CreateString(v) for v in values]
    builder.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        builder.PrependUOffsetTRelative(offset)
    return int(builder.EndVector())


def _tables(builder: flatbuffers.Builder, offsets: Sequence[int]) -> int:
    builder.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        builder.PrependUOffsetTRelative(offset)
    return int(builder.EndVector())


def _floats(builder: flatbuffers.Builder, values: Sequence[float]) -> int:
    builder.StartVector(4, len(values), 4)
    for value in reversed(values):
        builder.PrependFloat32(float(value))
    return int(builder.EndVector())


def _associated_file(
    builder: flatbuffers.Builder, name: str, description: str, file_type: int
) -> int:
    name_off, desc_off = builder.CreateString(name), builder.CreateString(description)
    builder.StartObject(4)  # name, description, type, locale
    builder.PrependUOffsetTRelativeSlot(0, name_off, 0)
    builder.PrependUOffsetTRelativeSlot(1, desc_off, 0)
    builder.PrependInt8Slot(2, file_type, 0)
    return int(builder.EndObject())


def _stats(builder: flatbuffers.Builder, low: float, high: float) -> int:
    max_off, min_off = _floats(builder, [high]), _floats(builder, [low])
    builder.StartObject(2)  # max, min
    builder.PrependUOffsetTRelativeSlot(0, max_off, 0)
    builder.PrependUOffsetTRelativeSlot(1, min_off, 0)
    return int(builder.EndObject())


def _content(builder: flatbuffers.Builder, kind: int, properties: int) -> int:
    builder.StartObject(3)  # content_properties_type, content_properties, range
    builder.PrependUint8Slot(0, kind, 0)
    builder.PrependUOffsetTRelativeSlot(1, properties, 0)
    return int(builder.EndObject())


def _process_unit(builder: flatbuffers.Builder, kind: int, options: int) -> int:
    builder.StartObject(2)  # options_type, options
    builder.PrependUint8Slot(0, kind, 0)
    builder.PrependUOffsetTRelativeSlot(1, options, 0)
    return int(builder.EndObject())


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
    return int(builder.EndObject())


def _quant_text(quant: Quantization) -> str:
    if not quant.quantized:
        return "float32"
    return f"quantized: real = {quant.scale:.8g} * (q - {quant.zero_point})"


def build_metadata_buffer(spec: MetadataSpec) -> bytes:
    """The `ModelMetadata` flatbuffer (identifier M001) for `spec`. Does not check `spec`
    (`embed_metadata` does); never raises for a checked spec."""
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


# ----------------------------------------------------------------------------- parsing
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
    """What posterlite uses of a `ModelMetadata` flatbuffer, every vector read up to
    MAX_TABLE_ENTRIES. Raises PosterliteError without the M001 identifier; one of
    `tflite_file.FLATBUFFER_ERRORS` for offsets past the end of `buf`."""
    if len(buf) < 8 or buf[4:8] != METADATA_IDENTIFIER:
        raise PosterliteError("TFLITE_METADATA is not a metadata flatbuffer (no M001)")
    root = root_table(buf)
    norm_mean = norm_std = threshold = None
    input_size = None
    output_files: list[str] = []
    label_file: str | None = None
    subgraphs = tables_at(buf, root, 3, MAX_TABLE_ENTRIES)
    if subgraphs:
        inputs = tables_at(buf, subgraphs[0], 2, MAX_TABLE_ENTRIES)
        outputs = tables_at(buf, subgraphs[0], 3, MAX_TABLE_ENTRIES)
        if inputs:
            for unit in tables_at(buf, inputs[0], 4, MAX_TABLE_ENTRIES):
                kind = scalar_at(unit, 0, flatbuffers.number_types.Uint8Flags, 0)
                options = table_at(buf, unit, 1)
                if kind == _UNIT_NORMALIZATION and options is not None:
                    norm_mean, norm_std = first_float(options, 0), first_float(options, 1)
            content = table_at(buf, inputs[0], 3)
            if content is not None:
                kind = scalar_at(content, 0, flatbuffers.number_types.Uint8Flags, 0)
                image = table_at(buf, content, 1)
                if kind == _CONTENT_IMAGE and image is not None:
                    size = table_at(buf, image, 1)
                    if size is not None:
                        input_size = int(
                            scalar_at(size, 0, flatbuffers.number_types.Uint32Flags, 0)
                        )
        if outputs:
            for unit in tables_at(buf, outputs[0], 4, MAX_TABLE_ENTRIES):
                kind = scalar_at(unit, 0, flatbuffers.number_types.Uint8Flags, 0)
                options = table_at(buf, unit, 1)
                if kind == _UNIT_SCORE_THRESHOLDING and options is not None:
                    threshold = float(
                        scalar_at(options, 0, flatbuffers.number_types.Float32Flags, 0.0)
                    )
            files = tables_at(buf, outputs[0], 6, MAX_TABLE_ENTRIES)
            output_files = [string_at(f, 0) for f in files]
            labels = [
                string_at(f, 0)
                for f in files
                if scalar_at(f, 2, flatbuffers.number_types.Int8Flags, 0)
                == _FILE_TYPE_TENSOR_AXIS_LABELS
            ]
            label_file = labels[0] if labels else None
    return EmbeddedMetadata(
        name=string_at(root, 0),
        description=string_at(root, 1),
        version=string_at(root, 2),
        min_parser_version=string_at(root, 7),
        norm_mean=norm_mean,
        norm_std=norm_std,
        default_threshold=threshold,
        input_size=input_size,
        output_files=tuple(output_files),
        label_file=label_file,
    )
