"""The arm64 target (`posterlite bench --target arm64`): what a phone's own CPU code computes
and executes, per CPU class, beside the host's rows of the same run.

A phone runs LiteRT's ARM64 build, whose XNNPACK picks its kernels from the CPU it finds
(NEON on Cortex-A53/A55, dot product on A76-class cores, i8mm on A710 and newer).
`posterlite.arm` runs that build under QEMU user mode, one emulated process per model x CPU
class. This target:

1. measures the host rows as the CPU target does (`run_cpu`: latency in interleaved rounds,
   accuracy), on the same posters;
2. decodes the labelled posters once per input size and prepares each model's inputs the
   one way every target does (`load_poster` + `PosterModel.prepare`); the host's x86 LiteRT
   runs them for the raw outputs the ARM ones are compared with;
3. runs every posterlite `.tflite` on every chosen class on those posters, and Google's
   int8 MobileNetV2 (the bench's anchor reference) on the first `REFERENCE_POSTERS`: its
   instruction count makes the anchor ratio per class, and its 1001 ImageNet outputs have
   no genre accuracy to score;
4. runs each model x class a second time, in a new emulator process, on the first
   `REPEAT_POSTERS` posters: the instructions per inference must repeat exactly;
5. turns each run into a `BenchRow` (target "arm64", no latency) carrying `ArmFigures`:
   parity with the host (identical n of N, max |difference| in output units, genre sets
   changed), guest instructions per inference, the kernel family that ran the
   convolutions; accuracy from the ARM outputs.

Emulation wall time is what the run cost this host; it is recorded in `ArmFigures` and
never reported as a phone's latency. The ratios between rows (anchor, int8 / fp32, int8 /
fp16, 160 px / 224 px per class) are `ratios.compute_ratios`'.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from posterlite.arm.compare import ArmJob, Decide, compare_outputs, run_jobs
from posterlite.arm.profiles import CpuProfile, parse_profiles, qemu_problem
from posterlite.arm.run import ArmRun
from posterlite.arm.tools import find_qemu, find_tools, qemu_version
from posterlite.bench.labelled import LabelledSet, score
from posterlite.bench.models import ANCHOR_REFERENCE
from posterlite.bench.options import BenchOptions
from posterlite.bench.records import ArmFigures, BenchRow, KernelShare, ModelSpec
from posterlite.bench.targets.base import RunContext, TargetName
from posterlite.bench.targets.cpu import progress, run_cpu
from posterlite.errors import PosterliteError
from posterlite.genres import DEFAULT_THRESHOLD
from posterlite.preprocess import PosterDecodeError, load_poster
from posterlite.runtime import PosterModel

# Google's anchor file runs on this many posters: enough for its instruction count (the
# same on every poster to a few hundred instructions) and a parity check, at a fifth of a
# 50-poster run's cost.
REFERENCE_POSTERS = 10
# Posters of the second emulator process per model x class (the determinism check).
REPEAT_POSTERS = 4
# Kernels kept per row in the JSON (the functions with the most instructions).
TOP_KERNELS = 6


@dataclass(frozen=True)
class PreparedModel:
    """One model's inputs for the ARM runs and the host's raw outputs on them."""

    spec: ModelSpec
    model: PosterModel
    inputs: np.ndarray  # (N, S, S, 3), the model's input dtype
    kept: np.ndarray  # the posters' indices in the labelled set
    host: np.ndarray  # the host's raw outputs (N, G)


def arm_specs(specs: Sequence[ModelSpec]) -> list[ModelSpec]:
    """The specs the ARM classes run: posterlite `.tflite` files and the anchor reference."""
    return [
        s
        for s in specs
        if s.path.suffix == ".tflite"
        and (s.kind == "posterlite" or (s.kind == "reference" and s.path.name == ANCHOR_REFERENCE))
    ]


def decoded_posters(posters: LabelledSet, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 pixels (N, size, size, 3), their indices) of the posters that decode."""
    pixels, kept = [], []
    for index, path in enumerate(posters.paths):
        try:
            pixels.append(load_poster(path, size))
        except PosterDecodeError:
            continue
        kept.append(index)
    if not pixels:
        raise PosterliteError(f"{posters.root}: no poster of the labelled set could be decoded")
    return np.stack(pixels), np.asarray(kept)


def prepare_models(specs: Sequence[ModelSpec], posters: LabelledSet) -> list[PreparedModel]:
    """Each spec's prepared inputs (posters decoded once per input size) and host outputs."""
    decoded: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    prepared = []
    for spec in specs:
        model = PosterModel.load(spec.path)
        if model.input_size not in decoded:
            decoded[model.input_size] = decoded_posters(posters, model.input_size)
        pixels, kept = decoded[model.input_size]
        if spec.kind == "reference":
            pixels, kept = pixels[:REFERENCE_POSTERS], kept[:REFERENCE_POSTERS]
        inputs = model.prepare(pixels)
        prepared.append(PreparedModel(spec, model, inputs, kept, model.run(inputs)))
    return prepared


