"""What the phone's CPU computes: every shipped model on LiteRT's ARM64 kernels per CPU class.

    nice -n 10 .venv/bin/python benchmarks/arm.py [--limit 200] [--arm-cpu a53,a76,a710]
    .venv/bin/python benchmarks/arm.py --render-only

Runtime: emulation dominates. The default 200 posters took 92 min (5,534 s) on a 2-core
Xeon, two emulators at a time (load 1.0 at the start, a training run beside it for its first
25 min): 9,134 s of emulator CPU, two thirds of it MobileNetV2's fp32 and fp16 rows (float
NEON emulates at 20-40 M instructions/s, int8 at 70-110 M). `--limit 50` takes about a
quarter. Needs `make arm-tools`. `--render-only` re-renders arm.md (and arm.png) from
arm.json in seconds.

One `posterlite bench --target arm64` run (the package's `run_bench`), on the first
`--limit` posters of benchmarks/sample: every shipped model's committed int8 file, plus
MobileNetV2's fp32 and fp16 (converted once into .cache/bench/ by the bench's conversion
cache) and Google's int8 MobileNetV2 (the anchor; its first few posters). For each model x
CPU class: outputs identical to the host's x86 LiteRT run (n of N posters), the largest
difference in output units, posters whose genre set changes, mAP and macro F1 from the ARM
outputs, guest instructions per inference (and a second emulator process repeating them),
the XNNPACK kernel family of the convolutions; the ratios per class (anchor, int8 / fp32,
int8 / fp16, 160 px / 224 px) in instructions, beside the same pairs' x86 p50 ratios
measured in the same run (the host rows' interleaved rounds). Saved as
benchmarks/results/arm.json (the bench's schema plus the command and wall time), then
rendered to arm.md from that JSON alone.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import results_io as rio

from posterlite.bench import (
    ANCHOR_MODEL,
    SHIPPED_MODELS,
    BenchOptions,
    BenchReport,
    BenchRow,
    Ratio,
    markdown_table,
    parse_arm_cpus,
    plot_rows,
    run_bench,
)
from posterlite.bench.report import arm_table

NAME = "arm"
RUNTIME = (
    "92 min with the default 200 posters on a 2-core Xeon, two emulators at a time, 9,134 s "
    "of emulator CPU; --limit 50 about a quarter"
)
FLOAT_FORMATS = ("fp32", "fp16")  # of ANCHOR_MODEL, beside its int8
HOST_COLUMNS = ("model", "format", "size MB", "p50 ms", "mAP", "macro F1")


def model_arguments() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(MODEL arguments, formats): every shipped int8 file as is, and MobileNetV2's run
    folder in int8 + fp32 + fp16 (its committed int8, the floats from the conversion cache)."""
    models = tuple(
        f"models/{name}" if name == ANCHOR_MODEL else f"models/{name}/model.int8.tflite"
        for name in SHIPPED_MODELS
    )
    return models, ("int8", *FLOAT_FORMATS)


# ------------------------------------------------------------------------------ measure
def measure(args, argv: list[str]) -> dict:
    started = time.perf_counter()
    models, formats = model_arguments()
    options = BenchOptions(
        models=models,
        formats=formats,
        target="arm64",
        limit=args.limit,
        arm_cpu=parse_arm_cpus(args.arm_cpu),
        runs=args.runs,
        rounds=args.rounds,
    )
    payload = rio.bench_record(run_bench(options).to_json_value())
    payload.update(
        command=rio.command("arm.py", argv),
        wall_time_s=time.perf_counter() - started,
    )
    return payload


# ------------------------------------------------------------------------------- render
def _ratio_key(ratio: Ratio) -> tuple[str, str, str]:
    return ratio.name, ratio.numerator, ratio.denominator


