"""What `posterlite data scan` and `posterlite data split` find in the real data sets.

    nice -n 10 .venv/bin/python benchmarks/data_scan.py

Runtime: about half a minute on 2 shared cores (two scans that decode ~8,400 posters, the
header-only mode check of each usable poster, the sample CSV, and the split, which scans
both sets again). `--render-only` re-renders benchmarks/results/data_scan.md from
data_scan.json.

It runs what the CLI runs, through the library (`posterlite.data.scan_dataset`,
`split_sources`), on ../shared/data/imdb-7k, ../shared/data/kaggle-moviegenre and
../shared/data/samples/MovieGenre-sample.csv, then
`posterlite data split ../shared/data/imdb-7k ../shared/data/kaggle-moviegenre --seed 0`
into a temporary file beside models/manifest.csv (so the relative poster paths are the
same) and compares it with the committed manifest. Everything the Markdown counts comes
from the JSON: skip reasons, unlabelled images, posters that are not RGB (by name), genre
counts, how the Kaggle set's ids with two rows were decided, the films both sets share,
and the split's sizes and per-genre shares.
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import results_io as rio

NAME = "data_scan"
RUNTIME = "about half a minute on 2 shared cores"
SHARED = rio.REPO.parent / "shared" / "data"
IMDB = SHARED / "imdb-7k"
KAGGLE = SHARED / "kaggle-moviegenre"
SAMPLE = SHARED / "samples" / "MovieGenre-sample.csv"
MANIFEST = rio.REPO / "models" / "manifest.csv"
SEED = 0
# Skip reasons given before any decode; every other reason is a decode failure.
NOT_DECODE = frozenset({"missing file", "duplicate", "empty genre", "bad row"})
SPLIT_ORDER = ("train", "val", "test")
SHOWN_NAMES = 20  # at most this many names per list in the Markdown (the JSON has all)


# ------------------------------------------------------------------------------ measure
def _name(path: str | Path) -> str:
    return Path(path).name


def _detail(detail: str) -> str:
    """A skip detail with the machine's paths made repository-relative."""
    return " ".join(rio.rel(w) if w.startswith("/") else w for w in detail.split(" "))


def poster_modes(posters) -> dict[str, str]:
    """Pillow mode of every usable poster (header only): file name -> mode."""
    from PIL import Image

    modes = {}
    for poster in posters:
        with Image.open(poster.path) as image:
            modes[_name(poster.path)] = image.mode
    return modes


def scan_one(path: Path, workers: int) -> tuple[dict, object, object]:
    """Scan like `posterlite data scan PATH --json`; (record, ScanResult, CsvTable)."""
    from posterlite import data
    from posterlite.data.layouts import multihot_columns, posters_dir
    from posterlite.posterfiles import looks_like_image

    start = time.perf_counter()
    result = data.scan_dataset(path, workers=workers, progress=False)
    seconds = time.perf_counter() - start
    table = data.read_csv_table(result.csv) if result.csv else None
    id_col = table.column("id", "imdbid") if table else None
    folder = posters_dir(result.root)
    images = [p for p in folder.iterdir() if p.is_file() and looks_like_image(p)]
    unlabeled_failures = data.check_posters(result.unlabeled, workers, progress=False)
    modes = poster_modes(result.posters)
    record = {
        "path": rio.rel(path),
        "cli": f"posterlite data scan {rio.rel(path)} --json",
        "format": result.format,
        "csv": rio.rel(result.csv) if result.csv else None,
        "encoding": result.encoding,
        "csv_rows": len(table.rows) if table else None,
        "distinct_ids": (
            len({data.normalize_film_id(r.get(id_col, "")) for _, r in table.rows})
            if table
            else None
        ),
        "poster_folder": rio.rel(folder),
        "image_files": len(images),
        "posters": len(result.posters),
        "unlabeled": len(result.unlabeled),
        "unlabeled_decode_failures": sorted(
            _name(p) for p, outcome in unlabeled_failures.items() if outcome is not None
        ),
        "genre_counts": result.genre_counts(),
        "skipped_counts": result.skipped_counts(),
        # every skip except the (thousands of) missing files, by file name
        "skipped": [
            {"file": _name(s.path), "reason": s.reason, "detail": _detail(s.detail)}
            for s in result.skipped
            if s.reason != "missing file"
        ],
        "modes": dict(sorted(Counter(modes.values()).items())),
        "not_rgb": [
            {"file": name, "mode": mode} for name, mode in sorted(modes.items()) if mode != "RGB"
        ],
        "seconds": round(seconds, 2),
    }
    if result.format == "multihot":
        record["genre_columns"] = len(multihot_columns(table))
    return record, result, table


