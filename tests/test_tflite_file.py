"""posterlite.tflite_file: the identifier check, the object-tree round trip (weights kept
16-byte aligned), the bounded metadata-buffer lookup and the bounded table readers, on
models built from the schema in milliseconds and run through the real LiteRT interpreter."""

from __future__ import annotations

import flatbuffers
import numpy as np
import pytest

from posterlite.apprun import build_pixel_probe
from posterlite.errors import PosterliteError
from posterlite.interpreter import interpreter_from_bytes
from posterlite.metadata import METADATA_IDENTIFIER, METADATA_NAME
from posterlite.tflite_file import (
    BUFFER_ALIGNMENT,
    TFLITE_IDENTIFIER,
    check_tflite_bytes,
    has_tflite_identifier,
    model_root,
    named_metadata_buffer,
    pack_model,
    root_table,
    tables_at,
    unpack_model,
    vector_len,
)

SIZE = 4  # the probe's input side: 48 output values


@pytest.fixture(scope="module")
def probe() -> bytes:
    return build_pixel_probe(SIZE, "uint8")


def _buffer_offsets(data: bytes) -> list[int]:
    """Where each non-empty buffer's bytes start in the file."""
    model = model_root(data)
    offsets = []
    for index in range(model.BuffersLength()):
        buffer = model.Buffers(index)
        if buffer.DataLength():
            table = buffer._tab
            offsets.append(table.Vector(table.Offset(4)))
    return offsets


def test_identifier() -> None:
    assert has_tflite_identifier(b"\0\0\0\0" + TFLITE_IDENTIFIER)
    assert not has_tflite_identifier(b"\0\0\0\0TFL")  # too short
    assert not has_tflite_identifier(b"\0\0\0\0M001")
    with pytest.raises(PosterliteError, match=r"^x\.tflite: not a TFLite model \(no TFL3"):
        check_tflite_bytes(b"junk", "x.tflite")
    for call in (model_root, unpack_model):
        with pytest.raises(PosterliteError, match="no TFL3 identifier"):
            call(b"\x10\0\0\0M001" + b"\0" * 32)


def test_round_trip_keeps_weights_aligned_and_runs(probe: bytes) -> None:
    repacked = pack_model(unpack_model(probe))
    offsets = _buffer_offsets(repacked)
    assert offsets and all(offset % BUFFER_ALIGNMENT == 0 for offset in offsets)
    # the generated packer alone aligns a buffer only to its element size (here: not to 16)
    builder = flatbuffers.Builder(1 << 16)
    builder.Finish(unpack_model(probe).Pack(builder), file_identifier=TFLITE_IDENTIFIER)
    assert any(offset % BUFFER_ALIGNMENT for offset in _buffer_offsets(bytes(builder.Output())))
    # the repacked model still runs in LiteRT and still outputs its input pixels
    interpreter = interpreter_from_bytes(repacked)
    interpreter.allocate_tensors()
    pixels = np.arange(SIZE * SIZE * 3, dtype=np.uint8).reshape(1, SIZE, SIZE, 3)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], pixels)
    interpreter.invoke()
    output = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_array_equal(output.reshape(-1), pixels.reshape(-1))


def test_named_metadata_buffer_is_bounded(probe: bytes) -> None:
    name = METADATA_NAME.encode()
    found = named_metadata_buffer(probe, name, max_entries=8, max_bytes=1 << 20)
    assert found is not None and found[4:8] == METADATA_IDENTIFIER
    assert named_metadata_buffer(probe, b"OTHER", max_entries=8, max_bytes=1 << 20) is None
    # the entry is not searched beyond max_entries
    assert named_metadata_buffer(probe, name, max_entries=0, max_bytes=1 << 20) is None
    with pytest.raises(PosterliteError, match=rf"{METADATA_NAME} is {len(found)} bytes"):
        named_metadata_buffer(probe, name, max_entries=8, max_bytes=len(found) - 1)


def test_tables_at_reads_no_more_than_its_limit(probe: bytes) -> None:
    root = root_table(probe)
    buffers = vector_len(root, 4)  # Model.buffers: the probe's two + the metadata buffer
    assert buffers == 3
    assert len(tables_at(probe, root, 4, limit=2)) == 2
    assert len(tables_at(probe, root, 4, limit=64)) == buffers
