"""Training configuration, run results, shared constants and tiny helpers (cache root,
peak RSS, JSON writer). Every other part of `posterlite.train` imports from here.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from posterlite.errors import PosterliteError
from posterlite.fileio import (
    atomic_write_text,
    jsonable,
)

ARCHS = ("cnn", "mobilenet_v1", "mobilenet_v2")


OPTIMIZERS = ("adam", "sgd")


# Bump when load_poster / pixels_to_input change the pixels a model sees: it keys the caches.
PREPROCESS_VERSION = "posterlite-preprocess-1:stretch-bilinear-rgb-white-alpha:[-1,1]"


CNN_INPUT_SIZE = 96


MOBILENET_INPUT_SIZE = 224


# The paper's optimizer grid; each architecture x SMOTE pair keeps its best run.
GRID_OPTIMIZERS: tuple[tuple[str, float], ...] = (
    ("adam", 1e-3),
    ("adam", 1e-4),
    ("adam", 1e-5),
    ("sgd", 1e-4),
    ("sgd", 1e-5),
)


SELECTION_METRIC = "validation mAP (mean over genres of average precision)"


FEATURE_BATCH = 64


HISTORY_NAME = "history.json"


REPORT_JSON = "report.json"


REPORT_MD = "report.md"


CURVES_PNG = "curves.png"


CONFUSION_PNG = "confusion.png"


THRESHOLDS_NAME = "thresholds.json"


@dataclass(frozen=True)
class TrainConfig:
    arch: str = "mobilenet_v1"
    smote: bool = False
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    epochs: int = 50
    batch_size: int = 32
    input_size: int | None = None  # None: 96 for cnn, 224 for the MobileNets
    backbone_weights: str | None = None  # explicit weights file; None: resolve_backbone_weights
    pretrained: bool = True  # False: random backbone (tests only)
    # Top N backbone blocks trained after the head, on cached activations at their input.
    fine_tune: int = 0
    fine_tune_learning_rate: float | None = None  # None: learning_rate / 10
    fine_tune_flip: bool = False  # also cache mirrored train posters; pick one per epoch
    seed: int = 0
    # 256: Dropout + Dense(256, relu) + Dropout + Dense(6). Picked on validation (V1, Adam
    # 1e-3, imdb-7k split): mAP 0.592 vs 0.575 for Dropout + Dense(6) alone (hidden=0).
    head_hidden: int = 256
    dropout: float = 0.3
    class_weighted: bool = True
    patience: int = 8  # early stopping on validation PR-AUC
    min_delta: float = 1e-3
    smote_k: int = 5
    smote_target_fraction: float = 0.5
    smote_max_synthetic: int | None = None
    smote_max_ratio: float = 0.5  # synthetic rows <= this x training rows
    smote_max_bytes: int = 1 << 30
    # Wall-clock cap per fit (seconds); the best epoch so far is kept. The grid uses it so
    # the from-scratch CNN's slow optimizers (SGD 1e-5 barely moves) cannot eat the hour.
    time_budget_s: float | None = None

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise PosterliteError(f"unknown model {self.arch!r}; choose one of {', '.join(ARCHS)}")
        if self.optimizer not in OPTIMIZERS:
            raise PosterliteError(f"unknown optimizer {self.optimizer!r}; choose adam or sgd")
        if self.epochs < 1 or self.batch_size < 1 or self.learning_rate <= 0:
            raise PosterliteError("epochs, batch size and learning rate must be positive")

    @property
    def size(self) -> int:
        if self.input_size is not None:
            return self.input_size
        return CNN_INPUT_SIZE if self.arch == "cnn" else MOBILENET_INPUT_SIZE

    @property
    def name(self) -> str:
        return self.arch + ("_smote" if self.smote else "")

    @property
    def run_id(self) -> str:
        return f"{self.name}-{self.optimizer}-{self.learning_rate:g}"

    def key(self) -> str:
        """Content key of the configuration (grid resume: a changed config is redone)."""
        fields = asdict(self)
        for name, default in (("fine_tune_learning_rate", None), ("fine_tune_flip", False)):
            if fields[name] == default:
                del fields[name]  # keys of runs from before these fields stay valid
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RunResult:
    name: str
    run_id: str
    out_dir: Path
    val_map: float
    val_macro_f1: float
    val_micro_f1: float
    paper_accuracy: float
    per_genre_ap: dict[str, float]
    per_genre_f1: dict[str, float]
    params: int
    wall_time_s: float
    peak_rss_mb: float


def cache_root() -> Path:
    """$POSTERLITE_CACHE, else <repo>/.cache (gitignored), else ./.cache."""
    configured = os.environ.get("POSTERLITE_CACHE")
    if configured:
        return Path(configured)
    repo = Path(__file__).resolve().parents[2]
    return (repo if (repo / "pyproject.toml").is_file() else Path.cwd()) / ".cache"


def peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux: the process's peak so far.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def write_json(path: Path, payload: Any) -> None:
    atomic_write_text(path, json.dumps(jsonable(payload), indent=2, sort_keys=True) + "\n")
