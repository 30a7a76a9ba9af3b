"""Is `predict` on a folder of posters as fast as bare `invoke()` on ready tensors?

    nice -n 10 .venv/bin/python benchmarks/predict_throughput.py [--n 500] [--threads 1] [--rounds 3]

Runtime: under 1 min on a 2-core AMD EPYC once the shipped mobilenet_v2 is converted (into
.cache/bench/, 2-4 min more on a fresh clone). Needs ../shared (posters).
`--render-only` re-renders predict_throughput.md from predict_throughput.json in a second.

Measures, side by side in one process and one run, with the same model and the same
interpreter thread count:

- bare: `set_tensor` + `invoke()` per poster on tensors decoded and prepared beforehand
  (the upper bound: no decoding at all);
- predict: `PosterModel.predict_files` on the same posters from disk (decode in a thread
  pool overlapping the interpreter; this is what `posterlite predict DIR` runs).

The CPU is shared with other jobs, so the two are interleaved finely: the posters go in
blocks of 50 and each block is timed both ways, back to back, in alternating order (ABBA),
so load from a neighbour hits both alike. Rates are totals over all blocks and rounds;
the median of the per-block ratios is reported too. Target: predict >= 80% of bare.

Model: the shipped mobilenet_v2 as int8 (converted by `posterlite bench`'s resolver, reused
from beside the model or .cache/bench/) when models/mobilenet_v2 exists, else Google's int8
MobileNetV2 from ../shared/pretrained (same architecture, uint8 input, 1001 outputs).
Posters: the first N of ../shared/data/imdb-7k/Images (sorted). Saves
benchmarks/results/predict_throughput.json, then renders predict_throughput.md from it.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import results_io as rio

NAME = "predict_throughput"
RUNTIME = "under 1 min on 2 cores once mobilenet_v2 is converted; needs ../shared"
REPO = rio.REPO
SHARED = Path(os.environ.get("POSTERLITE_SHARED", REPO.parent / "shared"))
TARGET = 0.8


def pick_model() -> Path:
    from posterlite import bench

    run = REPO / "models" / "mobilenet_v2"
    if (run / "model.keras").is_file():
        return bench.resolve_models([run], ("int8",), keras_baseline=False)[0].path
    return SHARED / "pretrained" / "mobilenet_v2_1.0_224_quant.tflite"


CPU: dict[str, float] = {"bare": 0.0, "predict": 0.0}


def bare_round(model, tensors) -> float:
    interpreter = model.interpreter
    index = model.interpreter.get_input_details()[0]["index"]
    cpu, start = time.process_time(), time.perf_counter()
    for tensor in tensors:
        interpreter.set_tensor(index, tensor)
        interpreter.invoke()
    elapsed = time.perf_counter() - start
    CPU["bare"] += time.process_time() - cpu
    return elapsed


def predict_round(model, paths: list[Path], workers: int | None) -> float:
    cpu, start = time.process_time(), time.perf_counter()
    results = model.predict_files(paths, workers=workers)
    elapsed = time.perf_counter() - start
    CPU["predict"] += time.process_time() - cpu
    assert sum(r.ok for r in results) == len(paths), "a poster failed to predict"
    return elapsed


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = rio.make_parser(__doc__, NAME)
    parser.add_argument("--n", type=int, default=500, help="posters")
    parser.add_argument("--threads", type=int, default=1, help="interpreter threads")
    parser.add_argument("--workers", type=int, default=None, help="decode threads")
    parser.add_argument("--rounds", type=int, default=3, help="passes over the posters")
    parser.add_argument("--block", type=int, default=50, help="posters per paired block")
    parser.add_argument("--model", type=Path, default=None, help="a .tflite to use instead")
    args = parser.parse_args(argv)
    payload = rio.measured_or_loaded(args, NAME, lambda: measure(args, argv))
    rio.publish(args.results, NAME, render(payload))
    return 0


def measure(args, argv: list[str]) -> dict:
    from posterlite.preprocess import load_poster
    from posterlite.runtime import PosterModel

    env = rio.environment()
    started = time.perf_counter()
    model_path = args.model or pick_model()
    posters = sorted((SHARED / "data" / "imdb-7k" / "Images").glob("*.jpg"))[: args.n]
    if len(posters) < args.n:
        raise SystemExit(f"error: only {len(posters)} posters under {rio.rel(SHARED)}")
    model = PosterModel.load(model_path, threads=args.threads)
    # Bare invoke gets everything ready in memory first: decoded, resized, quantized,
    # batch-1 contiguous arrays.
    cpu = time.process_time()
    tensors = [model.prepare(load_poster(p, model.input_size)) for p in posters]
    decode_ms = (time.process_time() - cpu) / len(posters) * 1e3
    bare_round(model, tensors[:10])  # warm-up: XNNPACK packs weights on the first invoke
    CPU["bare"] = 0.0

    bare: list[float] = []
    predict: list[float] = []
    block_ratios: list[float] = []
    for round_index in range(args.rounds):
        for block, start in enumerate(range(0, len(posters), args.block)):
            paths, ready = posters[start : start + args.block], tensors[start : start + args.block]
            if (round_index + block) % 2 == 0:
                b = bare_round(model, ready)
                p = predict_round(model, paths, args.workers)
            else:
                p = predict_round(model, paths, args.workers)
                b = bare_round(model, ready)
            bare.append(b)
            predict.append(p)
            block_ratios.append(b / p)
    total = len(posters) * args.rounds
    return {
        "command": rio.command("predict_throughput.py", argv),
        "environment": env,
        "wall_time_s": time.perf_counter() - started,
        "model": rio.rel(model_path),
        "input": f"{model.input_size}px {model.input_dtype.name}",
        "posters": len(posters),
        "threads": args.threads,
        "decode_workers": args.workers or "default (min(4, cpus))",
        "rounds": args.rounds,
        "block": args.block,
        "bare_seconds_total": sum(bare),
        "predict_seconds_total": sum(predict),
        "block_ratios": block_ratios,
        "decode_prepare_cpu_ms_per_poster_alone": decode_ms,
        "bare_cpu_ms_per_poster": CPU["bare"] / total * 1e3,
        "predict_cpu_ms_per_poster": CPU["predict"] / total * 1e3,
        "target": TARGET,
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
    }


def render(payload: dict) -> str:
    total = payload["posters"] * payload["rounds"]
    bare_rate = total / payload["bare_seconds_total"]
    predict_rate = total / payload["predict_seconds_total"]
    ratio = predict_rate / bare_rate
    blocks = sorted(payload.get("block_ratios") or [])
    median = blocks[len(blocks) // 2] if blocks else payload.get("median_block_ratio")
    target = payload.get("target", TARGET)
    lines = rio.header("predict throughput vs bare invoke", payload, RUNTIME)
    lines += [
        f"Model `{payload['model']}` ({payload['input']}), {payload['posters']} posters from "
        f"imdb-7k, interpreter threads {payload['threads']}, decode workers "
        f"{payload['decode_workers']}, {payload['rounds']} rounds of {payload['block']}-poster "
        "blocks timed both ways back to back (ABBA order).",
        "",
        "| path | total s | posters/s |",
        "|---|---:|---:|",
        f"| bare set_tensor + invoke on prepared tensors | {payload['bare_seconds_total']:.2f} "
        f"| {bare_rate:.1f} |",
        f"| PosterModel.predict_files (decode from disk) | "
        f"{payload['predict_seconds_total']:.2f} | {predict_rate:.1f} |",
        "",
        f"Ratio predict / bare: **{ratio:.3f}** (median per block "
        + ("-" if median is None else f"{median:.3f}")
        + f"; target >= {target:.2f}: {rio.verdict(ratio >= target)}).",
        f"Process CPU time per poster: bare {payload['bare_cpu_ms_per_poster']:.2f} ms, "
        f"predict {payload['predict_cpu_ms_per_poster']:.2f} ms; decode + prepare alone "
        f"{payload['decode_prepare_cpu_ms_per_poster_alone']:.2f} ms.",
    ]
    load = payload.get("load_average_1min_at_end")
    if load is not None:
        lines.append(f"1-min load average at the end: {load}.")
    lines += [
        "",
        rio.note(
            "decoding runs on other threads and hides behind `invoke()` only when a core is "
            "free; on a shared machine absolute rates vary, which is why the two paths are "
            "timed side by side and compared as a ratio."
        ),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
