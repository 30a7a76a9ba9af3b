"""A device through adb and TFLite's `benchmark_model` on it (what `posterlite bench --target
android`, `posterlite.bench.targets.android`, runs).

This module owns everything that talks to a device: the `adb` client wrapper (device
selection, shell with exit status, push / pull), the parser of `benchmark_model`'s output
and one on-device latency run. The bench target turns those into rows and runs the
on-device accuracy pass; nothing here knows about bench rows.

- Latency: the model and `benchmark_model` are pushed to `/data/local/tmp/posterlite/`,
  then `benchmark_model --graph --num_threads --warmup_runs --num_runs --use_xnnpack`
  (`--use_gpu` / `--use_nnapi` when asked) runs once per thread count. `--min_secs=0` and
  `--warmup_min_secs=0` make the run counts exact (by default the tool keeps running for
  at least 1 s / 0.5 s). Figures come from its `count=... avg=... median=...` line, the
  `Inference timings in us:` line and the memory-footprint lines.
- Exit status: every remote command runs as `( command ); printf '\\n__posterlite_rc=%s\\n' $?`,
  so the status is known with or without adb's shell protocol v2 (adb < 24 devices).
"""

from __future__ import annotations

import math
import os
import re
import shlex
import shutil
import struct
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from posterlite.errors import PosterliteError

REMOTE_ROOT = "/data/local/tmp"
REMOTE_DIR = f"{REMOTE_ROOT}/posterlite"
REMOTE_BINARY = f"{REMOTE_DIR}/benchmark_model"
RC_MARKER = "__posterlite_rc="
DEFAULT_TIMEOUT_S = 1800.0
CHUNK = 32  # posters per input file for models with a dynamic batch dimension
# ELF e_machine per Android ABI, to catch a benchmark_model built for another CPU.
ABI_MACHINE = {"arm64-v8a": 183, "armeabi-v7a": 40, "armeabi": 40, "x86": 3, "x86_64": 62}
MACHINE_NAME = {183: "aarch64", 40: "arm", 3: "x86", 62: "x86_64"}
MEMORY_PEAK = "benchmark_model: overall peak memory footprint via periodic monitoring (MB)"
MEMORY_DELTA = "benchmark_model: memory footprint delta from the start of the tool, overall (MB)"


# ------------------------------------------------------------------------ the parser
_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf)"
_TIMINGS = re.compile(
    rf"Inference timings in us: Init: ({_NUM}), First inference: ({_NUM}), "
    rf"Warmup \(avg\): ({_NUM}), Inference \(avg\): ({_NUM})"
)
_STAT = re.compile(r"(?:^|[\s:])count=(\d+)(?=\s|$|\()(.*)$")
_PAIR = re.compile(rf"(\w+)=({_NUM})")
_MEM_DELTA = re.compile(
    rf"Memory footprint delta from the start of the tool \(MB\): init=({_NUM}) overall=({_NUM})"
)
_MEM_PEAK = re.compile(rf"Overall peak memory footprint \(MB\) via periodic monitoring: ({_NUM})")
_MODEL_SIZE = re.compile(rf"The input model file size \(MB\): ({_NUM})")


@dataclass(frozen=True)
class RunStats:
    """One `Stat` line of benchmark_model, in microseconds."""

    count: int
    first: float | None = None
    curr: float | None = None
    min: float | None = None
    max: float | None = None
    avg: float | None = None
    std: float | None = None
    p5: float | None = None
    median: float | None = None
    p95: float | None = None


@dataclass(frozen=True)
class BenchmarkModelOutput:
    """What one benchmark_model run printed (times in microseconds, memory in MB)."""

    init_us: float
    first_inference_us: float
    warmup_avg_us: float
    inference_avg_us: float
    inference: RunStats | None = None  # the timed runs' Stat line
    warmup: RunStats | None = None
    memory_init_mb: float | None = None
    memory_overall_mb: float | None = None
    peak_memory_mb: float | None = None
    model_size_mb: float | None = None


