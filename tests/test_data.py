"""Data layer: every layout, every bad poster, the split and the `data` CLI."""

from __future__ import annotations

import json
import os
import random
import struct
import zlib
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import make_poster

from posterlite.cli import main
from posterlite.data import (
    MAX_CSV_BYTES,
    MAX_POSTER_BYTES,
    LabeledPoster,
    SplitOptions,
    assign_splits,
    cap_per_genre,
    decode_text,
    format_scan_summary,
    normalize_film_id,
    read_csv_table,
    scan_dataset,
    split_raw_genres,
    split_sources,
)
from posterlite.errors import PosterliteError
from posterlite.genres import GenreScheme
from posterlite.manifest import read_manifest

SIX = GenreScheme()


def _write_csv(path: Path, lines: list[str], encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def _bomb_png(path: Path, side: int = 100_000) -> Path:
    """A PNG header claiming side x side pixels, no pixel data: a cheap decompression bomb."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


def _truncated_jpeg(path: Path) -> Path:
    make_poster(path, seed=9, size=(120, 180))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _reasons(result) -> Counter:
    return Counter(item.reason for item in result.skipped)


# --- helpers ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "film"),
    [("tt0089869", "89869"), ("89869", "89869"), ("TT0000001", "1"), ("89869.0", "89869")],
)
def test_film_ids_match_across_sets(raw: str, film: str) -> None:
    assert normalize_film_id(raw) == film
    assert normalize_film_id("poster_a") == "poster_a"


def test_genre_separators() -> None:
    assert split_raw_genres("Mystery|Sci-Fi") == ["Mystery", "Sci-Fi"]
    assert split_raw_genres(" Crime  Drama ") == ["Crime", "Drama"]


def test_encoding_detection() -> None:
    assert decode_text("Amélie".encode("iso-8859-1")) == ("Amélie", "iso-8859-1")
    assert decode_text("Amélie".encode()) == ("Amélie", "utf-8")
    assert decode_text(b"\xef\xbb\xbfId") == ("Id", "utf-8-sig")


# --- layouts ---------------------------------------------------------------------------
def test_kaggle_original_iso_8859_1(tmp_path: Path) -> None:
    root = tmp_path / "kaggle"
    _write_csv(
        root / "MovieGenre.csv",
        [
            "imdbId,Imdb Link,Title,IMDB Score,Genre,Poster",
            '160905,http://www.imdb.com/title/tt160905,Amélie (2001),5.4,Comedy|Family,"https://x/a.jpg"',
            "427531,http://www.imdb.com/title/tt427531,Mezzo Forte,6.9,Animation|Crime,https://x/b.jpg",
            "22921,http://www.imdb.com/title/tt22921,Ça commence,6.0,N/A,https://x/c.jpg",
            "55850,http://www.imdb.com/title/tt55850,Gone,6.0,Drama,https://x/d.jpg",
        ],
        encoding="iso-8859-1",
    )
    for seed, film in enumerate(("160905", "427531", "22921")):
        make_poster(root / "posters" / f"{film}.jpg", seed)
    make_poster(root / "posters" / "999.jpg", 7)  # a poster without a row
    result = scan_dataset(root)
    assert result.format == "kaggle" and result.encoding == "iso-8859-1"
    assert [(p.film_id, p.genres) for p in result.posters] == [
        ("160905", ("Comedy", "Other")),
        ("427531", ("Crime", "Other")),
    ]
    assert _reasons(result) == {"empty genre": 1, "missing file": 1}
    assert [p.name for p in result.unlabeled] == ["999.jpg"]
    assert result.posters[0].source == "kaggle"


def test_kaggle_derivative_poster_column_names_file(tmp_path: Path) -> None:
    """Poster = a file name in MoviePosters/; else <imdbId>.jpg; first usable poster wins."""
    root = tmp_path / "deriv"
    _write_csv(
        root / "MovieGenre.csv",
        [
            "imdbId,Genre,Poster,Drama,Comedy",
            "89869,Drama,image0.jpg,1,0",
            "89869,Drama,image1.jpg,1,0",  # same film, second poster: duplicate
            "5,Comedy,image2.jpg,0,1",  # named file absent: missing file
            "5,Comedy,image3.jpg,0,1",  # same film, first row missing: this one is kept
            "7,Comedy,image9.jpg,0,1",  # named file absent, but 7.jpg exists
        ],
    )
    posters = root / "MoviePosters"
    for seed, name in enumerate(("image0.jpg", "image1.jpg", "image3.jpg", "7.jpg", "x.jpg")):
        make_poster(posters / name, seed)
    result = scan_dataset(root)
    assert result.format == "kaggle"
    assert [(p.film_id, p.path.name) for p in result.posters] == [
        ("89869", "image0.jpg"),
        ("5", "image3.jpg"),
        ("7", "7.jpg"),
    ]
    assert _reasons(result) == {"duplicate": 1, "missing file": 1}
    assert [p.name for p in result.unlabeled] == ["x.jpg"]


def test_multihot_layout(tmp_path: Path) -> None:
    root = tmp_path / "imdb"
    _write_csv(
        root / "train.csv",
        [
            "Id,Genre,Action,Drama,Horror,N/A",
            "tt0000001,\"['Action', 'Horror']\",1,0,1,0",
            "tt0000002,\"['Drama']\",0,1,0,0",
            "tt0000002,\"['Drama']\",0,1,0,0",  # identical repeated row
            "tt0000003,\"['N/A']\",0,0,0,1",  # the set's own N/A column: Other
            "tt0000004,\"['Drama']\",0,1,0,0",  # no image
            'tt0000005,"[]",0,0,0,0',  # no column set: no genre
        ],
    )
    films = ("tt0000001", "tt0000002", "tt0000003", "tt0000005", "tt0000009")
    for seed, film in enumerate(films):
        make_poster(root / "Images" / f"{film}.jpg", seed)
    result = scan_dataset(root)
    assert result.format == "multihot"
    assert [(p.film_id, p.genres) for p in result.posters] == [
        ("1", ("Action", "Other")),
        ("2", ("Drama",)),
        ("3", ("Other",)),
    ]
    assert _reasons(result) == {"duplicate": 1, "empty genre": 1, "missing file": 1}
    assert [p.name for p in result.unlabeled] == ["tt0000009.jpg"]
    assert result.genre_counts() == {
        "Action": 1,
        "Drama": 1,
        "Comedy": 0,
        "Crime": 0,
        "Romance": 0,
        "Other": 2,
    }


def test_folders_layout(tmp_path: Path) -> None:
    root = tmp_path / "folders"
    make_poster(root / "Action" / "a.jpg", 1)
    make_poster(root / "Crime" / "a.jpg", 1)  # same name: one poster, two genres
    make_poster(root / "Horror" / "tt0000042.png", 2)
    make_poster(root / "loose.jpg", 3)  # no genre folder: unlabelled
    (root / "Drama").mkdir()
    (root / "Drama" / "notes.txt").write_text("not a poster")
    result = scan_dataset(root)
    assert result.format == "folders" and result.csv is None
    assert sorted((p.film_id, p.genres) for p in result.posters) == [
        ("42", ("Other",)),
        ("a", ("Action", "Crime")),
    ]
    assert [p.name for p in result.unlabeled] == ["loose.jpg"]
    assert result.skipped == []


def test_streaming_list_spaces_or_pipes(tmp_path: Path) -> None:
    root = tmp_path / "stream"
    _write_csv(
        root / "test_list.csv",
        ["imdbid,Title,Genre", "tt0000011,One,Crime Drama", "12,Two,Romance|Comedy"],
    )
    make_poster(root / "tt0000011.jpg", 1)
    make_poster(root / "12.jpg", 2)
    result = scan_dataset(root / "test_list.csv")
    assert result.format == "streaming"
    assert [p.genres for p in result.posters] == [("Drama", "Crime"), ("Comedy", "Romance")]


def test_format_can_be_forced(tmp_path: Path) -> None:
    root = tmp_path / "stream"
    _write_csv(root / "list.csv", ["imdbId,Genre", "1,Action"])
    make_poster(root / "1.jpg", 1)
    assert scan_dataset(root, fmt="kaggle").format == "kaggle"
    assert scan_dataset(root).format == "streaming"


def test_every_bad_poster_is_skipped_with_its_reason(tmp_path: Path) -> None:
    root = tmp_path / "bad"
    folder = root / "Drama"
    make_poster(folder / "good.jpg", 1)
    make_poster(folder / "gray.jpg", 2, mode="L")  # grayscale is fine
    (folder / "zero.jpg").write_bytes(b"")
    _truncated_jpeg(folder / "trunc.jpg")
    (folder / "text.jpg").write_text("this is not an image\n")
    _bomb_png(folder / "bomb.png")
    result = scan_dataset(root)
    assert sorted(p.path.name for p in result.posters) == ["good.jpg", "gray.jpg"]
    by_name = {Path(item.path).name: item.reason for item in result.skipped}
    assert by_name["zero.jpg"] == "zero-byte"
    assert by_name["trunc.jpg"] == "truncated"
    assert by_name["text.jpg"] == "not an image"
    assert by_name["bomb.png"] in ("absurd size", "decompression bomb")


def test_scheme_is_configurable(tmp_path: Path) -> None:
    root = tmp_path / "f"
    make_poster(root / "Horror" / "1.jpg", 1)
    make_poster(root / "Drama" / "2.jpg", 2)
    scheme = GenreScheme(names=("Horror", "Other"))
    result = scan_dataset(root, scheme=scheme)
    assert result.genre_counts() == {"Horror": 1, "Other": 1}


# --- bad input -------------------------------------------------------------------------
def test_bad_input_is_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(PosterliteError, match="path not found"):
        scan_dataset(tmp_path / "nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PosterliteError, match="unknown layout"):
        scan_dataset(empty)
    odd = _write_csv(tmp_path / "odd" / "x.csv", ["a,b", "1,2"])
    with pytest.raises(PosterliteError, match="unknown CSV layout"):
        scan_dataset(odd)
    blob = tmp_path / "blob" / "x.csv"  # e.g. an image saved as .csv: one huge field
    blob.parent.mkdir()
    blob.write_bytes(b"imdbId,Genre\n1," + b"\xff" * 200_000 + b"\n")
    with pytest.raises(PosterliteError, match="not a readable CSV"):
        scan_dataset(blob)
    with pytest.raises(PosterliteError, match="missing Genre"):
        scan_dataset(_write_csv(tmp_path / "k" / "k.csv", ["imdbId,Title", "1,a"]), fmt="kaggle")
    with pytest.raises(PosterliteError, match="unknown format"):
        scan_dataset(tmp_path, fmt="parquet")
    (tmp_path / "two").mkdir()
    _write_csv(tmp_path / "two" / "a.csv", ["imdbId,Genre"])
    _write_csv(tmp_path / "two" / "b.csv", ["imdbId,Genre"])
    with pytest.raises(PosterliteError, match="several CSV files"):
        scan_dataset(tmp_path / "two")


def test_cli_scan_json_and_summary(tmp_path: Path) -> None:
    root = tmp_path / "f"
    make_poster(root / "Comedy" / "1.jpg", 1)
    (root / "Comedy" / "2.jpg").write_bytes(b"")
    runner = CliRunner()
    out = runner.invoke(main, ["data", "scan", str(root), "--json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.stdout)
    assert report["format"] == "folders" and report["posters"] == 1
    assert report["unlabeled"] == 0
    assert report["genre_counts"]["Comedy"] == 1 and len(report["genre_counts"]) == 6
    empty = str(root / "Comedy" / "2.jpg")
    assert report["skipped"] == [
        {"path": empty, "reason": "zero-byte", "detail": f"{empty}: zero-byte"}
    ]
    text = runner.invoke(main, ["data", "scan", str(root)])
    assert text.exit_code == 0 and "labelled posters: 1" in text.stdout


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    for args in (
        ["data", "scan", str(tmp_path / "missing")],
        ["data", "scan", str(tmp_path), "--format", "nope"],
        ["data", "split", str(tmp_path / "missing"), "--out", str(tmp_path / "m.csv")],
        ["data", "download", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "p")],
    ):
        result = runner.invoke(main, args)
        assert result.exit_code == 1, args
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        assert "Traceback" not in result.output


# --- split -----------------------------------------------------------------------------
def _synthetic(n: int, seed: int = 1) -> list[LabeledPoster]:
    """Posters with a realistic, imbalanced genre mix (no files needed to split)."""
    rng = random.Random(seed)
    rates = {"Action": 0.18, "Drama": 0.45, "Comedy": 0.35, "Crime": 0.15, "Romance": 0.15}
    posters = []
    for i in range(n):
        genres = {g for g, rate in rates.items() if rng.random() < rate}
        if rng.random() < 0.55 or not genres:
            genres.add("Other")
        ordered = tuple(g for g in SIX.names if g in genres)
        posters.append(LabeledPoster(Path(f"/p/{i}.jpg"), ordered, str(i), "syn"))
    return posters


def test_stratified_split_keeps_every_genre_near_30_percent() -> None:
    posters = _synthetic(1200)
    splits = assign_splits(posters, 0.3, random.Random(0))
    assert abs(splits.count("val") / len(posters) - 0.3) < 0.01
    for genre in SIX.names:
        in_genre = [s for p, s in zip(posters, splits, strict=True) if genre in p.genres]
        share = in_genre.count("val") / len(in_genre)
        assert abs(share - 0.3) < 0.03, (genre, share)
    assert assign_splits(posters, 0.3, random.Random(0)) == splits  # seeded
    assert assign_splits(posters, 0.3, random.Random(1)) != splits


def test_films_never_straddle_splits() -> None:
    posters = _synthetic(300)
    # Give every film a second poster: both must land in the same split.
    doubled = posters + [
        LabeledPoster(Path(f"/q/{p.film_id}.jpg"), p.genres, p.film_id, "syn") for p in posters
    ]
    splits = assign_splits(doubled, 0.3, random.Random(0))
    by_film: dict[str, set[str]] = {}
    for poster, split in zip(doubled, splits, strict=True):
        by_film.setdefault(poster.film_id, set()).add(split)
    assert all(len(s) == 1 for s in by_film.values())


def test_per_genre_cap() -> None:
    posters = _synthetic(600)
    capped = cap_per_genre(posters, 40, random.Random(0))
    counts = Counter(g for p in capped for g in p.genres)
    assert max(counts.values()) <= 40 and min(counts.values()) >= 20
    assert capped == cap_per_genre(posters, 40, random.Random(0))


def _two_sources(tmp_path: Path) -> tuple[Path, Path]:
    multi = tmp_path / "src" / "imdb"
    lines = ["Id,Genre,Action,Drama,Comedy"]
    for i in range(1, 41):
        drama = 1 if i % 2 == 0 else (i // 2) % 2
        lines.append(f"tt{i:07d},x,{i % 2},{drama},{1 if i % 5 == 0 else 0}")
        make_poster(multi / "Images" / f"tt{i:07d}.jpg", i, size=(8, 12))
    _write_csv(multi / "train.csv", lines)
    kaggle = tmp_path / "src" / "kaggle"
    rows = ["imdbId,Genre,Poster"]
    for i in range(35, 61):  # films 35..40 are also in the multi-hot set
        rows.append(f"{i},Crime|Romance,image{i}.jpg")
        make_poster(kaggle / "MoviePosters" / f"image{i}.jpg", 100 + i, size=(8, 12))
    _write_csv(kaggle / "MovieGenre.csv", rows)
    return multi, kaggle


def test_split_merges_sources_without_counting_a_film_twice(tmp_path: Path) -> None:
    multi, kaggle = _two_sources(tmp_path)
    out = tmp_path / "models" / "manifest.csv"
    report = split_sources([multi, kaggle], out, SplitOptions(seed=0), progress=False)
    rows = read_manifest(out)
    assert len(rows) == 40 + 20
    assert len({r.film_id for r in rows}) == len(rows)
    assert [s.reason for s in report.skipped] == ["duplicate"] * 6
    assert {r.source for r in rows if r.film_id in {str(i) for i in range(35, 41)}} == {"imdb"}
    raw = out.read_text().splitlines()
    assert raw[1].startswith("../src/")  # relative to the manifest's folder
    assert all(Path(r.path).is_file() for r in rows)
    counts = Counter(r.split for r in rows)
    assert 15 <= counts["val"] + counts["test"] <= 21 and counts["val"] and counts["test"]
    first = out.read_bytes()
    split_sources([multi, kaggle], out, SplitOptions(seed=0), progress=False)
    assert out.read_bytes() == first  # deterministic
    split_sources([multi, kaggle], out, SplitOptions(seed=5), progress=False)
    assert out.read_bytes() != first


def test_cli_split(tmp_path: Path) -> None:
    multi, kaggle = _two_sources(tmp_path)
    out = tmp_path / "m.csv"
    runner = CliRunner()
    args = ["data", "split", str(multi), str(kaggle), "--out", str(out), "--per-genre", "10"]
    result = runner.invoke(main, [*args, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    total = {g: sum(report["counts"][s][g] for s in ("train", "val", "test")) for g in SIX.names}
    assert max(total.values()) <= 10
    text = runner.invoke(main, args)
    assert text.exit_code == 0 and "val share" in text.stdout and "test share" in text.stdout
    bad = runner.invoke(main, [*args, "--val-fraction", "1.5"])
    assert bad.exit_code == 1 and bad.stderr.startswith("error: --val-fraction")
    bad = runner.invoke(main, [*args, "--val-fraction", "0.5", "--test-fraction", "0.5"])
    assert bad.exit_code == 1 and bad.stderr.startswith("error: --test-fraction")


def test_test_split_keeps_train_and_is_disjoint_by_film() -> None:
    posters = _synthetic(1200)
    doubled = posters + [  # a second poster per film for a third of the films
        LabeledPoster(Path(f"/q/{p.film_id}.jpg"), p.genres, p.film_id, "syn") for p in posters[::3]
    ]
    before = assign_splits(doubled, 0.3, random.Random(0))  # the train/val split of old
    after = assign_splits(doubled, 0.15, random.Random(0), test_fraction=0.15)
    # Train is exactly the old train; the old val is now val + test.
    assert [s == "train" for s in after] == [s == "train" for s in before]
    assert {s for s, b in zip(after, before, strict=True) if b == "val"} == {"val", "test"}
    by_film: dict[str, set[str]] = {}
    for poster, split in zip(doubled, after, strict=True):
        by_film.setdefault(poster.film_id, set()).add(split)
    assert all(len(s) == 1 for s in by_film.values())
    n = len(doubled)
    assert abs(after.count("val") / n - 0.15) < 0.01 and abs(after.count("test") / n - 0.15) < 0.01
    for genre in SIX.names:  # stratified: every genre near 15 / 15
        in_genre = [s for p, s in zip(doubled, after, strict=True) if genre in p.genres]
        for split in ("val", "test"):
            assert abs(in_genre.count(split) / len(in_genre) - 0.15) < 0.03, (genre, split)


# --- real data (../shared) ---------------------------------------------------------------
@pytest.fixture(scope="module")
def imdb7k(shared_dir: Path):
    return scan_dataset(shared_dir / "data" / "imdb-7k", progress=False)


@pytest.fixture(scope="module")
def kaggle_real(shared_dir: Path):
    return scan_dataset(shared_dir / "data" / "kaggle-moviegenre", progress=False)


@pytest.mark.shared
def test_real_imdb_7k_counts(imdb7k) -> None:
    assert imdb7k.format == "multihot"
    reasons = _reasons(imdb7k)
    # 5,249 distinct labelled Ids; 6 of them carry only imdb-7k's own N/A column (-> Other).
    assert len(imdb7k.posters) == 5249
    assert reasons == {"duplicate": 5}
    assert len(imdb7k.unlabeled) == 625
    assert imdb7k.genre_counts()["Drama"] == 2615


@pytest.mark.shared
def test_real_kaggle_scan(kaggle_real) -> None:
    assert kaggle_real.format == "kaggle"
    assert len(kaggle_real.posters) == 2490
    assert _reasons(kaggle_real) == {"missing file": 4968, "duplicate": 12}
    assert len(kaggle_real.unlabeled) == 40
    assert len({p.film_id for p in kaggle_real.posters}) == 2490


@pytest.mark.shared
def test_real_sample_csv_is_iso_8859_1(shared_dir: Path) -> None:
    table = read_csv_table(shared_dir / "data" / "samples" / "MovieGenre-sample.csv")
    assert table.encoding == "iso-8859-1" and len(table.rows) == 1295
    titles = [row["Title"] for _, row in table.rows]
    assert sum(1 for t in titles if not t.isascii()) == 70
    assert all("\ufffd" not in t for t in titles)
    result = scan_dataset(table.path, progress=False)
    assert result.format == "kaggle" and result.posters == []


# --- a data set that does not match the genre scheme --------------------------------------
THREE_OF_FIVE = "Horror,Comedy,Romance,Crime,Other"


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning: ")]


def test_scan_and_split_warn_about_genres_without_posters(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("POSTERLITE_GENRES", THREE_OF_FIVE)
    root = _three_genre_folders(tmp_path / "three")
    runner = CliRunner()
    scan = runner.invoke(main, ["data", "scan", str(root), "--json"])
    assert scan.exit_code == 0, scan.output
    assert json.loads(scan.stdout)["genres_without_posters"] == ["Crime", "Other"]
    [line] = _warnings(scan.stderr)
    assert line.startswith(f"warning: no posters of Crime, Other in {root} ")
    assert f"POSTERLITE_GENRES={THREE_OF_FIVE}" in line
    assert "leave them out of macro F1 and mAP" in line

    out = tmp_path / "m.csv"
    split = runner.invoke(main, ["data", "split", str(root), "--out", str(out)])
    assert split.exit_code == 0, split.output
    [line] = _warnings(split.stderr)
    assert line.startswith(f"warning: no posters of Crime, Other in {out} ")

    monkeypatch.setenv("POSTERLITE_GENRES", "Horror,Comedy,Romance")
    fits = runner.invoke(main, ["data", "scan", str(root)])
    assert fits.exit_code == 0 and fits.stderr == ""


def test_split_warns_about_a_genre_missing_from_one_split(tmp_path: Path, monkeypatch) -> None:
    """One Crime poster can only be in one split: the others cannot train or score it."""
    monkeypatch.setenv("POSTERLITE_GENRES", THREE_OF_FIVE)
    root = _three_genre_folders(tmp_path / "three")
    make_poster(root / "Crime" / "tt0000999.jpg", 999, size=(8, 12))
    report = split_sources([root], tmp_path / "m.csv", progress=False)
    gaps = report.to_json()["genres_without_posters"]
    assert gaps["all"] == ["Other"]
    assert sum("Crime" in gaps[s] for s in ("train", "val", "test")) == 2
    lines = report.warnings()
    assert lines[0].startswith("warning: no posters of Other in ")
    assert len(lines) == 3 and all("Crime" in line and "split of" in line for line in lines[1:])


# --- one bad row or file is one skip, never the end of the scan -------------------------
def _three_genre_folders(root: Path, per_genre: int = 8) -> Path:
    for g, genre in enumerate(("Horror", "Comedy", "Romance")):
        for i in range(per_genre):
            make_poster(root / genre / f"tt{g * 100 + i:07d}.jpg", g * 100 + i, size=(8, 12))
    return root


def test_hostile_rows_are_skipped_one_by_one(tmp_path: Path) -> None:
    root = tmp_path / "k"
    make_poster(root / "MoviePosters" / "1.jpg", 1)
    make_poster(root / "MoviePosters" / "2.jpg", 2)
    big = root / "MoviePosters" / "big.jpg"
    big.write_bytes(b"")
    os.truncate(big, MAX_POSTER_BYTES + 1)  # sparse: costs nothing, refused before reading
    huge_id = "9" * 5000  # past the 4,300 digits int() accepts
    _write_csv(
        root / "MovieGenre.csv",
        [
            "imdbId,Genre,Poster",
            "1,Drama,1.jpg",
            f"3,Drama,{'x' * 300}.jpg",  # a name the file system refuses
            f"{huge_id},Drama,{huge_id}.jpg",
            '4,Drama,"line\nbreak.jpg"',
            "5,Drama,big.jpg",
            "2,Comedy,2.jpg",
        ],
    )
    result = scan_dataset(root, progress=False)
    assert [p.film_id for p in result.posters] == ["1", "2"]
    assert _reasons(result) == {"missing file": 3, "too large": 1}
    text = format_scan_summary(result)
    assert "line\\x0abreak.jpg" in text and "\nbreak.jpg" not in text
    assert all(len(line) < 260 for line in text.splitlines())


def test_whole_run_input_and_output_errors_are_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    root = _three_genre_folders(tmp_path / "three", per_genre=3)
    folder_out = tmp_path / "taken"
    folder_out.mkdir()
    big_csv = tmp_path / "big" / "MovieGenre.csv"
    big_csv.parent.mkdir()
    big_csv.write_bytes(b"imdbId,Genre,Poster\n")
    os.truncate(big_csv, MAX_CSV_BYTES + 1)
    for args in (
        ["data", "split", str(root), "--out", str(folder_out)],  # --out is a folder
        ["data", "split", str(root), "--out", str(root / "Horror" / "tt0000000.jpg" / "m.csv")],
        ["data", "scan", str(tmp_path / ("n" * 300))],  # File name too long
        ["data", "scan", str(big_csv)],
    ):
        result = runner.invoke(main, args)
        assert result.exit_code == 1, (args, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        assert "Traceback" not in result.output
    assert "over 256 MB" in runner.invoke(main, ["data", "scan", str(big_csv)]).stderr
