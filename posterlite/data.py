"""Poster data sets: reading the layouts people have, splitting them, downloading posters.

This module owns everything between "a folder somebody gave us" and the training manifest:

- `scan_dataset(path, fmt=None, scheme=None) -> ScanResult`: detect the layout (Kaggle
  "Movie Genre from its Poster" CSV, multi-hot CSV, one folder per genre, the paper's
  streaming test list), map raw genres through the one `GenreScheme`, decode every poster
  with `preprocess.load_poster` (the training decode path, so a poster that passes here
  also loads in training) and account for every row or file it leaves out.
- `split_sources(...)`: merge several scans into one manifest (one poster per film), an
  optional seeded per-genre cap, and a seeded multi-label stratified train/val/test split.
- `download_posters(...)`: fetch the Kaggle CSV's poster URLs concurrently, resumably,
  over http(s) only (redirects too), each poster under a deadline and a size cap.

Untrusted input. A CSV row, a poster file or a server is hostile until read: every read
is bounded (CSV size, poster size, download deadline), and one bad row, file or poster
is one `skipped` / `failures` entry with a short reason while the others get their
results; only the data set itself being unreadable (or the output unwritable) is an error.

Film identity. IMDb ids come as `tt0089869` (imdb-7k) or `89869` (Kaggle); `film_id` is
the int of the digits as a string ("89869") so the same film is recognised across sets.
A scan keeps ONE poster per film: the first row whose poster exists and decodes. Later
rows of the same film are skipped as "duplicate" (the Kaggle derivative has 141 ids in two
rows with different posters; keeping the first *usable* one saves the films whose first
row points at an absent file). A row that repeats an earlier row of the same film and
poster is a "duplicate" whatever its genre says.

`N/A` and empty genres mean "no genre" (`genres.NO_GENRE`): such rows are skipped with
reason "empty genre" in the text layouts. In the multi-hot layout `N/A` is one of the data
set's own 0/1 genre columns, set by its curators: a film whose only column is `N/A` is a
labelled film of a genre outside the named five, so it counts as `Other` (imdb-7k: six
films; this is how its 5,249 distinct Ids are all labelled). A multi-hot row with no
column set at all is still "empty genre".

Split. Iterative stratification (Sechidis, Tsoumakas & Vlahavas, ECML PKDD 2011) over the
scheme's genres, with films (not posters) as the unit so a film never straddles splits.
It was chosen over label-powerset stratification because with six genres there are up to
63 genre combinations, many with a handful of films: a powerset split must merge those
rare combinations ad hoc, while the iterative algorithm hands out the rarest genre first
and keeps every single genre's val share near the target without any merging rule.
Default 70/15/15 train/val/test in two stages (see `assign_splits`): train/held-out 70/30
first, exactly the earlier train/val split for the same seed, then the held-out films are
stratified into val/test, so adding the test split moved no training poster.
"""

from __future__ import annotations

import csv
import http.client
import io
import os
import random
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from posterlite.errors import PosterliteError
from posterlite.fileio import atomic_write_bytes
from posterlite.genres import (
    GenreScheme,
    default_scheme,
    genres_without_posters,
    no_posters_warning,
)
from posterlite.manifest import ManifestRow, write_manifest
from posterlite.posterfiles import looks_like_image
from posterlite.preprocess import PosterDecodeError, load_poster
from posterlite.safetext import display

FORMATS: tuple[str, ...] = ("kaggle", "multihot", "folders", "streaming")
# Where a CSV layout's posters live, in order of preference; else the CSV's own folder.
POSTER_DIRS: tuple[str, ...] = ("MoviePosters", "posters", "Posters", "Images", "images")
# CSV names preferred when a folder holds several CSV files.
KNOWN_CSV_NAMES: tuple[str, ...] = ("MovieGenre.csv", "train.csv")
# Columns of the Kaggle / multi-hot CSVs that are metadata, never a 0/1 genre column.
META_COLUMNS = frozenset(
    {"id", "imdbid", "genre", "title", "poster", "imdb link", "imdb score", "year"}
)
# The scan only needs to know a poster decodes; resizing to a tiny square keeps the exact
# training decode path (EXIF, mode conversion) while skipping most of the resize cost.
SCAN_DECODE_SIZE = 32
# Scans share the machine: two decode threads (Pillow releases the GIL while decoding).
DEFAULT_SCAN_WORKERS = 2
SPLITS: tuple[str, ...] = ("train", "val", "test")
# A poster is ~30 KB: a file or download past this is not one (scan and download refuse it).
MAX_POSTER_BYTES = 20 * 1024 * 1024
# A CSV of the largest known data set is ~10 MB; this bounds what a scan reads into memory.
MAX_CSV_BYTES = 256 * 1024 * 1024
USER_AGENT = "posterlite-data-download/0.1"
WEB_SCHEMES = frozenset({"http", "https"})  # the only URLs (and redirects) a download follows
DEFAULT_TIMEOUT = 20.0  # seconds per socket operation
DEADLINE_TIMEOUTS = 4  # default deadline per poster, in timeouts
DOWNLOAD_CHUNK = 64 * 1024

_FILM_ID_RE = re.compile(r"^(?:tt)?(\d+)(?:\.0+)?$", re.IGNORECASE)
_GENRE_SPLIT_RE = re.compile(r"[|,\s]+")
_SAFE_ID_RE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$")


# --- results -------------------------------------------------------------------------
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


