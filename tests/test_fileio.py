"""posterlite.fileio: folders replaced whole, strict JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from posterlite.card import ModelCard
from posterlite.fileio import json_text, replace_dir


def test_replace_dir_swaps_a_folder_whole(tmp_path):
    target, staging = tmp_path / "model", tmp_path / ".model.staging"
    staging.mkdir()
    (staging / "new.txt").write_text("new")
    replace_dir(staging, target)  # no target yet
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"] and not staging.exists()
    (target / "stale.txt").write_text("old")
    staging.mkdir()
    (staging / "newer.txt").write_text("newer")
    replace_dir(staging, target)  # the old folder goes whole, nothing of it stays
    assert sorted(p.name for p in target.iterdir()) == ["newer.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_check_writable_folder_probes_for_real(tmp_path):
    """A folder that exists or can be created passes and is left as it was; one under a
    regular file, a dangling link, or inside /proc (os.access says writable there, even
    for root, yet nothing can be created) is refused in one line."""
    from pathlib import Path

    import pytest

    from posterlite.errors import PosterliteError
    from posterlite.fileio import check_writable_folder

    check_writable_folder(tmp_path)
    check_writable_folder(tmp_path / "new" / "deeper")
    assert list(tmp_path.iterdir()) == []  # nothing created, the probe removed
    (tmp_path / "file").write_text("x")
    (tmp_path / "dangling").symlink_to(tmp_path / "absent")
    refused = [tmp_path / "file" / "out", tmp_path / "dangling"]
    if Path("/proc/self").is_dir():
        refused.append(Path("/proc/posterlite-out"))
    for folder in refused:
        with pytest.raises(PosterliteError, match=f"cannot write to output folder {folder}"):
            check_writable_folder(folder)


def _strict_loads(text: str) -> object:
    def refuse(name: str) -> None:
        raise AssertionError(f"bare {name} written")

    return json.loads(text, parse_constant=refuse)


def test_json_text_is_strict_ascii_json() -> None:
    value = {
        "scores": [math.nan, math.inf, -math.inf, np.float32(0.25), np.float64("nan")],
        "path": Path("/tmp/\x1b]0;x\x07 caf\u00e9.jpg"),
        "shape": (1, 2),
    }
    text = json_text(value)
    assert text.endswith("}\n") and text.isascii()
    assert _strict_loads(text) == {
        "scores": [None, None, None, 0.25, None],
        "path": "/tmp/\x1b]0;x\x07 caf\u00e9.jpg",
        "shape": [1, 2],
    }


def test_card_json_is_strict_even_with_an_undefined_map() -> None:
    card = ModelCard(
        name="x", arch="cnn", genres=["A"], input_size=32, thresholds=[0.5],
        validation={"mAP": math.nan},
    )  # fmt: skip
    assert _strict_loads(card.to_json())["validation"] == {"mAP": None}


def test_replace_dir_never_touches_a_folder_named_like_its_aside(tmp_path):
    """A user's `.model.old` beside the target is not posterlite's to delete."""
    target, staging = tmp_path / "model", tmp_path / ".model.staging"
    target.mkdir()
    (target / "old.txt").write_text("old")
    mine = tmp_path / ".model.old"
    mine.mkdir()
    (mine / "keep.txt").write_text("mine")
    staging.mkdir()
    (staging / "new.txt").write_text("new")
    replace_dir(staging, target)
    assert (mine / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".model.old", "model"]