def _parse_stat(line: str) -> RunStats | None:
    if "(microseconds)" in line or "(bytes)" in line:  # op-profiling summaries
        return None
    match = _STAT.search(line)
    if not match:
        return None
    values = {k: float(v) for k, v in _PAIR.findall(match.group(2))}
    count = int(match.group(1))
    if "(all same)" in match.group(2) or (count and "min" not in values and "curr" in values):
        same = values.get("curr")  # `count=N curr=X(all same)`: every run took X
        return RunStats(count, first=same, curr=same, min=same, max=same, avg=same, std=0.0,
                        p5=same, median=same, p95=same)  # fmt: skip
    known = {k: values.get(k) for k in ("first", "curr", "min", "max", "avg", "std", "p5", "median", "p95")}  # fmt: skip
    return RunStats(count, **known)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:200] if lines else "<no output>"


def parse_benchmark_output(text: str) -> BenchmarkModelOutput:
    """Figures of a benchmark_model stdout / logcat dump; raises PosterliteError if absent.

    Works on plain stdout (`INFO: ` prefixes or none) and on logcat lines (`... I tflite  : `),
    with numbers in fixed or scientific notation (`avg=1.23e+04`), with or without the
    p5 / median / p95 percentiles newer versions print.
    """
    timings = None
    stats: list[RunStats] = []
    before_timings: list[RunStats] = []
    memory = peak = size = None
    for line in text.splitlines():
        found = _TIMINGS.search(line)
        if found:
            timings = tuple(float(v) for v in found.groups())
            before_timings = list(stats)
            continue
        stat = _parse_stat(line)
        if stat is not None:
            stats.append(stat)
        if m := _MEM_DELTA.search(line):
            memory = (float(m.group(1)), float(m.group(2)))
        if m := _MEM_PEAK.search(line):
            peak = float(m.group(1))
        if m := _MODEL_SIZE.search(line):
            size = float(m.group(1))
    if timings is None:
        raise PosterliteError(
            "could not parse benchmark_model output (no 'Inference timings in us' line); "
            f"last line: {_last_line(text)}"
        )
    if not math.isfinite(timings[3]) or timings[3] <= 0:
        raise PosterliteError(f"benchmark_model reported no inference time ({timings[3]})")
    timed = before_timings[-1] if before_timings else None
    warm = before_timings[-2] if len(before_timings) >= 2 else None
    return BenchmarkModelOutput(
        init_us=timings[0],
        first_inference_us=timings[1],
        warmup_avg_us=timings[2],
        inference_avg_us=timings[3],
        inference=timed,
        warmup=warm,
        memory_init_mb=memory[0] if memory else None,
        memory_overall_mb=memory[1] if memory else None,
        peak_memory_mb=peak if peak and peak > 0 else None,
        model_size_mb=size,
    )


# ---------------------------------------------------------------------------- adb
@dataclass(frozen=True)
class Device:
    serial: str
    state: str  # "device" | "offline" | "unauthorized" | ...


@dataclass(frozen=True)
class ShellResult:
    status: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class DeviceInfo:
    serial: str
    model: str
    abi: str
    manufacturer: str = ""
    sdk: str = ""
    release: str = ""

    def as_dict(self) -> dict[str, str]:
        return {
            "serial": self.serial,
            "model": self.model,
            "abi": self.abi,
            "manufacturer": self.manufacturer,
            "sdk": self.sdk,
            "android": self.release,
        }


def find_adb(adb: str | None = None) -> str:
    """The adb client: `adb` argument, `$POSTERLITE_ADB`, else `adb` on PATH."""
    candidate = adb or os.environ.get("POSTERLITE_ADB") or "adb"
    found = shutil.which(candidate)
    if not found:
        raise PosterliteError(
            f"adb not found ({candidate}): install Android platform-tools "
            "(Debian/Ubuntu: apt-get install adb) or put adb on PATH"
        )
    return found


