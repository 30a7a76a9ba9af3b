"""Timing and the one ratio definition, shared by every target (imports only the records).

- `time_invokes`: a bare timed loop (`benchmarks/bench_overhead.py` checks it adds nothing
  measurable over a plain loop).
- `interleaved_rounds`: every row timed in turn, in small blocks, for several rounds, the
  order rotating each round, so a burst of load from other processes hits all rows alike.
- `round_ratio`: the ratio of two rows' latencies: the median over rounds of round i's p50
  over round i's p50. Pairing the rounds cancels load that comes and goes between them; the
  median keeps one disturbed round from moving the figure. Every ratio posterlite reports
  (anchor, int8 / fp32, browser / native LiteRT, a format's page against the int8 page) is
  this one.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from posterlite.bench.records import BenchRow, LatencyStats
from posterlite.errors import PosterliteError

# Invokes of one row in a row within a round: small, so every row's samples of a round
# spread over the whole round and see the same load from other processes.
INTERLEAVE_BLOCK = 5


def time_invokes(invoke: Callable[[], object], runs: int, warmup: int) -> list[float]:
    """Seconds per call of `invoke` for `runs` calls after `warmup` untimed ones.

    The loop is deliberately bare (perf_counter around the call, preallocated list) so it
    adds nothing measurable over a plain `invoke()` loop. Raises PosterliteError when
    `runs` < 1.
    """
    if runs < 1:
        raise PosterliteError(f"runs must be >= 1, got {runs}")
    for _ in range(warmup):
        invoke()
    samples = [0.0] * runs
    clock = time.perf_counter
    for index in range(runs):
        start = clock()
        invoke()
        samples[index] = clock() - start
    return samples


@dataclass
class Timed:
    """One row being timed: its invoke and the samples of each round."""

    row: BenchRow
    invoke: Callable[[], object]
    first_s: float | None = None
    rounds: list[list[float]] = field(default_factory=list)


def interleaved_rounds(
    timed: Sequence[Timed],
    rounds: int,
    runs: int,
    warmup: int,
    on_round: Callable[[], None] = lambda: None,
    block: int = INTERLEAVE_BLOCK,
) -> None:
    """`rounds` rounds of `runs` timed invokes per row, the rows taking turns in blocks;
    sets each row's `latency` from all its rounds so far (so calling it again adds rounds).

    Within a round the rows take turns, `block` timed invokes each, until each has `runs`;
    the order of turns rotates every round. One untimed invoke precedes each block, so the
    caches another model filled are refilled by this one outside the timed loop. Raises
    PosterliteError when `rounds` < 1.
    """
    if rounds < 1:
        raise PosterliteError(f"--rounds must be >= 1, got {rounds}")
    for item in timed:
        for _ in range(warmup):
            item.invoke()
    count = len(timed)
    block = max(1, block)
    done_before = len(timed[0].rounds) if timed else 0  # rounds of earlier calls
    for index in range(done_before, done_before + rounds):
        samples: list[list[float]] = [[] for _ in timed]
        done = 0
        while done < runs:
            size = min(block, runs - done)
            for offset in range(count):
                position = (index + offset) % count
                samples[position] += time_invokes(timed[position].invoke, size, 1)
            done += size
        for item, taken in zip(timed, samples, strict=True):
            item.rounds.append(taken)
        on_round()
    for item in timed:
        item.row.latency = LatencyStats.from_rounds(item.rounds, item.first_s)


def round_ratio(
    numerator_p50_ms: Sequence[float], denominator_p50_ms: Sequence[float]
) -> tuple[float, tuple[float, ...]]:
    """(median of the per-round ratios, the per-round ratios): round i's numerator p50 over
    round i's denominator p50. Pure. Raises ValueError unless both have the same number
    (>= 1) of positive p50s."""
    if len(numerator_p50_ms) != len(denominator_p50_ms) or not numerator_p50_ms:
        raise ValueError(
            f"one p50 per round on each side (got {len(numerator_p50_ms)} "
            f"and {len(denominator_p50_ms)})"
        )
    if not all(v > 0 for v in (*numerator_p50_ms, *denominator_p50_ms)):
        raise ValueError(f"p50s must be positive (got {numerator_p50_ms}, {denominator_p50_ms})")
    per_round = tuple(a / b for a, b in zip(numerator_p50_ms, denominator_p50_ms, strict=True))
    return float(statistics.median(per_round)), per_round