def imdb_details(table, result) -> dict:
    """imdb-7k: ids labelled only by the data set's own `N/A` column, genres per CSV row."""
    from posterlite import data
    from posterlite.data.layouts import multihot_columns

    columns = multihot_columns(table)
    id_col = table.column("id")
    only_na = sorted(
        {
            row[id_col]
            for _, row in table.rows
            if [c for c in columns if row.get(c, "").strip() in ("1", "1.0")] == ["N/A"]
        }
    )
    kept = {p.film_id: p.genres for p in result.posters}
    per_row: Counter[str] = Counter()
    for _, row in table.rows:
        raw = [c for c in columns if row.get(c, "").strip() in ("1", "1.0")]
        per_row.update(result.scheme.map_raw(raw, no_genre_is_other=True))
    return {
        "only_na_ids": only_na,
        "only_na_kept_as": sorted(
            {"|".join(kept.get(data.normalize_film_id(i), ("not kept",))) for i in only_na}
        ),
        "genre_counts_per_row": {g: per_row.get(g, 0) for g in result.scheme.names},
    }


def kaggle_duplicates(table, result) -> dict:
    """Kaggle: the ids in several rows with different posters, and what the scan did."""
    from posterlite import data

    id_col, poster_col, genre_col = table.column("imdbid"), table.column("poster"), "Genre"
    genre_col = table.column("genre") or genre_col
    outcomes: dict[str, list[str]] = defaultdict(list)
    for poster in result.posters:
        outcomes[_name(poster.path)].append("kept")
    for item in result.skipped:
        outcomes[_name(item.path)].append(item.reason)
    groups: dict[str, list[dict]] = defaultdict(list)
    for _, row in table.rows:
        groups[data.normalize_film_id(row.get(id_col, ""))].append(row)
    patterns: dict[str, dict] = {}
    ambiguous, same_genres, ids = 0, 0, 0
    for rows in groups.values():
        if len(rows) < 2 or len({r.get(poster_col, "") for r in rows}) < 2:
            continue
        ids += 1
        same_genres += len({r.get(genre_col, "") for r in rows}) == 1
        per_row = []
        for row in rows:
            seen = outcomes.get(row.get(poster_col, "").strip(), [])
            ambiguous += len(set(seen)) > 1
            per_row.append(seen[0] if seen else "not found")
        key = " / ".join("absent" if o == "missing file" else "present" for o in per_row)
        entry = patterns.setdefault(key, {"ids": 0, "outcomes": Counter()})
        entry["ids"] += 1
        entry["outcomes"][" / ".join(per_row)] += 1
    return {
        "ids_with_different_posters": ids,
        "same_genre_string": same_genres,
        "ambiguous_file_names": ambiguous,
        "patterns": {
            k: {"ids": v["ids"], "outcomes": dict(sorted(v["outcomes"].items()))}
            for k, v in sorted(patterns.items())
        },
    }


def sample_details(table) -> dict:
    """The sample CSV: titles that are not ASCII (decoded with the detected encoding)."""
    title = table.column("title")
    titles = [row.get(title, "") for _, row in table.rows] if title else []
    odd = [t for t in titles if not t.isascii()]
    return {
        "non_ascii_titles": len(odd),
        "replacement_characters": sum("\ufffd" in t for t in odd),
        "non_ascii_examples": odd[:3],
    }


def overlap(imdb, imdb_table, kaggle, kaggle_table) -> dict:
    """Films both sets name (any row) and films with a usable poster in both."""
    from posterlite import data

    def ids(table):
        column = table.column("id", "imdbid")
        return {data.normalize_film_id(r.get(column, "")) for _, r in table.rows}

    first = {p.film_id: p.genres for p in imdb.posters}
    both = [p for p in kaggle.posters if p.film_id in first]
    return {
        "film_ids_in_both_csvs": len(ids(imdb_table) & ids(kaggle_table)),
        "usable_in_both": len(both),
        "usable_in_both_same_genres": sum(first[p.film_id] == p.genres for p in both),
    }


