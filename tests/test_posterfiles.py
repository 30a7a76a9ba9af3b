"""posterfiles: folders and globs on untrusted trees end, match like glob.glob, open nothing."""

from __future__ import annotations

import glob
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from posterlite.posterfiles import expand_posters, glob_paths, image_files, walk


def _within(seconds: float, work: Callable[[], Any]) -> Any:
    """work() in a daemon thread; a test failure (not a hung suite) if it does not end."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(work()), daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"still walking after {seconds} s")
    return result[0]


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


@pytest.fixture
def loop_tree(tmp_path: Path) -> Path:
    """loop/a.jpg, loop/sub/b.jpg, and three links back up (`..`, `../..`, the root
    itself by absolute path): with two of them glob.glob('loop/**/*.jpg') never returns."""
    root = tmp_path / "loop"
    _touch(root / "a.jpg")
    _touch(root / "sub" / "b.jpg")
    (root / "sub" / "up").symlink_to("..")
    (root / "sub" / "up2").symlink_to("../..")
    (root / "sub" / "again").symlink_to(root)
    return root


def test_globstar_over_a_symlink_loop_ends(loop_tree: Path, monkeypatch) -> None:
    monkeypatch.chdir(loop_tree.parent)
    found, missing = _within(10, lambda: expand_posters(["loop/**/*.jpg"]))
    assert found == [Path("loop/a.jpg"), Path("loop/sub/b.jpg")] and missing == []
    absolute = _within(10, lambda: glob_paths(str(loop_tree / "**" / "*.jpg")))
    assert absolute == [loop_tree / "a.jpg", loop_tree / "sub" / "b.jpg"]


def test_folder_walk_over_a_symlink_loop_ends(loop_tree: Path) -> None:
    assert _within(10, lambda: image_files(loop_tree)) == [
        loop_tree / "a.jpg",
        loop_tree / "sub" / "b.jpg",
    ]
    found, _ = _within(10, lambda: expand_posters([str(loop_tree), str(loop_tree / "**")]))
    # the folder, then `**` (its matches: files and folders, each file once)
    assert found == [loop_tree / "a.jpg", loop_tree / "sub" / "b.jpg"] * 2


def test_linked_folders_are_not_entered_but_a_named_link_is(tmp_path: Path) -> None:
    """A link to a folder inside the tree is not followed (it could point at `/`); a link
    the user names on the command line is."""
    real = tmp_path / "elsewhere"
    _touch(real / "far.jpg")
    tree = tmp_path / "tree"
    _touch(tree / "near.jpg")
    (tree / "link").symlink_to(real)
    (tree / "file-link.jpg").symlink_to(real / "far.jpg")  # links to files are followed
    assert image_files(tree) == [tree / "file-link.jpg", tree / "near.jpg"]
    assert image_files(tree / "link") == [tree / "link" / "far.jpg"]
    assert [p for p, is_folder in walk(tree) if is_folder] == []


def test_bind_mount_style_repeats_are_entered_once(tmp_path: Path) -> None:
    """The walk keys folders by (st_dev, st_ino): the same real folder reached twice (a
    bind mount loop; here the root named through a link) is entered once."""
    _touch(tmp_path / "t" / "x.jpg")
    (tmp_path / "via").symlink_to(tmp_path / "t")
    assert len(list(walk(tmp_path / "via"))) == 1


# Patterns whose glob.glob(recursive=True) answer (on a tree without links) must be ours.
PATTERNS = [
    "*.jpg",
    "**/*.jpg",
    "**",
    "a/**",
    "a/**/*.png",
    "a/*/x*.png",
    "[ab]/*.jpg",
    "a/**/c/*",
    "**/**/*.jpg",
    ".hidden/*",
    "*/.h*",
    "a/b/x1.png",
    "nothing/*.jpg",
    "a/?/*",
]


@pytest.fixture
def plain_tree(tmp_path: Path) -> Path:
    for name in [
        "top.jpg",
        "top.png",
        ".dot.jpg",
        "a/a1.jpg",
        "a/b/x1.png",
        "a/b/c/deep.jpg",
        "a/b/c/deep.png",
        "a/c/z.jpg",
        "b/b1.jpg",
        ".hidden/h.jpg",
        "a/.hc/in.jpg",
    ]:
        _touch(tmp_path / name)
    return tmp_path


@pytest.mark.parametrize("pattern", PATTERNS)
def test_glob_paths_matches_glob_glob(plain_tree: Path, monkeypatch, pattern: str) -> None:
    """(As a set: glob.glob lists a file once per way `**/**` reaches it; we list it once.)"""
    monkeypatch.chdir(plain_tree)
    for given in (pattern, str(plain_tree / pattern)):
        theirs = sorted({Path(m) for m in glob.glob(given, recursive=True)} - {Path()})
        assert glob_paths(given) == theirs, given


def test_special_files_are_listed_not_opened(tmp_path: Path) -> None:
    """A FIFO named x.jpg in a folder, matched by a glob or named: listed (reading it will
    refuse it by name, one line), never opened here -- opening it would block."""
    os.mkfifo(tmp_path / "pipe.jpg")
    _touch(tmp_path / "ok.jpg")
    arguments = [str(tmp_path), str(tmp_path / "*.jpg"), str(tmp_path / "pipe.jpg")]
    found, missing = _within(10, lambda: expand_posters(arguments))
    assert missing == []
    assert [p.name for p in found] == ["ok.jpg", "pipe.jpg", "ok.jpg", "pipe.jpg", "pipe.jpg"]


def test_unmatched_arguments_are_reported(tmp_path: Path) -> None:
    found, missing = expand_posters([str(tmp_path / "absent.jpg"), str(tmp_path / "*.gif")])
    assert found == [] and missing == [str(tmp_path / "absent.jpg"), str(tmp_path / "*.gif")]
