"""The Android target: rows from TFLite's `benchmark_model` on a device through adb
(`posterlite.android` talks to the device; this module turns what it measures into rows).

- Latency: `android.run_latency` once per model x thread count; its `Stat` line gives the
  row's `LatencyStats` (`device_latency`), its memory lines the peak memory.
- Accuracy: the labelled posters are preprocessed on the host with the one preprocessing
  path (`load_poster` + `PosterModel.prepare`, so integer models get their own input
  quantization), written as raw input tensors, pushed, and run on the device with
  `--input_layer_value_files` and `--output_filepath` (benchmark_model writes the output
  tensors' raw bytes there). Models with a dynamic batch dimension get one file per chunk
  of posters (`--input_layer_shape=N,S,S,3`), others one file per poster. The outputs are
  pulled back and scored with `metrics.evaluate`, exactly like the CPU rows.
"""

from __future__ import annotations

import shlex
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from posterlite.android import (
    CHUNK,
    MEMORY_DELTA,
    MEMORY_PEAK,
    REMOTE_BINARY,
    REMOTE_DIR,
    Adb,
    BenchmarkModelOutput,
    DeviceRunConfig,
    check_binary,
    install_binary,
    run_latency,
    run_status_error,
)
from posterlite.bench.labelled import LabelledSet, score
from posterlite.bench.options import BenchOptions
from posterlite.bench.records import BenchRow, LatencyStats, ModelSpec
from posterlite.bench.targets.base import RunContext, TargetName
from posterlite.bench.targets.cpu import REFERENCE_NOTE, progress
from posterlite.errors import PosterliteError
from posterlite.metrics import MultiLabelReport
from posterlite.preprocess import PosterDecodeError, load_poster

if TYPE_CHECKING:
    from posterlite.runtime import PosterModel


def device_latency(output: BenchmarkModelOutput) -> LatencyStats:
    """The row's latency figures from one benchmark_model run (its timed runs' Stat line)."""
    stats = output.inference

    def ms(value: float | None) -> float | None:
        return None if value is None else value / 1e3

    return LatencyStats(
        count=stats.count if stats else 0,
        mean_ms=output.inference_avg_us / 1e3,
        p50_ms=ms(stats.median) if stats else None,
        min_ms=ms(stats.min) if stats else None,
        max_ms=ms(stats.max) if stats else None,
        std_ms=ms(stats.std) if stats else None,
        first_ms=ms(output.first_inference_us),
        p5_ms=ms(stats.p5) if stats else None,
        p95_ms=ms(stats.p95) if stats else None,
    )


def _input_files(
    spec: ModelSpec, posters: LabelledSet, folder: Path
) -> tuple[list[tuple[str, int]], np.ndarray, PosterModel]:
    """Write prepared input tensors; returns [(file name, batch)], kept indices, the model."""
    from posterlite.runtime import PosterModel

    model = PosterModel.load(spec.path)
    detail = model.interpreter.get_input_details()[0]
    signature = detail.get("shape_signature", detail["shape"])
    dynamic = len(signature) > 0 and int(signature[0]) == -1
    prepared, kept = [], []
    for index, path in enumerate(posters.paths):
        try:
            prepared.append(model.prepare(load_poster(path, model.input_size))[0])
        except PosterDecodeError:
            continue
        kept.append(index)
    if not prepared:
        raise PosterliteError(f"{posters.root}: no poster of the labelled set could be decoded")
    step = CHUNK if dynamic else 1
    files = []
    for number, start in enumerate(range(0, len(prepared), step)):
        chunk = np.ascontiguousarray(np.stack(prepared[start : start + step]))
        name = f"in_{number:05d}.bin"
        (folder / name).write_bytes(chunk.tobytes())
        files.append((name, int(chunk.shape[0])))
    return files, np.asarray(kept), model