def split(workers: int) -> dict:
    """`posterlite data split IMDB KAGGLE --seed 0` into a temporary file beside the manifest."""
    from posterlite import data
    from posterlite.fileio import sha256_file
    from posterlite.manifest import read_manifest

    handle, name = tempfile.mkstemp(prefix=".data_scan.", suffix=".csv", dir=MANIFEST.parent)
    os.close(handle)
    out = Path(name)
    try:
        start = time.perf_counter()
        report = data.split_sources(
            [IMDB, KAGGLE], out, data.SplitOptions(seed=SEED), progress=False
        )
        seconds = time.perf_counter() - start
        fresh = {(r.film_id, r.source): (r.split, r.genres) for r in read_manifest(out)}
        committed = {(r.film_id, r.source): (r.split, r.genres) for r in read_manifest(MANIFEST)}
        return {
            "cli": "posterlite data split ../shared/data/imdb-7k "
            f"../shared/data/kaggle-moviegenre --out <temporary file> --seed {SEED}",
            "val_fraction": 0.15,
            "test_fraction": 0.15,
            "seconds": round(seconds, 2),
            "sources": [{"path": rio.rel(s.root), "posters": len(s.posters)} for s in report.scans],
            "merge_skipped": dict(
                Counter(_name(Path(s.path).parent.parent) for s in report.skipped)
            ),
            "posters": len(report.rows),
            "counts": report.counts(),
            "sha256": sha256_file(out),
            "committed": rio.rel(MANIFEST),
            "committed_sha256": sha256_file(MANIFEST),
            "rows_only_in_run": len(set(fresh) - set(committed)),
            "rows_only_in_committed": len(set(committed) - set(fresh)),
            "rows_differing": sum(fresh[k] != committed[k] for k in set(fresh) & set(committed)),
        }
    finally:
        out.unlink(missing_ok=True)


def measure(argv: list[str]) -> dict:
    from posterlite import data

    env = rio.environment()
    workers = data.DEFAULT_SCAN_WORKERS
    start = time.perf_counter()
    imdb, imdb_scan, imdb_table = scan_one(IMDB, workers)
    imdb.update(imdb_details(imdb_table, imdb_scan))
    kaggle, kaggle_scan, kaggle_table = scan_one(KAGGLE, workers)
    kaggle["duplicates"] = kaggle_duplicates(kaggle_table, kaggle_scan)
    sample, _, sample_table = scan_one(SAMPLE, workers)
    sample.update(sample_details(sample_table))
    split_record = split(workers)
    from posterlite.manifest import read_manifest

    in_manifest = {_name(r.path) for r in read_manifest(MANIFEST)}
    for record in (imdb, kaggle, sample):
        for item in record["not_rgb"]:
            item["in_manifest"] = item["file"] in in_manifest
    return {
        "command": rio.command("data_scan.py", argv),
        "environment": env,
        "wall_time_s": time.perf_counter() - start,
        # ru_maxrss is in KiB on Linux; the whole process, all scans and the split
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "scan_workers": workers,
        "scan_decode_size": data.SCAN_DECODE_SIZE,
        "genres": list(imdb_scan.scheme.names),
        "sources": {"imdb-7k": imdb, "kaggle-moviegenre": kaggle, "sample": sample},
        "overlap": overlap(imdb_scan, imdb_table, kaggle_scan, kaggle_table),
        "split": split_record,
    }


# ------------------------------------------------------------------------------- render
def _n(value: int) -> str:
    return f"{value:,}"


def _names(items: list[str]) -> str:
    shown = ", ".join(f"`{i}`" for i in items[:SHOWN_NAMES])
    more = len(items) - SHOWN_NAMES
    return shown + (f" and {more} more (all in the JSON)" if more > 0 else "")


def genres_line(payload: dict, counts: dict[str, int], what: str) -> str:
    return f"{what}: " + ", ".join(f"{g} {_n(counts[g])}" for g in payload["genres"]) + "."


def source_table(record: dict) -> list[str]:
    """Counts every scan has: rows, posters, each skip reason, unlabelled, decode, modes."""
    where = f"`{_name(record['csv'])}`, " if record["csv"] else ""
    columns = f", {record['genre_columns']} 0/1 genre columns" if "genre_columns" in record else ""
    lines = ["| what | count |", "|---|---:|"]
    if record["csv_rows"] is not None:
        lines.append(
            f"| CSV rows ({where}detected {record['encoding']}, layout "
            f"`{record['format']}`{columns}) | {_n(record['csv_rows'])} |"
        )
        lines.append(f"| distinct ids in the CSV | {_n(record['distinct_ids'])} |")
    lines.append(f"| **usable labelled posters** | **{_n(record['posters'])}** |")
    for reason, count in record["skipped_counts"].items():
        lines.append(f"| skipped `{reason}` | {_n(count)} |")
    lines += [
        f"| unlabelled images (no row names them) | {_n(record['unlabeled'])} |",
        f"| image files in `{record['poster_folder']}` | {_n(record['image_files'])} |",
    ]
    failed = sum(n for r, n in record["skipped_counts"].items() if r not in NOT_DECODE)
    lines.append(f"| labelled posters that fail to decode | {_n(failed)} |")
    lines.append(
        "| unlabelled images that fail to decode | "
        f"{_n(len(record['unlabeled_decode_failures']))} |"
    )
    modes = ", ".join(f"{m} {_n(n)}" for m, n in record["modes"].items()) or "none"
    lines.append(f"| usable posters by Pillow mode | {modes} |")
    return lines


