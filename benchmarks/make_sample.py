"""Build the bundled labelled bench sample, `benchmarks/sample/`, from the validation split.

The sample is what `posterlite bench` scores accuracy on when given no `--data`: ~200
posters of the manifest's `val` split (never trained on, never in the calibration set,
which comes from the `train` split), drawn with the calibration set's stratified sampler so
every genre is represented, copied byte for byte, in the multi-hot layout that
`posterlite data scan` reads (`labels.csv` + `Images/<Id>.jpg`).

    python benchmarks/make_sample.py --manifest models/manifest.csv --n 200 --out benchmarks/sample
"""

from __future__ import annotations

import argparse
import csv
import io
import shutil
import tempfile
from pathlib import Path

from posterlite.calibration import Candidate, draw
from posterlite.genres import default_scheme
from posterlite.manifest import read_manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=Path("models/manifest.csv"))
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/sample"))
    args = parser.parse_args()

    scheme = default_scheme()
    rows = [row for row in read_manifest(args.manifest) if row.split == "val"]
    candidates = [Candidate(Path(r.path), r.genres, r.film_id) for r in rows]
    drawn = draw(candidates, args.n, scheme, args.seed, lambda c: (c.path.read_bytes(), ""))

    staging = Path(tempfile.mkdtemp(prefix=".sample.", dir=args.out.parent))
    try:
        (staging / "Images").mkdir()
        table = io.StringIO()
        writer = csv.writer(table, lineterminator="\n")
        writer.writerow(["Id", "Genre", *scheme.names, "source"])
        for candidate, data, _ in drawn:
            poster_id = f"tt{int(candidate.film_id):07d}"
            (staging / "Images" / f"{poster_id}.jpg").write_bytes(data)
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
        (staging / "labels.csv").write_text(table.getvalue(), encoding="utf-8")
        if args.out.exists():
            shutil.rmtree(args.out)
        staging.rename(args.out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    counts = {g: sum(g in c.genres for c, _, _ in drawn) for g in scheme.names}
    print(f"wrote {len(drawn)} posters to {args.out}: {counts}")


if __name__ == "__main__":
    main()
