"""Build the bundled labelled bench sample, `benchmarks/sample/`, from the validation split.

    .venv/bin/python benchmarks/make_sample.py --manifest models/manifest.csv --n 200 --out benchmarks/sample

Runtime: a few seconds (200 files copied, hashed and checked). `--render-only` re-renders
benchmarks/sample/README.md and benchmarks/results/make_sample.md from make_sample.json.

The sample is what `posterlite bench` scores accuracy on when given no `--data`: ~200
posters of the manifest's `val` split (never trained on, never in the calibration set,
which comes from the `train` split), drawn with the calibration set's stratified sampler so
every genre is represented, copied byte for byte, in the multi-hot layout that
`posterlite data scan` reads (`labels.csv` + `Images/<Id>.jpg`). The run records, in
benchmarks/results/make_sample.json, every poster's id, genres, source and sha256, the
genre counts, and the measured overlap with calibration/ (film ids and file contents); the
sample's README and make_sample.md are rendered from that JSON alone.
"""

from __future__ import annotations

import csv
import io
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

import results_io as rio

NAME = "make_sample"
RUNTIME = "a few seconds"
CALIBRATION = rio.REPO / "calibration"


# ------------------------------------------------------------------------------ measure
def calibration_overlap(posters: list[dict], calibration: Path) -> dict:
    """Film ids and file contents the sample shares with the calibration set."""
    table = calibration / "manifest.csv"
    if not table.is_file():
        return {"calibration": rio.rel(calibration), "checked": False}
    with table.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    film_ids = {str(int(r["film_id"])) for r in rows if r.get("film_id", "").isdigit()}
    contents = {r["sha256"] for r in rows} | {r.get("source_sha256", "") for r in rows}
    return {
        "calibration": rio.rel(calibration),
        "checked": True,
        "calibration_posters": len(rows),
        "shared_film_ids": sorted(p["film_id"] for p in posters if p["film_id"] in film_ids),
        "shared_files": sorted(p["id"] for p in posters if p["sha256"] in contents),
    }