@dataclass
class ScanResult:
    format: str
    root: Path
    csv: Path | None
    encoding: str | None
    scheme: GenreScheme
    posters: list[LabeledPoster] = field(default_factory=list)
    unlabeled: list[Path] = field(default_factory=list)
    skipped: list[SkippedItem] = field(default_factory=list)

    def genre_counts(self) -> dict[str, int]:
        counts = Counter(g for poster in self.posters for g in poster.genres)
        return {name: counts.get(name, 0) for name in self.scheme.names}

    def skipped_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(item.reason for item in self.skipped).items()))

    def genres_without_posters(self) -> tuple[str, ...]:
        return genres_without_posters((p.genres for p in self.posters), self.scheme.names)

    def warnings(self) -> list[str]:
        """One line if genres of the scheme have no poster here (see `no_posters_warning`)."""
        missing = self.genres_without_posters()
        return [no_posters_warning(missing, f"in {self.root}")] if missing else []

    def to_json(self) -> dict:
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
            "skipped": [
                {"path": s.path, "reason": s.reason, "detail": s.detail} for s in self.skipped
            ],
            "unlabeled_files": [str(p) for p in self.unlabeled],
        }


# --- small pure helpers --------------------------------------------------------------
def normalize_film_id(raw: str) -> str:
    """`tt0089869`, `89869` and `89869.0` are all film "89869"; other names stay as given."""
    text = raw.strip()
    match = _FILM_ID_RE.match(text)
    # Leading zeros stripped as text: int() refuses strings past 4,300 digits.
    return (match.group(1).lstrip("0") or "0") if match else text


def split_raw_genres(text: str) -> list[str]:
    """Kaggle `Mystery|Sci-Fi` and the streaming list's `Mystery Sci-Fi` alike."""
    return [part for part in _GENRE_SPLIT_RE.split(text.strip()) if part]


def one_line(text: str, limit: int = 120) -> str:
    """`text` safe to print as (part of) one line: control characters (a CSV cell may hold
    newlines) escaped, clipped to `limit` characters."""
    escaped = display(text)
    return escaped if len(escaped) <= limit else escaped[: limit - 3] + "..."


def decode_text(data: bytes) -> tuple[str, str]:
    """CSV bytes to text: UTF-8 (with or without BOM) if valid, else ISO-8859-1.

    Kaggle's MovieGenre.csv is ISO-8859-1; its non-ASCII bytes are almost never valid
    UTF-8, and ISO-8859-1 decodes any byte, so trying UTF-8 first is a safe detector.
    """
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="strict"), "utf-8-sig"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("iso-8859-1"), "iso-8859-1"


@dataclass(frozen=True)
class CsvTable:
    path: Path
    encoding: str
    header: tuple[str, ...]
    rows: list[tuple[int, dict[str, str]]]  # (line number, row keyed by header name)

    def column(self, *names: str) -> str | None:
        """The header name matching one of `names` case-insensitively, in that order."""
        lookup = {name.strip().lower(): name for name in self.header}
        for name in names:
            if name in lookup:
                return lookup[name]
        return None


def read_csv_table(path: Path) -> CsvTable:
    """Read a CSV whatever its encoding; `PosterliteError` if it is not a readable CSV."""
    too_large = PosterliteError(f"{path}: over {MAX_CSV_BYTES // 2**20} MB, not a poster list")
    try:
        if Path(path).stat().st_size > MAX_CSV_BYTES:
            raise too_large
        with Path(path).open("rb") as handle:
            data = handle.read(MAX_CSV_BYTES + 1)  # bounded even if the file grows meanwhile
    except OSError as exc:
        raise PosterliteError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(data) > MAX_CSV_BYTES:
        raise too_large
    text, encoding = decode_text(data)
    try:
        reader = csv.reader(io.StringIO(text, newline=""))
        header = tuple(name.strip() for name in next(reader, []))
        rows: list[tuple[int, dict[str, str]]] = []
        for record in reader:
            if not any(cell.strip() for cell in record):
                continue
            padded = list(record) + [""] * (len(header) - len(record))
            rows.append((reader.line_num, dict(zip(header, padded, strict=False))))
    except csv.Error as exc:
        raise PosterliteError(f"{path}: not a readable CSV ({exc})") from exc
    if not header or not any(header):
        raise PosterliteError(f"{path}: empty CSV (no header)")
    return CsvTable(Path(path), encoding, header, rows)


def detect_csv_format(table: CsvTable) -> str:
    """Which CSV layout a header is; `PosterliteError` if none fits."""
    names = {name.lower() for name in table.header}
    if "genre" in names and names & {"imdbid", "id"}:
        if names & {"poster", "imdb link", "imdb score"}:
            return "kaggle"
        if "id" in names and _multihot_columns(table):
            return "multihot"
        if "imdbid" in names:
            return "streaming"
    raise PosterliteError(
        f"{table.path}: unknown CSV layout (header {', '.join(table.header[:8])}); "
        f"use --format {'|'.join(FORMATS)}"
    )


def _multihot_columns(table: CsvTable) -> list[str]:
    """Columns (outside the metadata) whose every value is 0 or 1: the genre columns."""
    allowed = {"", "0", "1", "0.0", "1.0"}
    columns = []
    for name in table.header:
        if not name or name.lower() in META_COLUMNS:
            continue
        if all(row.get(name, "").strip() in allowed for _, row in table.rows):
            columns.append(name)
    return columns


def _locate(path: Path) -> tuple[Path, Path | None]:
    """(data set root, CSV or None) for a folder or a CSV file."""
    path = Path(path)
    if not path.exists():
        raise PosterliteError(f"path not found: {path}")
    if path.is_file():
        if path.suffix.lower() != ".csv":
            raise PosterliteError(f"{path}: not a CSV file or a data set folder")
        return path.parent, path
    csvs = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".csv")
    if len(csvs) > 1:
        known = [p for name in KNOWN_CSV_NAMES for p in csvs if p.name == name]
        if not known:
            names = ", ".join(p.name for p in csvs)
            raise PosterliteError(f"{path}: several CSV files ({names}); pass one of them")
        csvs = known[:1]
    return path, (csvs[0] if csvs else None)


def _posters_dir(root: Path) -> Path:
    for name in POSTER_DIRS:
        if (root / name).is_dir():
            return root / name
    return root


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and looks_like_image(p))