def run_accuracy(
    adb: Adb, spec: ModelSpec, remote_model: str, config: DeviceRunConfig, posters: LabelledSet
) -> tuple[MultiLabelReport, int]:
    """Run the labelled set through benchmark_model on the device; (report, posters left out)."""
    remote = f"{REMOTE_DIR}/acc_{spec.name}_{spec.format}"
    with tempfile.TemporaryDirectory(prefix="posterlite-device-") as tmp:
        local = Path(tmp) / "inputs"
        local.mkdir()
        files, kept, model = _input_files(spec, posters, local)
        size = model.input_size
        # Paths come from $0 and the arguments, so the script works wherever it lands.
        lines = ['d=$(dirname "$0")', 'bin="$1"', 'graph="$2"', 'rm -f "$d/outputs.bin"']
        flags = " ".join(config.flags())
        for number, (name, batch) in enumerate(files):
            out = f"out_{number:05d}.bin"
            lines.append(
                f'"$bin" --graph="$graph" {flags} --num_runs=1 --warmup_runs=0 --min_secs=0 '
                f"--warmup_min_secs=0 --input_layer=input "
                f"--input_layer_shape={batch},{size},{size},3 "
                f'--input_layer_value_files=input:"$d/{name}" --output_filepath="$d/{out}" '
                f'> "$d/log.txt" 2>&1 || {{ s=$?; echo __posterlite_failed={name}; '
                f'tail -n 5 "$d/log.txt"; exit $s; }}'
            )
            lines.append(f'[ -s "$d/{out}" ] || {{ echo __posterlite_no_output={name}; exit 90; }}')
            lines.append(f'cat "$d/{out}" >> "$d/outputs.bin"')
        (local / "run.sh").write_text("\n".join(lines) + "\n")
        adb.check_shell(f"rm -rf {shlex.quote(remote)}", "cleanup")
        adb.push(local, remote)
        script = " ".join(shlex.quote(a) for a in (f"{remote}/run.sh", REMOTE_BINARY, remote_model))
        result = adb.shell(f"sh {script} 2>&1")
        if result.status == 90:
            raise PosterliteError(
                "benchmark_model wrote no --output_filepath file: it is too old for on-device "
                "accuracy (use a recent nightly build)"
            )
        if result.status != 0:
            raise run_status_error(adb, result.status, result.stdout, f"{spec.name}/{spec.format}")
        pulled = Path(tmp) / "outputs.bin"
        adb.pull(f"{remote}/outputs.bin", pulled)
        adb.check_shell(f"rm -rf {shlex.quote(remote)}", "cleanup")
        raw_bytes = pulled.read_bytes()
    output = model.interpreter.get_output_details()[0]
    n_genres = len(model.genres)
    dtype = np.dtype(output["dtype"])
    expected = len(kept) * n_genres * dtype.itemsize
    if len(raw_bytes) != expected:
        raise PosterliteError(
            f"device outputs have {len(raw_bytes)} bytes, expected {expected} "
            f"({len(kept)} posters x {n_genres} genres x {dtype})"
        )
    raw = np.frombuffer(raw_bytes, dtype=dtype).reshape(len(kept), n_genres)
    report = score(posters, kept, model.dequantize(raw), list(model.genres))
    return report, len(posters) - len(kept)


def run_android(
    specs: Sequence[ModelSpec],
    *,
    threads: Sequence[int],
    runs: int,
    warmup: int,
    posters: LabelledSet | None,
    serial: str | None = None,
    binary: Path | None = None,
    use_gpu: bool = False,
    use_nnapi: bool = False,
    adb: Adb | None = None,
) -> list[BenchRow]:
    """Rows for every spec x thread count measured on the device (Keras rows are skipped)."""
    binary = check_binary(binary)  # fail on a missing binary before touching adb
    adb = adb or Adb()
    adb.select(serial)
    info = adb.device_info()
    check_binary(binary, info.abi)
    install_binary(adb, binary)
    rows: list[BenchRow] = []
    wanted = [s for s in specs if s.kind != "keras"]
    try:
        bar = progress(len(wanted), f"bench {info.model}")
        for spec in wanted:
            remote_model = f"{REMOTE_DIR}/{spec.path.name}"
            adb.push(spec.path, remote_model)
            accuracy: MultiLabelReport | None = None
            for count in threads:
                config = DeviceRunConfig(count, use_gpu, use_nnapi)
                result = run_latency(adb, remote_model, config, runs, warmup)
                peak = result.peak_memory_mb
                row = BenchRow(
                    model=spec.name,
                    format=spec.format,
                    kind=spec.kind,
                    path=str(spec.path),
                    target="android",
                    threads=count,
                    size_bytes=spec.path.stat().st_size,
                    latency=device_latency(result),
                    load_ms=result.init_us / 1e3,
                    peak_memory_mb=peak if peak is not None else result.memory_overall_mb,
                    memory_method=MEMORY_PEAK if peak is not None else MEMORY_DELTA,
                    device=info.as_dict(),
                    delegate=config.delegate,
                    notes=["end-to-end decode time is not measured on the device"],
                )
                if row.peak_memory_mb is None:
                    row.memory_method = ""
                if spec.kind == "reference":
                    row.notes.append(REFERENCE_NOTE)
                elif posters is not None:
                    if accuracy is None:
                        accuracy, left_out = run_accuracy(adb, spec, remote_model, config, posters)
                        if left_out:
                            row.notes.append(f"{left_out} posters could not be decoded")
                    row.accuracy = accuracy
                rows.append(row)
            adb.check_shell(f"rm -f {shlex.quote(remote_model)}", "cleanup")
            bar.update(1)
        bar.close()
    finally:
        try:  # leave the device clean, but never hide the error that got us here
            adb.shell(f"rm -rf {REMOTE_DIR}")
        except PosterliteError:
            pass
    return rows


class AndroidTarget:
    """`--target android`: benchmark_model on a device through adb."""

    @property
    def name(self) -> TargetName:
        """The registry key."""
        return "android"

    def refusal(self, options: BenchOptions) -> str | None:
        """The device options need this target."""
        mine = (options.serial, options.benchmark_binary, options.use_gpu, options.use_nnapi)
        if options.target != "android" and any(mine):
            return "--serial/--benchmark-binary/--use-gpu/--use-nnapi need --target android"
        return None

    def preflight(self, options: BenchOptions) -> None:
        """The benchmark binary must exist before adb is touched."""
        check_binary(options.benchmark_binary)

    def run(self, context: RunContext) -> list[BenchRow]:
        """Every spec x thread count on the device (Keras baselines are host-only)."""
        o = context.options
        return run_android(context.specs, threads=o.threads, runs=o.runs, warmup=o.warmup,
                           posters=context.posters, serial=o.serial, binary=o.benchmark_binary,
                           use_gpu=o.use_gpu, use_nnapi=o.use_nnapi)  # fmt: skip


TARGET = AndroidTarget()
