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

from posterlite.archs import ARCH_NAMES, SMOTE_SUFFIX, arch_spec
from posterlite.card import CARD_NAME, MODEL_NAME
from posterlite.errors import PosterliteError
from posterlite.fileio import (
    atomic_write_text,
    jsonable,
)

# The architectures are `posterlite.archs`' registry; ARCHS is its list of names.
ARCHS = ARCH_NAMES


OPTIMIZERS = ("adam", "sgd")
# End-to-end fine-tuning: batch norm kept frozen or trained; the train-poster sampler.
BN_MODES = ("frozen", "train")
SAMPLERS = ("none", "powerset")


# The paper's optimizer grid; each architecture x SMOTE pair keeps its best run.
GRID_OPTIMIZERS: tuple[tuple[str, float], ...] = (
    ("adam", 1e-3),
    ("adam", 1e-4),
    ("adam", 1e-5),
    ("sgd", 1e-4),
    ("sgd", 1e-5),
)


# Wall-clock cap per fit in the grid (seconds; `train grid --time-budget`): the from-scratch
# CNN's slow optimizers (SGD 1e-5 barely moves) must not eat the hour.
GRID_TIME_BUDGET_S = 120.0


SELECTION_METRIC = "validation mAP (mean over genres of average precision)"


FEATURE_BATCH = 64


HISTORY_NAME = "history.json"


REPORT_JSON = "report.json"


REPORT_MD = "report.md"


CURVES_PNG = "curves.png"


CONFUSION_PNG = "confusion.png"


THRESHOLDS_NAME = "thresholds.json"


# Every file a finished run writes into its folder: what shipping a run copies.
RUN_FILES: tuple[str, ...] = (
    MODEL_NAME,
    CARD_NAME,
    HISTORY_NAME,
    REPORT_JSON,
    REPORT_MD,
    THRESHOLDS_NAME,
    CURVES_PNG,
    CONFUSION_PNG,
)


@dataclass(frozen=True)
class EndToEndConfig:
    """End-to-end fine-tuning after the head (`--fine-tune all`); see `finetune`.

    Defaults: the trial in ../shared/notes/finetune-measured.md (peak lr 2e-4, AdamW 1e-4,
    one-third-epoch warm-up, BN frozen, 160 px epochs) plus one finishing epoch at 224 px.
    Measured on validation (`benchmarks/results/finetune_ablation.md`): trainable BN never
    beats the head, so BN stays frozen; crop 0.5 / none and a 1x head lr landed below these
    defaults with both seeds tried (mean gaps 0.006-0.008, smaller than the 0.012 between two
    seeds of one recipe), so crop 0.7 and 3x are kept: favoured, not proven.

    Raises PosterliteError for a value out of range (the message names the CLI option).
    """

    # (input size, epochs) in order: progressive resizing, most epochs at low resolution.
    schedule: tuple[tuple[int, int], ...] = ((160, 3), (224, 1))
    learning_rate: float = 2e-4  # peak, backbone
    head_lr_multiplier: float = 3.0  # head peak lr = this x backbone peak lr
    warmup_epochs: float = 1 / 3
    weight_decay: float = 1e-4  # AdamW (decoupled; Keras multiplies it by the lr)
    # "frozen": BN in inference mode with its moving statistics (the imported weights are
    # BN-folded: their BN layers are identity + bias, which batch statistics would break).
    bn: str = "frozen"
    crop_scale: float = 0.7  # random-resized crop keeps >= this fraction of the poster area
    crop_ratio: float = 0.8  # crop aspect ratio in [crop_ratio, 1 / crop_ratio]
    jitter: float = 0.15  # brightness +-jitter (of full range), contrast/saturation 1 +- jitter
    flip: bool = True
    sampler: str = "none"  # "powerset": label-powerset balanced sampler (imbalanced-learn)
    patience: int = 2  # epochs without a better validation mAP before stopping
    cache_size: int = 224  # decoded uint8 cache side (load_poster), crops are resized from it
    steps_per_epoch: int | None = None  # None: one pass over train (tests: fewer)
    # Exponential moving average of the weights (Keras' optimizer EMA), 0: off. When on,
    # validation, early stopping and the kept best epoch use the averaged weights.
    ema: float = 0.0
    # Distillation: model folders whose averaged probabilities on the (un-augmented) train
    # posters become soft targets, target = (1 - distill) x labels + distill x teachers.
    teachers: tuple[str, ...] = ()
    distill: float = 0.0

    def __post_init__(self) -> None:
        if not self.schedule or any(s < 32 or e < 1 for s, e in self.schedule):
            raise PosterliteError("fine-tune schedule needs SIZE:EPOCHS pairs, size >= 32")
        if self.bn not in BN_MODES:
            raise PosterliteError(f"--ft-bn must be frozen or train, got {self.bn!r}")
        if self.sampler not in SAMPLERS:
            raise PosterliteError(f"--ft-sampler must be none or powerset, got {self.sampler!r}")
        if not 0.05 <= self.crop_scale <= 1.0 or not 0.2 <= self.crop_ratio <= 1.0:
            raise PosterliteError("--ft-crop-scale must be in [0.05, 1], crop ratio in [0.2, 1]")
        if self.learning_rate <= 0 or self.head_lr_multiplier <= 0 or self.patience < 1:
            raise PosterliteError("fine-tune lr, head lr multiplier and patience must be > 0")
        if not 0.0 <= self.ema < 1.0:
            raise PosterliteError(f"--ft-ema must be in [0, 1), got {self.ema}")
        if not 0.0 <= self.distill <= 1.0:
            raise PosterliteError(f"--ft-distill must be in [0, 1], got {self.distill}")
        if self.distill > 0 and not self.teachers:
            raise PosterliteError("--ft-distill needs at least one --ft-teacher")

    @property
    def epochs(self) -> int:
        """Epochs in all, over every size of the schedule."""
        return sum(e for _, e in self.schedule)

    def sizes(self) -> list[int]:
        """Input size of each epoch, in order."""
        return [s for s, e in self.schedule for _ in range(e)]


