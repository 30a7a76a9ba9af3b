"""calibration build: train split only, exclusions, stratification, determinism, encoding."""

from __future__ import annotations

import csv
import shutil
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import make_poster
from PIL import Image

from posterlite.calibration import build_calibration_set
from posterlite.cli import main
from posterlite.errors import PosterliteError
from posterlite.genres import DEFAULT_GENRES
from posterlite.manifest import ManifestRow, write_manifest


def _skewed_manifest(root: Path, count: int = 80) -> Path:
    """Mostly Drama; each rarer genre on only a few train posters; odd ones are val."""
    rows = []
    rare = ["Action", "Comedy", "Crime", "Romance", "Other"]
    for index in range(count):
        path = make_poster(root / "p" / f"p{index:03d}.jpg", index, size=(120, 180))
        genres: tuple[str, ...] = ("Drama",)
        if index % 10 in (0, 2):  # train rows (even) carrying a rare genre
            genres = ("Drama", rare[(index // 10) % len(rare)])
        rows.append(
            ManifestRow(str(path), genres, "val" if index % 2 else "train", "t", f"f{index}")
        )
    manifest = root / "manifest.csv"
    write_manifest(rows, manifest)
    return manifest


def _rows(out: Path) -> list[dict[str, str]]:
    with (out / "manifest.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_train_split_only_and_stratified(tmp_path: Path) -> None:
    manifest = _skewed_manifest(tmp_path)
    result = build_calibration_set(manifest, tmp_path / "cal", n=18, seed=0)
    rows = _rows(tmp_path / "cal")
    assert len(rows) == len(result.items) == 18
    indices = {int(Path(r["source"]).stem[1:]) for r in rows}
    assert all(i % 2 == 0 for i in indices), "a val poster was drawn"
    counts = Counter(g for r in rows for g in r["genres"].split("|"))
    from posterlite.manifest import read_manifest

    available = Counter(g for r in read_manifest(manifest) if r.split == "train" for g in r.genres)
    assert available["Action"] == 4 and available["Romance"] == 2
    quota = 3  # ceil(18 / 6)
    for genre, n in available.items():
        assert counts[genre] >= min(quota, n), (genre, counts)
    # A random draw of 18 from 40 train posters (8 rare) would rarely reach every quota.
    for row in rows:
        image = Image.open(tmp_path / "cal" / row["path"])
        assert image.format == "JPEG" and image.width == 224 and image.height == 336
        assert len(row["sha256"]) == 64 and len(row["source_sha256"]) == 64
    readme = (tmp_path / "cal" / "README.md").read_text()
    assert "train split only" in readme and "--seed 0" in readme


def test_deterministic_and_seed_dependent(tmp_path: Path) -> None:
    manifest = _skewed_manifest(tmp_path)
    build_calibration_set(manifest, tmp_path / "a", n=12, seed=3)
    build_calibration_set(manifest, tmp_path / "b", n=12, seed=3)
    build_calibration_set(manifest, tmp_path / "c", n=12, seed=4)
    a, b, c = (_rows(tmp_path / name) for name in "abc")
    assert a == b
    for row in a:
        assert (tmp_path / "a" / row["path"]).read_bytes() == (
            tmp_path / "b" / row["path"]
        ).read_bytes()
    assert [r["source"] for r in a] != [r["source"] for r in c]


def test_exclude_by_content_and_rebuild_replaces(tmp_path: Path) -> None:
    manifest = _skewed_manifest(tmp_path, count=20)
    first = _rows(build_calibration_set(manifest, tmp_path / "cal", n=10, seed=0).out)
    # A bench sample that holds a copy (different path, same bytes) of a drawn poster.
    bench = tmp_path / "bench"
    bench.mkdir()
    drawn = Path(first[0]["source"])
    shutil.copy(drawn, bench / "copy.jpg")
    result = CliRunner().invoke(
        main,
        [
            "calibration",
            "build",
            str(manifest),
            "--n",
            "10",
            "--out",
            str(tmp_path / "cal"),
            "--exclude",
            str(bench),
        ],
    )
    assert result.exit_code == 0, result.output
    second = _rows(tmp_path / "cal")
    assert drawn.name not in {Path(r["source"]).name for r in second}
    # 10 train posters, one excluded: the rebuild holds 9 and no file of the first set.
    assert len(list((tmp_path / "cal" / "images").iterdir())) == len(second) == 9


def test_folders_layout_source(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for index, genre in enumerate(DEFAULT_GENRES * 2):
        make_poster(data / genre / f"x{index}.jpg", index)
    result = build_calibration_set(data, tmp_path / "cal", n=6, seed=0)
    assert sorted(g for item in result.items for g in item.genres) == sorted(DEFAULT_GENRES)


def test_nothing_usable_is_an_error(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    write_manifest([ManifestRow(str(tmp_path / "x.jpg"), ("Drama",), "val")], manifest)
    result = CliRunner().invoke(
        main, ["calibration", "build", str(manifest), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 1 and "train split" in result.stderr
    with pytest.raises(PosterliteError, match="train split"):
        build_calibration_set(manifest, tmp_path / "o")
