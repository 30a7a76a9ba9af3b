#!/usr/bin/env python3
"""HOST STAND-IN for TFLite's `benchmark_model`, used only by the tests' simulated device.

No Android `benchmark_model` binary can run on the test host, so the tests push this script
instead. It accepts the flags posterlite passes (`--graph --num_threads --warmup_runs
--num_runs --min_secs --warmup_min_secs --max_secs --use_xnnpack --use_gpu --use_nnapi
--report_peak_memory_footprint --input_layer --input_layer_shape --input_layer_value_files
--output_filepath`), runs the model with the real LiteRT interpreter on the host CPU and
prints the lines of benchmark_model's documented output format (benchmark_model.cc's
`BenchmarkLoggingListener`, tsl's `Stat::OutputToStream` with percentiles), numbers printed
like C++ iostreams (6 significant digits, so large averages come out as `1.23457e+06`).

It is not benchmark_model: GPU / NNAPI flags are accepted and ignored (host CPU only), and
timings are of the host. The parser is ALSO tested on verbatim output of the real tool
(android_harness/fixtures/).
"""

from __future__ import annotations

import os
import resource
import sys
import time

import numpy as np

KNOWN = {
    "graph": "",
    "num_threads": "-1",
    "warmup_runs": "1",
    "num_runs": "50",
    "min_secs": "1",
    "warmup_min_secs": "0.5",
    "max_secs": "150",
    "use_xnnpack": "true",
    "use_gpu": "false",
    "use_nnapi": "false",
    "report_peak_memory_footprint": "false",
    "input_layer": "",
    "input_layer_shape": "",
    "input_layer_value_files": "",
    "output_filepath": "",
}


def log(text: str) -> None:
    print(f"INFO: {text}", flush=True)


def g(value: float) -> str:
    """C++ ostream default formatting of a double (%g, 6 significant digits)."""
    return f"{value:g}"


def parse(argv: list[str]) -> dict[str, str]:
    params = dict(KNOWN)
    unknown = []
    for arg in argv:
        key, sep, value = arg.lstrip("-").partition("=")
        if not arg.startswith("--") or not sep or key not in KNOWN:
            unknown.append(arg)
            continue
        params[key] = value
    if unknown:
        print(f"ERROR: Unconsumed cmdline flags: {' '.join(unknown)}", flush=True)
        sys.exit(1)
    return params


