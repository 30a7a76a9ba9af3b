"""What a conversion concludes: each format's figures, the accuracy gate, the report.

Owns the records `convert.convert_model` returns and writes (`Quality`, `FormatResult`,
`ConversionReport`), the gate (a format fails when its mAP is more than `max_drop` below the
Keras model's on the same check set) and the report's two renderings, `conversion.json`
and `conversion.md`, beside the converted files. Pure: no TensorFlow, no LiteRT.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from posterlite.errors import PosterliteError
from posterlite.fileio import atomic_write_text, json_text
from posterlite.genres import DEFAULT_THRESHOLD
from posterlite.metrics import evaluate

REPORT_JSON = "conversion.json"
REPORT_MARKDOWN = "conversion.md"


@dataclass(frozen=True)
class Quality:
    """A model's accuracy on the check set: mAP and macro F1 at threshold 0.5."""

    mean_average_precision: float
    macro_f1: float


@dataclass(frozen=True)
class FormatResult:
    """One format's file, size, agreement with Keras and gate verdict."""

    format: str
    path: str
    size_bytes: int
    ratio_to_fp32: float | None
    max_abs_diff: float
    mean_abs_diff: float
    quality: Quality | None
    map_delta: float | None  # tflite - keras (negative = loss)
    macro_f1_delta: float | None
    passed: bool
    seconds: float
    note: str = ""


@dataclass
class ConversionReport:
    """A conversion run: its source, check set, calibration, gate and every format's result."""

    model: str
    keras_path: str
    keras_size_bytes: int
    eval_source: str
    eval_count: int
    eval_skipped: int
    calibration: str
    max_drop: float
    keras_quality: Quality | None
    results: list[FormatResult] = field(default_factory=list)

    @property
    def failed(self) -> list[FormatResult]:
        """The results that failed the gate (empty when every format passed)."""
        return [r for r in self.results if not r.passed]

    def to_dict(self) -> dict[str, object]:
        """The report as plain JSON-ready values (what conversion.json holds)."""
        return asdict(self)


def quality(labels: np.ndarray, probabilities: np.ndarray, genres: Sequence[str]) -> Quality:
    """mAP and macro F1 at 0.5 of `probabilities` (N, G) against multi-hot `labels` (N, G)."""
    report = evaluate(labels, probabilities, genres, DEFAULT_THRESHOLD)
    return Quality(report.mean_average_precision, report.macro_f1)


@dataclass(frozen=True)
class GateVerdict:
    """A format's verdict against the Keras model on the same check set."""

    passed: bool
    map_delta: float | None  # converted - keras (negative = loss)
    macro_f1_delta: float | None
    note: str = ""


def check_max_drop(max_drop: float) -> None:
    """The gate's allowance is a mAP drop: 0 or more (math.inf turns the gate off). A
    negative one would fail every faithful conversion; NaN would pass every one. Returns
    None; raises PosterliteError for a negative or NaN `max_drop`."""
    if not max_drop >= 0.0:
        raise PosterliteError(f"max-drop must be 0 or more (a mAP drop), got {max_drop!r}")


def gate(converted: Quality | None, keras: Quality | None, max_drop: float) -> GateVerdict:
    """The accuracy gate: a format fails when its mAP is MORE than `max_drop` below Keras'
    (a drop of exactly `max_drop` passes). Without a labelled check set it passes with a note.
    Returns the verdict; raises PosterliteError for a bad `max_drop` (`check_max_drop`)."""
    check_max_drop(max_drop)
    if converted is None or keras is None:
        return GateVerdict(True, None, None, "no labelled check set: gate not applied")
    map_delta = converted.mean_average_precision - keras.mean_average_precision
    f1_delta = converted.macro_f1 - keras.macro_f1
    if -map_delta > max_drop:
        note = f"mAP drop {-map_delta:.4f} > max-drop {max_drop:g}"
        return GateVerdict(False, map_delta, f1_delta, note)
    return GateVerdict(True, map_delta, f1_delta)


# ----------------------------------------------------------------------------- report
def format_result_line(result: FormatResult) -> str:
    """One progress line for a converted format: file, size, |dp|, mAP and F1, verdict."""
    figures = f"{result.size_bytes / 1e6:.3f} MB, max |dp| {result.max_abs_diff:.4f}"
    if result.quality is not None and result.map_delta is not None:
        figures += (
            f", mAP {result.quality.mean_average_precision:.4f} ({result.map_delta:+.4f}),"
            f" macro F1 {result.quality.macro_f1:.4f} ({result.macro_f1_delta:+.4f})"
        )
    verdict = "ok" if result.passed else f"FAILED GATE: {result.note}"
    return f"{result.format}: {Path(result.path).name}: {figures}; {verdict}"


def report_markdown(report: ConversionReport) -> str:
    """conversion.md: the run's facts and one table row per format."""
    lines = [
        f"# Conversion of {report.model}",
        "",
        f"- Keras model: `{report.keras_path}` ({report.keras_size_bytes / 1e6:.3f} MB)",
        f"- check set: {report.eval_source}: {report.eval_count} posters"
        f" ({report.eval_skipped} undecodable left out)",
        f"- calibration (int8): {report.calibration or 'n/a'}",
        f"- gate: a format fails when its mAP is more than {report.max_drop:g} below Keras",
    ]
    if report.keras_quality is not None:
        lines.append(
            f"- Keras: mAP {report.keras_quality.mean_average_precision:.4f}, "
            f"macro F1 @0.5 {report.keras_quality.macro_f1:.4f}"
        )
    lines += [
        "",
        "| format | file | size MB | x fp32 | max abs dp | mean abs dp | mAP | d mAP | macro F1 | d F1 | gate |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in report.results:
        q = r.quality
        ratio = f"{r.ratio_to_fp32:.3f}" if r.ratio_to_fp32 is not None else "-"
        if q is not None and r.map_delta is not None and r.macro_f1_delta is not None:
            figures = (
                f"{q.mean_average_precision:.4f} | {r.map_delta:+.4f} | "
                f"{q.macro_f1:.4f} | {r.macro_f1_delta:+.4f}"
            )
        else:
            figures = "- | - | - | -"
        gate = "pass" if r.passed else f"**FAILED** ({r.note})"
        lines.append(
            f"| {r.format} | {Path(r.path).name} | {r.size_bytes / 1e6:.3f} | {ratio} | "
            f"{r.max_abs_diff:.4f} | {r.mean_abs_diff:.5f} | {figures} | {gate} |"
        )
    return "\n".join(lines) + "\n"


def write_report(report: ConversionReport, out_dir: Path) -> None:
    """Write conversion.json and conversion.md into `out_dir`, each whole or not at all.
    Returns None; raises OSError when the folder is not writable."""
    atomic_write_text(Path(out_dir) / REPORT_JSON, json_text(report.to_dict()))
    atomic_write_text(Path(out_dir) / REPORT_MARKDOWN, report_markdown(report))
