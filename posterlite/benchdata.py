"""What both bench targets share: model specs, the labelled set, latency statistics, result rows.

`posterlite.bench` (host CPU, the report, the table) and `posterlite.android` (a device
through adb) both fill `BenchRow`s from `ModelSpec`s and score on a `LabelledSet`; these
records live here so neither module imports the other for them.

`KerasReference` is the Keras float model's accuracy on a labelled set, recorded when a
phone-ready `.tflite` is exported (`benchmarks/export_int8.py`) in its JSON sidecar, so
`bench` can report "change vs Keras" without importing TensorFlow. It applies only to the
same posters (`data_digest`: files + labels) preprocessed the same way (`pixels_digest`:
the one preprocessing path's output on the first posters, and `preprocess_version`).
"""

from __future__ import annotations

import hashlib
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from posterlite.errors import PosterliteError
from posterlite.genres import CATCH_ALL, GenreScheme
from posterlite.metrics import MultiLabelReport

# Posters whose decoded pixels fingerprint the preprocessing (decode + resize) in use.
PIXEL_DIGEST_POSTERS = 8


@dataclass(frozen=True)
class KerasReference:
    """The Keras model's figures on a labelled set, recorded at export time."""

    mean_average_precision: float
    macro_f1: float
    posters: int
    data: str  # the labelled set as given (repo-relative for the bundled sample)
    data_digest: str
    pixels_digest: str
    input_size: int
    keras_sha256: str
    accuracy: dict[str, Any] = field(default_factory=dict)  # the whole MultiLabelReport
    preprocess_version: str = ""  # preprocess.PREPROCESS_VERSION at export

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KerasReference | None:
        try:
            return cls(
                mean_average_precision=float(data["mean_average_precision"]),
                macro_f1=float(data["macro_f1"]),
                posters=int(data["posters"]),
                data=str(data["data"]),
                data_digest=str(data["data_digest"]),
                pixels_digest=str(data["pixels_digest"]),
                input_size=int(data["input_size"]),
                keras_sha256=str(data["keras_sha256"]),
                accuracy=dict(data.get("accuracy") or {}),
                preprocess_version=str(data.get("preprocess_version", "")),
            )
        except (KeyError, TypeError, ValueError):
            return None


@dataclass(frozen=True)
class ModelSpec:
    """A model file to benchmark and what it is."""

    name: str
    format: str
    path: Path
    kind: str  # "posterlite" | "keras" | "reference"
    keras_reference: KerasReference | None = None  # recorded Keras figures, when known


@dataclass(frozen=True)
class LatencyStats:
    """Latency figures in milliseconds; a figure the source does not give is None.

    With several interleaved rounds, `p50_ms` is the median of the per-round p50s (listed
    in `round_p50_ms`), which a burst of load from other processes moves far less than a
    pooled percentile; the other percentiles pool every sample.
    """

    count: int
    mean_ms: float
    p50_ms: float | None
    p90_ms: float | None = None
    p99_ms: float | None = None
    min_ms: float | None = None
    max_ms: float | None = None
    std_ms: float | None = None
    first_ms: float | None = None  # first (cold) inference, when known
    p5_ms: float | None = None  # benchmark_model prints p5 / median / p95
    p95_ms: float | None = None
    rounds: int = 1
    round_p50_ms: tuple[float, ...] = ()
    pooled_p50_ms: float | None = None

    @classmethod
    def from_samples(cls, seconds: Sequence[float], first_s: float | None = None) -> LatencyStats:
        return cls.from_rounds([seconds], first_s)

    @classmethod
    def from_rounds(
        cls, rounds: Sequence[Sequence[float]], first_s: float | None = None
    ) -> LatencyStats:
        if not rounds or not all(len(r) for r in rounds):
            raise ValueError("no latency samples")
        ms = np.concatenate([np.asarray(r, dtype=np.float64) for r in rounds]) * 1e3
        p50, p90, p99 = np.percentile(ms, [50, 90, 99])
        per_round = tuple(float(np.percentile(np.asarray(r) * 1e3, 50)) for r in rounds)
        return cls(
            count=int(ms.size),
            mean_ms=float(ms.mean()),
            p50_ms=float(statistics.median(per_round)),
            p90_ms=float(p90),
            p99_ms=float(p99),
            min_ms=float(ms.min()),
            max_ms=float(ms.max()),
            std_ms=float(ms.std()),
            first_ms=None if first_s is None else first_s * 1e3,
            rounds=len(rounds),
            round_p50_ms=per_round,
            pooled_p50_ms=float(p50),
        )


