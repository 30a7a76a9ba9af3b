"""Writing a model's metadata: `embed_metadata` (the TFLite Metadata buffer plus the zipped
associated files, the layout tflite-support's `MetadataPopulator` produces) and
`write_sidecar` (`<model>.json`, the same facts for tools that do not parse flatbuffers).
Both check the spec first (`rules.check_spec`): nothing is written that reading refuses.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from posterlite.errors import PosterliteError
from posterlite.fileio import atomic_write_text, json_text
from posterlite.metadata.limits import LABELS_FILE, METADATA_NAME, THRESHOLDS_FILE, sidecar_path
from posterlite.metadata.records import MetadataSpec
from posterlite.metadata.rules import check_spec
from posterlite.metadata.schema import build_metadata_buffer
from posterlite.tflite_file import has_tflite_identifier, pack_model, schema, unpack_model


def _thresholds_json(spec: MetadataSpec) -> str:
    """thresholds.json, zipped beside labels.txt: the tuned thresholds and input facts."""
    payload = {
        "genres": list(spec.genres),
        "thresholds": [float(t) for t in spec.thresholds],
        "default_threshold": spec.default_threshold,
        "normalization": {"mean": spec.norm_mean, "std": spec.norm_std},
        "input_quantization": asdict(spec.input_quantization),
        "output_quantization": asdict(spec.output_quantization),
    }
    return json_text(payload)


def embed_metadata(model_bytes: bytes, spec: MetadataSpec) -> bytes:
    """`model_bytes` with `spec` as TFLite Metadata plus the zipped associated files.

    Any previous TFLITE_METADATA entry is replaced (and any previously zipped files are
    dropped with it), so embedding twice gives the same layout as embedding once. Raises
    PosterliteError for a spec that breaks the rules (`check_spec`), bytes that are not a
    TFLite model, or a model whose weights live outside the flatbuffer.
    """
    check_spec(spec)
    if not has_tflite_identifier(model_bytes):
        raise PosterliteError("metadata: input is not a TFLite flatbuffer")
    model = unpack_model(model_bytes)
    generated = schema()
    if any(buffer.offset > 1 for buffer in model.buffers or []):
        # >2 GB models keep weights outside the flatbuffer; never the case for posters.
        raise PosterliteError("metadata: models with external buffers are not supported")
    data = np.frombuffer(build_metadata_buffer(spec), dtype=np.uint8)
    existing = [m for m in (model.metadata or []) if _decode(m.name) == METADATA_NAME]
    if existing:
        # Re-embedding reuses the buffer, so no orphan buffer accumulates.
        model.buffers[existing[0].buffer].data = data
        model.metadata = [
            m
            for m in (model.metadata or [])
            if m is existing[0] or _decode(m.name) != METADATA_NAME
        ]
    else:
        buffer = generated.BufferT()
        buffer.data = data
        model.buffers.append(buffer)
        entry = generated.MetadataT()
        entry.name = METADATA_NAME
        entry.buffer = len(model.buffers) - 1
        model.metadata = [*(model.metadata or []), entry]
    packed = pack_model(model)

    # Associated files: a zip appended to the flatbuffer, stored uncompressed, the way
    # MetadataPopulator writes it (Android's MetadataExtractor reads STORED entries only).
    stream = io.BytesIO(packed)
    stream.seek(0, io.SEEK_END)
    with zipfile.ZipFile(stream, "a", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(LABELS_FILE, "\n".join(spec.genres) + "\n")
        archive.writestr(THRESHOLDS_FILE, _thresholds_json(spec))
    return stream.getvalue()


def _decode(value: bytes | str | None) -> str:
    """A name of the object tree (bytes, or text when set here) as text."""
    if value is None:
        return ""
    return value.decode("utf-8") if isinstance(value, bytes) else value


def write_sidecar(model_path: Path, spec: MetadataSpec) -> Path:
    """`<model>.json` beside the model: the same facts as the embedded metadata. Returns
    its path; raises PosterliteError for a spec that breaks the rules (`check_spec`)."""
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