def _is_file(path: Path) -> bool:
    """`path.is_file()`, False where the file system refuses the name (a CSV cell can name
    anything: 300 characters, a NUL byte)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def check_poster(path: Path) -> tuple[str, str] | None:
    """None if `path` decodes through `load_poster`, else (reason, detail).

    A corrupt file must never stop a scan, so anything Pillow raises is a skip reason; a
    file past `MAX_POSTER_BYTES` is refused before it is read.
    """
    try:
        size = Path(path).stat().st_size
    except FileNotFoundError:
        return "missing file", f"{path}: missing file"
    except OSError as exc:
        return "unreadable", exc.strerror or str(exc)
    if size > MAX_POSTER_BYTES:
        return "too large", f"{size:,} bytes, cap {MAX_POSTER_BYTES:,}"
    try:
        load_poster(path, SCAN_DECODE_SIZE)
    except PosterDecodeError as exc:
        return exc.reason, str(exc)
    except Exception as exc:  # noqa: BLE001 - third-party decoders raise anything
        return "undecodable", f"{type(exc).__name__}: {exc}"
    return None


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    # disable=None: no bar when stderr is not a terminal (CI logs, pipes).
    return tqdm(total=total, desc=desc, unit="file", leave=False, disable=None if enabled else True)


def check_posters(
    paths: Sequence[Path], workers: int = DEFAULT_SCAN_WORKERS, progress: bool = True
) -> dict[Path, tuple[str, str] | None]:
    """Decode each distinct path once, `workers` threads, progress bar on stderr."""
    unique = list(dict.fromkeys(paths))
    results: dict[Path, tuple[str, str] | None] = {}
    with _progress(len(unique), "decoding posters", progress) as bar:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for path, outcome in zip(unique, pool.map(check_poster, unique), strict=True):
                results[path] = outcome
                bar.update(1)
    return results


# --- scanning ------------------------------------------------------------------------
@dataclass
class _Candidate:
    """A labelled entry before decoding: a CSV row, or one file name across genre folders."""

    where: str  # what a skip reports: the poster path, or csv:line when there is none
    film_id: str
    genres: tuple[str, ...]
    paths: list[Path]  # existing copies (folders layout may have several); [] = missing
    repeat_key: tuple[str, str] | None = None  # (film, poster ref) of CSV rows


def scan_dataset(
    path: Path,
    fmt: str | None = None,
    scheme: GenreScheme | None = None,
    *,
    workers: int = DEFAULT_SCAN_WORKERS,
    progress: bool = True,
) -> ScanResult:
    """Read a poster data set in any supported layout; see the module docstring.

    A bad row or file is a `skipped` entry; only the data set itself (its folder, its CSV)
    failing to read is a `PosterliteError`.
    """
    if fmt is not None and fmt not in FORMATS:
        raise PosterliteError(f"unknown format {fmt!r} (choose {', '.join(FORMATS)})")
    try:
        return _scan(Path(path), fmt, scheme or default_scheme(), workers, progress)
    except OSError as exc:
        where = one_line(str(exc.filename or path))
        raise PosterliteError(f"cannot read {where}: {exc.strerror or exc}") from exc


def _scan(
    path: Path, fmt: str | None, scheme: GenreScheme, workers: int, progress: bool
) -> ScanResult:
    root, csv_path = _locate(path)
    if fmt == "folders" or (fmt is None and csv_path is None):
        if Path(path).is_file():
            raise PosterliteError(f"{path}: the folders layout needs a folder, not a file")
        result = ScanResult("folders", root, None, None, scheme)
        candidates = _folder_candidates(root, scheme, result)
    else:
        if csv_path is None:
            raise PosterliteError(f"{path}: no CSV file for format {fmt}")
        table = read_csv_table(csv_path)
        chosen = fmt or detect_csv_format(table)
        result = ScanResult(chosen, root, csv_path, table.encoding, scheme)
        candidates = _csv_candidates(table, chosen, root, scheme, result)
    _resolve(candidates, result, root.name or str(root), workers, progress)
    return result


def _folder_candidates(root: Path, scheme: GenreScheme, result: ScanResult) -> list[_Candidate]:
    """ROOT/<Genre>/<file>: the same file name in several genre folders is one poster."""
    by_name: dict[str, _Candidate] = {}
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    listed: dict[Path, list[Path]] = {}
    for folder in folders:
        try:
            listed[folder] = _image_files(folder)
        except OSError as exc:  # one unreadable genre folder must not end the scan
            result.skipped.append(SkippedItem(str(folder), "unreadable", exc.strerror or ""))
    for folder, files in listed.items():
        genres = scheme.map_raw([folder.name])
        for file in files:
            if not genres:
                result.skipped.append(SkippedItem(str(file), "empty genre", folder.name))
                continue
            entry = by_name.get(file.name)
            if entry is None:
                film = normalize_film_id(file.stem)
                by_name[file.name] = _Candidate(str(file), film, genres, [file])
            else:
                merged = set(entry.genres) | set(genres)
                entry.genres = tuple(n for n in scheme.names if n in merged)
                entry.paths.append(file)
    if not by_name and not any(listed.values()):
        raise PosterliteError(f"{root}: unknown layout (no CSV file and no genre folders)")
    # Posters lying directly in ROOT have no genre folder: unlabelled.
    result.unlabeled.extend(_image_files(root))
    return list(by_name.values())


def _csv_candidates(
    table: CsvTable, fmt: str, root: Path, scheme: GenreScheme, result: ScanResult
) -> list[_Candidate]:
    id_col = table.column("imdbid", "id") if fmt != "multihot" else table.column("id", "imdbid")
    genre_col = table.column("genre")
    missing = [name for name, col in (("imdbId/Id", id_col), ("Genre", genre_col)) if not col]
    if fmt == "multihot":
        genre_columns = _multihot_columns(table)
        if not genre_columns:
            missing.append("0/1 genre columns")
    if missing:
        raise PosterliteError(f"{table.path}: not a {fmt} CSV (missing {', '.join(missing)})")
    assert id_col is not None and genre_col is not None
    poster_col = table.column("poster") if fmt == "kaggle" else None
    folder = _posters_dir(root)
    images = _image_files(folder)
    by_film: dict[str, Path] = {}
    for image in images:
        by_film.setdefault(normalize_film_id(image.stem), image)

    candidates: list[_Candidate] = []
    referenced: set[Path] = set()
    for line, row in table.rows:
        raw_id = row.get(id_col, "").strip()
        if not raw_id:
            result.skipped.append(SkippedItem(f"{table.path}:{line}", "bad row", "empty id"))
            continue
        film = normalize_film_id(raw_id)
        if fmt == "multihot":
            raw = [name for name in genre_columns if row.get(name, "").strip() in ("1", "1.0")]
        else:
            raw = split_raw_genres(row.get(genre_col, ""))
        named = _named_poster(row.get(poster_col, "") if poster_col else "", folder, root)
        poster = named if named is not None and _is_file(named) else by_film.get(film)
        shown = poster or named or folder / f"{raw_id}.jpg"
        if poster is not None:
            referenced.add(poster)
        ref = poster.name if poster else (named.name if named else "")
        candidates.append(
            _Candidate(
                str(shown),
                film,
                scheme.map_raw(raw, no_genre_is_other=fmt == "multihot"),
                [poster] if poster else [],
                (film, ref),
            )
        )
    result.unlabeled.extend(image for image in images if image not in referenced)
    return candidates


def _named_poster(value: str, folder: Path, root: Path) -> Path | None:
    """The local file a Kaggle `Poster` cell names; None for URLs and empty cells."""
    value = value.strip()
    if not value or "://" in value:
        return None
    name = Path(value)
    if name.is_absolute():
        return name
    for base in (folder, root):
        if _is_file(base / name):
            return base / name
    return folder / name


def _resolve(
    candidates: list[_Candidate],
    result: ScanResult,
    source: str,
    workers: int,
    progress: bool,
) -> None:
    """Decode candidates in parallel, then keep the first usable poster of each film."""
    seen_rows: set[tuple[str, str]] = set()
    todo: list[_Candidate] = []
    for cand in candidates:
        if cand.repeat_key is not None:
            if cand.repeat_key in seen_rows:
                result.skipped.append(SkippedItem(cand.where, "duplicate", "repeated row"))
                continue
            seen_rows.add(cand.repeat_key)
        if not cand.genres:
            result.skipped.append(SkippedItem(cand.where, "empty genre"))
        elif not cand.paths:
            result.skipped.append(SkippedItem(cand.where, "missing file"))
        else:
            todo.append(cand)
    outcomes = check_posters([p for c in todo for p in c.paths], workers, progress)
    kept: dict[str, Path] = {}
    for cand in todo:
        good = [p for p in cand.paths if outcomes[p] is None]
        for bad in (p for p in cand.paths if outcomes[p] is not None):
            reason, detail = outcomes[bad]  # type: ignore[misc]
            result.skipped.append(SkippedItem(str(bad), reason, detail))
        if not good:
            continue
        if cand.film_id in kept:
            detail = f"film {cand.film_id} already has {kept[cand.film_id]}"
            result.skipped.append(SkippedItem(str(good[0]), "duplicate", detail))
            continue
        kept[cand.film_id] = good[0]
        result.posters.append(LabeledPoster(good[0], cand.genres, cand.film_id, source))


def format_scan_summary(result: ScanResult, seconds: float | None = None, limit: int = 10) -> str:
    """Readable multi-line summary of a scan (the CLI's non-JSON output)."""
    where = f"{result.csv.name}, " if result.csv else ""
    lines = [
        f"{result.root}: {result.format} layout ({where}encoding {result.encoding or 'n/a'})",
        f"  labelled posters: {len(result.posters):,}",
        f"  unlabelled images: {len(result.unlabeled):,}",
        "  genres: "
        + ", ".join(f"{name} {count:,}" for name, count in result.genre_counts().items()),
        f"  skipped: {len(result.skipped):,}"
        + (
            " ("
            + ", ".join(f"{reason} {n:,}" for reason, n in result.skipped_counts().items())
            + ")"
            if result.skipped
            else ""
        ),
    ]
    for item in result.skipped[:limit]:
        detail = f" ({one_line(item.detail)})" if item.detail else ""
        lines.append(f"    {item.reason}: {one_line(item.path, 200)}{detail}")
    if len(result.skipped) > limit:
        lines.append(f"    ... {len(result.skipped) - limit:,} more (use --json for all)")
    if seconds is not None:
        lines.append(f"  scanned in {seconds:.1f} s")
    return "\n".join(lines)


# --- splitting -----------------------------------------------------------------------
@dataclass
class SplitReport:
    out: Path
    scans: list[ScanResult]
    rows: list[ManifestRow]
    skipped: list[SkippedItem]  # films dropped while merging (already in an earlier source)
    capped: int  # posters removed by --per-genre
    genres: tuple[str, ...]

    def counts(self) -> dict[str, dict[str, int]]:
        """{split: {genre: posters, ..., "posters": n}}"""
        table: dict[str, dict[str, int]] = {}
        for split in SPLITS:
            rows = [r for r in self.rows if r.split == split]
            counts = Counter(g for r in rows for g in r.genres)
            table[split] = {"posters": len(rows), **{g: counts.get(g, 0) for g in self.genres}}
        return table

    def warnings(self) -> list[str]:
        return genre_gap_warnings(self.rows, self.genres, SPLITS, self.out)

    def to_json(self) -> dict:
        return {
            "out": str(self.out),
            "genres_without_posters": {
                "all": list(genres_without_posters((r.genres for r in self.rows), self.genres)),
                **{
                    split: list(
                        genres_without_posters(
                            (r.genres for r in self.rows if r.split == split), self.genres
                        )
                    )
                    for split in SPLITS
                },
            },
            "sources": [
                {"root": str(s.root), "format": s.format, "posters": len(s.posters)}
                for s in self.scans
            ],
            "counts": self.counts(),
            "merge_skipped": [
                {"path": s.path, "reason": s.reason, "detail": s.detail} for s in self.skipped
            ],
            "capped": self.capped,
        }


def genre_gap_warnings(
    rows: Sequence[ManifestRow], names: Sequence[str], splits: Sequence[str], manifest: Path
) -> list[str]:
    """Warning lines for a manifest's genre gaps: one naming the genres with no poster at
    all, then one per split in `splits` naming genres that have posters, but none there
    (a split without them cannot train or score them)."""
    absent = genres_without_posters((r.genres for r in rows), names)
    lines = [no_posters_warning(absent, f"in {manifest}")] if absent else []
    for split in splits:
        members = [r.genres for r in rows if r.split == split]
        if not members:
            continue  # a split the manifest does not have (e.g. no test split)
        gaps = [g for g in genres_without_posters(members, names) if g not in absent]
        if gaps:
            lines.append(no_posters_warning(gaps, f"in the {split} split of {manifest}"))
    return lines


def merge_sources(scans: Iterable[ScanResult]) -> tuple[list[LabeledPoster], list[SkippedItem]]:
    """All posters, each film once: the earliest source's poster wins."""
    kept: list[LabeledPoster] = []
    owner: dict[str, LabeledPoster] = {}
    skipped: list[SkippedItem] = []
    for scan in scans:
        for poster in scan.posters:
            first = owner.get(poster.film_id)
            if first is not None:
                detail = f"film {poster.film_id} already in {first.source} ({first.path})"
                skipped.append(SkippedItem(str(poster.path), "duplicate", detail))
                continue
            owner[poster.film_id] = poster
            kept.append(poster)
    return kept, skipped


def _films(posters: Sequence[LabeledPoster]) -> list[list[int]]:
    """Poster indices grouped by film, in first-seen order."""
    groups: dict[str, list[int]] = defaultdict(list)
    for index, poster in enumerate(posters):
        groups[poster.film_id].append(index)
    return list(groups.values())


def cap_per_genre(
    posters: Sequence[LabeledPoster], limit: int, rng: random.Random
) -> list[LabeledPoster]:
    """Random reduction: at most `limit` posters per genre (films taken whole, seeded).

    Films are visited in random order and taken if none of their genres is full yet, so
    no genre ever exceeds `limit` (a multi-label film counts for each of its genres).
    """
    films = _films(posters)
    rng.shuffle(films)
    counts: Counter[str] = Counter()
    taken: set[int] = set()
    for film in films:
        genres = {g for i in film for g in posters[i].genres}
        if all(counts[g] + len(film) <= limit for g in genres):
            counts.update({g: len(film) for g in genres})
            taken.update(film)
    return [p for i, p in enumerate(posters) if i in taken]


def iterative_stratify(
    label_sets: Sequence[frozenset[str]],
    fractions: Sequence[float],
    rng: random.Random,
    weights: Sequence[int] | None = None,
) -> list[int]:
    """Fold index per example (Sechidis et al. 2011, Algorithm 1), weights = posters.

    Repeatedly take the genre with the fewest unassigned examples and hand each of its
    examples to the fold that most lacks that genre (ties: the fold that most lacks
    examples overall, then random), so rare genres are spread first.
    """
    n = len(label_sets)
    weights = list(weights) if weights is not None else [1] * n
    total = sum(weights)
    desired = [f * total for f in fractions]
    label_totals: Counter[str] = Counter()
    for labels, w in zip(label_sets, weights, strict=True):
        for label in labels:
            label_totals[label] += w
    desired_label = {label: [f * c for f in fractions] for label, c in label_totals.items()}
    order = list(range(n))
    rng.shuffle(order)
    folds = [-1] * n
    remaining = set(order)

    def pick(scores: Sequence[float]) -> int:
        best = max(scores)
        tied = [j for j, s in enumerate(scores) if s == best]
        if len(tied) == 1:
            return tied[0]
        overall = [desired[j] for j in tied]
        top = max(overall)
        tied = [j for j, s in zip(tied, overall, strict=True) if s == top]
        return tied[0] if len(tied) == 1 else rng.choice(tied)

    while remaining:
        left: Counter[str] = Counter()
        for i in remaining:
            left.update(label_sets[i])
        if not left:  # unlabelled examples: balance sizes only
            for i in (i for i in order if i in remaining):
                fold = pick(desired)
                folds[i] = fold
                desired[fold] -= weights[i]
            break
        fewest = min(left.values())
        label = rng.choice(sorted(lab for lab, c in left.items() if c == fewest))
        for i in [i for i in order if i in remaining and label in label_sets[i]]:
            fold = pick(desired_label[label])
            folds[i] = fold
            remaining.discard(i)
            desired[fold] -= weights[i]
            for other in label_sets[i]:
                desired_label[other][fold] -= weights[i]
    return folds


def assign_splits(
    posters: Sequence[LabeledPoster],
    val_fraction: float,
    rng: random.Random,
    test_fraction: float = 0.0,
) -> list[str]:
    """Split name per poster; all posters of a film share one split.

    Two stages, so adding a test split never moves a training poster: first films are
    stratified into train / held out (val_fraction + test_fraction of the posters: with
    the same seed and total this is exactly the earlier train/val split), then the held-out
    films alone are stratified into val / test, continuing the same random stream.
    """
    films = _films(posters)
    label_sets = [frozenset(g for i in film for g in posters[i].genres) for film in films]
    held_out = val_fraction + test_fraction
    folds = iterative_stratify(label_sets, (1.0 - held_out, held_out), rng, [len(f) for f in films])
    names = ["train" if fold == 0 else "val" for fold in folds]
    if test_fraction > 0:
        held = [j for j, fold in enumerate(folds) if fold == 1]
        second = iterative_stratify(
            [label_sets[j] for j in held],
            (val_fraction / held_out, test_fraction / held_out),
            rng,
            [len(films[j]) for j in held],
        )
        for j, fold in zip(held, second, strict=True):
            names[j] = "val" if fold == 0 else "test"
    splits = [""] * len(posters)
    for film, name in zip(films, names, strict=True):
        for i in film:
            splits[i] = name
    return splits


def split_sources(
    sources: Sequence[Path],
    out: Path,
    val_fraction: float = 0.15,
    seed: int = 0,
    per_genre: int | None = None,
    fmt: str | None = None,
    scheme: GenreScheme | None = None,
    *,
    test_fraction: float = 0.15,
    progress: bool = True,
) -> SplitReport:
    """Scan, merge, optionally cap, stratify and write the manifest atomically."""
    if not 0.0 < val_fraction < 1.0:
        raise PosterliteError(f"--val-fraction must be between 0 and 1, got {val_fraction}")
    if not 0.0 <= test_fraction < 1.0 or val_fraction + test_fraction >= 1.0:
        raise PosterliteError(
            f"--test-fraction must be >= 0 with val + test < 1, got {test_fraction}"
        )
    if per_genre is not None and per_genre < 1:
        raise PosterliteError(f"--per-genre must be at least 1, got {per_genre}")
    if not sources:
        raise PosterliteError("no source given")
    scheme = scheme or default_scheme()
    scans = [scan_dataset(Path(s), fmt, scheme, progress=progress) for s in sources]
    posters, skipped = merge_sources(scans)
    rng = random.Random(seed)
    before = len(posters)
    if per_genre is not None:
        posters = cap_per_genre(posters, per_genre, rng)
    if not posters:
        raise PosterliteError("no usable labelled posters in " + ", ".join(map(str, sources)))
    splits = assign_splits(posters, val_fraction, rng, test_fraction)
    base = os.path.abspath(Path(out).parent)
    rows = [
        ManifestRow(
            path=os.path.relpath(os.path.abspath(p.path), base),
            genres=p.genres,
            split=split,
            source=p.source,
            film_id=p.film_id,
        )
        for split_name in SPLITS
        for p, split in zip(posters, splits, strict=True)
        if split == split_name
    ]
    try:
        write_manifest(rows, Path(out))
    except OSError as exc:
        raise PosterliteError(f"cannot write {out}: {exc.strerror or exc}") from exc
    return SplitReport(Path(out), scans, rows, skipped, before - len(posters), scheme.names)


def format_split_summary(report: SplitReport, seconds: float | None = None) -> str:
    counts = report.counts()
    width = max(len(g) for g in (*report.genres, "posters")) + 2
    header = (
        "".ljust(width)
        + "".join(s.rjust(8) for s in SPLITS)
        + "val share".rjust(11)
        + "test share".rjust(11)
    )
    lines = [f"wrote {report.out} ({len(report.rows):,} posters)"]
    for scan in report.scans:
        lines.append(f"  source {scan.root} ({scan.format}): {len(scan.posters):,} posters")
    if report.skipped:
        lines.append(f"  {len(report.skipped):,} films already in an earlier source: skipped")
    if report.capped:
        lines.append(f"  {report.capped:,} posters removed by --per-genre")
    lines.append("  " + header)
    for key in ("posters", *report.genres):
        values = [counts[s][key] for s in SPLITS]
        total = sum(values) or 1
        shares = f"{values[1] / total:10.1%}" + f"{values[2] / total:11.1%}"
        lines.append("  " + key.ljust(width) + "".join(f"{v:8,}" for v in values) + shares)
    if seconds is not None:
        lines.append(f"  done in {seconds:.1f} s")
    return "\n".join(lines)


# --- downloading ---------------------------------------------------------------------
@dataclass(frozen=True)
class DownloadFailure:
    imdb_id: str
    url: str
    reason: str
    detail: str = ""


@dataclass
class DownloadResult:
    out: Path
    downloaded: list[str] = field(default_factory=list)  # imdb ids fetched this run
    present: list[str] = field(default_factory=list)  # already there and decodable
    failures: list[DownloadFailure] = field(default_factory=list)
    duplicate_rows: int = 0  # later rows of an id: their URLs are tried as fallbacks

    def to_json(self) -> dict:
        return {
            "out": str(self.out),
            "downloaded": len(self.downloaded),
            "present": len(self.present),
            "failed": len(self.failures),
            "duplicate_rows": self.duplicate_rows,
            "failures": [
                {"imdb_id": f.imdb_id, "url": f.url, "reason": f.reason, "detail": f.detail}
                for f in self.failures
            ],
        }


@dataclass(frozen=True)
class DownloadLimits:
    """How long and how much one poster may cost.

    `timeout` bounds each socket operation (connect, one read); a server sending a byte
    per `timeout` would pass it forever, so `deadline` bounds the whole poster (every URL,
    retry and backoff of it) and `max_bytes` its size.
    """

    timeout: float = DEFAULT_TIMEOUT
    deadline: float | None = None  # None: DEADLINE_TIMEOUTS x timeout
    max_bytes: int = MAX_POSTER_BYTES
    retries: int = 3
    backoff: float = 0.5

    @property
    def deadline_s(self) -> float:
        return self.deadline if self.deadline is not None else DEADLINE_TIMEOUTS * self.timeout

    def check(self) -> None:
        if self.retries < 0 or self.timeout <= 0 or self.deadline_s <= 0 or self.max_bytes < 1:
            raise PosterliteError("--retries must be >= 0, --timeout and --deadline > 0")


@dataclass(frozen=True)
class _Job:
    imdb_id: str
    urls: tuple[str, ...]  # every URL the CSV gives this id, in row order
    target: Path


class _FetchError(Exception):
    def __init__(self, reason: str, detail: str = "", retry: bool = False) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail, self.retry = reason, detail, retry


class _Deadline:
    """The wall-clock limit of one poster, kept by a watchdog timer.

    Every socket the poster's requests open goes through `connect`; when the deadline
    passes the watchdog shuts them down, which ends a blocked connect, TLS handshake,
    header or body read at once (socket timeouts only bound a single read).
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._expires = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.expired = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def remaining(self) -> float:
        return self._expires - time.monotonic()

    def connect(
        self, address: tuple[str, int], timeout: float, source_address=None, *args, **kwargs
    ) -> socket.socket:
        """`socket.create_connection` whose socket the watchdog may shut down."""
        remaining = self.remaining()
        if remaining <= 0:
            raise TimeoutError("deadline passed")
        sock = socket.create_connection(address, min(timeout, remaining), source_address)
        sock.settimeout(timeout)
        with self._lock:
            self._sockets.append(sock)
            expired = self.expired
        if expired:
            _shut_down(sock)
        return sock

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut_down(sock)

    def cancel(self) -> None:
        self._timer.cancel()

    def failure(self, last: str = "") -> _FetchError:
        detail = f"over the {self.seconds:g} s deadline per poster"
        return _FetchError("deadline", detail + (f" (last: {last})" if last else ""))


def _shut_down(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed: the request it served is over


def _deadline_connections(http_class: type, deadline: _Deadline) -> Callable:
    """`http_class` (HTTP or HTTPS connection) whose sockets are opened by `deadline`."""

    def build(host: str, **kwargs) -> http.client.HTTPConnection:
        connection = http_class(host, **kwargs)
        # http.client opens its socket through this attribute (HTTPS wraps it afterwards),
        # so every byte of the request, TLS included, is under the watchdog.
        connection._create_connection = deadline.connect
        return connection

    return build


class _DeadlineHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self.deadline = deadline

    def do_open(self, http_class, req, **kwargs):  # noqa: ANN001 - urllib's signature
        return super().do_open(_deadline_connections(http_class, self.deadline), req, **kwargs)


class _DeadlineHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self.deadline = deadline

    def do_open(self, http_class, req, **kwargs):  # noqa: ANN001 - urllib's signature
        return super().do_open(_deadline_connections(http_class, self.deadline), req, **kwargs)


class _WebOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to http(s): a poster host must not send us to ftp:// (which
    urllib would log in to) or file://. Checked on every hop, not only the CSV's URL."""

    def http_error_302(self, req, fp, code, msg, headers):  # noqa: ANN001 - urllib's
        location = headers.get("location") or headers.get("uri") or ""
        _check_redirect(urllib.parse.urljoin(req.full_url, location.strip()), code, fp)
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001
        _check_redirect(newurl, code, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _check_redirect(url: str, code: int, fp) -> None:  # noqa: ANN001 - a response
    if urllib.parse.urlsplit(url).scheme not in WEB_SCHEMES:
        fp.close()
        raise _FetchError("bad redirect", f"{code} to {url[:80]}")


def _opener(deadline: _Deadline) -> urllib.request.OpenerDirector:
    """An opener that speaks http(s) only (no ftp, file or data handler at all), under
    `deadline`, following redirects to http(s) only; proxies from the environment apply."""
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.ProxyHandler(),
        _DeadlineHTTPHandler(deadline),
        _DeadlineHTTPSHandler(deadline),
        urllib.request.HTTPDefaultErrorHandler(),
        _WebOnlyRedirects(),
        urllib.request.HTTPErrorProcessor(),
    ):
        opener.add_handler(handler)
    return opener


def read_poster_urls(csv_path: Path) -> tuple[list[tuple[str, str]], CsvTable]:
    """(imdbId, Poster URL) per row of a Kaggle CSV, in row order."""
    table = read_csv_table(Path(csv_path))
    id_col, poster_col = table.column("imdbid", "id"), table.column("poster")
    if not id_col or not poster_col:
        raise PosterliteError(f"{csv_path}: needs imdbId and Poster columns to download")
    return [(row[id_col].strip(), row[poster_col].strip()) for _, row in table.rows], table


def _read_bounded(response, limit: int) -> bytes:  # noqa: ANN001 - an HTTP response
    """The body, read in chunks and refused as soon as it passes `limit` bytes."""
    declared = response.headers.get("Content-Length", "").strip()
    if declared.isdigit() and int(declared) > limit:
        raise _FetchError("too large", f"{int(declared):,} bytes declared, cap {limit:,}")
    chunks: list[bytes] = []
    size = 0
    while chunk := response.read(DOWNLOAD_CHUNK):
        size += len(chunk)
        if size > limit:
            raise _FetchError("too large", f"over the {limit:,} byte cap")
        chunks.append(chunk)
    return b"".join(chunks)


def _network_failure(exc: Exception, timeout: float) -> _FetchError:
    """A short reason for anything the HTTP stack raised, and whether a retry may help."""
    if isinstance(exc, urllib.error.HTTPError):
        # Server errors and rate limits are transient; 404/403/410 are dead links.
        transient = exc.code >= 500 or exc.code in (408, 429)
        return _FetchError(f"http {exc.code}", str(exc.reason), retry=transient)
    if isinstance(exc, urllib.error.URLError):
        if isinstance(exc.reason, TimeoutError):
            return _FetchError("timeout", f"no answer in {timeout:g} s", retry=True)
        return _FetchError("connection error", str(exc.reason), retry=True)
    if isinstance(exc, TimeoutError):
        return _FetchError("timeout", f"no answer in {timeout:g} s", retry=True)
    if isinstance(exc, http.client.HTTPException | OSError):
        return _FetchError("connection error", f"{type(exc).__name__}: {exc}", retry=True)
    if isinstance(exc, ValueError):
        return _FetchError("bad url", str(exc)[:120])
    # The HTTP stack raising anything else for one URL must not end the run.
    return _FetchError("connection error", f"{type(exc).__name__}: {exc}"[:160])


def _fetch(url: str, limits: DownloadLimits, deadline: _Deadline) -> bytes:
    """GET one URL under `deadline`; `_FetchError` with a short reason (and whether a retry
    may help)."""
    if urllib.parse.urlsplit(url).scheme.lower() not in WEB_SCHEMES:
        raise _FetchError("bad url", url[:80])
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with _opener(deadline).open(request, timeout=limits.timeout) as response:
            data = _read_bounded(response, limits.max_bytes)
    except _FetchError:
        raise
    except Exception as exc:  # noqa: BLE001 - every network failure is one poster's failure
        failure = _network_failure(exc, limits.timeout)
        raise (deadline.failure() if deadline.expired else failure) from exc
    if deadline.expired:  # the watchdog may have cut the body short
        raise deadline.failure()
    try:
        load_poster(data, SCAN_DECODE_SIZE)
    except PosterDecodeError as exc:
        # A cut connection without Content-Length shows up as a truncated image.
        raise _FetchError(exc.reason, str(exc), retry=exc.reason == "truncated") from exc
    return data


def _fetch_job(
    job: _Job, limits: DownloadLimits, sleep: Callable[[float], None]
) -> bytes | DownloadFailure:
    """The poster from the first URL that works (retries with exponential backoff), or the
    last failure; the whole job, every URL and retry, runs under one deadline."""
    failure = DownloadFailure(job.imdb_id, "", "no url")
    if not job.urls:
        return failure
    deadline = _Deadline(limits.deadline_s)
    try:
        for url in job.urls:
            for attempt in range(limits.retries + 1):
                if deadline.remaining() <= 0:
                    late = deadline.failure(failure.reason if failure.url else "")
                    return DownloadFailure(job.imdb_id, url, late.reason, late.detail)
                try:
                    return _fetch(url, limits, deadline)
                except _FetchError as exc:
                    failure = DownloadFailure(job.imdb_id, url, exc.reason, exc.detail)
                    if exc.reason == "deadline":
                        return failure
                    if not exc.retry or attempt == limits.retries:
                        break
                    # exponential backoff: 1x, 2x, 4x ..., never past the deadline
                    sleep(min(limits.backoff * 2**attempt, max(0.0, deadline.remaining())))
    finally:
        deadline.cancel()
    return failure


def _download_one(
    job: _Job, limits: DownloadLimits, sleep: Callable[[float], None]
) -> tuple[str, DownloadFailure | None]:
    """("present" | "downloaded" | "failed", failure). Never raises for one poster: a bad
    target (a folder, a name the file system refuses) is this poster's failure too."""
    try:
        if job.target.is_file() and check_poster(job.target) is None:
            return "present", None
        if job.target.is_dir():
            return "failed", DownloadFailure(job.imdb_id, "", "cannot write", "target is a folder")
        fetched = _fetch_job(job, limits, sleep)
        if isinstance(fetched, DownloadFailure):
            return "failed", fetched
        atomic_write_bytes(job.target, fetched)
    except OSError as exc:
        return "failed", DownloadFailure(job.imdb_id, "", "cannot write", exc.strerror or str(exc))
    return "downloaded", None


def download_posters(
    csv_path: Path,
    out: Path,
    workers: int = 8,
    limits: DownloadLimits = DownloadLimits(),
    *,
    progress: bool = True,
    sleep: Callable[[float], None] = time.sleep,
) -> DownloadResult:
    """Download every poster of a Kaggle CSV to `out/<imdbId>.jpg`; resumable. One poster's
    failure (network, size, deadline, target file) is one entry in `failures`."""
    limits.check()
    if workers < 1:
        raise PosterliteError("--workers must be >= 1")
    if not Path(csv_path).is_file():
        raise PosterliteError(f"CSV not found: {csv_path}")
    pairs, _ = read_poster_urls(Path(csv_path))
    out = Path(out)
    result = DownloadResult(out)
    urls: dict[str, list[str]] = {}
    for imdb_id, url in pairs:
        if not _SAFE_ID_RE.match(imdb_id):
            result.failures.append(DownloadFailure(imdb_id, url, "bad id"))
            continue
        if imdb_id in urls:
            result.duplicate_rows += 1
        urls.setdefault(imdb_id, [])
        if url and url not in urls[imdb_id]:
            urls[imdb_id].append(url)
    jobs = [_Job(i, tuple(u), out / f"{i}.jpg") for i, u in urls.items()]
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PosterliteError(f"cannot create {out}: {exc.strerror or exc}") from exc
    with _progress(len(jobs), "downloading posters", progress) as bar:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            outcomes = pool.map(lambda j: _download_one(j, limits, sleep), jobs)
            for job, (status, failure) in zip(jobs, outcomes, strict=True):
                if status == "present":
                    result.present.append(job.imdb_id)
                elif status == "downloaded":
                    result.downloaded.append(job.imdb_id)
                elif failure is not None:
                    result.failures.append(failure)
                bar.update(1)
    return result


def format_download_summary(result: DownloadResult, limit: int = 20) -> str:
    lines = [
        f"{result.out}: downloaded {len(result.downloaded):,}, already present "
        f"{len(result.present):,}, failed {len(result.failures):,}"
    ]
    reasons = Counter(f.reason for f in result.failures)
    if reasons:
        lines.append("  failures: " + ", ".join(f"{r} {n:,}" for r, n in sorted(reasons.items())))
    for failure in result.failures[:limit]:
        detail = f" ({one_line(failure.detail)})" if failure.detail else ""
        where = f" {one_line(failure.url)}" if failure.url else ""
        lines.append(f"    {one_line(failure.imdb_id, 40)}: {failure.reason}{detail}{where}")
    if len(result.failures) > limit:
        lines.append(f"    ... {len(result.failures) - limit:,} more (use --json for all)")
    return "\n".join(lines)
