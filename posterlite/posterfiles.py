"""Which poster files a folder, a glob or a command line names; safe on untrusted trees.

Owns `expand_posters` (predict's POSTERS arguments), `image_files` (a poster folder,
recursively: convert's calibration set) and `glob_paths`. The rules, for folders nobody
vetted:

- A walk never follows a symlink to a folder and never enters a folder twice (same
  st_dev/st_ino): a link loop (`a/up -> ..`), a link to `/` or a bind-mount loop cannot make
  it endless or huge. Symlinks to files are followed. (Python's own
  `glob.glob(..., recursive=True)` follows folder links and never returns on a loop.)
- `**` in a glob matches the folders that walk reaches (not hidden ones, as glob.glob);
  other glob components match names in one folder, so their depth is the pattern's.
- Nothing is opened here. A FIFO, device or socket that is named or matched is passed on
  and refused by `preprocess` (which stats before it opens) with a one-line reason.

Standard library only: this runs on the phone-side install.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

# Inside a folder only image-looking files are posters (a CSV beside them is not);
# a file named explicitly is always tried, and reported if it does not decode.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
_GLOB_CHARS = frozenset("*?[")


def looks_like_image(path: Path) -> bool:
    """True for a poster file name: an image suffix and not hidden (the file is not read)."""
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def _entries(directory: Path) -> list[os.DirEntry[str]]:
    """A folder's entries sorted by name; an unreadable or vanished folder has none."""
    try:
        with os.scandir(directory) as scan:
            return sorted(scan, key=lambda entry: entry.name)
    except OSError:
        return []


def _folder_key(entry: os.DirEntry[str]) -> tuple[int, int] | None:
    """(st_dev, st_ino) of a real folder (not a symlink to one); None for anything else."""
    try:
        if not entry.is_dir(follow_symlinks=False):
            return None
        info = entry.stat(follow_symlinks=False)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _is_folder_link(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_symlink() and entry.is_dir()
    except OSError:
        return False


def walk(root: Path, include_hidden: bool = True) -> Iterator[tuple[Path, bool]]:
    """(path, is_folder) for everything below `root`, each real folder entered once.

    Symlinks to folders are skipped: neither entered nor listed (a match on one would be
    walked by `expand_posters`, and it may point at `/`). Order: folder by folder, names
    sorted; callers sort the result when they need a total order.
    """
    try:
        info = os.stat(root)  # `root` itself may be a link the user named: follow it
    except OSError:
        return
    seen = {(info.st_dev, info.st_ino)}
    pending = [Path(root)]
    while pending:
        folder = pending.pop()
        for entry in _entries(folder):
            if not include_hidden and entry.name.startswith("."):
                continue
            if _is_folder_link(entry):
                continue
            path = folder / entry.name
            key = _folder_key(entry)
            if key is not None:
                if key in seen:
                    continue
                seen.add(key)
                pending.append(path)
            yield path, key is not None


def image_files(folder: Path) -> list[Path]:
    """Poster files under `folder` (recursively, sorted): image-looking names that are not
    folders. A non-regular one (FIFO, device) is kept so reading it reports it."""
    return sorted(p for p, is_folder in walk(Path(folder)) if not is_folder and looks_like_image(p))


def _match_component(folders: Iterable[Path], pattern: str) -> list[Path]:
    """Names in each folder matching one glob component (no separators in it)."""
    hidden_ok = pattern.startswith(".")
    return [
        folder / entry.name
        for folder in folders
        for entry in _entries(folder)
        if (hidden_ok or not entry.name.startswith(".")) and fnmatch.fnmatch(entry.name, pattern)
    ]


def _double_star(folders: Iterable[Path], last: bool) -> list[Path]:
    """`**`: each folder itself and every folder below it (plus every file when last)."""
    found: list[Path] = []
    for folder in folders:
        if not folder.is_dir():
            continue
        found.append(folder)
        found += [p for p, is_folder in walk(folder, include_hidden=False) if last or is_folder]
    return found


def glob_paths(pattern: str) -> list[Path]:
    """What `glob.glob(pattern, recursive=True)` matches, sorted, except that `**` uses
    `walk` (no folder links followed, no folder twice), so it always ends."""
    path = Path(pattern)
    parts = path.parts[1:] if path.is_absolute() else path.parts
    current = [Path(path.anchor) if path.is_absolute() else Path()]
    for index, part in enumerate(parts):
        if part == "**":
            current = _double_star(current, last=index == len(parts) - 1)
        elif _GLOB_CHARS & set(part):
            current = _match_component(current, part)
        else:
            current = [folder / part for folder in current]
        current = list(dict.fromkeys(current))  # `**/**` must not multiply the candidates
    return sorted(p for p in current if os.path.lexists(p) and p != Path())


def expand_posters(arguments: Iterable[str]) -> tuple[list[Path], list[str]]:
    """Files, folders (recursively, sorted) and globs -> (poster paths, unmatched args).

    A named file is always kept (even a FIFO: reading it refuses it by name); a folder or a
    glob match that is a folder contributes its `image_files`.
    """
    found: list[Path] = []
    missing: list[str] = []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            found += image_files(path)
        elif path.exists():
            found.append(path)
        elif _GLOB_CHARS & set(argument):
            files: list[Path] = []
            for match in glob_paths(argument):
                files += image_files(match) if match.is_dir() else [match]
            if files:
                found += dict.fromkeys(files)  # `dir/**` matches a file and its folder
            else:
                missing.append(argument)
        else:
            missing.append(argument)
    return found, missing
