"""Running a `.tflite` model with LiteRT's ARM64 build under QEMU user mode: `run_arm`.

One call = one emulated aarch64 process for one CPU profile: the host writes the prepared
inputs (the model's input dtype, as `PosterModel.prepare` gives them) to a temp folder,
QEMU runs `guest.py` in the sysroot's python3.11 with the aarch64 wheels, and the host
reads back the raw outputs, the counting plugin's report and the guest's memory map.

The emulator's `-L` root is a per-run folder of symlinks to the sysroot plus the profile's
`proc/cpuinfo` (QEMU 7.2 would otherwise show the guest the host's x86 one, on which
LiteRT's CPU detection crashes). The guest's environment is fixed (hash seed 0, one
OpenBLAS thread, one LiteRT thread, no inherited variables), so two runs of the same model
on the same inputs execute the same instructions (tests/test_arm.py checks it).

Wall time under emulation says nothing about a phone: `ArmRun.wall_seconds` is recorded so
a reader can budget a run, never as a latency.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from posterlite.arm.kernels import KernelCount, main_matmul_kernel, top_kernels
from posterlite.arm.profiles import CpuProfile, get_profile, qemu_problem
from posterlite.arm.symbols import instructions_by_symbol, parse_blocks, parse_maps
from posterlite.arm.tools import ArmTools, find_tools
from posterlite.errors import PosterliteError
from posterlite.interpreter import check_model_file

GUEST_SCRIPT = Path(__file__).resolve().parent / "guest.py"
XNNPACK_LINE = "Created TensorFlow Lite XNNPACK delegate"
# Markers before the first poster: the warm-up invoke's pair.
WARMUP_MARKERS = 2


@dataclass(frozen=True)
class ArmRun:
    """What one emulated run computed and executed."""

    profile: CpuProfile
    outputs: tuple[np.ndarray, ...]  # raw output tensors, stacked over the inputs (N, ...)
    instructions: tuple[int, ...]  # guest instructions per inference (empty: not counted)
    warmup_instructions: int | None  # the first invoke (XNNPACK's first-run setup included)
    startup_instructions: int | None  # Python start, imports and model load
    kernels: tuple[KernelCount, ...]  # functions with the most instructions, most first
    matmul_kernel: KernelCount | None  # the GEMM/matmul kernel that ran the convolutions
    qemu_version: str
    wall_seconds: float  # emulation time on this host: NOT a phone's latency
    cpu_seconds: float  # the emulator's CPU time (what a run costs an idle host): NOT a phone's
    xnnpack: bool  # LiteRT said it created the XNNPACK delegate
    qemu_problem: str | None = None  # set when run on a QEMU known (or not shown) to be right

    @property
    def output(self) -> np.ndarray:
        return self.outputs[0]

    @property
    def counted(self) -> bool:
        return bool(self.instructions)

    @property
    def median_instructions(self) -> int | None:
        return int(statistics.median(self.instructions)) if self.instructions else None

    @property
    def kernel_family(self) -> str | None:
        return self.matmul_kernel.family if self.matmul_kernel else None

    @property
    def expected_family(self) -> str | None:
        """The family expected on this profile for the matmul kernel's kind (int8 / float)."""
        kernel = self.matmul_kernel
        return None if kernel is None else self.profile.expected(kernel.integer)

    @property
    def family_as_expected(self) -> bool | None:
        family = self.kernel_family
        return None if family is None else family == self.expected_family


def guest_environment(site: Path) -> dict[str, str]:
    """The guest's whole environment: nothing inherited, so runs repeat exactly."""
    return {
        "PYTHONPATH": str(site),
        "PYTHONHASHSEED": "0",
        "PYTHONNOUSERSITE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",  # the tools folder stays as `make arm-tools` left it
        "OPENBLAS_NUM_THREADS": "1",  # one guest thread: the plugin's counters are exact
        "LANG": "C.UTF-8",
    }


def host_processors(possible: Path = Path("/sys/devices/system/cpu/possible")) -> int:
    """How many CPUs the host's sysfs lists as possible (the guest sees the same sysfs)."""
    try:
        text = possible.read_text().strip()
    except OSError:
        return os.cpu_count() or 1
    highest = max(int(part.split("-")[-1]) for part in text.split(",") if part)
    return highest + 1


def make_root(sysroot: Path, profile: CpuProfile, into: Path) -> Path:
    """A `-L` root: the sysroot's top-level folders (symlinks) plus the profile's cpuinfo."""
    root = into / "root"
    (root / "proc").mkdir(parents=True)
    for entry in sysroot.iterdir():
        (root / entry.name).symlink_to(entry)
    (root / "proc" / "cpuinfo").write_text(profile.cpuinfo(host_processors()))
    return root


def qemu_command(
    tools: ArmTools, profile: CpuProfile, root: Path, plugin_args: str | None, guest_args: list[str]
) -> list[str]:
    command = [str(tools.qemu), "-L", str(root), "-cpu", profile.qemu_cpu]
    if plugin_args is not None:
        command += ["-plugin", f"{tools.plugin},{plugin_args}"]
    return command + [str(tools.python), str(GUEST_SCRIPT), *guest_args]


def parse_markers(text: str) -> list[int]:
    return [int(line.split()[1]) for line in text.splitlines() if line.startswith("m ")]


def host_path(guest_path: str, sysroot: Path) -> str:
    """Where the file a guest mapped lives on the host (QEMU's -L rule: prefix if present)."""
    candidate = sysroot / guest_path.lstrip("/")
    return str(candidate) if candidate.exists() else guest_path


