"""What a bench run prints and writes: the summary table (CPU above, ratios below; the ARM
CPU classes' rows in a table of their own), the wide table of every figure, the JSON report
and the latency-vs-mAP plot (ARM rows: guest instructions vs mAP, in a second panel).

Tables are built from typed rows through one column registry (`COLUMNS`), so the CLI's
`--wide` table and `benchmarks/bench_shipped.py`'s recorded table format every figure the
same way; a recorded report re-renders from its JSON (`BenchReport.from_json`) alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from posterlite.bench.models import ANCHOR_REFERENCE
from posterlite.bench.paths import shared_dir
from posterlite.bench.ratios import ANCHOR_NAME
from posterlite.bench.records import ArmFigures, BenchReport, BenchRow, Ratio
from posterlite.fileio import atomic_path, atomic_write_text
from posterlite.formats import FORMAT_SPECS
from posterlite.genres import DEFAULT_THRESHOLD
from posterlite.metrics import MultiLabelReport


def _fmt(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if 0 < abs(value) < 1 and digits < 3:  # tiny models: keep three decimals
        digits = 3
    return f"{value:.{digits}f}"


def _signed(value: float | None, digits: int = 4) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:+.{digits}f}"


def _target_cell(row: BenchRow) -> str:
    return row.target if not row.device else f"{row.target} ({row.device.get('model', '?')})"


def _p50(row: BenchRow) -> float:
    return math.nan if row.latency is None or row.latency.p50_ms is None else row.latency.p50_ms


def _accuracy(figure: Callable[[MultiLabelReport], float]) -> Callable[[BenchRow], str]:
    return lambda row: _fmt(figure(row.accuracy) if row.accuracy else None, 4)


def _arm(figure: Callable[[ArmFigures], str]) -> Callable[[BenchRow], str]:
    return lambda row: figure(row.arm) if row.arm else "-"


def _sets_changed(arm: ArmFigures) -> str:
    """Genre sets changed at the row's threshold, and at the tuned ones when that differs."""
    if arm.changed_sets is None:
        return "-"
    if arm.changed_sets_tuned is not None and arm.changed_sets_tuned != arm.changed_sets:
        return f"{arm.changed_sets} (tuned: {arm.changed_sets_tuned})"
    return str(arm.changed_sets)


def _kernel(arm: ArmFigures) -> str:
    family = arm.kernel_family or "-"
    return family if arm.family_as_expected is not False else f"{family} (UNEXPECTED)"


@dataclass(frozen=True)
class Column:
    """One table column: its header and how a row's cell reads."""

    header: str
    cell: Callable[[BenchRow], str]


COLUMNS: dict[str, Column] = {
    c.header: c
    for c in (
        Column("model", lambda r: r.model),
        Column("format", lambda r: r.format),
        Column("target", _target_cell),
        Column("threads", lambda r: "-" if r.threads is None else str(r.threads)),
        Column("size MB", lambda r: _fmt(r.size_bytes / 1e6)),
        Column("load ms", lambda r: _fmt(r.load_ms, 1)),
        Column("mean ms", lambda r: _fmt(r.latency.mean_ms if r.latency else None)),
        Column("p50 ms", lambda r: _fmt(r.latency.p50_ms if r.latency else None)),
        Column("p90 ms", lambda r: _fmt(r.latency.p90_ms if r.latency else None)),
        Column("p99 ms", lambda r: _fmt(r.latency.p99_ms if r.latency else None)),
        Column("e2e ms/poster", lambda r: _fmt(r.end_to_end_ms)),
        Column("peak MB", lambda r: _fmt(r.peak_memory_mb, 1)),
        Column("mAP", _accuracy(lambda a: a.mean_average_precision)),
        Column("macro F1", _accuracy(lambda a: a.macro_f1)),
        Column("micro F1", _accuracy(lambda a: a.micro_f1)),
        Column("subset acc", _accuracy(lambda a: a.subset_accuracy)),
        Column("hamming", _accuracy(lambda a: a.hamming_loss)),
        Column("paper acc", _accuracy(lambda a: a.paper_accuracy)),
        Column(
            "mAP vs Keras",
            lambda r: _signed(r.vs_keras.mean_average_precision if r.vs_keras else None),
        ),
        Column("ARM CPU", _arm(lambda a: a.cpu)),
        Column("identical to x86", _arm(lambda a: f"{a.identical}/{a.posters}")),
        Column("max diff", _arm(lambda a: f"{a.max_abs_diff:g}")),
        Column("sets changed", _arm(_sets_changed)),
        Column("M instr/inference", _arm(lambda a: f"{a.instructions_median / 1e6:.2f}")),
        Column("2nd run", _arm(lambda a: "same" if a.repeat_same else "DIFFERS")),
        Column("kernel", _arm(_kernel)),
    )
}
FIGURES: tuple[str, ...] = (
    "size MB", "load ms", "mean ms", "p50 ms", "p90 ms", "p99 ms", "e2e ms/poster", "peak MB",
    "mAP", "macro F1", "micro F1", "subset acc", "hamming", "paper acc",
)  # fmt: skip
# `--wide`: every figure; model, format and target left-aligned.
WIDE_COLUMNS: tuple[str, ...] = ("model", "format", "target", "threads", *FIGURES, "mAP vs Keras")
# An ARM row's own figures (`ArmFigures`), after its CPU class.
ARM_FIGURES: tuple[str, ...] = (
    "identical to x86", "max diff", "sets changed", "mAP", "macro F1", "M instr/inference",
    "2nd run", "kernel",
)  # fmt: skip
ARM_COLUMNS: tuple[str, ...] = ("model", "format", "ARM CPU", *ARM_FIGURES)