class Adb:
    """The real `adb` client, driven through subprocess (one device once `select`ed)."""

    def __init__(self, adb: str | None = None, serial: str | None = None) -> None:
        self.path = find_adb(adb)
        self.serial = serial

    def run(
        self, args: Sequence[str], timeout: float = DEFAULT_TIMEOUT_S, device: bool = True
    ) -> subprocess.CompletedProcess[str]:
        command = [self.path]
        if device and self.serial:
            command += ["-s", self.serial]
        command += list(args)
        try:
            return subprocess.run(
                command,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=timeout,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise PosterliteError(f"adb {args[0]} timed out after {timeout:.0f} s") from exc
        except OSError as exc:
            raise PosterliteError(f"cannot run adb ({self.path}): {exc}") from exc

    def _checked(self, args: Sequence[str], timeout: float = DEFAULT_TIMEOUT_S) -> str:
        done = self.run(args, timeout)
        if done.returncode != 0:
            where = f" on {self.serial}" if self.serial else ""
            raise PosterliteError(
                f"adb {args[0]} failed{where}: {_last_line(done.stderr or done.stdout)}"
            )
        return done.stdout

    def devices(self) -> list[Device]:
        done = self.run(["devices"], timeout=60, device=False)
        if done.returncode != 0:
            raise PosterliteError(f"adb devices failed: {_last_line(done.stderr or done.stdout)}")
        found = []
        for line in done.stdout.splitlines():
            parts = line.split()
            if len(parts) >= 2 and not line.startswith(("List of devices", "*")):
                found.append(Device(parts[0], parts[1]))
        return found

    def select(self, serial: str | None = None) -> Device:
        """The device to use: `serial`, else the only one attached; errors say what to do."""
        devices = self.devices()
        listed = ", ".join(f"{d.serial} ({d.state})" for d in devices) or "none"
        if serial:
            chosen = next((d for d in devices if d.serial == serial), None)
            if chosen is None:
                raise PosterliteError(f"device {serial} not found (adb devices lists: {listed})")
        elif not devices:
            raise PosterliteError(
                "no Android device: adb devices lists none (start an emulator or connect a "
                "phone with USB debugging; see android_harness/README.md)"
            )
        elif len(devices) > 1:
            raise PosterliteError(f"several devices attached ({listed}): pass --serial")
        else:
            chosen = devices[0]
        if chosen.state == "unauthorized":
            raise PosterliteError(
                f"device {chosen.serial} is unauthorized: accept the USB debugging prompt on it"
            )
        if chosen.state != "device":
            raise PosterliteError(
                f"device {chosen.serial} is {chosen.state}: reconnect it or restart adb "
                "(adb kill-server)"
            )
        self.serial = chosen.serial
        return chosen

    def shell(self, command: str, timeout: float = DEFAULT_TIMEOUT_S) -> ShellResult:
        """Run `command` with /system/bin/sh on the device; the status is the command's own."""
        # A subshell, so an `exit` in `command` cannot skip the status marker.
        wrapped = f"( {command} ); printf '\\n{RC_MARKER}%s\\n' $?"
        done = self.run(["shell", wrapped], timeout)
        head, marker, tail = done.stdout.rpartition(f"\n{RC_MARKER}")
        if not marker:
            raise PosterliteError(
                f"adb shell failed on {self.serial}: {_last_line(done.stderr or done.stdout)}"
            )
        status = int(tail.strip().split()[0]) if tail.strip() else 255
        return ShellResult(status, head, done.stderr)

    def check_shell(self, command: str, what: str, timeout: float = DEFAULT_TIMEOUT_S) -> str:
        result = self.shell(command, timeout)
        if result.status != 0:
            raise PosterliteError(
                f"{what} failed on {self.serial} (exit status {result.status}): "
                f"{_last_line(result.stderr + result.stdout)}"
            )
        return result.stdout

    def push(self, local: Path, remote: str) -> None:
        self._checked(["push", str(local), remote])

    def pull(self, remote: str, local: Path) -> None:
        self._checked(["pull", remote, str(local)])

    def getprop(self, name: str) -> str:
        return self.check_shell(f"getprop {shlex.quote(name)}", f"getprop {name}").strip()

    def device_info(self) -> DeviceInfo:
        assert self.serial is not None
        return DeviceInfo(
            serial=self.serial,
            model=self.getprop("ro.product.model") or "unknown",
            abi=self.getprop("ro.product.cpu.abi") or "unknown",
            manufacturer=self.getprop("ro.product.manufacturer"),
            sdk=self.getprop("ro.build.version.sdk"),
            release=self.getprop("ro.build.version.release"),
        )


# ----------------------------------------------------------------- benchmark binary
def elf_machine(path: Path) -> int | None:
    """ELF e_machine of `path`, None for anything that is not ELF (e.g. a script)."""
    with Path(path).open("rb") as handle:
        head = handle.read(20)
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    order = "<" if head[5] == 1 else ">"
    return struct.unpack_from(f"{order}H", head, 18)[0]


def check_binary(binary: Path | None, abi: str | None = None) -> Path:
    """The local benchmark_model: present, a file, and (if ELF) built for the device ABI."""
    if binary is None:
        raise PosterliteError(
            "--target android needs --benchmark-binary: TFLite's benchmark_model for the "
            "device ABI (see android_harness/README.md)"
        )
    binary = Path(binary)
    if not binary.is_file():
        raise PosterliteError(f"benchmark binary not found: {binary}")
    machine = elf_machine(binary)
    wanted = ABI_MACHINE.get(abi or "")
    if machine is not None and wanted is not None and machine != wanted:
        raise PosterliteError(
            f"benchmark binary {binary} is built for {MACHINE_NAME.get(machine, machine)} but the "
            f"device ABI is {abi}: use android_{MACHINE_NAME[wanted]}_benchmark_model"
        )
    return binary


def install_binary(adb: Adb, binary: Path) -> str:
    """Push benchmark_model and make it executable; error if the device cannot execute it."""
    adb.check_shell(f"mkdir -p {REMOTE_DIR}", "mkdir")
    adb.push(binary, REMOTE_BINARY)
    result = adb.shell(f"chmod 755 {REMOTE_BINARY} && test -x {REMOTE_BINARY}")
    if result.status != 0:
        raise PosterliteError(
            f"benchmark binary is not executable on {adb.serial} ({REMOTE_BINARY}; "
            "is /data/local/tmp mounted noexec?)"
        )
    return REMOTE_BINARY


# ---------------------------------------------------------------------- device runs
@dataclass
class DeviceRunConfig:
    threads: int
    use_gpu: bool = False
    use_nnapi: bool = False
    extra: list[str] = field(default_factory=list)

    def flags(self) -> list[str]:
        # Delegates apply in flag order: GPU / NNAPI first, so XNNPACK only takes what
        # they leave (XNNPACK first would claim the whole graph and leave them nothing).
        flags = [f"--num_threads={self.threads}"]
        if self.use_gpu:
            flags.append("--use_gpu=true")
        if self.use_nnapi:
            flags.append("--use_nnapi=true")
        flags.append("--use_xnnpack=true")
        return flags + self.extra

    @property
    def delegate(self) -> str:
        parts = [p for p, on in (("gpu", self.use_gpu), ("nnapi", self.use_nnapi)) if on]
        return "+".join([*parts, "xnnpack"])


def run_status_error(adb: Adb, status: int, output: str, what: str) -> PosterliteError:
    if status in (126, 127):
        return PosterliteError(
            f"{what}: the device could not execute benchmark_model (exit status {status}; "
            f"wrong ABI or noexec mount?): {_last_line(output)}"
        )
    return PosterliteError(
        f"{what}: benchmark_model exited with status {status} on {adb.serial}: {_last_line(output)}"
    )


def run_latency(
    adb: Adb, remote_model: str, config: DeviceRunConfig, runs: int, warmup: int
) -> BenchmarkModelOutput:
    args = [
        REMOTE_BINARY,
        f"--graph={remote_model}",
        *config.flags(),
        f"--warmup_runs={warmup}",
        f"--num_runs={runs}",
        "--min_secs=0",
        "--warmup_min_secs=0",
        "--report_peak_memory_footprint=true",
    ]
    result = adb.shell(" ".join(shlex.quote(a) for a in args) + " 2>&1")
    if result.status != 0:
        raise run_status_error(adb, result.status, result.stdout, Path(remote_model).name)
    return parse_benchmark_output(result.stdout)