@dataclass(frozen=True)
class PlannedRun:
    """One emulator process: a prepared model on one class, first run or the repeat."""

    model: int  # index into the prepared models
    profile: CpuProfile
    repeat: bool


def plan_runs(
    prepared: Sequence[PreparedModel], profiles: Sequence[CpuProfile]
) -> list[PlannedRun]:
    """Every model x class, then every repeat; the largest runs first (by inputs x model
    size; classes in the order given, the slowest A53 first), so the pool ends together."""
    firsts = [PlannedRun(i, p, False) for i in range(len(prepared)) for p in profiles]

    def cost(run: PlannedRun) -> int:
        item = prepared[run.model]
        return len(item.inputs) * item.spec.path.stat().st_size

    firsts.sort(key=cost, reverse=True)  # stable: the classes' order within equal costs
    return firsts + [PlannedRun(r.model, r.profile, True) for r in firsts]


def job_of(run: PlannedRun, prepared: Sequence[PreparedModel]) -> ArmJob:
    """The emulator job of a planned run (a repeat: the first `REPEAT_POSTERS` inputs)."""
    item = prepared[run.model]
    inputs = item.inputs[:REPEAT_POSTERS] if run.repeat else item.inputs
    return ArmJob(item.spec.path, inputs, run.profile)


def genre_rule(model: PosterModel, cut: float | np.ndarray) -> Decide:
    """Raw outputs -> the genre sets decided at `cut` (a threshold, or one per genre)."""

    def decide(raw: np.ndarray) -> np.ndarray:
        return np.asarray(model.dequantize(raw) >= cut)

    return decide


def arm_figures(item: PreparedModel, first: ArmRun, repeat: ArmRun, litert: str) -> ArmFigures:
    """What the runs computed against the host and executed (both runs counted)."""
    if not first.counted or not repeat.counted:
        raise PosterliteError(f"{item.spec.path.name} on {first.profile.name}: runs not counted")
    model, genre_model = item.model, item.spec.kind != "reference"
    # The row's threshold (its accuracy's) and the tuned ones an app reads from metadata.
    at_row = genre_rule(model, DEFAULT_THRESHOLD) if genre_model else None
    at_tuned = genre_rule(model, model.thresholds) if genre_model else None
    parity = compare_outputs(item.host, first.output, at_row)
    parity_tuned = compare_outputs(item.host, first.output, at_tuned)
    counts = first.instructions
    startup, warmup = first.startup_instructions, first.warmup_instructions
    kept = len(repeat.instructions)
    return ArmFigures(
        cpu=first.profile.name,
        cpu_title=first.profile.title,
        qemu_cpu=first.profile.qemu_cpu,
        qemu_version=first.qemu_version,
        litert_version=litert,
        posters=parity.total,
        identical=parity.identical,
        max_abs_diff=parity.max_abs_diff,
        output_dtype=str(item.host.dtype),
        changed_sets=parity.changed_sets,
        changed_sets_tuned=parity_tuned.changed_sets,
        instructions_median=int(first.median_instructions or 0),
        instructions_min=min(counts),
        instructions_max=max(counts),
        warmup_instructions=int(warmup or 0),
        startup_instructions=int(startup or 0),
        first_instructions=counts[:kept],
        repeat_instructions=repeat.instructions,
        repeat_outputs_identical=bool(np.array_equal(first.output[:kept], repeat.output)),
        kernel_family=first.kernel_family,
        expected_family=first.expected_family or first.profile.expected_family,
        matmul_kernel=first.matmul_kernel.symbol if first.matmul_kernel else None,
        top_kernels=tuple(
            KernelShare(k.symbol, Path(k.library).name, k.instructions)
            for k in first.kernels[:TOP_KERNELS]
        ),  # fmt: skip
        xnnpack=first.xnnpack,
        emulation_wall_s=first.wall_seconds,
        emulation_cpu_s=first.cpu_seconds,
    )


def findings(figures: ArmFigures) -> list[str]:
    """Notes for what a reader must not miss: outputs unlike x86's, counts that did not
    repeat, an unexpected kernel family."""
    notes = []
    if not figures.exact:
        notes.append(
            f"ARM outputs differ from the host's x86 outputs on "
            f"{figures.posters - figures.identical} of {figures.posters} posters "
            f"(max |difference| {figures.max_abs_diff:g} {figures.output_dtype} units)"
        )
    if not figures.repeat_same:
        notes.append("a second emulator process did NOT repeat the instruction counts / outputs")
    if figures.family_as_expected is False:
        notes.append(
            f"UNEXPECTED kernel family {figures.kernel_family} (expected "
            f"{figures.expected_family} on {figures.cpu})"
        )
    return notes


