"""Distillation targets for end-to-end fine-tuning (`--ft-teacher`, `--ft-distill`).

Teachers are trained posterlite model folders (their `model.keras`). Their probabilities on
the un-augmented train posters (the decoded uint8 cache, the one preprocessing) are averaged
and cached by content (teacher weights + posters), then blended with the labels:
target = (1 - alpha) x labels + alpha x teachers. Binary cross-entropy is linear in its
target, so this is exactly alpha x the distillation loss + (1 - alpha) x the label loss, and
the class-balanced weighting applies to both. The same soft target serves every augmented
view of a poster: the crops are mild (>= 70 % of the area), so the teacher's answer on the
whole poster stands for them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from posterlite.card import MODEL_NAME
from posterlite.errors import PosterliteError
from posterlite.fileio import atomic_path, sha256_file
from posterlite.train.dataset import predict_pixels


def teacher_files(teachers: Sequence[str]) -> list[Path]:
    """Each teacher's model.keras (a folder or the file itself); a clear error if absent."""
    files = []
    for teacher in teachers:
        path = Path(teacher)
        file = path / MODEL_NAME if path.is_dir() else path
        if not file.is_file():
            raise PosterliteError(f"--ft-teacher: no model.keras in {teacher}")
        files.append(file)
    return files


def blend_targets(labels: np.ndarray, teacher: np.ndarray, alpha: float) -> np.ndarray:
    """(1 - alpha) x labels + alpha x teacher probabilities, float32, shapes checked."""
    if labels.shape != teacher.shape:
        raise PosterliteError(
            f"teacher outputs {teacher.shape} do not match the labels {labels.shape}"
        )
    return ((1.0 - alpha) * labels + alpha * teacher).astype(np.float32)


@dataclass(frozen=True)
class TeacherOutputs:
    """The teachers' averaged probabilities on the train posters, and which models they are."""

    probabilities: np.ndarray  # (n, genres) float32, the teachers' mean
    model_sha256: dict[str, str]  # teacher as given -> sha256 of its model.keras


def teacher_probabilities(
    teachers: Sequence[str], pixels: np.ndarray, keys: Sequence[str], cache: Path
) -> TeacherOutputs:
    """Mean probabilities of the teachers on `pixels` (uint8 posters, the cache's size),
    cached under `<cache>/teachers/` by the teachers' weights and the posters' keys."""
    import keras

    files = teacher_files(teachers)
    shas = {teacher: sha256_file(file) for teacher, file in zip(teachers, files, strict=True)}
    digest = hashlib.sha256()
    for sha in shas.values():
        digest.update(sha.encode())
    digest.update(f"{pixels.shape[1]}|".encode() + "\n".join(keys).encode())
    path = cache / "teachers" / f"{len(keys)}-{digest.hexdigest()[:20]}.npy"
    if path.is_file():
        saved = np.load(path)
        if saved.shape[0] == len(keys):
            return TeacherOutputs(saved, shas)
    from tqdm import tqdm

    outputs = []
    for file in tqdm(files, desc=f"teacher outputs on {len(keys)} posters", leave=False):
        model = keras.models.load_model(file, compile=False)
        outputs.append(predict_pixels(model, pixels, int(model.input_shape[1])))
        del model
    mean = np.mean(outputs, axis=0).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with tmp.open("wb") as handle:
            np.save(handle, mean)
    return TeacherOutputs(mean, shas)
