"""ARM outputs against the host's: parity figures, and a poster-folder measurement.

`compare_outputs` is the parity rule the ARM target reports: posters whose raw outputs are
byte-identical to the host's x86 LiteRT run (n of N), the largest |difference| in output
units (uint8 levels for an int8 model, floats for fp32/fp16), and posters whose decided
genre set changes at the given thresholds.

`run_jobs` runs emulated jobs (model, prepared inputs, profile) concurrently, one per core
(what the bench's arm64 target calls); `run_profiles` runs one model on several profiles
through it, and `profile_results` compares them with the host's outputs.
`measure_posters` does both for poster files: inputs made once on the host
(`posterlite.preprocess.load_poster` + `PosterModel.prepare`, as every other target), the
host's own run, then each profile `repeats` times, checking that repeats execute the same
instructions per inference.

    python -m posterlite.arm.compare MODEL POSTER_FOLDER [--limit 50] [--arm-cpu a53,a76,a710]
        [--repeats 2] [--workers N]

prints one line per profile (a developer's check; `posterlite bench --target arm64` is the
user-facing path).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from posterlite.arm.profiles import CpuProfile, check_profile, parse_profiles
from posterlite.arm.run import ArmRun, run_arm
from posterlite.arm.tools import ArmTools, find_tools
from posterlite.errors import PosterliteError
from posterlite.preprocess import load_poster
from posterlite.runtime import PosterModel

Decide = Callable[[np.ndarray], np.ndarray]  # raw outputs (N, G) -> decisions (N, G) bool


@dataclass(frozen=True)
class Parity:
    """ARM outputs against the host's on the same inputs."""

    identical: int  # inputs whose raw outputs are byte-identical
    total: int
    max_abs_diff: float  # in output units (raw tensor values)
    changed_sets: int | None  # inputs whose decided set changes (None: no decision rule)

    @property
    def exact(self) -> bool:
        return self.identical == self.total


def compare_outputs(host: np.ndarray, arm: np.ndarray, decide: Decide | None = None) -> Parity:
    """Parity of `arm` against `host` (both raw (N, ...) outputs of the same model)."""
    if host.shape != arm.shape or host.dtype != arm.dtype:
        raise PosterliteError(
            f"ARM outputs {arm.dtype} {arm.shape} do not match the host's {host.dtype} {host.shape}"
        )
    rows = len(host)
    flat_host, flat_arm = host.reshape(rows, -1), arm.reshape(rows, -1)
    identical = int(np.sum(np.all(flat_host == flat_arm, axis=1)))
    diff = np.abs(flat_host.astype(np.float64) - flat_arm.astype(np.float64))
    changed = None
    if decide is not None:
        changed = int(np.sum(np.any(decide(host) != decide(arm), axis=1)))
    return Parity(identical, rows, float(diff.max()) if diff.size else 0.0, changed)


def same_counts(runs: Sequence[ArmRun]) -> bool | None:
    """Whether every run executed the same instructions per inference (None: < 2 counted)."""
    counted = [r.instructions for r in runs if r.counted]
    if len(counted) < 2:
        return None
    return all(c == counted[0] for c in counted[1:])


@dataclass(frozen=True)
class ProfileResult:
    """One profile's runs of one model, compared with the host."""

    profile: CpuProfile
    runs: tuple[ArmRun, ...]  # `repeats` runs on the same inputs
    parity: Parity  # of the first run
    deterministic: bool | None  # all runs executed the same instructions per inference

    @property
    def run(self) -> ArmRun:
        return self.runs[0]


@dataclass(frozen=True)
class ModelMeasurement:
    model: Path
    posters: tuple[Path, ...]
    host_outputs: np.ndarray
    results: tuple[ProfileResult, ...]


def decision_rule(model: PosterModel) -> Decide:
    """The model's tuned thresholds on dequantized outputs: its genre sets."""
    cut = model.cut("tuned")
    return lambda raw: model.dequantize(raw) >= cut


def prepared_inputs(model: PosterModel, posters: Sequence[Path]) -> np.ndarray:
    pixels = np.stack([load_poster(p, model.input_size) for p in posters])
    return model.prepare(pixels)


def default_workers(jobs: int) -> int:
    """Concurrent emulators: one per core (each run is one single-threaded guest)."""
    return max(1, min(jobs, os.cpu_count() or 1))


@dataclass(frozen=True)
class ArmJob:
    """One emulated run to make: a model on prepared inputs, as one CPU class."""

    model: Path
    inputs: np.ndarray  # (N, *input shape), the model's input dtype
    profile: CpuProfile


