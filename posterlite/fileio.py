"""Atomic writes (every file posterlite produces appears whole or not at all), strict JSON
and the library-version record that reports and cards carry."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import platform
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TypeAlias, cast, overload

import numpy as np

from posterlite.errors import PosterliteError


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temp path beside `target`; rename it onto `target` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates 0600; a written artefact should have the usual umask permissions.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def replace_dir(staging: Path, target: Path) -> None:
    """Move a finished `staging` folder onto `target`, replacing it whole: the old folder is
    renamed aside first (to a fresh name, so no other folder is ever in the way) and removed
    only after the new one is in place; if that move fails, the old folder is put back."""
    aside = None
    if target.exists():
        aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
        os.replace(target, aside)  # a folder renamed onto an empty one replaces it (POSIX)
    try:
        os.replace(staging, target)
    except BaseException:
        if aside is not None:
            os.replace(aside, target)
        raise
    if aside is not None:
        shutil.rmtree(aside)


def atomic_write_bytes(target: Path, data: bytes) -> None:
    """Write `data` to `target` through a temporary file and a rename (never half-written);
    raises OSError if it cannot be written."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(target: Path, text: str) -> None:
    """`atomic_write_bytes` of `text` in UTF-8; raises OSError if it cannot be written."""
    atomic_write_bytes(target, text.encode("utf-8"))


def check_writable_folder(folder: Path) -> None:
    """Refuse, before any work is spent, an output folder nothing can be written to.

    `folder` -- or, if it does not exist yet, the nearest existing folder above it, where
    it would be created -- must be a folder in which a file can really be created: a temp
    file is made and removed. Permission bits would not do: root ignores them, and only a
    real create sees a read-only mount or a pseudo file system such as /proc.
    """
    folder = Path(folder)
    existing = folder.absolute()
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise PosterliteError(f"cannot write to output folder {folder}: {existing} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".posterlite-write-check-", dir=existing)
    except OSError as exc:
        raise PosterliteError(
            f"cannot write to output folder {folder}: {exc.strerror or exc} ({existing})"
        ) from exc
    os.close(fd)
    os.unlink(probe)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """The file's sha256 (hex), read in `chunk`-byte blocks; raises OSError if unreadable."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# A value json.dumps writes as it is (recursive: lists and string-keyed objects of these).
JSONValue: TypeAlias = "None | bool | int | float | str | list[JSONValue] | dict[str, JSONValue]"


@overload
def jsonable(value: Mapping[str, object]) -> dict[str, JSONValue]: ...
@overload
def jsonable(value: object) -> JSONValue: ...
def jsonable(value: object) -> JSONValue:
    """Strict-JSON form: NaN/inf -> None, numpy scalars -> Python, Paths -> str, tuples -> lists.

    Returns the converted value; raises nothing (a value of another type is returned as it
    is, and `json.dumps` refuses it)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return cast(JSONValue, value)  # str, int, bool, None (or what json.dumps refuses)


def json_text(value: object, indent: int | None = 2, sort_keys: bool = False) -> str:
    """`value` as strict JSON text (plus a newline): the one way posterlite writes JSON.

    Non-finite floats become null first (`jsonable`) and `allow_nan=False` refuses any that
    slip through, so no file or stdout document can hold the bare NaN/Infinity that strict
    parsers reject. ASCII only (`ensure_ascii`): text from a model or a file travels as
    escapes, so a JSON document is safe on a terminal and exact in a file.
    """
    return json.dumps(jsonable(value), indent=indent, sort_keys=sort_keys, allow_nan=False) + "\n"


LIBRARIES = (
    "posterlite",
    "ai-edge-litert",
    "tflite-runtime",
    "tensorflow",
    "keras",
    "numpy",
    "pillow",
    "scikit-learn",
    "imbalanced-learn",
    "matplotlib",
)


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries whose behaviour a figure depends on."""
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for dist in LIBRARIES:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return versions