def not_rgb_line(record: dict) -> str:
    items = record["not_rgb"]
    if not items:
        return "- Usable posters that are not RGB: none."
    kept = sum(i["in_manifest"] for i in items)
    names = ", ".join(f"`{i['file']}` ({i['mode']})" for i in items[:SHOWN_NAMES])
    if len(items) > SHOWN_NAMES:
        names += f" and {len(items) - SHOWN_NAMES} more (all in the JSON)"
    return (
        f"- Usable posters that are not RGB: {len(items)}: {names}; "
        f"{kept} of {len(items)} are in `models/manifest.csv`."
    )


def skipped_lines(record: dict, reason: str) -> list[str]:
    items = [s for s in record["skipped"] if s["reason"] == reason]
    if not items:
        return []
    details = Counter(s["detail"].split(" ")[0] if s["detail"] else "" for s in items)
    kinds = ", ".join(
        f"{'repeated row' if d == 'repeated' else 'film already has a poster'} {n}"
        for d, n in sorted(details.items())
    )
    return [
        f"- Skipped `{reason}` ({kinds}): " + _names([s["file"] for s in items]) + ".",
    ]


def duplicates_table(dup: dict) -> list[str]:
    lines = [
        f"{dup['ids_with_different_posters']} ids appear in several rows with different "
        "posters. Per row, in CSV order, whether its poster file is present, and what the "
        "scan did with it:",
        "",
        "| posters (row 1 / row 2 ...) | ids | outcome per row |",
        "|---|---:|---|",
    ]
    for pattern, entry in dup["patterns"].items():
        outcomes = "; ".join(f"{o} ({n})" for o, n in entry["outcomes"].items())
        lines.append(f"| {pattern} | {entry['ids']} | {outcomes} |")
    lines += [
        "",
        f"- Genre strings identical across the rows of an id: {dup['same_genre_string']} of "
        f"{dup['ids_with_different_posters']} ids"
        + (
            " (so which row wins never changes the labels)."
            if dup["same_genre_string"] == dup["ids_with_different_posters"]
            else " (for the others the kept row's genres are used)."
        ),
    ]
    if dup["ambiguous_file_names"]:
        lines.append(
            f"- {dup['ambiguous_file_names']} row(s) name a file with several outcomes; "
            "the first is shown."
        )
    return lines


def split_table(payload: dict) -> list[str]:
    s = payload["split"]
    # the JSON's keys are sorted; show the splits in pipeline order
    splits = sorted(s["counts"], key=lambda x: (SPLIT_ORDER + (x,)).index(x))
    keys = ["posters", *payload["genres"]]
    lines = [
        "| | " + " | ".join(splits) + " | " + " | ".join(f"{x} share" for x in splits) + " |",
        "|---" + "|---:" * (2 * len(splits)) + "|",
    ]
    for key in keys:
        values = [s["counts"][x][key] for x in splits]
        total = sum(values) or 1
        lines.append(
            f"| {key} | "
            + " | ".join(_n(v) for v in values)
            + " | "
            + " | ".join(f"{v / total:.1%}" for v in values)
            + " |"
        )
    return lines


def manifest_line(s: dict) -> str:
    same = s["sha256"] == s["committed_sha256"]
    if same:
        return (
            f"- The run's manifest is byte-identical to `{s['committed']}` "
            f"(sha256 `{s['sha256']}`)."
        )
    return (
        f"- The run's manifest **differs** from `{s['committed']}` (sha256 "
        f"`{s['sha256'][:16]}...` vs `{s['committed_sha256'][:16]}...`): "
        f"{s['rows_only_in_run']} rows only in the run, {s['rows_only_in_committed']} only in "
        f"the committed file, {s['rows_differing']} with a different split or genres."
    )


