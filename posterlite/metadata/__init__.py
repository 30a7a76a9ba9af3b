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

The package, each module importing only those above it:
- `limits`: the format's names (TFLITE_METADATA, M001, labels.txt, thresholds.json), the
  sidecar's name and every MAX_* limit;
- `records`: `MetadataSpec` (what is written), `ModelInfo` / `TensorInfo` /
  `Quantization` (what is read);
- `rules`: the label, threshold and normalization rules, strict UTF-8 and JSON;
- `schema`: the `ModelMetadata` flatbuffer, built and parsed (bounded);
- `zipped`: the associated files zipped onto the model, read bounded;
- `write`: `embed_metadata`, `write_sidecar`;
- `read`: `read_metadata`, `metadata_buffer`, `info_text`.
The TFLite model file itself (identifier, object tree, the metadata entry's buffer) is
`posterlite.tflite_file`'s.
"""

from __future__ import annotations

from posterlite.metadata.limits import (
    LABELS_FILE,
    MAX_ASSOCIATED_FILE_BYTES,
    MAX_ASSOCIATED_FILES,
    MAX_ASSOCIATED_TOTAL_BYTES,
    MAX_LABEL_CHARS,
    MAX_METADATA_BYTES,
    MAX_MODEL_METADATA_ENTRIES,
    MAX_SIDECAR_BYTES,
    MAX_TABLE_ENTRIES,
    MAX_ZIP_DIRECTORY_BYTES,
    METADATA_IDENTIFIER,
    METADATA_NAME,
    MIN_PARSER_VERSION,
    THRESHOLDS_FILE,
    sidecar_path,
)
from posterlite.metadata.read import info_text, metadata_buffer, read_metadata
from posterlite.metadata.records import MetadataSpec, ModelInfo, Quantization, TensorInfo
from posterlite.metadata.rules import (
    check_labels,
    check_normalization,
    check_spec,
    check_threshold,
    check_thresholds,
    strict_json,
)
from posterlite.metadata.schema import (
    EmbeddedMetadata,
    build_metadata_buffer,
    parse_metadata_buffer,
)
from posterlite.metadata.write import embed_metadata, write_sidecar
from posterlite.metadata.zipped import associated_files

__all__ = [
    "LABELS_FILE",
    "MAX_ASSOCIATED_FILES",
    "MAX_ASSOCIATED_FILE_BYTES",
    "MAX_ASSOCIATED_TOTAL_BYTES",
    "MAX_LABEL_CHARS",
    "MAX_METADATA_BYTES",
    "MAX_MODEL_METADATA_ENTRIES",
    "MAX_SIDECAR_BYTES",
    "MAX_TABLE_ENTRIES",
    "MAX_ZIP_DIRECTORY_BYTES",
    "METADATA_IDENTIFIER",
    "METADATA_NAME",
    "MIN_PARSER_VERSION",
    "THRESHOLDS_FILE",
    "EmbeddedMetadata",
    "MetadataSpec",
    "ModelInfo",
    "Quantization",
    "TensorInfo",
    "associated_files",
    "build_metadata_buffer",
    "check_labels",
    "check_normalization",
    "check_spec",
    "check_threshold",
    "check_thresholds",
    "embed_metadata",
    "info_text",
    "metadata_buffer",
    "parse_metadata_buffer",
    "read_metadata",
    "sidecar_path",
    "strict_json",
    "write_sidecar",
]
