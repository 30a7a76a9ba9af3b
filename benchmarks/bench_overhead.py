"""The bench harness's own targets, measured in ONE run and printed side by side.

1. posterlite's timing loop (`bench.time_invokes`) adds <= 5% over a bare
   `Interpreter.invoke()` loop on the same model (wall time per invoke of the whole loop,
   so the loop's bookkeeping counts);
2. int8 MobileNetV2 p50 <= 0.5x its float32 p50 at 1 thread;
3. posterlite's int8 MobileNetV2 p50 within 1.10x of the faster of Google's two published
   int8 MobileNetV2 files at 1 thread.

The model: the shipped `models/mobilenet_v2` when it exists (converted through
`posterlite.convert` into bench's cache), else a stand-in with the same graph:
`keras.applications.MobileNetV2(weights=None, alpha=1.0, 224)` + a 6-sigmoid head,
converted with TFLiteConverter (from_saved_model after `model.export`) to fp32 and int8
(uint8 in/out, calibrated on posters from ../shared). Latency does not depend on the weights.

The machine is shared, so the variants are measured in interleaved rounds (A B A B ...)
and each figure is the median over rounds. This is not a test: run it by hand,
`python benchmarks/bench_overhead.py [--rounds 7] [--runs 60]`; it writes
`benchmarks/results/bench_overhead.json`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from posterlite import bench  # noqa: E402
from posterlite.preprocess import PosterDecodeError, load_poster, pixels_to_input  # noqa: E402

STANDIN_DIR = REPO / ".cache" / "bench" / "standin_mobilenet_v2"
RESULTS = REPO / "benchmarks" / "results" / "bench_overhead.json"


def standin_models(calibration: list[Path]) -> dict[str, Path]:
    """fp32 + int8 `.tflite` of an untrained MobileNetV2 1.0 224 with a 6-sigmoid head."""
    wanted = {fmt: STANDIN_DIR / f"standin_mobilenet_v2.{fmt}.tflite" for fmt in ("fp32", "int8")}
    if all(p.is_file() for p in wanted.values()):
        return wanted
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    backbone = keras.applications.MobileNetV2(
        input_shape=(224, 224, 3), alpha=1.0, include_top=False, weights=None, pooling="avg"
    )
    outputs = keras.layers.Dense(6, activation="sigmoid")(backbone.output)
    model = keras.Model(backbone.input, outputs)

    def representative():
        for path in calibration[:100]:
            try:
                yield [pixels_to_input(load_poster(path, 224)[None], "float32")]
            except PosterDecodeError:
                continue

    STANDIN_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        model.export(f"{tmp}/sm", verbose=False)
        for fmt, target in wanted.items():
            converter = tf.lite.TFLiteConverter.from_saved_model(f"{tmp}/sm")
            if fmt == "int8":
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
                converter.representative_dataset = representative
                converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
                converter.inference_input_type = tf.uint8
                converter.inference_output_type = tf.uint8
            target.write_bytes(converter.convert())
    return wanted


def shipped_models() -> dict[str, Path] | None:
    run = bench.MODELS_DIR / "mobilenet_v2"
    if not (run / "model.keras").is_file():
        return None
    specs = bench.resolve_models([run], ("fp32", "int8"), keras_baseline=False)
    return {s.format: s.path for s in specs}


def bare_loop_s(interpreter, runs: int) -> float:
    """Wall seconds per invoke of the plainest possible loop."""
    invoke = interpreter.invoke
    start = time.perf_counter()
    for _ in range(runs):
        invoke()
    return (time.perf_counter() - start) / runs


def posterlite_loop_s(interpreter, runs: int) -> tuple[float, list[float]]:
    """Wall seconds per invoke of bench.time_invokes (bookkeeping included) + its samples."""
    start = time.perf_counter()
    samples = bench.time_invokes(interpreter.invoke, runs, warmup=0)
    return (time.perf_counter() - start) / runs, samples


def load(path: Path, threads: int = 1):
    from posterlite.runtime import PosterModel

    model = PosterModel.load(path, threads=threads)
    pixels = np.random.default_rng(0).integers(0, 256, (1, 224, 224, 3), dtype=np.uint8)
    detail = model.interpreter.get_input_details()[0]
    model.interpreter.set_tensor(detail["index"], model.prepare(pixels))
    for _ in range(5):  # warm-up: XNNPACK packs weights on the first invokes
        model.interpreter.invoke()
    return model.interpreter


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--runs", type=int, default=60, help="invokes per variant per round")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    shared = bench.shared_dir()
    calibration = sorted((shared / "data" / "imdb-7k" / "Images").glob("*.jpg"))[:100]
    models = shipped_models()
    source = "shipped models/mobilenet_v2"
    if models is None:
        models = standin_models(calibration)
        source = "stand-in: untrained keras MobileNetV2 1.0 224 + 6-sigmoid head"
    references = {s.name: s.path for s in bench.reference_specs()}
    interpreters = {"fp32": load(models["fp32"]), "int8": load(models["int8"])}
    interpreters.update({name: load(path) for name, path in references.items()})

    ratios, samples = [], {name: [] for name in interpreters}
    for _ in range(args.rounds):
        bare = bare_loop_s(interpreters["int8"], args.runs)
        ours, _ = posterlite_loop_s(interpreters["int8"], args.runs)
        ratios.append(ours / bare)
        for name, interpreter in interpreters.items():
            samples[name] += bench.time_invokes(interpreter.invoke, args.runs, warmup=2)
    p50 = {name: float(np.median(values)) * 1e3 for name, values in samples.items()}
    overhead = statistics.median(ratios)
    best_ref = min(references, key=lambda n: p50[n]) if references else None
    checks = [
        ("timing loop / bare invoke loop (int8, wall per invoke)", overhead, 1.05),
        ("int8 p50 / fp32 p50 (1 thread)", p50["int8"] / p50["fp32"], 0.5),
    ]
    if best_ref:
        checks.append((f"int8 p50 / {best_ref} p50 (1 thread)", p50["int8"] / p50[best_ref], 1.10))

    print(f"model: {source}; {args.rounds} interleaved rounds x {args.runs} invokes, 1 thread")
    print(f"cpu: {bench.hardware_info()['cpu_model']}")
    print("\n| model | p50 ms (1 thread) |\n|---|---:|")
    for name, value in p50.items():
        print(f"| {name} | {value:.2f} |")
    print("\n| target | measured | limit | ok |\n|---|---:|---:|---|")
    for label, value, limit in checks:
        print(f"| {label} | {value:.3f} | <= {limit:.2f} | {'yes' if value <= limit else 'NO'} |")
    body = {
        "model_source": source,
        "models": {k: str(v) for k, v in models.items()},
        "rounds": args.rounds,
        "runs_per_round": args.runs,
        "p50_ms": p50,
        "overhead_ratios_per_round": ratios,
        "checks": [
            {"target": t, "measured": v, "limit": lim, "ok": v <= lim} for t, v, lim in checks
        ],
        "hardware": bench.hardware_info(),
        "library_versions": bench.library_versions(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(body, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
