"""Comparisons between a run's rows: the latency ratios and each row's change against Keras.

Latency ratios (each `timing.round_ratio`: the median of per-round p50 ratios, so both
rows must come from the same rounds), per host thread count, and the same pairs per ARM
CPU class as guest instructions per inference (the arm64 target's rows):
- anchor: our int8 MobileNetV2 over Google's post-training int8 MobileNetV2, the same
  network and quantization recipe, so it isolates what posterlite adds (goal <= 1.10x);
- int8 / fp32 and int8 / fp16 of the same model;
- a model exported at a smaller input size over its full-size original (160 px / 224 px);
- the accuracy-first ensemble's int8 over the anchor model's int8 (goal <= 2.3x);
- browser / native LiteRT at the browser row's own thread count (goal <= 4x, unthrottled).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from posterlite.bench.models import ANCHOR_REFERENCE, ENSEMBLE_MODEL
from posterlite.bench.records import BenchRow, KerasDelta, KerasReference, ModelSpec, Ratio
from posterlite.bench.timing import round_ratio
from posterlite.formats import FLOAT_FORMATS, SHIPPED_FORMAT
from posterlite.metrics import MultiLabelReport

ANCHOR_MODEL = "mobilenet_v2"
ANCHOR_GOAL = 1.10
# The issue-13 target: browser p50 <= 4x native LiteRT's, same thread count, same run.
BROWSER_RATIO_GOAL = 4.0
# The issue-20 target: the ensemble at most 2.3x the anchor model's p50, same run.
ENSEMBLE_GOAL = 2.3


def row_ratio(name: str, top: BenchRow, bottom: BenchRow, goal: float | None, note: str) -> Ratio:
    """`top`'s latency over `bottom`'s, round by round. Raises ValueError when either has no
    latency or their rounds differ in number."""
    if top.latency is None or bottom.latency is None:
        raise ValueError(f"{top.label} / {bottom.label}: a row has no latency")
    value, per_round = round_ratio(top.latency.per_round_p50_ms, bottom.latency.per_round_p50_ms)
    return Ratio(
        name=name,
        numerator=top.label,
        denominator=bottom.label,
        threads=top.threads,
        value=value,
        per_round=per_round,
        goal=goal,
        note=note,
    )


def _paired(top: BenchRow, bottom: BenchRow) -> bool:
    """Both timed, in the same number of rounds."""
    if top.latency is None or bottom.latency is None:
        return False
    a, b = top.latency.per_round_p50_ms, bottom.latency.per_round_p50_ms
    return bool(a) and len(a) == len(b)


@dataclass(frozen=True)
class Pair:
    """Two rows of the same place (host thread count, or ARM CPU class) worth dividing."""

    name: str
    top: BenchRow
    bottom: BenchRow
    goal: float | None
    note: str


ANCHOR_NAME = "anchor: our int8 MobileNetV2 / Google's int8 MobileNetV2"
ANCHOR_NOTE = (
    "same network, both post-training int8; ours adds uint8 I/O, a 6-genre head and metadata"
)
ENSEMBLE_NAME = f"ensemble: {ENSEMBLE_MODEL} / {ANCHOR_MODEL}"
ENSEMBLE_NOTE = "both int8; the ensemble runs two backbones on one input"
INT8_NOTE = (
    "depends on the CPU's int8 kernels: lower where XNNPACK has fast int8 dot products than "
    "on wide float units (e.g. AVX-512)"
)


def _is_anchor_reference(row: BenchRow) -> bool:
    return row.kind == "reference" and Path(row.path).name == ANCHOR_REFERENCE


def pairs(rows: Sequence[BenchRow]) -> list[Pair]:
    """The pairs among `rows` (all of one place): the anchor, the ensemble over the anchor
    model, int8 over each float format of the same model, and a model exported at a
    smaller input size over its full-size original (`<name>_<size>` beside `<name>`, same
    format)."""
    found: list[Pair] = []
    ours = [r for r in rows if r.kind == "posterlite"]
    for row in (r for r in ours if r.model == ANCHOR_MODEL and r.format == SHIPPED_FORMAT):
        for reference in filter(_is_anchor_reference, rows):
            found.append(Pair(ANCHOR_NAME, row, reference, ANCHOR_GOAL, ANCHOR_NOTE))
    for row in (r for r in ours if r.model == ENSEMBLE_MODEL and r.format == SHIPPED_FORMAT):
        for single in (r for r in ours if r.model == ANCHOR_MODEL and r.format == SHIPPED_FORMAT):
            found.append(Pair(ENSEMBLE_NAME, row, single, ENSEMBLE_GOAL, ENSEMBLE_NOTE))
    for row in (r for r in ours if r.format == SHIPPED_FORMAT):
        for base in FLOAT_FORMATS:
            for other in (r for r in ours if r.model == row.model and r.format == base):
                found.append(Pair(f"{SHIPPED_FORMAT} / {base}", row, other, None, INT8_NOTE))
    for row in ours:
        for full in ours:
            small, big = row.input_size, full.input_size
            if (
                small is not None
                and big is not None
                and small < big
                and row.format == full.format
                and row.model == f"{full.model}_{small}"
            ):
                found.append(Pair(f"{small} px / {big} px", row, full, None,
                                  f"the same model exported at {small} px"))  # fmt: skip
    return found


def instruction_ratio(pair: Pair) -> Ratio | None:
    """`pair`'s guest instructions per inference (medians) as a ratio; None without counts."""
    top, bottom = pair.top.arm, pair.bottom.arm
    if top is None or bottom is None or not bottom.instructions_median:
        return None
    return Ratio(
        name=pair.name,
        numerator=pair.top.label,
        denominator=pair.bottom.label,
        threads=pair.top.threads,
        value=top.instructions_median / bottom.instructions_median,
        goal=pair.goal,
        note=f"{pair.note}; guest instructions per inference on the same emulated CPU class "
        "(not cycles: no caches, no pipeline)",
        basis="instructions",
        cpu=top.cpu,
    )


