"""The model card: what travels with a trained model into conversion, metadata and bench.

`train` writes `card.json` beside `model.keras`; `convert` reads it to embed labels,
normalization and thresholds in the `.tflite` and to find the validation split it checks
itself on; `bench` reads it for names. JSON on disk, a dataclass in code.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from posterlite.errors import PosterliteError
from posterlite.fileio import JSONValue, atomic_write_text, json_text
from posterlite.preprocess import NORM_MEAN, NORM_STD

CARD_NAME = "card.json"
MODEL_NAME = "model.keras"


@dataclass
class ModelCard:
    """card.json of a trained model: what it is, how it was trained and how it scored."""

    name: str  # e.g. "mobilenet_v2_smote"
    arch: str  # "cnn" | "mobilenet_v1" | "mobilenet_v2"
    genres: list[str]
    input_size: int
    thresholds: list[float]  # tuned per genre on validation; 0.5 stays the default
    version: str = "1"
    default_threshold: float = 0.5
    normalization_mean: float = NORM_MEAN
    normalization_std: float = NORM_STD
    smote: bool = False
    manifest: str = ""  # path of the training manifest as given at train time
    manifest_sha256: str = ""
    hyperparameters: dict[str, object] = field(default_factory=dict)
    seed: int = 0
    wall_time_s: float = 0.0
    peak_rss_mb: float = 0.0
    library_versions: dict[str, str] = field(default_factory=dict)
    validation: dict[str, JSONValue] = field(default_factory=dict)  # val report summary
    preprocessing: str = (
        "decode, EXIF transpose, RGB (alpha on white), stretch to input_size x input_size "
        "(bilinear, aspect not kept), (pixel - 127.5) / 127.5"
    )
    extra: dict[str, JSONValue] = field(default_factory=dict)

    def to_json(self) -> str:
        """The card as strict JSON text, keys sorted."""
        return json_text(asdict(self), sort_keys=True)


def write_card(card: ModelCard, directory: Path) -> Path:
    """Write `directory`/card.json atomically; returns its path, raises OSError if it
    cannot be written."""
    target = Path(directory) / CARD_NAME
    atomic_write_text(target, card.to_json())
    return target


def read_card(directory_or_file: Path) -> ModelCard:
    """Card of a model folder (or of the folder holding a model file)."""
    path = Path(directory_or_file)
    if path.is_file() and path.name != CARD_NAME:
        path = path.parent
    if path.is_dir():
        path = path / CARD_NAME
    if not path.is_file():
        raise PosterliteError(f"no model card ({CARD_NAME}) at {path.parent}")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PosterliteError(f"{path}: unreadable model card ({exc})") from exc
    known = {f.name for f in fields(ModelCard)}
    return ModelCard(**{k: v for k, v in raw.items() if k in known})
