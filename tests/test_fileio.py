"""posterlite.fileio: folders replaced whole."""

from __future__ import annotations

from posterlite.fileio import replace_dir


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