def ratio_table(report: BenchReport) -> list[str]:
    """Each pair: its x86 p50 ratio (1 thread, same run) beside its instruction ratio per
    ARM CPU class."""
    classes = list(report.settings.arm_cpu or ())
    pairs = list(dict.fromkeys(_ratio_key(r) for r in report.ratios))
    if not pairs:
        return ["No ratio: the run has no pair of rows to divide."]
    lines = [
        "| pair | numerator / denominator | x86 p50 ratio | "
        + " | ".join(f"{c} instructions" for c in classes)
        + " |",
        "|---|---|---:|" + "---:|" * len(classes),
    ]
    for key in pairs:
        same = [r for r in report.ratios if _ratio_key(r) == key]
        x86 = next((r for r in same if r.basis == "p50" and r.threads == 1), None)
        cells = [key[0], f"{key[1]} / {key[2]}", f"{x86.value:.3f}" if x86 else "-"]
        for cpu in classes:
            arm = next((r for r in same if r.basis == "instructions" and r.cpu == cpu), None)
            cells.append(f"{arm.value:.3f}" if arm else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def parity_lines(rows: list[BenchRow]) -> list[str]:
    """The parity finding, computed: every ARM row identical to x86, or which are not."""
    arm_rows = [r for r in rows if r.arm is not None]
    differing = [r for r in arm_rows if r.arm is not None and not r.arm.exact]
    repeated = all(r.arm.repeat_same for r in arm_rows if r.arm is not None)
    lines = []
    if not arm_rows:
        return ["No ARM row was measured."]
    if not differing:
        lines.append(
            f"- Parity: all {len(arm_rows)} model x CPU class rows gave outputs byte-identical "
            "to the host's x86 LiteRT run on every poster they ran."
        )
    else:
        lines.append(f"- Parity: {len(differing)} of {len(arm_rows)} rows differ from x86:")
        for row in differing:
            assert row.arm is not None
            a = row.arm
            sets = "-" if a.changed_sets is None else str(a.changed_sets)
            lines.append(
                f"  - {row.label} on {a.cpu}: {a.identical}/{a.posters} identical, max "
                f"|difference| {a.max_abs_diff:g} ({a.output_dtype}), genre sets changed {sets}"
            )
    lines.append(
        "- Instruction counts: a second emulator process per row repeated them exactly "
        "(and the outputs) on its posters: "
        + ("yes, every row" if repeated else "NO, see the `2nd run` column")
        + "."
    )
    unexpected = [r for r in arm_rows if r.arm is not None and r.arm.family_as_expected is False]
    if unexpected:
        lines.append(
            "- Kernel family not the one expected on its class: "
            + ", ".join(f"{r.label} on {r.arm.cpu}" for r in unexpected if r.arm is not None)
        )
    return lines


def emulator_cpu_s(rows: list[BenchRow]) -> float:
    """The emulators' CPU seconds over the rows' first runs (what budgets a run)."""
    return sum(r.arm.emulation_cpu_s for r in rows if r.arm is not None)


def render(payload: dict) -> str:
    report = BenchReport.from_json(payload)
    s, data = report.settings, report.data
    host = [r for r in report.rows if r.arm is None and r.threads == 1]
    first = next((r.arm for r in report.rows if r.arm is not None), None)
    lines = rio.header(
        "What the phone's CPU computes: LiteRT's ARM64 kernels per CPU class", payload, RUNTIME
    )
    emulator = (
        f"LiteRT {first.litert_version} (aarch64 wheel) under QEMU {first.qemu_version} user "
        "mode, 1 thread"
        if first
        else "no ARM row"
    )
    lines += [
        f"Models: {', '.join(s.models)} (formats {', '.join(s.formats)} of run folders); "
        f"CPU classes {', '.join(s.arm_cpu or ())}; {emulator}. Posters: the first "
        f"{data.posters} of `{data.path}` (Google's anchor file: its first ones, as its rows "
        f"say). Host x86 rows: {s.warmup} warm-up + {s.runs} timed `invoke()` per row in "
        f"{s.rounds} interleaved rounds, p50 = median of the rounds' p50s. Report written "
        f"{report.created or '-'}.",
        "",
        f"Emulator CPU time of the ARM runs: {emulator_cpu_s(report.rows):.0f} s (first runs; "
        "the repeats not counted), two emulators at a time on this host.",
        "",
        "## ARM rows",
        "",
        arm_table(report).rstrip("\n"),
        "",
        *parity_lines(report.rows),
        "",
        "## Ratios: instructions per ARM CPU class beside x86 p50",
        "",
        *ratio_table(report),
        "",
        "## Host x86 rows of the same run (1 thread)",
        "",
        markdown_table(host, HOST_COLUMNS, left=2).rstrip("\n"),
        "",
        rio.note(
            "`identical to x86`: posters whose raw output tensor is byte-identical to the "
            "host's x86 LiteRT output on the same prepared input; `max diff` in output units "
            "(uint8 levels for int8 models, floats for fp32/fp16); `sets changed`: posters "
            "whose genre set at the row's threshold (0.5) differs, and at the tuned "
            "thresholds when that count differs; `M instr/inference`: median guest "
            "instructions per `invoke()` counted by posterlite's TCG plugin (not cycles: "
            "an A53 is in-order, an A710 wider and out-of-order; no caches, no "
            "big.LITTLE, no thermal limits); `kernel`: ISA family of the matrix-multiply "
            "kernel with the most instructions. Emulation wall time is recorded in the "
            "JSON to budget a run and is not a phone's latency. Instruction counts do not "
            "depend on the machine's load; the x86 p50 ratios do."
        ),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = rio.make_parser(__doc__, NAME)
    parser.add_argument("--limit", type=int, default=200, help="first N sample posters")
    parser.add_argument("--arm-cpu", default="a53,a76,a710", help="CPU classes")
    parser.add_argument("--runs", type=int, default=30, help="timed host invokes per round")
    parser.add_argument("--rounds", type=int, default=5, help="host timing rounds")
    parser.add_argument("--no-plot", action="store_true", help="skip arm.png")
    args = parser.parse_args(argv)
    payload = rio.measured_or_loaded(args, NAME, lambda: measure(args, argv))
    rio.publish(args.results, NAME, render(payload))
    if not args.no_plot:
        plot_rows(BenchReport.from_json(payload).rows, Path(args.results) / "arm.png", threads=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
