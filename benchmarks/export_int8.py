"""Export each shipped model's phone-ready int8 file: `models/<name>/model.int8.tflite`.

    nice -n 10 .venv/bin/python benchmarks/export_int8.py            # the six shipped models
    .venv/bin/python benchmarks/export_int8.py mobilenet_v2 --force  # one, redone

For each trained run folder (`models/<name>/model.keras` + `card.json`):
1. convert `model.keras` to full-integer int8 with `posterlite.convert.convert_model`
   (calibrated on `calibration/`, TFLite Metadata embedded, checked through LiteRT against
   Keras on the card's validation split; the `--max-drop` gate, 0.01 mAP by default, must
   pass or nothing is written);
2. score the Keras model and the new int8 file on the bundled sample (`benchmarks/sample`,
   what `posterlite bench` scores by default) and record both in the file's JSON sidecar,
   `models/<name>/model.int8.json` (key `keras_reference`), so `posterlite bench` reports
   the change against Keras without importing TensorFlow;
3. write both files atomically.
The export itself is `posterlite.bench.sidecar.export_int8`, beside the sidecar's reader.

Idempotent: a model is skipped when its sidecar says the committed file (same sha256) was
exported from the same `model.keras`, calibration set, sample and preprocessing (the
sample's decoded pixels); `--force` redoes it. Runtime on a 2-core AMD EPYC: about 1-2 min
per MobileNet (the gate's validation pass dominates), seconds per CNN; `--eval-limit N`
checks the gate on N validation posters only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from posterlite.bench import DEFAULT_SAMPLE, MODELS_DIR, SHIPPED_MODELS, load_labelled_set
from posterlite.bench.sidecar import ExportSettings, calibration_digest, export_int8
from posterlite.convert import DEFAULT_MAX_DROP
from posterlite.errors import PosterliteError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "names", nargs="*", help="run folders under --models (default: every shipped model)"
    )
    parser.add_argument(
        "--models", type=Path, default=MODELS_DIR, help="folder of the trained runs"
    )
    parser.add_argument(
        "--sample",
        type=Path,
        default=DEFAULT_SAMPLE,
        help="labelled posters the Keras figures are recorded on (bench's default sample)",
    )
    parser.add_argument(
        "--max-drop",
        type=float,
        default=DEFAULT_MAX_DROP,
        help="largest int8 mAP drop vs Keras on the val split that passes the gate",
    )
    parser.add_argument("--eval-limit", type=int, default=None, help="gate on N val posters")
    parser.add_argument("--force", action="store_true", help="redo up-to-date models")
    args = parser.parse_args(argv)
    names = args.names or [n for n in SHIPPED_MODELS if (args.models / n).is_dir()]
    posters = load_labelled_set(args.sample)
    calibration = calibration_digest()  # hashes every calibration image: once, not per run
    settings = ExportSettings(args.max_drop, args.eval_limit, args.force)
    failed = 0
    for name in names:

        def log(line: str, name: str = name) -> None:
            print(f"  {name}: {line}", file=sys.stderr)

        try:
            print(export_int8(args.models / name, posters, calibration, settings, log), flush=True)
        except PosterliteError as exc:
            failed += 1
            print(f"{name}: error: {exc}", file=sys.stderr, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
