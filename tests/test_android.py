"""`posterlite bench --target android`: the benchmark_model parser and the adb path, for real
(`posterlite.android`, and its bench target `posterlite.bench.targets.android`).

Tests marked `adb` drive the REAL adb client (Debian package `adb`) and its server (on a
private port, killed at teardown, with its keys in a temporary HOME) against
`android_harness/adb_device_sim.py`, a simulated device the suite starts on 127.0.0.1 that
speaks adb's device-side protocol and runs pushed commands on the host.

No Android `benchmark_model` can run on this host: the binary pushed in these tests is a
HOST STAND-IN (`android_harness/benchmark_model_standin.py`, the real LiteRT interpreter
behind benchmark_model's flags and output format). The parser is ALSO fed verbatim output
of the real tool (`android_harness/fixtures/`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from test_bench import SAMPLE_LABELS, tiny  # noqa: F401  (session fixture: tiny models)

from posterlite import android, bench
from posterlite.bench.targets.android import device_latency
from posterlite.cli import main
from posterlite.errors import PosterliteError

REPO = Path(__file__).resolve().parents[1]
HARNESS = REPO / "android_harness"
FIXTURES = HARNESS / "fixtures"
sys.path.insert(0, str(HARNESS))
from adb_device_sim import DeviceSimulator, SimConfig  # noqa: E402

needs_adb = pytest.mark.skipif(shutil.which("adb") is None, reason="adb not installed")


# ------------------------------------------------------------------ the parser (real output)
def test_parse_real_desktop_output_without_percentiles() -> None:
    out = android.parse_benchmark_output((FIXTURES / "desktop_rpi4_no_percentiles.txt").read_text())
    assert (out.init_us, out.first_inference_us) == (3501, 156677)
    assert out.warmup_avg_us == pytest.approx(43268.1)
    assert out.inference_avg_us == pytest.approx(33071.8)
    assert out.inference.count == 50 and out.inference.std == 129
    assert out.warmup.count == 12 and out.model_size_mb == pytest.approx(3.34914)
    latency = device_latency(out)
    assert latency.mean_ms == pytest.approx(33.0718) and latency.p50_ms is None
    assert (latency.min_ms, latency.max_ms, latency.first_ms) == pytest.approx(
        (32.687, 33.239, 156.677)
    )


def test_parse_real_logcat_output_with_percentiles_and_memory() -> None:
    out = android.parse_benchmark_output((FIXTURES / "android_logcat_percentiles.txt").read_text())
    assert out.inference.count == 25 and out.warmup.count == 3
    assert (out.inference.p5, out.inference.median, out.inference.p95) == (140545, 141253, 187533)
    assert (out.memory_init_mb, out.memory_overall_mb) == pytest.approx((54.2852, 73.4102))
    assert out.peak_memory_mb is None
    assert device_latency(out).p50_ms == pytest.approx(141.253)
    assert device_latency(out).p95_ms == pytest.approx(187.533)


def test_parse_real_scientific_notation_and_peak_memory() -> None:
    nnapi = android.parse_benchmark_output((FIXTURES / "android_nnapi_scientific.txt").read_text())
    assert nnapi.warmup_avg_us == pytest.approx(9.99242e06)
    assert nnapi.inference_avg_us == pytest.approx(8459.69) and nnapi.inference is None
    peak = android.parse_benchmark_output((FIXTURES / "chromeos_peak_memory.txt").read_text())
    assert peak.peak_memory_mb == pytest.approx(93.2383) and peak.inference.count == 1061
    synthetic = "INFO: count=5 curr=120(all same)\nINFO: Inference timings in us: Init: 1.5e+03, First inference: 130, Warmup (avg): 1.3e+02, Inference (avg): 1.2e+02\n"  # fmt: skip
    same = android.parse_benchmark_output(synthetic)
    assert same.inference.median == 120 and same.inference.std == 0 and same.init_us == 1500


def test_parse_rejects_unparseable_output() -> None:
    with pytest.raises(PosterliteError, match="could not parse benchmark_model output"):
        android.parse_benchmark_output((FIXTURES / "truncated_memory_only.txt").read_text())
    with pytest.raises(PosterliteError, match="last line: Segmentation fault"):
        android.parse_benchmark_output("STARTING!\nSegmentation fault\n")


# --------------------------------------------------------------------- local checks
def test_missing_adb_and_binary_problems(tmp_path) -> None:
    with pytest.raises(PosterliteError, match="adb not found"):
        android.Adb(adb=str(tmp_path / "no-adb"))
    with pytest.raises(PosterliteError, match="needs --benchmark-binary"):
        android.check_binary(None)
    with pytest.raises(PosterliteError, match="benchmark binary not found"):
        android.check_binary(tmp_path / "benchmark_model")
    arm64 = tmp_path / "android_aarch64_benchmark_model"
    arm64.write_bytes(
        b"\x7fELF\x02\x01\x01" + b"\0" * 11 + (183).to_bytes(2, "little") + b"\0" * 40
    )
    assert android.check_binary(arm64, "arm64-v8a") == arm64
    with pytest.raises(PosterliteError, match="built for aarch64 but the device ABI is x86_64"):
        android.check_binary(arm64, "x86_64")


def test_delegate_flags_put_gpu_before_xnnpack() -> None:
    config = android.DeviceRunConfig(2, use_gpu=True)
    assert config.flags() == ["--num_threads=2", "--use_gpu=true", "--use_xnnpack=true"]
    assert config.delegate == "gpu+xnnpack"


# ------------------------------------------------------------------- the adb harness
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Harness:
    """A private adb server plus simulated devices registered with `adb connect`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sims: list[DeviceSimulator] = []

    def adb(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["adb", *args], capture_output=True, text=True, timeout=timeout, check=False
        )

    def device(self, mode: str = "device", noexec: bool = False, model: str = "Posterlite Sim"):
        root = self.root / f"dev{len(self.sims)}" / "data_local_tmp"
        props = dict(SimConfig(root=root).props, **{"ro.product.model": model})
        sim = DeviceSimulator(SimConfig(root=root, props=props, mode=mode, noexec=noexec))
        sim.start()
        self.sims.append(sim)
        try:  # an offline device never finishes the handshake: adb connect would wait 10 s
            self.adb("connect", sim.address, timeout=1 if mode == "offline" else 30)
        except subprocess.TimeoutExpired:
            pass
        return sim

    def reset(self) -> None:
        self.adb("disconnect")
        for sim in self.sims:
            sim.stop()
        self.sims.clear()


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    if shutil.which("adb") is None:
        pytest.skip("adb not installed")
    home = tmp_path_factory.mktemp("adb-home")
    saved = {key: os.environ.get(key) for key in ("ANDROID_ADB_SERVER_PORT", "HOME")}
    # A private server port (never the user's adb server) and keys in a throwaway HOME.
    os.environ.update(ANDROID_ADB_SERVER_PORT=str(_free_port()), HOME=str(home))
    h = Harness(tmp_path_factory.mktemp("adb-devices"))
    h.adb("start-server")
    yield h
    h.reset()
    h.adb("kill-server")
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def fresh(harness):
    harness.reset()
    yield harness
    harness.reset()


