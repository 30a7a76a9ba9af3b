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

Idempotent: a model is skipped when its sidecar says the committed file (same sha256) was
exported from the same `model.keras`, calibration set, sample and preprocessing (the
sample's decoded pixels); `--force` redoes it. Runtime on a 2-core AMD EPYC: about 1-2 min
per MobileNet (the gate's validation pass dominates), seconds per CNN; `--eval-limit N`
checks the gate on N validation posters only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from posterlite import bench
from posterlite.benchdata import KerasReference, LabelledSet, preprocess_version
from posterlite.convert import DEFAULT_MAX_DROP, REPO_CALIBRATION, image_files
from posterlite.ensemble import is_ensemble, materialize
from posterlite.errors import PosterliteError
from posterlite.fileio import atomic_write_bytes, atomic_write_text, jsonable, sha256_file

REPO = bench.REPO
FORMAT = "int8"
# Bumped when what an export records changes, so older sidecars are redone.
EXPORT_VERSION = 1


def repo_relative(text: str) -> str:
    """Strip this checkout's absolute path from recorded text (reports are portable)."""
    return text.replace(str(REPO) + "/", "").replace(str(REPO), ".")


def calibration_digest(folder: Path = REPO_CALIBRATION) -> str:
    digest = hashlib.sha256()
    for path in image_files(folder):
        digest.update(path.name.encode("utf-8") + b"\0" + bytes.fromhex(sha256_file(path)))
    return digest.hexdigest()[:16]


def up_to_date(run: Path, keras_sha: str, posters: LabelledSet, calibration: str) -> bool:
    target = bench.shipped_file(run, FORMAT)
    if not target.is_file():
        return False
    sidecar = bench.read_sidecar(target)
    export = sidecar.get("export") or {}
    reference = bench.recorded_reference(target)
    return (
        reference is not None
        and export.get("version") == EXPORT_VERSION
        and export.get("sha256") == sha256_file(target)
        and export.get("calibration_digest") == calibration
        and reference.keras_sha256 == keras_sha
        and bench.fitting_reference(reference, posters) is not None
    )


def keras_on_sample(run: Path, posters: LabelledSet):
    """The Keras model's MultiLabelReport on the sample, decoded as bench decodes it."""
    from posterlite.convert import keras_probabilities, load_keras, resolve_model
    from posterlite.metrics import DEFAULT_THRESHOLD, evaluate
    from posterlite.preprocess import PosterDecodeError, load_poster
    from posterlite.quiet import captured_output

    source = resolve_model(run)
    with captured_output():
        model = load_keras(source)
    size = source.card.input_size
    pixels, kept = [], []
    for index, path in enumerate(posters.paths):
        try:
            pixels.append(load_poster(path, size))
            kept.append(index)
        except PosterDecodeError:
            continue
    import numpy as np

    with captured_output():
        probabilities = keras_probabilities(model, np.stack(pixels))
    genres = list(source.genres)
    y_true = posters.targets(genres)[kept]
    return evaluate(y_true, probabilities, genres, DEFAULT_THRESHOLD), size


def tflite_on_sample(path: Path, posters: LabelledSet):
    from posterlite.bench import _accuracy, _labelled_pass
    from posterlite.runtime import PosterModel

    model = PosterModel.load(path)
    result = _labelled_pass(posters, model.input_size, model.predict_pixels)
    return _accuracy(posters, result, model.genres)


def export_one(run: Path, posters: LabelledSet, calibration: str, args: argparse.Namespace) -> str:
    """Export one run folder (`calibration`: `calibration_digest()`, the same for every
    run); returns a one-line summary."""
    from posterlite.convert import convert_model

    keras_path = materialize(run) if is_ensemble(run) else run / "model.keras"
    if not keras_path.is_file():
        raise PosterliteError(f"{run}: no model.keras")
    keras_sha = sha256_file(keras_path)
    if not args.force and up_to_date(run, keras_sha, posters, calibration):
        return f"{run.name}: up to date ({bench.shipped_file(run, FORMAT)})"
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"export-{run.name}-") as tmp:
        report = convert_model(
            run,
            formats=[FORMAT],
            out_dir=Path(tmp),
            max_drop=args.max_drop,
            eval_limit=args.eval_limit,
            log=lambda line: print(f"  {run.name}: {line}", file=sys.stderr),
        )
        result = report.results[0]
        converted = Path(result.path)
        data = converted.read_bytes()
        sidecar = bench.read_sidecar(converted)
        int8_sample = tflite_on_sample(converted, posters)
    keras_report, size = keras_on_sample(run, posters)
    reference = KerasReference(
        mean_average_precision=keras_report.mean_average_precision,
        macro_f1=keras_report.macro_f1,
        posters=len(posters),
        data=bench._display_path(posters.root),
        data_digest=posters.data_digest(),
        pixels_digest=posters.pixels_digest(size),
        input_size=size,
        keras_sha256=keras_sha,
        accuracy=asdict(keras_report),
        preprocess_version=preprocess_version(),
    )
    sidecar.update(
        source_model=repo_relative(str(sidecar.get("source_model", keras_path))),
        keras_reference=asdict(reference),
        export={
            "version": EXPORT_VERSION,
            "sha256": hashlib.sha256(data).hexdigest(),
            "calibration": repo_relative(report.calibration),
            "calibration_digest": calibration,
            "gate": {
                "check_set": repo_relative(report.eval_source),
                "posters": report.eval_count,
                "max_drop": report.max_drop,
                "keras": asdict(report.keras_quality) if report.keras_quality else None,
                "int8": asdict(result.quality) if result.quality else None,
                "map_delta": result.map_delta,
                "macro_f1_delta": result.macro_f1_delta,
                "max_abs_diff": result.max_abs_diff,
                "passed": result.passed,
            },
            "int8_on_sample": {
                "mean_average_precision": int8_sample.mean_average_precision,
                "macro_f1": int8_sample.macro_f1,
            },
            "command": "python benchmarks/export_int8.py"
            + (f" --eval-limit {args.eval_limit}" if args.eval_limit else ""),
            "library_versions": bench.library_versions(),
        },
    )
    target = bench.shipped_file(run, FORMAT)
    atomic_write_bytes(target, data)
    atomic_write_text(
        target.with_suffix(".json"),
        json.dumps(jsonable(sidecar), indent=2, sort_keys=True, allow_nan=False) + "\n",
    )
    gate = (
        f"gate mAP {result.map_delta:+.4f} on {report.eval_count} val posters"
        if result.map_delta is not None
        else "gate not applied (no labelled check set)"
    )
    return (
        f"{run.name}: wrote {bench._display_path(target)} ({len(data) / 1e6:.2f} MB); {gate}; "
        f"sample mAP keras {keras_report.mean_average_precision:.4f} / int8 "
        f"{int8_sample.mean_average_precision:.4f}; {time.perf_counter() - started:.0f} s"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "names", nargs="*", help="run folders under --models (default: every shipped model)"
    )
    parser.add_argument(
        "--models", type=Path, default=bench.MODELS_DIR, help="folder of the trained runs"
    )
    parser.add_argument(
        "--sample",
        type=Path,
        default=bench.DEFAULT_SAMPLE,
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
    names = args.names or [n for n in bench.SHIPPED_MODELS if (args.models / n).is_dir()]
    posters = bench.load_labelled_set(args.sample)
    calibration = calibration_digest()  # hashes every calibration image: once, not per run
    failed = 0
    for name in names:
        try:
            print(export_one(args.models / name, posters, calibration, args), flush=True)
        except PosterliteError as exc:
            failed += 1
            print(f"{name}: error: {exc}", file=sys.stderr, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