def compute_ratios(rows: Sequence[BenchRow]) -> list[Ratio]:
    """The browser rows over native LiteRT; per host thread count the p50 ratios of
    `pairs`; per ARM CPU class their instruction ratios."""
    timed = [r for r in rows if r.latency is not None and r.latency.p50_ms]
    browser_rows = [r for r in timed if r.target == "browser"]
    timed = [r for r in timed if r.target != "browser"]
    ratios: list[Ratio] = []
    for row in browser_rows:  # goal <= 4x native LiteRT, unthrottled
        # Native LiteRT at the browser row's own thread count: a threaded page over a
        # one-thread native run would flatter the browser by the threads' speed-up.
        natives = (
            r
            for r in timed
            if r.target == "cpu"
            and r.kind == row.kind
            and r.path == row.path
            and r.threads == row.threads
            and _paired(row, r)
        )
        for native in natives:
            throttle = row.device.get("cpu_throttle", "?")
            name = f"browser ({row.device.get('model', '?')}) / native LiteRT"
            note = (
                f"same run, both at {row.threads} thread(s); the page's p50 (one poster, "
                "decode excluded) over invoke's p50"
            )
            goal = BROWSER_RATIO_GOAL if throttle == "1" else None
            ratios.append(row_ratio(name, row, native, goal, note))
    for threads in sorted({r.threads for r in timed if r.threads is not None}):
        same = [r for r in timed if r.threads == threads]
        for pair in pairs(same):
            if _paired(pair.top, pair.bottom):
                ratios.append(row_ratio(pair.name, pair.top, pair.bottom, pair.goal, pair.note))
    arm_rows = [r for r in rows if r.arm is not None]
    for cpu in dict.fromkeys(r.arm.cpu for r in arm_rows if r.arm is not None):
        same = [r for r in arm_rows if r.arm is not None and r.arm.cpu == cpu]
        ratios += [ratio for ratio in map(instruction_ratio, pairs(same)) if ratio is not None]
    return ratios


def keras_deltas(rows: Sequence[BenchRow], specs: Sequence[ModelSpec]) -> None:
    """Fill each row's change against its Keras model: measured here, else recorded."""
    measured = {r.model: r.accuracy for r in rows if r.kind == "keras" and r.accuracy}
    recorded = {s.name: s.keras_reference for s in specs if s.keras_reference is not None}
    for row in rows:
        if row.kind != "posterlite" or row.accuracy is None:
            continue
        base: MultiLabelReport | KerasReference | None = measured.get(row.model)
        if base is not None:
            source: str = "measured"
        else:
            base, source = recorded.get(row.model), "recorded"
        if base is not None:
            row.vs_keras = KerasDelta(
                row.accuracy.mean_average_precision - base.mean_average_precision,
                row.accuracy.macro_f1 - base.macro_f1,
                "measured" if source == "measured" else "recorded",
            )
