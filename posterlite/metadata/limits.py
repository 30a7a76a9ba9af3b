"""TFLite Metadata's names and the limits on what a model file can make posterlite read.

The names are the TFLite Metadata format's (the `TFLITE_METADATA` buffer, identifier
`M001`) and posterlite's own associated files; the limits bound every read of an untrusted
model (see the package docstring). Ours zip two files of a few hundred bytes; Google's 1001
ImageNet labels are 21 KB, its metadata flatbuffer 0.7 KB.
"""

from __future__ import annotations

from pathlib import Path

METADATA_NAME = "TFLITE_METADATA"
METADATA_IDENTIFIER = b"M001"
# Every field used here exists since metadata schema 1.0.0.
MIN_PARSER_VERSION = "1.0.0"
LABELS_FILE = "labels.txt"
THRESHOLDS_FILE = "thresholds.json"

# What a model file can make posterlite read.
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


def sidecar_path(model_path: Path) -> Path:
    """The JSON sidecar beside a model: `<model>.json`. Pure; never raises."""
    return Path(model_path).with_suffix(".json")
