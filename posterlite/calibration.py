"""The int8 calibration poster set: drawn, stratified, re-encoded small, with provenance.

Owns `posterlite calibration build`. Full-integer conversion learns each activation's range
from a few hundred representative posters; they must look like real posters of every genre
and must never be posters accuracy is measured on. A build:

- reads candidates from a posterlite manifest (its `train` split only, minus any poster that
  shares a film id or file content with its other splits) or from any layout
  `data.scan_dataset` reads;
- drops anything listed in `--exclude` (a manifest: all its rows; a folder: all its images),
  matched by resolved path, file content (sha256) and film id;
- draws ~n posters stratified over the genres: rarest genre first, each genre topped up to
  n / G posters carrying it (multi-label posters count for every genre they carry), the rest
  filled at random; a fixed seed gives the same set byte for byte;
- re-encodes each one 224 px wide (aspect kept, JPEG quality 85): calibration only sees the
  model's input size, and small files keep the committed set light;
- writes DIR/images/, DIR/manifest.csv (file, genres, source path, film id, sha256s) and
  DIR/README.md (provenance and how it was drawn), replacing any previous set as a whole.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from posterlite import __version__
from posterlite.errors import PosterliteError
from posterlite.genres import GenreScheme, default_scheme
from posterlite.manifest import MANIFEST_FIELDS, read_manifest
from posterlite.posterfiles import IMAGE_SUFFIXES
from posterlite.preprocess import PosterDecodeError, _open, to_rgb

WIDTH = 224
JPEG_QUALITY = 85
SET_SIZE = 200  # posters drawn by default (`calibration build --n`)
CALIBRATION_FIELDS = ("path", "genres", "split", "source", "film_id", "sha256", "source_sha256")


@dataclass(frozen=True)
class Candidate:
    path: Path
    genres: tuple[str, ...]
    film_id: str = ""


@dataclass(frozen=True)
class CalibrationItem:
    file: str  # relative to the set's folder: images/0000_<stem>.jpg
    genres: tuple[str, ...]
    source: str
    film_id: str
    sha256: str  # of the re-encoded file
    source_sha256: str


@dataclass(frozen=True)
class CalibrationSet:
    out: Path
    items: tuple[CalibrationItem, ...]
    source: str
    candidates: int
    excluded: int
    undecodable: int
    seed: int
    requested: int
    source_arg: str = ""  # SRC as given on the command line

    def genre_counts(self, scheme: GenreScheme) -> dict[str, int]:
        counts = Counter(g for item in self.items for g in item.genres)
        return {g: counts.get(g, 0) for g in scheme.names}


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _norm(path: Path | str) -> str:
    return os.path.normcase(os.path.abspath(os.path.normpath(str(path))))


def is_manifest(path: Path) -> bool:
    """A posterlite manifest CSV (path, genres, split columns), not a data set's CSV."""
    if not (path.is_file() and path.suffix.lower() == ".csv"):
        return False
    with path.open(newline="", encoding="utf-8", errors="replace") as handle:
        header = next(csv.reader(handle), [])
    return set(MANIFEST_FIELDS[:3]) <= {h.strip() for h in header}


@dataclass(frozen=True)
class Exclusions:
    paths: frozenset[str]
    hashes: frozenset[str]
    film_ids: frozenset[str]

    def excludes(self, candidate: Candidate) -> bool:
        return _norm(candidate.path) in self.paths or (
            bool(candidate.film_id) and candidate.film_id in self.film_ids
        )


def _exclusions(paths: Sequence[Path], film_ids: Sequence[str] = ()) -> Exclusions:
    existing = [p for p in paths if Path(p).is_file()]
    return Exclusions(
        paths=frozenset(_norm(p) for p in paths),
        hashes=frozenset(_sha256(p) for p in existing),
        film_ids=frozenset(f for f in film_ids if f),
    )