def render(payload: dict) -> str:
    src = payload["sources"]
    imdb, kaggle, sample = src["imdb-7k"], src["kaggle-moviegenre"], src["sample"]
    s, o = payload["split"], payload["overlap"]
    lines = rio.header(
        "`posterlite data scan` / `data split` on the real data sets", payload, RUNTIME
    )
    lines += [
        f"Every poster is decoded with `preprocess.load_poster` (the training decode path, "
        f"resized to {payload['scan_decode_size']} px), {payload['scan_workers']} threads. "
        f"Peak RSS of the whole run: {payload['peak_rss_mb']:.0f} MB.",
        "",
    ]
    for title, record in (("kaggle-moviegenre", kaggle), ("imdb-7k", imdb)):
        lines += [f"## {title}", "", f"`{record['cli']}`", "", *source_table(record), ""]
        lines.append(
            "- " + genres_line(payload, record["genre_counts"], "Usable posters per genre")
        )
        lines += skipped_lines(record, "duplicate")
        lines.append(not_rgb_line(record))
        lines += [f"- Scan time: {record['seconds']:.1f} s.", ""]
        if title == "kaggle-moviegenre":
            lines += [*duplicates_table(record["duplicates"]), ""]
        else:
            lines += [
                f"- Ids whose only 0/1 column is the data set's own `N/A`: "
                f"{len(record['only_na_ids'])} ({_names(record['only_na_ids'])}), labelled "
                + " / ".join(f"`{g}`" for g in record["only_na_kept_as"])
                + " by the scan.",
                "- "
                + genres_line(
                    payload,
                    record["genre_counts_per_row"],
                    "Per CSV row, repeated rows included (how ../shared/README.md counts)",
                ),
                "",
            ]
    lines += [
        "## samples/MovieGenre-sample.csv",
        "",
        f"`{sample['cli']}`",
        "",
        *source_table(sample),
        "",
        f"- Titles that are not ASCII: {sample['non_ascii_titles']}, decoded as "
        f"{sample['encoding']} with {sample['replacement_characters']} replacement characters "
        "(e.g. " + ", ".join(f"{t!r}" for t in sample["non_ascii_examples"]) + ").",
        "",
        "## The two sets together",
        "",
        f"- Film ids named by both CSVs: {_n(o['film_ids_in_both_csvs'])}; with a usable poster "
        f"in both: {_n(o['usable_in_both'])}, of which {_n(o['usable_in_both_same_genres'])} "
        "have the same genres in both sets.",
        "",
        "## The manifest",
        "",
        f"`{s['cli']}` (val {s['val_fraction']:.0%}, test {s['test_fraction']:.0%}), "
        f"{s['seconds']:.1f} s.",
        "",
        f"- {_n(s['posters'])} posters = "
        + " + ".join(f"{_n(x['posters'])} ({_name(x['path'])})" for x in s["sources"])
        + (
            " - "
            + " - ".join(
                f"{_n(n)} {k} films already in an earlier source"
                for k, n in sorted(s["merge_skipped"].items())
            )
            if s["merge_skipped"]
            else ""
        )
        + ".",
        manifest_line(s),
        "",
        *split_table(payload),
        "",
        "## Decisions (not a measurement)",
        "",
        rio.note(
            "a scan keeps one poster per film, the first usable one in CSV order; a later "
            "row of the same film that also has a usable poster is skipped as `duplicate` "
            "(detail `film N already has <path>`). Keeping two posters of one film would "
            'weight it twice and, across splits, leak it between splits. "First '
            'usable" rather than "first row" keeps the films whose first row points at an '
            "absent file (the `absent / present` rows above)."
        ),
        "",
        rio.note(
            "posters that are not RGB (grayscale `L`, palette, CMYK) are converted to RGB by "
            "`load_poster` like in every other stage, so they are usable and kept."
        ),
        "",
        rio.note(
            "imdb-7k's `N/A` is one of the data set's own genre columns, set by its curators, "
            "so a film whose only column is `N/A` is labelled with a genre outside the named "
            "five: `Other` (`GenreScheme.map_raw(..., no_genre_is_other=True)`, multi-hot "
            "layout only; an empty or `N/A` genre string in the text layouts is still "
            "`empty genre`)."
        ),
        "",
        rio.note(
            "merging keeps a film from the first source given (imdb-7k here), so the Kaggle "
            "poster of a film both sets have is skipped as `duplicate`. The split is iterative "
            "stratification over the genres with films as the unit, in two stages: "
            "train / held-out first (the earlier train/val split for the same seed), then the "
            "held-out films into val / test. The sample CSV has poster URLs and no local "
            "images; `posterlite data download` fetches them."
        ),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = rio.make_parser(__doc__, NAME)
    args = parser.parse_args(argv)
    payload = rio.measured_or_loaded(args, NAME, lambda: measure(argv))
    rio.publish(args.results, NAME, render(payload))
    return 0


if __name__ == "__main__":
    sys.exit(main())