def arm_row(
    item: PreparedModel, first: ArmRun, repeat: ArmRun, posters: LabelledSet, litert: str
) -> BenchRow:
    """The row of one model on one class (`litert`: the aarch64 wheel's version)."""
    spec, model, profile = item.spec, item.model, first.profile
    figures = arm_figures(item, first, repeat, litert)
    row = BenchRow(
        model=spec.name,
        format=spec.format,
        kind=spec.kind,
        path=str(spec.path),
        target="arm64",
        threads=1,
        size_bytes=spec.path.stat().st_size,
        device={
            "model": f"{profile.name} (QEMU -cpu {profile.qemu_cpu})",
            "cpu_class": profile.title,
            "abi": "arm64-v8a",
            "cpu_part": profile.part,
            "emulator": f"QEMU {first.qemu_version} user mode",
        },
        delegate="xnnpack" if first.xnnpack else "builtin",
        input_size=model.input_size,
        arm=figures,
        notes=[
            "LiteRT's aarch64 build under QEMU user mode, 1 thread: outputs and guest "
            "instructions per inference, no latency (emulation time is not a phone's)"
        ],
    )
    if spec.kind == "reference":
        row.notes.append(f"ImageNet 1001-class reference: first {figures.posters} posters, "
                         "parity and instructions only")  # fmt: skip
    else:
        probabilities = model.dequantize(first.output)
        row.accuracy = score(posters, item.kept, probabilities, list(model.genres))
        left_out = len(posters) - len(item.kept)
        if left_out:
            row.notes.append(f"{left_out} posters could not be decoded")
    row.notes += findings(figures)
    return row


def run_arm64(context: RunContext) -> list[BenchRow]:
    """The host rows, then every ARM model x class (see the module)."""
    o, posters = context.options, context.posters
    if posters is None:
        raise PosterliteError("the arm64 bench needs labelled posters: pass --data")
    profiles = parse_profiles(o.arm_cpu or None)
    tools = find_tools()
    chosen = arm_specs(context.specs)
    if not any(s.kind == "posterlite" for s in chosen):
        raise PosterliteError("no posterlite .tflite model to run on the ARM CPU classes")
    host_rows = run_cpu(context.specs, o.native_threads, o.runs, o.warmup, posters,
                        o.measure_memory, o.rounds)  # fmt: skip
    prepared = prepare_models(chosen, posters)
    plan = plan_runs(prepared, profiles)
    jobs = [job_of(run, prepared) for run in plan]
    total = sum(len(job.inputs) for job in jobs)
    with progress(total, f"bench arm64 ({','.join(p.name for p in profiles)})", "inference") as bar:

        def advance(count: int) -> None:
            bar.n = count
            bar.refresh()

        runs = run_jobs(jobs, tools=tools, progress=advance)
    by_plan = {(r.model, r.profile.name, r.repeat): run for r, run in zip(plan, runs, strict=True)}
    rows = list(host_rows)
    for index, item in enumerate(prepared):
        for profile in profiles:
            first = by_plan[(index, profile.name, False)]
            repeat = by_plan[(index, profile.name, True)]
            rows.append(arm_row(item, first, repeat, posters, tools.litert_version))
    return rows


def arm_cpu_names(names: Sequence[str]) -> tuple[str, ...]:
    """The classes a run measures: `names` resolved (() = the default set), each once.
    Raises PosterliteError for an unknown name."""
    return tuple(p.name for p in parse_profiles(tuple(names) or None))


def arm_refusal(options: BenchOptions) -> str | None:
    """Unknown class names, or a class the installed QEMU is known (or not shown) to
    emulate correctly (SME on QEMU 7.2), as one line; None when the classes can run. Without
    a QEMU the version rule waits for `preflight`, which names `make arm-tools`."""
    try:
        profiles = parse_profiles(options.arm_cpu or None)
    except PosterliteError as exc:
        return str(exc)
    if not any(p.known_bad_qemu or p.verified_qemu for p in profiles):
        return None
    qemu = find_qemu()
    if qemu is None:
        return None
    try:
        version, _ = qemu_version(qemu)
    except PosterliteError:
        return None
    problems = [qemu_problem(p, version) for p in profiles]
    return next((p for p in problems if p), None)


class Arm64Target:
    """`--target arm64`: LiteRT's ARM64 kernels under QEMU, per CPU class."""

    @property
    def name(self) -> TargetName:
        """The registry key."""
        return "arm64"

    def refusal(self, options: BenchOptions) -> str | None:
        """`--arm-cpu` needs this target; its classes must exist and be emulated right."""
        if options.target != "arm64":
            return "--arm-cpu needs --target arm64" if options.arm_cpu else None
        return arm_refusal(options)

    def preflight(self, options: BenchOptions) -> None:
        """The ARM tools (`make arm-tools`) must be there before the host rows run."""
        find_tools()

    def run(self, context: RunContext) -> list[BenchRow]:
        """The host rows and the ARM rows of the same posters (`run_arm64`)."""
        return run_arm64(context)


TARGET = Arm64Target()
