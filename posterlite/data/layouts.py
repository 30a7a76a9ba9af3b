"""The poster data set layouts people have, read into labelled candidates.

Owns the layouts (`FORMATS`): the Kaggle "Movie Genre from its Poster" CSV, a multi-hot
CSV (one 0/1 column per genre), one folder per genre, and the paper's streaming test list;
reading a CSV whatever its encoding (bounded), telling which layout it is, finding where
its posters lie, and turning rows or genre folders into `Candidate`s (film, genres, poster
files) for `posterlite.data.scan` to decode and keep.

`N/A` and empty genres mean "no genre" (`genres.NO_GENRE`): such rows are skipped with
reason "empty genre" in the text layouts. In the multi-hot layout `N/A` is one of the data
set's own 0/1 genre columns, set by its curators: a film whose only column is `N/A` is a
labelled film of a genre outside the named five, so it counts as `Other` (imdb-7k: six
films; this is how its 5,249 distinct Ids are all labelled). A multi-hot row with no
column set at all is still "empty genre".
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from posterlite.data.records import (
    ScanResult,
    SkippedItem,
    normalize_film_id,
    split_raw_genres,
)
from posterlite.errors import PosterliteError
from posterlite.genres import GenreScheme
from posterlite.posterfiles import looks_like_image

FORMATS: tuple[str, ...] = ("kaggle", "multihot", "folders", "streaming")
# Where a CSV layout's posters live, in order of preference; else the CSV's own folder.
POSTER_DIRS: tuple[str, ...] = ("MoviePosters", "posters", "Posters", "Images", "images")
# CSV names preferred when a folder holds several CSV files.
KNOWN_CSV_NAMES: tuple[str, ...] = ("MovieGenre.csv", "train.csv")
# Columns of the Kaggle / multi-hot CSVs that are metadata, never a 0/1 genre column.
META_COLUMNS = frozenset(
    {"id", "imdbid", "genre", "title", "poster", "imdb link", "imdb score", "year"}
)
# A CSV of the largest known data set is ~10 MB; this bounds what a scan reads into memory.
MAX_CSV_BYTES = 256 * 1024 * 1024


def decode_text(data: bytes) -> tuple[str, str]:
    """CSV bytes to (text, encoding): UTF-8 (with or without BOM) if valid, else ISO-8859-1.

    Kaggle's MovieGenre.csv is ISO-8859-1; its non-ASCII bytes are almost never valid
    UTF-8, and ISO-8859-1 decodes any byte, so trying UTF-8 first is a safe detector.
    Raises UnicodeDecodeError only for a UTF-8 BOM followed by invalid UTF-8.
    """
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="strict"), "utf-8-sig"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("iso-8859-1"), "iso-8859-1"


@dataclass(frozen=True)
class CsvTable:
    """A CSV read whole: its header and its non-blank rows keyed by header name."""

    path: Path
    encoding: str
    header: tuple[str, ...]
    rows: list[tuple[int, dict[str, str]]]  # (line number, row keyed by header name)

    def column(self, *names: str) -> str | None:
        """The header name matching one of `names` case-insensitively, in that order; None
        when none matches."""
        lookup = {name.strip().lower(): name for name in self.header}
        for name in names:
            if name in lookup:
                return lookup[name]
        return None


def read_csv_table(path: Path) -> CsvTable:
    """The CSV at `path`, whatever its encoding; raises `PosterliteError` if it is over
    `MAX_CSV_BYTES`, unreadable, not a CSV or has no header."""
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
    """Which CSV layout (one of `FORMATS`) a header is; raises `PosterliteError` if none
    fits."""
    names = {name.lower() for name in table.header}
    if "genre" in names and names & {"imdbid", "id"}:
        if names & {"poster", "imdb link", "imdb score"}:
            return "kaggle"
        if "id" in names and multihot_columns(table):
            return "multihot"
        if "imdbid" in names:
            return "streaming"
    raise PosterliteError(
        f"{table.path}: unknown CSV layout (header {', '.join(table.header[:8])}); "
        f"use --format {'|'.join(FORMATS)}"
    )


def multihot_columns(table: CsvTable) -> list[str]:
    """The genre columns: columns (outside the metadata) whose every value is 0 or 1, in
    header order. Never raises."""
    allowed = {"", "0", "1", "0.0", "1.0"}
    columns = []
    for name in table.header:
        if not name or name.lower() in META_COLUMNS:
            continue
        if all(row.get(name, "").strip() in allowed for _, row in table.rows):
            columns.append(name)
    return columns


def locate(path: Path) -> tuple[Path, Path | None]:
    """(data set root, CSV or None) for a folder or a CSV file; raises `PosterliteError`
    for a missing path, a file that is not a CSV, or a folder of several unknown CSVs."""
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


def posters_dir(root: Path) -> Path:
    """The folder of a CSV layout's posters: the first of `POSTER_DIRS` under `root`, else
    `root`. Never raises."""
    for name in POSTER_DIRS:
        if (root / name).is_dir():
            return root / name
    return root


def image_files(folder: Path) -> list[Path]:
    """The image files directly in `folder`, sorted; raises OSError if it cannot be listed."""
    return sorted(p for p in folder.iterdir() if p.is_file() and looks_like_image(p))


def _is_file(path: Path) -> bool:
    """`path.is_file()`, False where the file system refuses the name (a CSV cell can name
    anything: 300 characters, a NUL byte)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