def parse_schedule(text: str) -> tuple[tuple[int, int], ...]:
    """ "160:3,224:1" -> ((160, 3), (224, 1)); raises PosterliteError for other text."""
    try:
        pairs = [part.split(":") for part in text.split(",") if part.strip()]
        return tuple((int(size), int(epochs)) for size, epochs in pairs)
    except ValueError as exc:
        raise PosterliteError(f"bad schedule {text!r}: expected SIZE:EPOCHS[,SIZE:EPOCHS]") from exc


def format_schedule(schedule: tuple[tuple[int, int], ...]) -> str:
    """((160, 3), (224, 1)) -> "160:3,224:1" (what `parse_schedule` reads back)."""
    return ",".join(f"{size}:{epochs}" for size, epochs in schedule)


@dataclass(frozen=True)
class TrainConfig:
    """One training run (`posterlite train`'s options; the grid varies arch, smote and the
    optimizer). Raises PosterliteError for an unknown architecture or optimizer, or epochs,
    batch size or learning rate that are not positive."""

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
    # End-to-end fine-tuning of every backbone layer after the head (None: off).
    end_to_end: EndToEndConfig | None = None
    # Start from this trained model folder (its model.keras) instead of a head stage.
    init: str | None = None

    def __post_init__(self) -> None:
        arch_spec(self.arch)  # raises for an unknown architecture
        if self.optimizer not in OPTIMIZERS:
            raise PosterliteError(f"unknown optimizer {self.optimizer!r}; choose adam or sgd")
        if self.epochs < 1 or self.batch_size < 1 or self.learning_rate <= 0:
            raise PosterliteError("epochs, batch size and learning rate must be positive")

    @property
    def size(self) -> int:
        """Input side in pixels: `input_size`, else the architecture's."""
        if self.input_size is not None:
            return self.input_size
        return arch_spec(self.arch).input_size

    @property
    def name(self) -> str:
        """The model name: the architecture, plus the SMOTE suffix."""
        return self.arch + (SMOTE_SUFFIX if self.smote else "")

    @property
    def run_id(self) -> str:
        """Name, optimizer and learning rate: one grid run."""
        return f"{self.name}-{self.optimizer}-{self.learning_rate:g}"

    def key(self) -> str:
        """Content key of the configuration (grid resume: a changed config is redone)."""
        fields = asdict(self)
        defaults: tuple[tuple[str, object], ...] = (
            ("fine_tune_learning_rate", None),
            ("fine_tune_flip", False),
            ("end_to_end", None),
            ("init", None),
        )
        for name, default in defaults:
            if fields[name] == default:
                del fields[name]  # keys of runs from before these fields stay valid
        e2e = fields.get("end_to_end")
        if e2e is not None:
            e2e_defaults: tuple[tuple[str, object], ...] = (
                ("ema", 0.0),
                ("teachers", ()),
                ("distill", 0.0),
            )
            for name, default in e2e_defaults:
                if e2e.get(name) == default:
                    del e2e[name]
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RunResult:
    """What one finished run scored on validation, its size and cost."""

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
    """The process's peak resident memory so far, in MB."""
    # ru_maxrss is in KiB on Linux: the process's peak so far.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def write_json(path: Path, payload: object) -> None:
    """Write `payload` (numpy values made plain) as sorted, indented JSON atomically;
    raises OSError if `path` cannot be written."""
    atomic_write_text(path, json.dumps(jsonable(payload), indent=2, sort_keys=True) + "\n")
