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