def _script(path: Path, body: str) -> Path:
    path.write_text(body)
    path.chmod(0o755)
    return path


def standin(tmp_path: Path) -> Path:
    """The benchmark_model stand-in, with this interpreter (it has LiteRT) as its shebang."""
    text = (HARNESS / "benchmark_model_standin.py").read_text().split("\n", 1)[1]
    return _script(tmp_path / "benchmark_model", f"#!{sys.executable}\n{text}")


def recording_standin(tmp_path: Path, record: Path) -> Path:
    """The stand-in, with everything it prints also appended to `record` on the host (the
    simulated device runs pushed binaries on this host), so a test can compare the figures
    the tool printed with what posterlite reports."""
    (tmp_path / "real").mkdir()
    real = standin(tmp_path / "real")
    body = f"""#!{sys.executable}
import subprocess, sys
done = subprocess.run([{str(real)!r}, *sys.argv[1:]], capture_output=True, text=True)
with open({str(record)!r}, "a") as handle:
    handle.write(done.stdout)
sys.stdout.write(done.stdout)
sys.stderr.write(done.stderr)
sys.exit(done.returncode)
"""
    return _script(tmp_path / "benchmark_model", body)


@pytest.mark.adb
@needs_adb
def test_device_selection_through_real_adb(fresh) -> None:
    adb = android.Adb()
    with pytest.raises(PosterliteError, match="no Android device"):
        adb.select()
    first = fresh.device()
    assert adb.select().serial == first.address  # the only device
    second = fresh.device(model="Second Sim")
    with pytest.raises(PosterliteError, match="several devices attached .*: pass --serial"):
        android.Adb().select()
    chosen = android.Adb()
    chosen.select(second.address)
    assert chosen.device_info().model == "Second Sim"
    assert chosen.shell("echo hi; exit 7") == android.ShellResult(7, "hi\n", "")
    with pytest.raises(PosterliteError, match="device emulator-5554 not found"):
        android.Adb().select("emulator-5554")


