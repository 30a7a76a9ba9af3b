"""Where the bench finds and puts things: the checkout, the shipped models, the bundled
labelled sample, the conversion cache and `../shared` (bottom layer: no bench imports).

Read at call time (`paths.MODELS_DIR`), so a test points the whole bench elsewhere by
setting them here."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MODELS_DIR = REPO / "models"
DEFAULT_SAMPLE = REPO / "benchmarks" / "sample"
CACHE_DIR = REPO / ".cache" / "bench"


def shared_dir() -> Path:
    """`../shared` beside the checkout, or `$POSTERLITE_SHARED`."""
    return Path(os.environ.get("POSTERLITE_SHARED", REPO.parent / "shared"))


def default_outputs() -> tuple[Path, Path]:
    """(JSON, plot) written by every CLI run unless --json / --plot say otherwise."""
    return CACHE_DIR / "bench.json", CACHE_DIR / "bench.png"  # (the CLI's defaults)


def display_path(path: Path | str) -> str:
    """`path` repo-relative when inside the checkout (reports carry no machine's absolute
    path), else as given."""
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def repo_relative(path: Path | str) -> str:
    """A path as the repository sees it: `models/x`, `../shared/...`, a relative path as
    given; anything else `<outside the repository>/<name>`, never the machine's path."""
    path = Path(path)
    if not path.is_absolute():
        return path.as_posix()
    resolved = path.resolve()
    for base, prefix in ((REPO, ""), (REPO.parent / "shared", "../shared/")):
        try:
            return prefix + resolved.relative_to(base.resolve()).as_posix()
        except ValueError:
            continue
    return f"<outside the repository>/{path.name}"
