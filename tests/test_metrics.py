"""Metrics agree with hand-computed values on small cases."""

from __future__ import annotations

import numpy as np

from posterlite.metrics import evaluate, tune_thresholds

GENRES = ("A", "B", "C")


def test_perfect_predictions() -> None:
    y = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0]])
    report = evaluate(y, y.astype(float) * 0.9 + 0.05, GENRES)
    assert report.macro_f1 == 1.0 and report.subset_accuracy == 1.0
    assert report.mean_average_precision == 1.0 and report.hamming_loss == 0.0
    assert report.paper_accuracy == 1.0


def test_hand_computed_case() -> None:
    y = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1]])
    p = np.array([[0.9, 0.6, 0.1], [0.2, 0.7, 0.1], [0.1, 0.4, 0.2], [0.3, 0.2, 0.8]])
    report = evaluate(y, p, GENRES)
    a, b, c = report.per_genre
    assert (a.precision, a.recall) == (1.0, 0.5)
    assert (b.precision, b.recall) == (0.5, 0.5)
    assert (c.precision, c.recall) == (1.0, 1.0)
    assert report.subset_accuracy == 0.25  # only the last row matches exactly
    assert abs(report.hamming_loss - 3 / 12) < 1e-12
    # example-based accuracy: 1/2, 1/2, 0/1, 1/1
    assert abs(report.paper_accuracy - (0.5 + 0.5 + 0.0 + 1.0) / 4) < 1e-12
    assert a.confusion == (2, 0, 1, 1)


def test_absent_genre_left_out_of_map() -> None:
    y = np.array([[1, 0, 0], [0, 1, 0]])
    report = evaluate(y, np.array([[0.9, 0.1, 0.2], [0.1, 0.9, 0.3]]), GENRES)
    assert np.isnan(report.per_genre[2].average_precision)
    assert report.mean_average_precision == 1.0


def test_tuned_thresholds_beat_default_on_skewed_scores() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, (200, 3))
    p = np.clip(0.15 + 0.3 * y + rng.normal(0, 0.05, y.shape), 0, 1)  # positives around 0.45
    tuned = tune_thresholds(y, p)
    assert (tuned < 0.5).all()
    assert evaluate(y, p, GENRES, tuned).macro_f1 > evaluate(y, p, GENRES).macro_f1