@dataclass(frozen=True)
class GuestExit:
    code: int  # exit status; negative: killed by that signal
    stderr: str
    cpu_seconds: float  # the emulator's user + system CPU time
    timed_out: bool


def _run_guest(command: list[str], env: dict[str, str], total: int,
               progress: Callable[[int], None] | None, timeout: float | None) -> GuestExit:  # fmt: skip
    """Run the guest, feeding `progress` from its `done K` lines; killed after `timeout` s
    (or when the caller is interrupted)."""
    timed_out = threading.Event()

    with tempfile.TemporaryFile(mode="w+") as errors:
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=errors, text=True
        )

        def kill() -> None:
            timed_out.set()
            process.kill()

        timer = threading.Timer(timeout, kill) if timeout is not None else None
        try:
            if timer is not None:
                timer.start()
            assert process.stdout is not None
            for line in process.stdout:
                if progress is not None and line.startswith("done "):
                    progress(min(int(line.split()[1]), total))
            # wait4, not wait: this child's own CPU time (runs may go on concurrently).
            _, status, usage = os.wait4(process.pid, 0)
        except BaseException:
            process.kill()
            process.wait()
            raise
        finally:
            if timer is not None:
                timer.cancel()
        process.returncode = os.waitstatus_to_exitcode(status)
        errors.seek(0)
        return GuestExit(
            code=process.returncode,
            stderr=errors.read(),
            cpu_seconds=usage.ru_utime + usage.ru_stime,
            timed_out=timed_out.is_set(),
        )


def _guest_failure(code: int, stderr: str, profile: CpuProfile) -> PosterliteError:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else "no message"
    how = f"signal {-code}" if code < 0 else f"exit {code}"
    return PosterliteError(f"ARM guest on {profile.name} failed ({how}): {last}")


def run_arm(
    model_path: Path,
    inputs: np.ndarray,
    profile: CpuProfile | str,
    count_instructions: bool = True,
    *,
    tools: ArmTools | None = None,
    allow_known_bad: bool = False,
    progress: Callable[[int], None] | None = None,
    timeout: float | None = None,
) -> ArmRun:
    """Run `model_path` on `inputs` (N, *input shape, the model's input dtype) in LiteRT's
    aarch64 build emulated as `profile`; outputs, instruction counts and kernels.

    A profile the installed QEMU is known to emulate wrongly (or was not verified on) is
    refused with one line; `allow_known_bad=True` runs it anyway and records the problem in
    `ArmRun.qemu_problem` (used to show the failure, never for a figure).
    """
    model_path = check_model_file(Path(model_path))
    profile = get_profile(profile) if isinstance(profile, str) else profile
    tools = tools if tools is not None else find_tools()
    problem = qemu_problem(profile, tools.qemu_version)
    if problem is not None and not allow_known_bad:
        raise PosterliteError(problem)
    inputs = np.ascontiguousarray(inputs)
    if inputs.ndim < 2 or len(inputs) == 0:
        raise PosterliteError(f"run_arm takes a batch of inputs (N, ...), got shape {inputs.shape}")
    count = len(inputs)
    with tempfile.TemporaryDirectory(prefix="posterlite-arm-") as scratch:
        work = Path(scratch)
        np.save(work / "inputs.npy", inputs)
        root = make_root(tools.sysroot, profile, work)
        plugin_args = None
        if count_instructions:
            close = WARMUP_MARKERS + 2 * count - 1
            plugin_args = f"out={work / 'count.txt'},open={WARMUP_MARKERS},close={close}"
        guest_args = [str(model_path.resolve()), str(work / "inputs.npy"),
                      str(work / "outputs.npz"), str(work / "maps.txt")]  # fmt: skip
        command = qemu_command(tools, profile, root, plugin_args, guest_args)
        start = time.monotonic()
        guest = _run_guest(command, guest_environment(tools.site), count, progress, timeout)
        wall = time.monotonic() - start
        if guest.timed_out:
            raise PosterliteError(f"ARM guest on {profile.name} timed out after {timeout:.0f} s")
        if guest.code != 0:
            raise _guest_failure(guest.code, guest.stderr, profile)
        with np.load(work / "outputs.npz") as saved:
            outputs = tuple(saved[f"output{k}"] for k in range(len(saved.files)))
        instructions: tuple[int, ...] = ()
        warmup = startup = None
        kernels: tuple[KernelCount, ...] = ()
        matmul = None
        if count_instructions:
            report = (work / "count.txt").read_text()
            markers = parse_markers(report)
            expected = WARMUP_MARKERS + 2 * count
            if len(markers) != expected:
                raise PosterliteError(
                    f"counting plugin saw {len(markers)} sched_yield markers, expected {expected}"
                )
            startup, warmup = markers[0], markers[1] - markers[0]
            instructions = tuple(
                markers[i + 1] - markers[i] for i in range(WARMUP_MARKERS, expected, 2)
            )
            mappings = [
                replace(m, path=host_path(m.path, tools.sysroot))
                for m in parse_maps((work / "maps.txt").read_text())
            ]
            totals = instructions_by_symbol(parse_blocks(report.splitlines()), mappings)
            kernels = top_kernels(totals)
            matmul = main_matmul_kernel(totals)
    return ArmRun(
        profile=profile,
        outputs=outputs,
        instructions=instructions,
        warmup_instructions=warmup,
        startup_instructions=startup,
        kernels=kernels,
        matmul_kernel=matmul,
        qemu_version=tools.qemu_version_text,
        wall_seconds=wall,
        cpu_seconds=guest.cpu_seconds,
        xnnpack=XNNPACK_LINE in guest.stderr,
        qemu_problem=problem,
    )