@pytest.mark.adb
@needs_adb
def test_offline_and_unauthorized_devices(fresh) -> None:
    offline = fresh.device(mode="offline")
    unauthorized = fresh.device(mode="unauthorized")
    with pytest.raises(PosterliteError, match=f"device {offline.address} is offline"):
        android.Adb().select(offline.address)
    with pytest.raises(PosterliteError, match="is unauthorized: accept the USB debugging"):
        android.Adb().select(unauthorized.address)


@pytest.mark.adb
@needs_adb
def test_binary_not_executable_nonzero_exit_and_garbage_output(fresh, tmp_path) -> None:
    noexec = fresh.device(noexec=True)
    adb = android.Adb()
    adb.select(noexec.address)
    with pytest.raises(PosterliteError, match="benchmark binary is not executable"):
        android.install_binary(adb, standin(tmp_path))

    fresh.reset()
    sim = fresh.device()
    adb = android.Adb()
    adb.select(sim.address)
    failing = _script(tmp_path / "failing", "#!/bin/sh\necho 'ERROR: Failed to mmap model' >&2\nexit 3\n")  # fmt: skip
    android.install_binary(adb, failing)
    config = android.DeviceRunConfig(1)
    with pytest.raises(PosterliteError, match="exited with status 3 .*Failed to mmap model"):
        android.run_latency(adb, f"{android.REMOTE_DIR}/m.tflite", config, 2, 0)
    android.install_binary(adb, _script(tmp_path / "garbage", "#!/bin/sh\necho hello\n"))
    with pytest.raises(PosterliteError, match="could not parse .*last line: hello"):
        android.run_latency(adb, f"{android.REMOTE_DIR}/m.tflite", config, 2, 0)


@pytest.mark.adb
@needs_adb
def test_full_android_bench_latency_and_accuracy(fresh, tiny, tmp_path, monkeypatch) -> None:  # noqa: F811
    """Push, run, parse, on-device accuracy: same figures as the host for the same model."""
    sim = fresh.device(model="Pixel Sim")
    fresh.device(model="Other Sim")  # two devices: --serial picks one
    monkeypatch.setattr(android, "CHUNK", 3)  # 8 posters -> chunks of 3, 3 and 2
    out_json = tmp_path / "android.json"
    printed = tmp_path / "benchmark_model_output.txt"
    args = [
        "bench", str(tiny["fp32"]), str(tiny["int8"]), "--target", "android",
        "--serial", sim.address, "--benchmark-binary", str(recording_standin(tmp_path, printed)),
        "--data", str(tiny["sample"]), "--threads", "1,2", "--runs", "3", "--warmup", "1",
        "--json", str(out_json), "--no-references",
    ]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert result.stdout.count("| android (Pixel Sim) |") == 4
    report = json.loads(out_json.read_text())
    assert report["target"] == "android"
    rows = report["rows"]
    assert [(r["format"], r["threads"]) for r in rows] == [
        ("fp32", 1), ("fp32", 2), ("int8", 1), ("int8", 2)
    ]  # fmt: skip
    posters = bench.load_labelled_set(tiny["sample"])
    # One latency run per row, in row order, each printing its init time (us) and peak
    # memory (MB); the rows carry exactly those figures. (Accuracy runs print no peak.)
    runs = printed.read_text().split("INFO: STARTING!")[1:]
    latency_runs = [run for run in runs if "peak memory footprint" in run]
    assert len(latency_runs) == len(rows) == 4 and len(runs) > len(latency_runs)
    for row, run in zip(rows, latency_runs, strict=True):
        peak = re.search(
            r"Overall peak memory footprint \(MB\) via periodic monitoring: (\S+)", run
        )
        init = re.search(r"Inference timings in us: Init: (\d+),", run)
        assert f"Num threads: [{row['threads']}]" in run
        assert row["peak_memory_mb"] == float(peak.group(1))
        assert row["load_ms"] == int(init.group(1)) / 1e3
    for row in rows:
        assert row["device"]["model"] == "Pixel Sim" and row["device"]["abi"] == "x86_64"
        assert row["latency"]["count"] == 3 and row["latency"]["p50_ms"] > 0
        assert row["memory_method"] == android.MEMORY_PEAK
        host = bench.bench_tflite_cpu(
            bench.ModelSpec("tiny", row["format"], Path(row["path"]), "posterlite"),
            (1,), 1, 0, posters, measure_memory=False,
        )[0].accuracy  # fmt: skip
        device = row["accuracy"]
        assert device["n_samples"] == len(SAMPLE_LABELS)
        assert device["mean_average_precision"] == pytest.approx(host.mean_average_precision)
        assert device["macro_f1"] == pytest.approx(host.macro_f1)
        assert np.allclose(
            [g["average_precision"] for g in device["per_genre"]],
            [g.average_precision for g in host.per_genre],
            equal_nan=True,
        )
    assert not (sim.config.root / "posterlite").exists()  # the device is left clean
