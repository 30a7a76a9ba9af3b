"""The labelled set a bench scores on, and scoring a model on it one poster at a time.

`LabelledSet` holds posters with their raw genres (mapped to each model's genres when it
is scored); its digests say whether a Keras figure recorded at export applies to it (same
files and labels, same decoded pixels). `labelled_pass` decodes, preprocesses and predicts
every poster, timing each end to end; `accuracy_of` scores that pass at the default
threshold. Every target scores through these, so accuracy means the same everywhere.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import posterlite.bench.paths as paths
from posterlite.errors import PosterliteError
from posterlite.genres import CATCH_ALL, DEFAULT_THRESHOLD, GenreScheme
from posterlite.metrics import MultiLabelReport, evaluate
from posterlite.preprocess import PosterDecodeError, load_poster

# Posters whose decoded pixels fingerprint the preprocessing (decode + resize) in use.
PIXEL_DIGEST_POSTERS = 8


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
    """The preprocessing version in use (`preprocess.PREPROCESS_VERSION`)."""
    from posterlite.preprocess import PREPROCESS_VERSION

    return str(PREPROCESS_VERSION)


def load_labelled_set(path: Path, limit: int | None = None, progress: bool = False) -> LabelledSet:
    """Any layout `data.scan_dataset` reads; posters it cannot decode are left out.
    Raises PosterliteError when `path` is missing or holds no labelled poster."""
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


def default_labelled_set(limit: int | None = None) -> LabelledSet | None:
    """The bundled sample (benchmarks/sample) when present, its first `limit` posters when
    given; None means no accuracy columns."""
    if not paths.DEFAULT_SAMPLE.exists():
        return None
    return load_labelled_set(paths.DEFAULT_SAMPLE, limit)


@dataclass
class LabelledPass:
    """One model's predictions on the decodable posters of a labelled set."""

    probabilities: np.ndarray  # (N, G) for the decodable posters
    kept: np.ndarray  # indices into the labelled set
    end_to_end_s: list[float]
    failed: int


def labelled_pass(
    posters: LabelledSet, size: int, predict: Callable[[np.ndarray], np.ndarray]
) -> LabelledPass:
    """Decode + preprocess + predict one poster at a time, timing each end to end.
    Raises PosterliteError when no poster decodes."""
    probabilities, kept, times = [], [], []
    failed = 0
    clock = time.perf_counter
    for index, path in enumerate(posters.paths):
        start = clock()
        try:
            pixels = load_poster(path, size)
        except PosterDecodeError:
            failed += 1
            continue
        probs = predict(pixels[None])
        times.append(clock() - start)
        probabilities.append(np.asarray(probs).reshape(-1))
        kept.append(index)
    if not probabilities:
        raise PosterliteError(f"{posters.root}: no poster of the labelled set could be decoded")
    return LabelledPass(np.stack(probabilities), np.asarray(kept), times, failed)


def accuracy_of(
    posters: LabelledSet, result: LabelledPass, genres: Sequence[str]
) -> MultiLabelReport:
    """`metrics.evaluate` of a pass at the default threshold, on the posters it kept."""
    return score(posters, result.kept, result.probabilities, genres)


def score(
    posters: LabelledSet, kept: np.ndarray, probabilities: np.ndarray, genres: Sequence[str]
) -> MultiLabelReport:
    """`metrics.evaluate` at the default threshold of (N, G) `probabilities` for the
    posters at indices `kept`, in the model's `genres` order."""
    y_true = posters.targets(genres)[kept]
    return evaluate(y_true, probabilities, list(genres), DEFAULT_THRESHOLD)
