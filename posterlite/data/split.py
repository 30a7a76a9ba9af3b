"""Splitting: several scans merged into one manifest with a seeded train/val/test split.

Owns `SplitOptions` (what `data split` chooses, its defaults once), merging sources (one
poster per film, the earliest source wins), the optional per-genre cap, the multi-label
stratified split, the manifest written atomically, and its summary and genre-gap warnings.

Iterative stratification (Sechidis, Tsoumakas & Vlahavas, ECML PKDD 2011) over the
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

import os
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from posterlite.data.records import LabeledPoster, ScanResult, SkippedItem
from posterlite.data.scan import scan_dataset
from posterlite.errors import PosterliteError
from posterlite.genres import (
    GenreScheme,
    default_scheme,
    genres_without_posters,
    no_posters_warning,
)
from posterlite.manifest import ManifestRow, write_manifest

SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass(frozen=True)
class SplitOptions:
    """How `split_sources` splits (the options of `posterlite data split`).

    Raises `PosterliteError` for fractions outside (0, 1) with val + test < 1, or a
    per-genre cap below 1.
    """

    val_fraction: float = 0.15  # share of films in val
    # share of films in test (scored once per shipped model; 0: no test split)
    test_fraction: float = 0.15
    seed: int = 0  # split and per-genre reduction seed
    per_genre: int | None = None  # at most this many posters per genre (None: all)
    fmt: str | None = None  # force this layout for every source (None: detect each)

    def __post_init__(self) -> None:
        if not 0.0 < self.val_fraction < 1.0:
            raise PosterliteError(
                f"--val-fraction must be between 0 and 1, got {self.val_fraction}"
            )
        if not 0.0 <= self.test_fraction < 1.0 or self.val_fraction + self.test_fraction >= 1.0:
            raise PosterliteError(
                f"--test-fraction must be >= 0 with val + test < 1, got {self.test_fraction}"
            )
        if self.per_genre is not None and self.per_genre < 1:
            raise PosterliteError(f"--per-genre must be at least 1, got {self.per_genre}")


@dataclass
class SplitReport:
    """What `split_sources` wrote: the manifest rows and how they were chosen."""

    out: Path
    scans: list[ScanResult]
    rows: list[ManifestRow]
    skipped: list[SkippedItem]  # films dropped while merging (already in an earlier source)
    capped: int  # posters removed by --per-genre
    genres: tuple[str, ...]

    def counts(self) -> dict[str, dict[str, int]]:
        """{split: {genre: posters, ..., "posters": n}} for every split of `SPLITS`."""
        table: dict[str, dict[str, int]] = {}
        for split in SPLITS:
            rows = [r for r in self.rows if r.split == split]
            counts = Counter(g for r in rows for g in r.genres)
            table[split] = {"posters": len(rows), **{g: counts.get(g, 0) for g in self.genres}}
        return table

    def warnings(self) -> list[str]:
        """The manifest's genre-gap warning lines (see `genre_gap_warnings`)."""
        return genre_gap_warnings(self.rows, self.genres, SPLITS, self.out)

    def to_json(self) -> dict[str, object]:
        """Every figure of the split as one JSON object (`data split --json`)."""
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
            "merge_skipped": [s.to_json() for s in self.skipped],
            "capped": self.capped,
        }


def genre_gap_warnings(
    rows: Sequence[ManifestRow], names: Sequence[str], splits: Sequence[str], manifest: Path
) -> list[str]:
    """Warning lines for a manifest's genre gaps: one naming the genres with no poster at
    all, then one per split in `splits` naming genres that have posters, but none there
    (a split without them cannot train or score them). No gap: no line. Never raises."""
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
    """(posters, skipped): all posters, each film once (the earliest source's poster wins),
    and the later posters of a film as "duplicate" items. Never raises."""
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
    """The posters a seeded random reduction keeps: at most `limit` per genre (films taken
    whole), in their original order. Never raises.

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
    """The fold index (into `fractions`) of each example (Sechidis et al. 2011,
    Algorithm 1), weights = posters. Raises ValueError if `weights` and `label_sets`
    differ in length.

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
    """The split name ("train", "val" or "test") of each poster; all posters of a film
    share one split. Never raises for fractions `SplitOptions` accepts.

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
    options: SplitOptions = SplitOptions(),
    scheme: GenreScheme | None = None,
    *,
    progress: bool = True,
) -> SplitReport:
    """Scan `sources`, merge them, optionally cap, stratify and write the manifest `out`
    atomically; returns what was written. Raises `PosterliteError` when no source is given,
    a source cannot be read, no usable labelled poster is left, or `out` cannot be written.
    """
    if not sources:
        raise PosterliteError("no source given")
    scheme = scheme or default_scheme()
    scans = [scan_dataset(Path(s), options.fmt, scheme, progress=progress) for s in sources]
    posters, skipped = merge_sources(scans)
    rng = random.Random(options.seed)
    before = len(posters)
    if options.per_genre is not None:
        posters = cap_per_genre(posters, options.per_genre, rng)
    if not posters:
        raise PosterliteError("no usable labelled posters in " + ", ".join(map(str, sources)))
    splits = assign_splits(posters, options.val_fraction, rng, options.test_fraction)
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
    """The readable multi-line summary of a split: sources, posters and genres per split
    with the val and test shares (the CLI's non-JSON output). Never raises."""
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