@dataclass(frozen=True)
class KerasDelta:
    """A row's accuracy minus its Keras model's, on the same posters."""

    mean_average_precision: float
    macro_f1: float
    source: str  # "measured" (Keras ran in this bench) | "recorded" (at export time)


@dataclass
class BenchRow:
    """One model x format x thread count on one target."""

    model: str
    format: str  # fp32 | fp16 | dynamic | int8 | keras | the reference's own tag
    kind: str  # "posterlite" | "keras" | "reference"
    path: str
    target: str  # "cpu" | "android"
    threads: int | None
    size_bytes: int
    latency: LatencyStats | None = None
    load_ms: float | None = None
    end_to_end_ms: float | None = None  # decode + preprocess + invoke, per poster
    peak_memory_mb: float | None = None
    memory_method: str = ""
    accuracy: MultiLabelReport | None = None
    device: dict[str, str] = field(default_factory=dict)
    delegate: str = "xnnpack"
    notes: list[str] = field(default_factory=list)
    vs_keras: KerasDelta | None = None

    @property
    def label(self) -> str:
        return f"{self.model}/{self.format}"


# ----------------------------------------------------------------------- labelled set
@dataclass(frozen=True)
class LabelledSet:
    """Posters with raw genre labels (mapped to each model's genres at evaluation)."""

    root: Path
    paths: tuple[Path, ...]
    genres: tuple[tuple[str, ...], ...]
    skipped: int = 0

    def __len__(self) -> int:
        return len(self.paths)

    def targets(self, model_genres: Sequence[str]) -> np.ndarray:
        """Multi-hot (N, G) in the model's genre order; unknown raw genres -> the catch-all."""
        scheme = GenreScheme(
            names=tuple(model_genres), catch_all=CATCH_ALL if CATCH_ALL in model_genres else None
        )
        return np.stack([scheme.to_multi_hot(scheme.map_raw(g)) for g in self.genres])

    def data_digest(self) -> str:
        """sha256 (16 hex) over each poster's file name, bytes and raw genres, in order."""
        digest = hashlib.sha256()
        for path, genres in zip(self.paths, self.genres, strict=True):
            digest.update(path.name.encode("utf-8") + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
            digest.update("|".join(genres).encode("utf-8") + b"\n")
        return digest.hexdigest()[:16]

    def pixels_digest(self, size: int, count: int = PIXEL_DIGEST_POSTERS) -> str:
        """sha256 (16 hex) of the first decodable posters as the model sees them at `size`."""
        from posterlite.preprocess import PosterDecodeError, load_poster

        digest = hashlib.sha256(f"{size}".encode())
        used = 0
        for path in self.paths:
            try:
                digest.update(load_poster(path, size).tobytes())
            except PosterDecodeError:
                continue
            used += 1
            if used == count:
                break
        return digest.hexdigest()[:16]


def preprocess_version() -> str:
    from posterlite import preprocess

    return str(getattr(preprocess, "PREPROCESS_VERSION", ""))


def load_labelled_set(path: Path, limit: int | None = None, progress: bool = False) -> LabelledSet:
    """Any layout `data.scan_dataset` reads; posters it cannot decode are left out."""
    from posterlite.data import scan_dataset

    path = Path(path)
    if not path.exists():
        raise PosterliteError(f"labelled set not found: {path} (--data takes a poster data set)")
    result = scan_dataset(path, progress=progress)
    posters = result.posters[:limit] if limit else result.posters
    if not posters:
        raise PosterliteError(f"{path}: no labelled posters found")
    return LabelledSet(
        root=path,
        paths=tuple(Path(p.path) for p in posters),
        genres=tuple(tuple(p.genres) for p in posters),
        skipped=len(result.skipped),
    )