@dataclass
class Candidate:
    """A labelled entry before decoding: a CSV row, or one file name across genre folders."""

    where: str  # what a skip reports: the poster path, or csv:line when there is none
    film_id: str
    genres: tuple[str, ...]
    paths: list[Path]  # existing copies (folders layout may have several); [] = missing
    repeat_key: tuple[str, str] | None = None  # (film, poster ref) of CSV rows


def folder_candidates(root: Path, scheme: GenreScheme, result: ScanResult) -> list[Candidate]:
    """The candidates of ROOT/<Genre>/<file>: the same file name in several genre folders is
    one poster of all their genres. Files of unknown genres and unreadable genre folders are
    added to `result.skipped`, images lying in ROOT to `result.unlabeled`. Raises
    `PosterliteError` when ROOT has no genre folder with images (not this layout)."""
    by_name: dict[str, Candidate] = {}
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    listed: dict[Path, list[Path]] = {}
    for folder in folders:
        try:
            listed[folder] = image_files(folder)
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
                by_name[file.name] = Candidate(str(file), film, genres, [file])
            else:
                merged = set(entry.genres) | set(genres)
                entry.genres = tuple(n for n in scheme.names if n in merged)
                entry.paths.append(file)
    if not by_name and not any(listed.values()):
        raise PosterliteError(f"{root}: unknown layout (no CSV file and no genre folders)")
    # Posters lying directly in ROOT have no genre folder: unlabelled.
    result.unlabeled.extend(image_files(root))
    return list(by_name.values())


def csv_candidates(
    table: CsvTable, fmt: str, root: Path, scheme: GenreScheme, result: ScanResult
) -> list[Candidate]:
    """One candidate per row of a CSV layout (`fmt`), its poster found by the row's `Poster`
    cell (Kaggle) or by film id among the poster folder's images. Rows without an id are
    added to `result.skipped`, images no row names to `result.unlabeled`. Raises
    `PosterliteError` when the CSV lacks the layout's columns."""
    id_col = table.column("imdbid", "id") if fmt != "multihot" else table.column("id", "imdbid")
    genre_col = table.column("genre")
    missing = [name for name, col in (("imdbId/Id", id_col), ("Genre", genre_col)) if not col]
    genre_columns: list[str] = []
    if fmt == "multihot":
        genre_columns = multihot_columns(table)
        if not genre_columns:
            missing.append("0/1 genre columns")
    if missing:
        raise PosterliteError(f"{table.path}: not a {fmt} CSV (missing {', '.join(missing)})")
    assert id_col is not None and genre_col is not None
    poster_col = table.column("poster") if fmt == "kaggle" else None
    folder = posters_dir(root)
    images = image_files(folder)
    by_film: dict[str, Path] = {}
    for image in images:
        by_film.setdefault(normalize_film_id(image.stem), image)

    candidates: list[Candidate] = []
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
            Candidate(
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