def read_exclude(source: Path) -> tuple[list[Path], list[str]]:
    """Posters (and film ids) of a manifest (every split) or a folder (every image)."""
    source = Path(source)
    if source.is_dir():
        files = sorted(
            p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        return files, []
    if is_manifest(source):
        rows = read_manifest(source)
        return [Path(r.path) for r in rows], [r.film_id for r in rows]
    raise PosterliteError(f"--exclude {source}: neither a folder nor a posterlite manifest")


def read_candidates(
    source: Path, scheme: GenreScheme
) -> tuple[list[Candidate], list[Path], list[str], str]:
    """(candidates, posters of held-out splits, their film ids, description of the source)."""
    source = Path(source)
    if is_manifest(source):
        rows = read_manifest(source)
        train = [
            Candidate(Path(os.path.normpath(r.path)), scheme.map_raw(r.genres), r.film_id)
            for r in rows
            if r.split == "train"
        ]
        held_out = [r for r in rows if r.split != "train"]
        if not train:
            raise PosterliteError(f"{source}: no rows in the train split")
        return (
            train,
            [Path(r.path) for r in held_out],
            [r.film_id for r in held_out],
            f"{source} (train split only; {len(held_out)} held-out rows excluded)",
        )
    from posterlite.data import scan_dataset

    scan = scan_dataset(source, scheme=scheme, progress=False)
    posters = [Candidate(Path(p.path), tuple(p.genres), p.film_id) for p in scan.posters]
    return posters, [], [], f"{source} ({scan.format} layout, {len(posters)} labelled posters)"


def reencode(path: Path, width: int = WIDTH, quality: int = JPEG_QUALITY) -> bytes:
    """The poster as a `width`-px-wide baseline JPEG (same decode path as preprocessing)."""
    image, _ = _open(path)
    try:
        image = ImageOps.exif_transpose(image) or image
        rgb = to_rgb(image)
        height = max(1, round(rgb.height * width / rgb.width))
        small = rgb.resize((width, height), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        # No EXIF, no ICC, no timestamps: the bytes depend only on the pixels.
        small.save(buffer, "JPEG", quality=quality, optimize=True)
    except (OSError, ValueError, SyntaxError) as exc:
        raise PosterDecodeError(str(path), "undecodable", str(exc)) from exc
    return buffer.getvalue()


def _stem(path: Path) -> str:
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in path.stem)
    return safe[:40] or "poster"


def draw(
    candidates: Sequence[Candidate],
    n: int,
    scheme: GenreScheme,
    seed: int,
    accept,
) -> list[tuple[Candidate, bytes, str]]:
    """Stratified draw: `accept(candidate)` returns (jpeg bytes, source sha) or None to skip."""
    rng = np.random.default_rng(seed)
    ordered = sorted(candidates, key=lambda c: str(c.path))
    order = [ordered[i] for i in rng.permutation(len(ordered))]
    quota = int(np.ceil(n / scheme.size))
    chosen: list[tuple[Candidate, bytes, str]] = []
    used: set[str] = set()
    counts: Counter[str] = Counter()

    def take(candidate: Candidate) -> None:
        if len(chosen) >= n or str(candidate.path) in used:
            return
        used.add(str(candidate.path))
        accepted = accept(candidate)
        if accepted is None:
            return
        chosen.append((candidate, *accepted))
        counts.update(candidate.genres)

    available = Counter(g for c in order for g in c.genres)
    for genre in sorted(scheme.names, key=lambda g: (available[g], scheme.names.index(g))):
        for candidate in order:
            if counts[genre] >= quota or len(chosen) >= n:
                break
            if genre in candidate.genres:
                take(candidate)
    for candidate in order:
        if len(chosen) >= n:
            break
        take(candidate)
    return chosen


def build_calibration_set(
    source: Path,
    out: Path,
    n: int = SET_SIZE,
    seed: int = 0,
    exclude: Sequence[Path] = (),
    scheme: GenreScheme | None = None,
) -> CalibrationSet:
    """`posterlite calibration build`: draw ~`n` posters of `source` (seeded, stratified over
    the genres, `exclude` left out) into the folder `out`, replaced whole; returns the set
    written. Raises `PosterliteError` for `n` < 1, an unreadable source or exclusion, or no
    usable poster."""
    scheme = scheme or default_scheme()
    if n < 1:
        raise PosterliteError("--n must be at least 1")
    candidates, held_out, held_ids, description = read_candidates(Path(source), scheme)
    excluded_paths, excluded_ids = list(held_out), list(held_ids)
    for item in exclude:
        paths, ids = read_exclude(Path(item))
        excluded_paths += paths
        excluded_ids += ids
    exclusions = _exclusions(excluded_paths, excluded_ids)
    usable = [c for c in candidates if c.genres and not exclusions.excludes(c)]
    skipped = {"excluded": len(candidates) - len(usable), "undecodable": 0}

    def accept(candidate: Candidate) -> tuple[bytes, str] | None:
        try:
            digest = _sha256(candidate.path)
        except OSError:
            skipped["undecodable"] += 1
            return None
        if digest in exclusions.hashes:
            skipped["excluded"] += 1
            return None
        try:
            return reencode(candidate.path), digest
        except PosterDecodeError:
            skipped["undecodable"] += 1
            return None

    drawn = draw(usable, n, scheme, seed, accept)
    if not drawn:
        raise PosterliteError(f"no usable calibration posters in {source}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    items: list[CalibrationItem] = []
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        (staging / "images").mkdir()
        for index, (candidate, jpeg, source_sha) in enumerate(drawn):
            name = f"images/{index:04d}_{_stem(candidate.path)}.jpg"
            (staging / name).write_bytes(jpeg)
            items.append(
                CalibrationItem(
                    file=name,
                    genres=candidate.genres,
                    source=_display_path(candidate.path),
                    film_id=candidate.film_id,
                    sha256=hashlib.sha256(jpeg).hexdigest(),
                    source_sha256=source_sha,
                )
            )
        result = CalibrationSet(
            out=out,
            items=tuple(items),
            source=description,
            candidates=len(candidates),
            excluded=skipped["excluded"],
            undecodable=skipped["undecodable"],
            seed=seed,
            requested=n,
            source_arg=str(source),
        )
        (staging / "manifest.csv").write_text(_manifest_csv(items), encoding="utf-8")
        (staging / "README.md").write_text(
            readme(result, scheme, [str(e) for e in exclude]), encoding="utf-8"
        )
        _swap_in(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return result


def _display_path(path: Path) -> str:
    """Source path relative to the working directory when close by (`../shared/...`)."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return str(path)
    return relative if relative.count("..") <= 2 else str(Path(path).resolve())


def _swap_in(staging: Path, out: Path) -> None:
    """Replace the set's files as a whole; other files in `out` (e.g. .gitkeep) stay."""
    out.mkdir(parents=True, exist_ok=True)
    for name in ("images", "manifest.csv", "README.md"):
        old = out / name
        if old.is_dir():
            shutil.rmtree(old)
        elif old.exists():
            old.unlink()
        os.replace(staging / name, old)


def _manifest_csv(items: Sequence[CalibrationItem]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CALIBRATION_FIELDS)
    for item in items:
        writer.writerow(
            [
                item.file,
                "|".join(item.genres),
                "calibration",
                item.source,
                item.film_id,
                item.sha256,
                item.source_sha256,
            ]
        )
    return buffer.getvalue()


def readme(result: CalibrationSet, scheme: GenreScheme, exclude: Sequence[str]) -> str:
    counts = result.genre_counts(scheme)
    source = Path(result.source_arg)
    source_hash = f"; source sha256 {_sha256(source)[:16]}..." if source.is_file() else ""
    table = "\n".join(f"| {g} | {c} |" for g, c in counts.items())
    excluded = ", ".join(f"`{e}`" for e in exclude) or "none besides the held-out splits"
    return f"""# int8 calibration posters

{len(result.items)} posters that calibrate full-integer (int8) conversion
(`posterlite convert --format int8`, the default `--calibration` set).

## Provenance
- Drawn from: {result.source}.
- Candidates: {result.candidates}; left out because excluded (held-out splits, `--exclude`,
  same film id or same file content): {result.excluded}; undecodable: {result.undecodable}.
- Extra exclusions: {excluded}.
- `manifest.csv`: per file, its genres, the source poster's path and film id, the sha256 of
  the file here and of the source file.

## How it was drawn
    posterlite calibration build {result.source_arg} --n {result.requested} --seed {result.seed} --out {result.out}{"".join(f" --exclude {e}" for e in exclude)}

(posterlite {__version__}, {datetime.now(timezone.utc).date().isoformat()}{source_hash}.)
Stratified over the genres {", ".join(scheme.names)}: rarest genre first, each genre
topped up to ceil(n / {scheme.size}) posters carrying it (a multi-label poster counts for
each of its genres), the rest filled at random (numpy `default_rng(seed)` over the
candidates sorted by path). The same source, n and seed give the same images and
`manifest.csv`.

Posters carrying each genre:

| genre | posters |
|---|---:|
{table}

## Encoding
Each poster is decoded like training does (EXIF transpose, RGB, alpha on white), resized
to {WIDTH} px wide keeping its aspect (Lanczos) and saved as JPEG quality {JPEG_QUALITY}
without metadata. Conversion then applies the one preprocessing function
(`preprocess.load_poster` + `pixels_to_input`: stretch to the model's input size,
`(pixel - 127.5) / 127.5`).

## Why these posters
They come only from the training split, so calibration never sees a poster the validation
figures, the conversion self-checks or the benchmarks measure accuracy on.
"""
