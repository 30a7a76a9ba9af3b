"""Shared fixtures: the `../shared` folder (skip when absent) and tiny generated posters."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("POSTERLITE_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "data").is_dir():
        pytest.skip(f"../shared not present at {SHARED}")
    return SHARED


@pytest.fixture(scope="session")
def pretrained_dir(shared_dir: Path) -> Path:
    path = shared_dir / "pretrained"
    if not path.is_dir():
        pytest.skip("../shared/pretrained not present")
    return path


def make_poster(path: Path, seed: int, size: tuple[int, int] = (60, 90), mode: str = "RGB") -> Path:
    """A small random poster-like image (random blocks), saved as JPEG/PNG by suffix."""
    rng = np.random.default_rng(seed)
    width, height = size
    pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    image = Image.fromarray(pixels, "RGB")
    if mode != "RGB":
        image = image.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


@pytest.fixture
def poster_factory(tmp_path: Path):
    def factory(name: str, seed: int = 0, **kwargs) -> Path:
        return make_poster(tmp_path / name, seed, **kwargs)

    return factory
