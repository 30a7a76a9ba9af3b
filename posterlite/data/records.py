"""What a scan finds, and the limits every read of a data set keeps.

Owns the result records (`LabeledPoster`, `SkippedItem`, `ScanResult`), the byte and decode
limits shared by scanning and downloading, film-id and raw-genre parsing, the one-line
escaping of anything a data set names, and the progress bar of long data work.

Film identity. IMDb ids come as `tt0089869` (imdb-7k) or `89869` (Kaggle); `film_id` is
the int of the digits as a string ("89869") so the same film is recognised across sets.
"""

from __future__ import annotations

import re
from collections import Counter
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from posterlite.genres import GenreScheme, genres_without_posters, no_posters_warning
from posterlite.safetext import display

# A poster is ~30 KB: a file or download past this is not one (scan and download refuse it).
MAX_POSTER_BYTES = 20 * 1024 * 1024
# The scan only needs to know a poster decodes; resizing to a tiny square keeps the exact
# training decode path (EXIF, mode conversion) while skipping most of the resize cost.
SCAN_DECODE_SIZE = 32

_FILM_ID_RE = re.compile(r"^(?:tt)?(\d+)(?:\.0+)?$", re.IGNORECASE)
_GENRE_SPLIT_RE = re.compile(r"[|,\s]+")


@dataclass(frozen=True)
class LabeledPoster:
    """One usable poster: a decodable file with at least one genre of the scheme."""

    path: Path
    genres: tuple[str, ...]
    film_id: str
    source: str


@dataclass(frozen=True)
class SkippedItem:
    """A row or file left out; `reason` is a short tag (preprocess's decode reasons too)."""

    path: str
    reason: str
    detail: str = ""

    def to_json(self) -> dict[str, str]:
        """The item as a JSON object: path, reason, detail."""
        return {"path": self.path, "reason": self.reason, "detail": self.detail}


@dataclass
class ScanResult:
    """One data set read: its layout, the usable posters, and every row or file left out."""

    format: str
    root: Path
    csv: Path | None
    encoding: str | None
    scheme: GenreScheme
    posters: list[LabeledPoster] = field(default_factory=list)
    unlabeled: list[Path] = field(default_factory=list)
    skipped: list[SkippedItem] = field(default_factory=list)

    def genre_counts(self) -> dict[str, int]:
        """Posters per genre of the scheme, in the scheme's order (0 for a genre with none)."""
        counts = Counter(g for poster in self.posters for g in poster.genres)
        return {name: counts.get(name, 0) for name in self.scheme.names}

    def skipped_counts(self) -> dict[str, int]:
        """Skipped rows or files per reason, reasons sorted."""
        return dict(sorted(Counter(item.reason for item in self.skipped).items()))

    def genres_without_posters(self) -> tuple[str, ...]:
        """The scheme's genres that no usable poster here has."""
        return genres_without_posters((p.genres for p in self.posters), self.scheme.names)

    def warnings(self) -> list[str]:
        """One line if genres of the scheme have no poster here (see `no_posters_warning`),
        else no line."""
        missing = self.genres_without_posters()
        return [no_posters_warning(missing, f"in {self.root}")] if missing else []

    def to_json(self) -> dict[str, object]:
        """Every figure and every skipped item as one JSON object (`data scan --json`)."""
        return {
            "format": self.format,
            "root": str(self.root),
            "csv": str(self.csv) if self.csv else None,
            "encoding": self.encoding,
            "posters": len(self.posters),
            "unlabeled": len(self.unlabeled),
            "genre_counts": self.genre_counts(),
            "genres_without_posters": list(self.genres_without_posters()),
            "skipped_counts": self.skipped_counts(),
            "skipped": [s.to_json() for s in self.skipped],
            "unlabeled_files": [str(p) for p in self.unlabeled],
        }


def normalize_film_id(raw: str) -> str:
    """The film id of an IMDb id as written: `tt0089869`, `89869` and `89869.0` all return
    "89869"; other names are returned stripped, as given. Never raises."""
    text = raw.strip()
    match = _FILM_ID_RE.match(text)
    # Leading zeros stripped as text: int() refuses strings past 4,300 digits.
    return (match.group(1).lstrip("0") or "0") if match else text


def split_raw_genres(text: str) -> list[str]:
    """The raw genre names of a cell, Kaggle `Mystery|Sci-Fi` and the streaming list's
    `Mystery Sci-Fi` alike (empty parts dropped). Never raises."""
    return [part for part in _GENRE_SPLIT_RE.split(text.strip()) if part]


def one_line(text: str, limit: int = 120) -> str:
    """`text` safe to print as (part of) one line: control characters (a CSV cell may hold
    newlines) escaped, clipped to `limit` characters. Never raises."""
    escaped = display(text)
    return escaped if len(escaped) <= limit else escaped[: limit - 3] + "..."


class ProgressBar(Protocol):
    """The part of a tqdm bar the data commands use (tqdm ships no type information)."""

    def update(self, n: float = 1) -> object:
        """Advance the bar by `n`."""


def progress_bar(total: int, desc: str, enabled: bool) -> AbstractContextManager[ProgressBar]:
    """A tqdm bar on stderr counting files (a context manager; `.update(n)` advances it).
    No bar when `enabled` is False or stderr is not a terminal (CI logs, pipes)."""
    from tqdm import tqdm

    bar: AbstractContextManager[ProgressBar] = tqdm(
        total=total, desc=desc, unit="file", leave=False, disable=None if enabled else True
    )
    return bar
