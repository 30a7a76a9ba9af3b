"""The training manifest: one CSV row per labelled poster (path, genres, split, source).

`data split` writes it, `train`, `convert` and `bench` read it. Genres are stored by name,
`|`-separated, so a manifest stays readable and valid if the scheme's order changes.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from posterlite.errors import PosterliteError
from posterlite.fileio import atomic_write_text

MANIFEST_FIELDS = ("path", "genres", "split", "source", "film_id")


@dataclass(frozen=True)
class ManifestRow:
    """One poster of a manifest: its file, genres and split."""

    path: str  # absolute, or relative to the manifest's folder
    genres: tuple[str, ...]
    split: str  # "train" | "val" | "test"
    source: str = ""
    film_id: str = ""


def write_manifest(rows: Iterable[ManifestRow], out: Path) -> None:
    """Write `rows` as a manifest CSV at `out` (atomically); raises OSError if it cannot
    be written."""
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(MANIFEST_FIELDS)
    for row in rows:
        writer.writerow([row.path, "|".join(row.genres), row.split, row.source, row.film_id])
    atomic_write_text(out, buffer.getvalue())


def read_manifest(path: Path) -> list[ManifestRow]:
    """Rows with `path` resolved against the manifest's folder."""
    path = Path(path)
    if not path.is_file():
        raise PosterliteError(f"manifest not found: {path}")
    base = path.parent
    rows: list[ManifestRow] = []
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = set(MANIFEST_FIELDS[:3]) - set(reader.fieldnames or ())
        if missing:
            raise PosterliteError(f"{path}: not a posterlite manifest (missing {sorted(missing)})")
        for record in reader:
            poster = Path(record["path"])
            rows.append(
                ManifestRow(
                    path=str(poster if poster.is_absolute() else (base / poster)),
                    genres=tuple(g for g in record["genres"].split("|") if g),
                    split=record["split"],
                    source=record.get("source") or "",
                    film_id=record.get("film_id") or "",
                )
            )
    return rows


def manifest_sha256(path: Path) -> str:
    """sha256 (hex) of the manifest file's bytes; raises OSError if unreadable."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
