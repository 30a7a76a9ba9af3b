"""Poster data sets: reading the layouts people have, splitting them, downloading posters.

This package owns everything between "a folder somebody gave us" and the training
manifest, one job per module, each importing only the ones above it in this list:

- `records`: what a scan finds (`LabeledPoster`, `SkippedItem`, `ScanResult`), the byte
  and decode limits, film ids, one-line escaping, the progress bar;
- `layouts`: the layouts (`FORMATS`: Kaggle "Movie Genre from its Poster" CSV, multi-hot
  CSV, one folder per genre, the paper's streaming test list), bounded CSV reading and
  layout detection, rows or genre folders turned into candidates;
- `scan`: `scan_dataset(path, fmt=None, scheme=None) -> ScanResult`: detect the layout,
  map raw genres through the one `GenreScheme`, decode every poster with
  `preprocess.load_poster` (the training decode path) and account for every row or file
  it leaves out; `check_poster`;
- `split`: `split_sources(sources, out, SplitOptions(...))`: merge several scans into one
  manifest (one poster per film), an optional seeded per-genre cap, and a seeded
  multi-label stratified train/val/test split;
- `download`: `download_posters(...)`: fetch the Kaggle CSV's poster URLs concurrently,
  resumably, over http(s) only (redirects too), each poster under a deadline and a size cap.

Untrusted input. A CSV row, a poster file or a server is hostile until read: every read
is bounded (CSV size, poster size, download deadline), and one bad row, file or poster
is one `skipped` / `failures` entry with a short reason while the others get their
results; only the data set itself being unreadable (or the output unwritable) is an error.

The names other modules use are importable from `posterlite.data` itself.
"""

from posterlite.data.download import (
    DEADLINE_TIMEOUTS,
    DEFAULT_TIMEOUT,
    DEFAULT_WORKERS,
    DownloadFailure,
    DownloadLimits,
    DownloadResult,
    download_posters,
    format_download_summary,
    read_poster_urls,
)
from posterlite.data.layouts import (
    FORMATS,
    MAX_CSV_BYTES,
    CsvTable,
    decode_text,
    detect_csv_format,
    read_csv_table,
)
from posterlite.data.records import (
    MAX_POSTER_BYTES,
    SCAN_DECODE_SIZE,
    LabeledPoster,
    ScanResult,
    SkippedItem,
    normalize_film_id,
    one_line,
    split_raw_genres,
)
from posterlite.data.scan import (
    DEFAULT_SCAN_WORKERS,
    check_poster,
    check_posters,
    format_scan_summary,
    scan_dataset,
)
from posterlite.data.split import (
    SPLITS,
    SplitOptions,
    SplitReport,
    assign_splits,
    cap_per_genre,
    format_split_summary,
    genre_gap_warnings,
    iterative_stratify,
    merge_sources,
    split_sources,
)

__all__ = [
    "DEADLINE_TIMEOUTS",
    "DEFAULT_SCAN_WORKERS",
    "DEFAULT_TIMEOUT",
    "DEFAULT_WORKERS",
    "FORMATS",
    "MAX_CSV_BYTES",
    "MAX_POSTER_BYTES",
    "SCAN_DECODE_SIZE",
    "SPLITS",
    "CsvTable",
    "DownloadFailure",
    "DownloadLimits",
    "DownloadResult",
    "LabeledPoster",
    "ScanResult",
    "SkippedItem",
    "SplitOptions",
    "SplitReport",
    "assign_splits",
    "cap_per_genre",
    "check_poster",
    "check_posters",
    "decode_text",
    "detect_csv_format",
    "download_posters",
    "format_download_summary",
    "format_scan_summary",
    "format_split_summary",
    "genre_gap_warnings",
    "iterative_stratify",
    "merge_sources",
    "normalize_film_id",
    "one_line",
    "read_csv_table",
    "read_poster_urls",
    "scan_dataset",
    "split_raw_genres",
    "split_sources",
]