def build(args, argv: list[str]) -> dict:
    from posterlite.calibration import Candidate, draw
    from posterlite.fileio import sha256_file
    from posterlite.genres import default_scheme
    from posterlite.manifest import read_manifest

    env = rio.environment()
    scheme = default_scheme()
    rows = [row for row in read_manifest(args.manifest) if row.split == "val"]
    candidates = [Candidate(Path(r.path), r.genres, r.film_id) for r in rows]
    drawn = draw(candidates, args.n, scheme, args.seed, lambda c: (c.path.read_bytes(), ""))

    posters = []
    out = args.out
    staging = Path(tempfile.mkdtemp(prefix=".sample.", dir=out.parent))
    try:
        (staging / "Images").mkdir()
        table = io.StringIO()
        writer = csv.writer(table, lineterminator="\n")
        writer.writerow(["Id", "Genre", *scheme.names, "source"])
        for candidate, data, _ in drawn:
            poster_id = f"tt{int(candidate.film_id):07d}"
            target = staging / "Images" / f"{poster_id}.jpg"
            target.write_bytes(data)
            source = Path(candidate.path).resolve()
            shown = "/".join(source.parts[-3:])
            writer.writerow(
                [
                    poster_id,
                    str(list(candidate.genres)),
                    *(int(g in candidate.genres) for g in scheme.names),
                    shown,
                ]
            )
            posters.append(
                {
                    "id": poster_id,
                    "film_id": str(int(candidate.film_id)),
                    "genres": list(candidate.genres),
                    "source": shown,
                    "sha256": sha256_file(target),
                    "byte_identical_to_source": sha256_file(target) == sha256_file(source),
                }
            )
        (staging / "labels.csv").write_text(table.getvalue(), encoding="utf-8")
        payload = {
            "command": rio.command("make_sample.py", argv),
            "environment": env,
            "manifest": rio.rel(args.manifest),
            "manifest_sha256": sha256_file(args.manifest),
            "split": "val",
            "val_rows": len(rows),
            "n": args.n,
            "seed": args.seed,
            "out": rio.rel(out),
            "genres": list(scheme.names),
            "posters": posters,
            "overlap": calibration_overlap(posters, CALIBRATION),
        }
        (staging / "README.md").write_text(readme(payload), encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return payload


# ------------------------------------------------------------------------------- render
def counts(payload: dict) -> tuple[Counter, Counter]:
    genres = Counter(g for p in payload["posters"] for g in p["genres"])
    sources = Counter(p["source"].split("/")[0] for p in payload["posters"])
    return genres, sources


def overlap_line(payload: dict) -> str:
    o = payload["overlap"]
    if not o.get("checked"):
        return f"- Overlap with `{o['calibration']}`: not measured (no manifest.csv there)."
    return (
        f"- Overlap with `{o['calibration']}` ({o['calibration_posters']} posters, drawn from "
        f"the train split): {len(o['shared_film_ids'])} shared film ids, "
        f"{len(o['shared_files'])} shared files (sha256 of the file or of its source)."
    )


def manifest_name(payload: dict) -> str:
    commit = payload.get("manifest_commit")
    return f"`{payload['manifest']}`" + (f" as of commit {commit}" if commit else "")


def readme(payload: dict) -> str:
    genres, sources = counts(payload)
    identical = sum(p["byte_identical_to_source"] for p in payload["posters"])
    n = len(payload["posters"])
    return "\n".join(
        [
            "# The bundled labelled bench sample",
            "",
            f"{n} posters that `posterlite bench` scores accuracy on when given no `--data`.",
            "Written by `benchmarks/make_sample.py` (figures below are from its record, "
            "`benchmarks/results/make_sample.json`).",
            "",
            *([f"**Stale:** {payload['stale']}.", ""] if payload.get("stale") else []),
            f"- Drawn from the **{payload['split']} split** of {manifest_name(payload)} "
            f"({payload['val_rows']} rows; sha256 {payload['manifest_sha256'][:16]}...), "
            "stratified over the genres with the calibration set's sampler "
            f"(`posterlite.calibration.draw`, rarest genre first, seed {payload['seed']}), by "
            f"`{payload['command']}`.",
            overlap_line(payload),
            f"- {identical} of {n} files are byte-identical copies of their source in "
            "`../shared/data` (`labels.csv` gives each poster's source path); provenance and "
            "licences of the originals: `../shared/data/PROVENANCE.md`.",
            "- Sources: " + ", ".join(f"{k} {v}" for k, v in sorted(sources.items())) + ".",
            "- Layout: multi-hot (`labels.csv`: `Id, Genre, "
            + ", ".join(payload["genres"])
            + ", source`; `Images/<Id>.jpg`), readable by `posterlite data scan "
            f"{payload['out']}`.",
            "- Posters carrying each genre: "
            + ", ".join(f"{g} {genres[g]}" for g in payload["genres"])
            + ".",
            "",
        ]
    )


def render(payload: dict) -> str:
    genres, sources = counts(payload)
    lines = rio.header("Bench sample: what make_sample.py drew", payload, RUNTIME)
    lines += [
        f"{len(payload['posters'])} posters from the {payload['split']} split of "
        f"{manifest_name(payload)} (seed {payload['seed']}) into `{payload['out']}`.",
        "",
        "| genre | posters |",
        "|---|---:|",
        *(f"| {g} | {genres[g]} |" for g in payload["genres"]),
        "",
        "| source | posters |",
        "|---|---:|",
        *(f"| {k} | {v} |" for k, v in sorted(sources.items())),
        "",
        overlap_line(payload),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = rio.make_parser(__doc__, NAME)
    parser.add_argument(
        "--manifest",
        type=Path,
        default=rio.REPO / "models" / "manifest.csv",
        help="manifest whose val split is drawn from",
    )
    parser.add_argument("--n", type=int, default=200, help="posters to draw")
    parser.add_argument("--seed", type=int, default=0, help="sampler seed")
    parser.add_argument(
        "--out",
        type=Path,
        default=rio.REPO / "benchmarks" / "sample",
        help="sample folder (replaced whole)",
    )
    args = parser.parse_args(argv)
    payload = rio.measured_or_loaded(args, NAME, lambda: build(args, argv))
    from posterlite.fileio import atomic_write_text

    atomic_write_text(args.out / "README.md", readme(payload))
    rio.publish(args.results, NAME, render(payload))
    return 0


if __name__ == "__main__":
    sys.exit(main())
