"""Scanning a data set: which of its posters decode, and one poster per film kept.

Owns `scan_dataset` (detect the layout, read its candidates through
`posterlite.data.layouts`, decode every poster with `preprocess.load_poster`, the training
decode path, so a poster that passes here also loads in training), the poster check
(`check_poster`, also what a download checks), and the scan's readable summary.

A scan keeps ONE poster per film: the first row whose poster exists and decodes. Later
rows of the same film are skipped as "duplicate" (the Kaggle derivative has 141 ids in two
rows with different posters; keeping the first *usable* one saves the films whose first
row points at an absent file). A row that repeats an earlier row of the same film and
poster is a "duplicate" whatever its genre says.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from posterlite.data.layouts import (
    FORMATS,
    Candidate,
    csv_candidates,
    detect_csv_format,
    folder_candidates,
    locate,
    read_csv_table,
)
from posterlite.data.records import (
    MAX_POSTER_BYTES,
    SCAN_DECODE_SIZE,
    LabeledPoster,
    ScanResult,
    SkippedItem,
    one_line,
    progress_bar,
)
from posterlite.errors import PosterliteError
from posterlite.genres import GenreScheme, default_scheme
from posterlite.preprocess import PosterDecodeError, load_poster

# Scans share the machine: two decode threads (Pillow releases the GIL while decoding).
DEFAULT_SCAN_WORKERS = 2


def check_poster(path: Path) -> tuple[str, str] | None:
    """None if `path` decodes through `load_poster`, else (reason, detail). Never raises.

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


def check_posters(
    paths: Sequence[Path], workers: int = DEFAULT_SCAN_WORKERS, progress: bool = True
) -> dict[Path, tuple[str, str] | None]:
    """`check_poster` of each distinct path (decoded once), by path; `workers` threads,
    progress bar on stderr. Never raises for a poster."""
    unique = list(dict.fromkeys(paths))
    results: dict[Path, tuple[str, str] | None] = {}
    with progress_bar(len(unique), "decoding posters", progress) as bar:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for path, outcome in zip(unique, pool.map(check_poster, unique), strict=True):
                results[path] = outcome
                bar.update(1)
    return results


def scan_dataset(
    path: Path,
    fmt: str | None = None,
    scheme: GenreScheme | None = None,
    *,
    workers: int = DEFAULT_SCAN_WORKERS,
    progress: bool = True,
) -> ScanResult:
    """The `ScanResult` of a poster data set in any layout of `FORMATS` (`fmt` None: detect).

    A bad row or file is a `skipped` entry; raises `PosterliteError` only for an unknown
    `fmt` or when the data set itself (its folder, its CSV) fails to read.
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
    root, csv_path = locate(path)
    if fmt == "folders" or (fmt is None and csv_path is None):
        if Path(path).is_file():
            raise PosterliteError(f"{path}: the folders layout needs a folder, not a file")
        result = ScanResult("folders", root, None, None, scheme)
        candidates = folder_candidates(root, scheme, result)
    else:
        if csv_path is None:
            raise PosterliteError(f"{path}: no CSV file for format {fmt}")
        table = read_csv_table(csv_path)
        chosen = fmt or detect_csv_format(table)
        result = ScanResult(chosen, root, csv_path, table.encoding, scheme)
        candidates = csv_candidates(table, chosen, root, scheme, result)
    _resolve(candidates, result, root.name or str(root), workers, progress)
    return result


def _resolve(
    candidates: list[Candidate],
    result: ScanResult,
    source: str,
    workers: int,
    progress: bool,
) -> None:
    """Decode candidates in parallel, then keep the first usable poster of each film."""
    seen_rows: set[tuple[str, str]] = set()
    todo: list[Candidate] = []
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
        for bad in cand.paths:
            outcome = outcomes[bad]
            if outcome is not None:
                reason, detail = outcome
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
    """The readable multi-line summary of a scan (the CLI's non-JSON output), its first
    `limit` skipped items by name. Never raises."""
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