def run_jobs(
    jobs: Sequence[ArmJob],
    workers: int | None = None,
    tools: ArmTools | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[ArmRun, ...]:
    """Each job's counted run, in the jobs' order, `workers` emulators at a time (default:
    one per core). Jobs start in the order given, so put the longest first. `progress` gets
    the number of inferences done over all jobs. Every profile is checked against the QEMU
    first, so a refused one stops the call before anything runs."""
    if workers is not None and workers < 1:
        raise PosterliteError("workers must be >= 1")
    tools = tools if tools is not None else find_tools()
    for profile in dict.fromkeys(job.profile for job in jobs):
        check_profile(profile, tools.qemu_version)
    lock = threading.Lock()
    done = [0] * len(jobs)

    def work(slot: int, job: ArmJob) -> ArmRun:
        def step(count: int) -> None:
            with lock:
                done[slot] = count
                if progress is not None:
                    progress(sum(done))

        return run_arm(job.model, job.inputs, job.profile, tools=tools, progress=step)

    pool_size = workers if workers is not None else default_workers(len(jobs))
    with ThreadPoolExecutor(max_workers=max(1, pool_size)) as pool:
        futures = [pool.submit(work, slot, job) for slot, job in enumerate(jobs)]
        try:
            return tuple(f.result() for f in futures)
        except BaseException:
            for future in futures:  # a failed run stops the ones not started yet
                future.cancel()
            raise


def run_profiles(
    model_path: Path,
    inputs: np.ndarray,
    profiles: Sequence[CpuProfile],
    repeats: int = 1,
    workers: int | None = None,
    tools: ArmTools | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[tuple[ArmRun, ...], ...]:
    """`repeats` counted runs of `model_path` on `inputs` per profile (`run_jobs`); per
    profile, its runs."""
    if repeats < 1:
        raise PosterliteError("repeats and workers must be >= 1")
    # Profiles in the order given: the default puts the slowest (a53) first, so it starts
    # at once and the others share the remaining cores.
    jobs = [ArmJob(Path(model_path), inputs, p) for p in profiles for _ in range(repeats)]
    runs = run_jobs(jobs, workers, tools, progress)
    return tuple(tuple(runs[i * repeats : (i + 1) * repeats]) for i in range(len(profiles)))


def profile_results(
    host: np.ndarray, runs: Sequence[Sequence[ArmRun]], decide: Decide | None = None
) -> tuple[ProfileResult, ...]:
    """Each profile's runs (as `run_profiles` returns them) against the host's outputs."""
    return tuple(
        ProfileResult(mine[0].profile, tuple(mine), compare_outputs(host, mine[0].output, decide),
                      same_counts(mine))
        for mine in runs
    )  # fmt: skip


def measure_posters(
    model_path: Path,
    posters: Sequence[Path],
    profiles: Sequence[CpuProfile],
    repeats: int = 2,
    workers: int | None = None,
    tools: ArmTools | None = None,
    progress: Callable[[int], None] | None = None,
) -> ModelMeasurement:
    """Host run + `repeats` ARM runs per profile of `model_path` on `posters`."""
    model = PosterModel.load(Path(model_path))
    inputs = prepared_inputs(model, posters)
    host = model.run(inputs)
    runs = run_profiles(model.path, inputs, profiles, repeats, workers, tools, progress)
    results = profile_results(host, runs, decision_rule(model))
    return ModelMeasurement(Path(model_path), tuple(posters), host, results)


def result_line(result: ProfileResult) -> str:
    run, parity = result.run, result.parity
    counts = f"{run.median_instructions / 1e6:.2f} M instr/inference" if run.counted else "-"
    same = {True: "same in every repeat", False: "DIFFER between repeats", None: "one run"}
    flag = "" if run.family_as_expected in (True, None) else " (UNEXPECTED family)"
    walls = "/".join(f"{r.wall_seconds:.0f}" for r in result.runs)
    cpus = "/".join(f"{r.cpu_seconds:.0f}" for r in result.runs)
    return (
        f"{result.profile.name:5} identical {parity.identical}/{parity.total}, "
        f"max |diff| {parity.max_abs_diff:g}, genre sets changed {parity.changed_sets}; "
        f"{counts} ({same[result.deterministic]}); "
        f"kernel {run.kernel_family}{flag}: {run.matmul_kernel.symbol if run.matmul_kernel else '-'}; "
        f"emulation wall {walls} s, CPU {cpus} s"
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m posterlite.arm.compare", description=__doc__)
    parser.add_argument("model", type=Path)
    parser.add_argument("posters", type=Path, help="folder of poster images (sorted by name)")
    parser.add_argument("--limit", type=int, default=50, help="first N posters (default 50)")
    parser.add_argument("--arm-cpu", default=None, help="profiles, e.g. a53,a76,a710")
    parser.add_argument("--repeats", type=int, default=2, help="runs per profile (default 2)")
    parser.add_argument(
        "--workers", type=int, default=None, help="concurrent runs (default: cores)"
    )
    args = parser.parse_args(argv)
    try:
        profiles = parse_profiles(args.arm_cpu)
        posters = sorted(p for p in args.posters.iterdir() if p.suffix.lower() in (".jpg", ".png"))
        posters = posters[: args.limit]
        if not posters:
            raise PosterliteError(f"{args.posters}: no .jpg/.png posters")
        total = len(profiles) * args.repeats * len(posters)
        with tqdm(total=total, desc="arm64", unit="inference", file=sys.stderr) as bar:

            def progress(count: int) -> None:
                bar.n = count
                bar.refresh()

            measured = measure_posters(args.model, posters, profiles, args.repeats, args.workers,
                                       progress=progress)  # fmt: skip
    except PosterliteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"{measured.model} on {len(posters)} posters, QEMU {measured.results[0].run.qemu_version}"
    )
    for result in measured.results:
        print(result_line(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