def stat_line(values_us: list[int]) -> str:
    """tsl::StatWithPercentiles::OutputToStream."""
    if not values_us:
        return "count=0"
    if min(values_us) == max(values_us):
        text = f"count={len(values_us)} curr={values_us[-1]}"
        return text + ("(all same)" if len(values_us) > 1 else "")
    arr = np.asarray(values_us, dtype=np.float64)
    ordered = sorted(values_us)

    def pct(p: int) -> int:
        return ordered[len(ordered) * p // 100] if p < 100 else ordered[-1]

    return (
        f"count={len(values_us)} first={values_us[0]} curr={values_us[-1]} min={min(values_us)} "
        f"max={max(values_us)} avg={g(arr.mean())} std={int(arr.std())} p5={pct(5)} "
        f"median={pct(50)} p95={pct(95)}"
    )


def truthy(text: str) -> bool:
    return text.lower() in ("1", "true", "yes")


def run_loop(interpreter, inputs, min_runs: int, min_secs: float, max_secs: float) -> list[int]:
    log(
        f"Running benchmark for at least {min_runs} iterations and at least {g(min_secs)} "
        f"seconds but terminate if exceeding {g(max_secs)} seconds."
    )
    times: list[int] = []
    start = time.perf_counter()
    now = start
    while (len(times) < min_runs or now < start + min_secs) and now <= start + max_secs:
        for index, data in inputs:
            interpreter.set_tensor(index, data)
        begin = time.perf_counter()
        interpreter.invoke()
        end = time.perf_counter()
        times.append(int((end - begin) * 1e6))
        now = time.perf_counter()
    log(stat_line(times))
    log("")
    return times


def main(argv: list[str]) -> int:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    params = parse(argv)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    graph = params["graph"]
    log("STARTING!")
    log("Log parameter values verbosely: [0]")
    log(f"Min num runs: [{params['num_runs']}]")
    log(f"Num threads: [{params['num_threads']}]")
    log(f"Graph: [{graph}]")
    log(f"Use xnnpack: [{1 if truthy(params['use_xnnpack']) else 0}]")
    for flag in ("use_gpu", "use_nnapi"):
        if truthy(params[flag]):
            print(f"WARN: host stand-in: --{flag} ignored (host CPU only)", flush=True)
    if not graph or not os.path.isfile(graph):
        print(f"ERROR: Could not open '{graph}'.", flush=True)
        print("ERROR: Failed to mmap model " + graph, flush=True)
        return 1
    init_start = time.perf_counter()
    threads = int(params["num_threads"])
    resolver = (
        OpResolverType.AUTO
        if truthy(params["use_xnnpack"])
        else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )
    interpreter = Interpreter(
        model_path=graph,
        num_threads=threads if threads > 0 else None,
        experimental_op_resolver_type=resolver,
    )
    log(f"Loaded model {graph}")
    details = interpreter.get_input_details()
    names = [n for n in params["input_layer"].split(",") if n]
    shapes = [s for s in params["input_layer_shape"].split(":") if s]
    if len(names) != len(shapes):
        print(
            "ERROR: The number of items in --input_layer_shape must match --input_layer", flush=True
        )
        return 1
    for position, shape in enumerate(shapes):
        interpreter.resize_tensor_input(
            details[position]["index"], [int(v) for v in shape.split(",")]
        )
    interpreter.allocate_tensors()
    init_us = int((time.perf_counter() - init_start) * 1e6)
    init_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    log(f"The input model file size (MB): {g(os.path.getsize(graph) / 1e6)}")
    log(f"Initialized session in {g(init_us / 1e3)}ms.")

    files = {}
    for item in (i for i in params["input_layer_value_files"].split(",") if i):
        name, _, path = item.partition(":")
        files[name] = path
    rng = np.random.default_rng()
    inputs = []
    for position, detail in enumerate(interpreter.get_input_details()):
        name = names[position] if position < len(names) else detail["name"]
        dtype = np.dtype(detail["dtype"])
        shape = tuple(int(v) for v in detail["shape"])
        expected = int(np.prod(shape)) * dtype.itemsize
        if name in files:
            try:
                raw = open(files[name], "rb").read()  # noqa: SIM115
            except OSError:
                print(f"ERROR: Failed to read the input_layer_value_file:{files[name]}", flush=True)
                return 1
            if len(raw) != expected:
                print(
                    f"ERROR: The size of {files[name]} is {len(raw)} bytes. It should be "
                    f"{expected} bytes.",
                    flush=True,
                )
                return 1
            data = np.frombuffer(raw, dtype=dtype).reshape(shape)
        elif np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            data = rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
        else:
            data = rng.uniform(-1, 1, shape).astype(dtype)
        inputs.append((detail["index"], data))

    warmup = run_loop(
        interpreter,
        inputs,
        int(params["warmup_runs"]),
        float(params["warmup_min_secs"]),
        float(params["max_secs"]),
    )
    timed = run_loop(
        interpreter,
        inputs,
        int(params["num_runs"]),
        float(params["min_secs"]),
        float(params["max_secs"]),
    )
    end_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    first = warmup[0] if warmup else 0
    warm_avg = sum(warmup) / len(warmup) if warmup else float("nan")
    avg = sum(timed) / len(timed) if timed else float("nan")
    log(
        f"Inference timings in us: Init: {init_us}, First inference: {first}, "
        f"Warmup (avg): {g(warm_avg)}, Inference (avg): {g(avg)}"
    )
    log(
        "Note: as the benchmark tool itself affects memory footprint, the following is only "
        "APPROXIMATE to the actual memory footprint of the model at runtime. Take the "
        "information at your discretion."
    )
    log(
        "Memory footprint delta from the start of the tool (MB): "
        f"init={g((init_rss - base_rss) / 1024)} overall={g((end_rss - base_rss) / 1024)}"
    )
    if truthy(params["report_peak_memory_footprint"]):
        log(f"Overall peak memory footprint (MB) via periodic monitoring: {g(end_rss / 1024)}")
    if params["output_filepath"]:
        with open(params["output_filepath"], "wb") as handle:
            for detail in interpreter.get_output_details():
                handle.write(interpreter.get_tensor(detail["index"]).tobytes())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