def markdown_table(
    rows: Sequence[BenchRow], columns: Sequence[str] = WIDE_COLUMNS, left: int = 3
) -> str:
    """A Markdown table of `rows` with `columns` (names in `COLUMNS`), the first `left`
    left-aligned and the rest right-aligned (the default: `--wide`'s every figure)."""
    chosen = [COLUMNS[name] for name in columns]
    lines = [
        "| " + " | ".join(c.header for c in chosen) + " |",
        "|" + "---|" * left + "---:|" * (len(chosen) - left),
    ]
    lines += ["| " + " | ".join(c.cell(row) for c in chosen) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def wide_table(report: BenchReport) -> str:
    """`--wide`: every figure of every row (the ARM figures too when the run has ARM rows)."""
    columns = WIDE_COLUMNS
    if any(r.arm for r in report.rows):
        columns += ("ARM CPU", *(c for c in ARM_FIGURES if c not in WIDE_COLUMNS))
    return markdown_table(report.rows, columns, left=4)


def anchor_ratio(row: BenchRow, ratios: Sequence[Ratio]) -> Ratio | None:
    """The anchor instruction ratio whose numerator is this ARM row, if measured."""
    if row.arm is None:
        return None
    return next(
        (r for r in ratios if r.basis == "instructions" and r.cpu == row.arm.cpu
         and r.numerator == row.label and r.name == ANCHOR_NAME),
        None,
    )  # fmt: skip


def arm_table(report: BenchReport) -> str:
    """The ARM rows: parity with x86, accuracy, instructions, kernel, the anchor ratio."""
    rows = [r for r in report.rows if r.arm is not None]
    chosen = [COLUMNS[name] for name in ARM_COLUMNS]
    lines = [
        "| " + " | ".join([*(c.header for c in chosen), "anchor"]) + " |",
        "|" + "---|" * 3 + "---:|" * (len(chosen) - 2),
    ]
    for row in rows:
        name = row.model if row.kind != "reference" else f"{row.model} (ImageNet)"
        anchor = anchor_ratio(row, report.ratios)
        cells = [name, *(c.cell(row) for c in chosen[1:])]
        cells.append(f"{anchor.value:.3f}x" if anchor else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def arm_heading(report: BenchReport) -> list[str]:
    """What the ARM rows are, in two lines above their table."""
    first = next((r.arm for r in report.rows if r.arm is not None), None)
    if first is None:
        return []
    return [
        f"ARM64: LiteRT {first.litert_version}'s aarch64 build under QEMU {first.qemu_version} "
        "user mode, 1 thread, per CPU class; outputs compared with the host's x86 run on the "
        "same posters; guest instructions per inference (median), not a phone's latency; "
        "`2nd run`: a second emulator process repeated the counts and outputs",
    ]


def ratio_line(ratio: Ratio) -> str:
    """One ratio as the summary prints it: value, goal and verdict, per-round range."""
    goal = ""
    if ratio.goal is not None:
        goal = f" (goal <= {ratio.goal:.2f}x: {'met' if ratio.met else 'MISSED'})"
    if ratio.basis == "instructions":
        return (
            f"{ratio.name}, ARM {ratio.cpu}, guest instructions: {ratio.numerator} / "
            f"{ratio.denominator} = {ratio.value:.3f}x{goal}"
        )
    spread = (
        f"; per round {min(ratio.per_round):.2f}-{max(ratio.per_round):.2f}"
        if ratio.per_round
        else ""
    )
    return (
        f"{ratio.name}, {ratio.threads} thread(s): {ratio.numerator} / "
        f"{ratio.denominator} = {ratio.value:.2f}x{goal}{spread}"
    )


def summary_table(report: BenchReport) -> str:
    """The table a person reads at a glance, with the CPU above it and the ratios below.

    One line per model x format x thread count: size, p50 latency, mAP, macro F1 at 0.5
    and the change in mAP against the Keras model. Everything else is in the JSON.
    """
    rows = [r for r in report.rows if r.arm is None]
    threads = sorted({r.threads for r in rows if r.threads is not None})
    show_threads = len(threads) > 1
    show_target = report.target not in ("cpu", "arm64")
    env = report.environment
    runtime = f"LiteRT {env.libraries.get('ai-edge-litert', '?')} + XNNPACK"
    settings = report.settings
    if report.target in ("cpu", "browser", "arm64"):  # the host rows of those targets
        timing = f"p50 = median of {settings.rounds} interleaved rounds x {settings.runs} invokes"
        where = f"host CPU: {env.cpu_model} ({env.logical_cores} logical cores)"
        if report.target == "browser":
            throttles = list(settings.cpu_throttle or ())
            timing += (
                f"; browser rows: p50 of {settings.runs} warm classify calls in the page per "
                f"round, same rounds (headless Chromium, CPU throttle {throttles})"
            )
    else:
        device = next((r.device for r in rows if r.device), {})
        timing = f"benchmark_model, {settings.runs} runs"
        where = f"{device.get('model', 'device')} ({device.get('abi', '?')}) via adb"
    data = report.data
    accuracy = (
        f"accuracy on {data.posters} posters ({data.path}), threshold {DEFAULT_THRESHOLD:g}"
        if data.posters
        else "no labelled set: no accuracy"
    )
    lines = [
        f"posterlite bench | {where} | {runtime} | threads {','.join(map(str, threads))}",
        f"{timing}; {accuracy}",
        "",
    ]
    header = ["model", "format"]
    header += ["target"] if show_target else []
    header += ["threads"] if show_threads else []
    header += ["MB", "p50 ms", "mAP", "macro F1", "mAP vs Keras"]
    left = 2 + int(show_target) + int(show_threads)
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * left + "---:|" * 5]
    for row in rows:
        if row.kind == "keras" and report.target != "cpu":
            continue
        acc = row.accuracy
        cells = [row.model if row.kind != "reference" else f"{row.model} (ImageNet)", row.format]
        cells += [_target_cell(row)] if show_target else []
        cells += ["-" if row.threads is None else str(row.threads)] if show_threads else []
        delta = row.vs_keras.mean_average_precision if row.vs_keras else None
        cells += [
            _fmt(row.size_bytes / 1e6),
            _fmt(row.latency.p50_ms if row.latency else None),
            _fmt(acc.mean_average_precision if acc else None, 4),
            _fmt(acc.macro_f1 if acc else None, 4),
            "baseline" if row.kind == "keras" else _signed(delta),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if any(r.arm for r in report.rows):
        lines += [*arm_heading(report), "", arm_table(report)]
    lines += [ratio_line(ratio) for ratio in report.ratios]
    wanted = settings.references and report.target in ("cpu", "arm64")
    if wanted and not any(Path(r.path).name == ANCHOR_REFERENCE for r in rows):
        lines.append(
            f"anchor ratio not measured: Google's {ANCHOR_REFERENCE} not found under "
            f"{shared_dir() / 'pretrained'}"
        )
    sources = {r.vs_keras.source for r in rows if r.vs_keras}
    if "recorded" in sources:
        lines.append(
            "mAP vs Keras: the Keras model's mAP on these posters recorded at export "
            "(models/<name>/model.int8.json), same decoded pixels"
        )
    lines += sorted({f"MediaPipe rows: {r.notes[0]}" for r in rows if r.delegate == "mediapipe"})
    return "\n".join(lines).rstrip("\n") + "\n"


def write_json(report: BenchReport, out: Path) -> None:
    """The report's JSON, written atomically to `out`."""
    atomic_write_text(Path(out), report.to_json())


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of points no other point beats on both latency (lower) and mAP (higher)."""
    front = []
    for i, (lat_i, map_i) in enumerate(points):
        dominated = any(
            lat_j <= lat_i and map_j >= map_i and (lat_j < lat_i or map_j > map_i)
            for j, (lat_j, map_j) in enumerate(points)
            if j != i
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda k: points[k][0])


def plot_rows(rows: Sequence[BenchRow], out: Path, threads: int | None = None) -> None:
    """Latency (p50, one thread count) vs mAP; one point per model x format, Pareto front
    drawn. With ARM rows, a second panel: guest instructions per inference vs mAP, one
    marker per CPU class (instructions, not a latency: emulation time is not plotted)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arm_rows = [r for r in rows if r.arm is not None]
    if arm_rows:
        fig, (ax, arm_ax) = plt.subplots(1, 2, figsize=(16, 6))
        _instructions_panel(arm_ax, arm_rows)
    else:
        fig, ax = plt.subplots(figsize=(9, 6))
    _latency_panel(ax, rows, threads)
    fig.tight_layout()
    with atomic_path(Path(out)) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def _latency_panel(ax: Any, rows: Sequence[BenchRow], threads: int | None) -> None:
    """p50 vs mAP of the timed rows (matplotlib's axes are untyped)."""
    chosen = [
        r
        for r in rows
        if r.latency
        and r.latency.p50_ms
        and r.accuracy
        and not math.isnan(r.accuracy.mean_average_precision)
    ]
    if threads is None and chosen:
        threads = min((r.threads for r in chosen if r.threads is not None), default=None)
    chosen = [r for r in chosen if r.kind == "keras" or r.threads == threads]
    references = [r for r in rows if r.kind == "reference" and r.latency and r.threads == threads]
    points = [(_p50(r), r.accuracy.mean_average_precision if r.accuracy else math.nan)
              for r in chosen]  # fmt: skip
    markers: dict[str, str] = {**{spec.name: spec.marker for spec in FORMAT_SPECS}, "keras": "x"}
    for row, (lat, m_ap) in zip(chosen, points, strict=True):
        ax.scatter(lat, m_ap, marker=markers.get(row.format, "o"), s=40, alpha=0.8)
        label = row.label if row.target != "browser" else f"{row.label} ({row.device['model']})"
        ax.annotate(label, (lat, m_ap), fontsize=7, xytext=(3, 3), textcoords="offset points")
    front = pareto_front(points)
    if front:
        ax.plot(
            [points[i][0] for i in front],
            [points[i][1] for i in front],
            "-",
            color="crimson",
            lw=1.5,
            label="Pareto front",
        )
        ax.scatter(
            [points[i][0] for i in front],
            [points[i][1] for i in front],
            s=140,
            facecolors="none",
            edgecolors="crimson",
        )
    for ref in references:
        ax.axvline(_p50(ref), ls="--", lw=0.8, color="gray")
        ax.text(
            _p50(ref),
            ax.get_ylim()[0],
            f" {ref.model}",
            rotation=90,
            fontsize=6,
            va="bottom",
            color="gray",
        )
    ax.set_xscale("log")
    ax.set_xlabel(f"p50 latency, ms (invoke only, {threads} thread(s), log scale)")
    ax.set_ylabel("mAP on the labelled set")
    ax.set_title("posterlite: latency vs mAP per model x format")
    ax.grid(True, which="both", alpha=0.3)
    if front:
        ax.legend(loc="lower right")


def _instructions_panel(ax: Any, rows: Sequence[BenchRow]) -> None:
    """Guest instructions per inference vs mAP of the ARM rows, one marker per CPU class."""
    markers = ("o", "s", "D", "^", "v")
    classes = list(dict.fromkeys(r.arm.cpu for r in rows if r.arm is not None))
    for number, cpu in enumerate(classes):
        chosen = [r for r in rows if r.arm is not None and r.arm.cpu == cpu and r.accuracy
                  and not math.isnan(r.accuracy.mean_average_precision)]  # fmt: skip
        if not chosen:
            continue
        x = [r.arm.instructions_median / 1e6 for r in chosen if r.arm is not None]
        y = [r.accuracy.mean_average_precision for r in chosen if r.accuracy is not None]
        ax.scatter(x, y, marker=markers[number % len(markers)], s=40, alpha=0.8, label=cpu)
        for row, xi, yi in zip(chosen, x, y, strict=True):
            if number == 0:  # a model's points share its mAP when outputs agree: name it once
                ax.annotate(row.label, (xi, yi), fontsize=6, xytext=(3, 3),
                            textcoords="offset points")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("guest instructions per inference, millions (LiteRT aarch64 under QEMU; "
                  "not a latency)")  # fmt: skip
    ax.set_ylabel("mAP (ARM outputs) on the labelled set")
    ax.set_title("ARM CPU classes: instructions vs mAP per model x format")
    ax.grid(True, which="both", alpha=0.3)
    if classes:
        ax.legend(loc="lower right", title="ARM CPU")
