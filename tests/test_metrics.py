"""Metrics agree with hand-computed values on small cases."""

from __future__ import annotations

import numpy as np

from posterlite.metrics import evaluate, report_markdown, tune_thresholds

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


def test_genres_without_positives_are_left_out_of_every_macro_figure() -> None:
    """Two real genres and two of the scheme with no positive: macro F1, mAP and the paper's
    macro figures are those of the two real genres (sklearn with `labels=`), and the
    report names the two left out."""
    from sklearn.metrics import f1_score, precision_score, recall_score

    genres = ("A", "B", "Crime", "Other")
    y = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [1, 1, 0, 0], [0, 1, 0, 0]])
    p = np.array(
        [[0.9, 0.2, 0.7, 0.1], [0.6, 0.8, 0.1, 0.1], [0.7, 0.4, 0.1, 0.2], [0.1, 0.9, 0.6, 0.1]]
    )
    report = evaluate(y, p, genres)
    real = evaluate(y[:, :2], p[:, :2], genres[:2])
    assert report.genres_left_out == ("Crime", "Other") and real.genres_left_out == ()
    assert report.macro_f1 == real.macro_f1 == f1_score(y[:, :2], p[:, :2] >= 0.5, average="macro")
    assert report.macro_f1 > 0.5 > f1_score(y, p >= 0.5, average="macro", zero_division=0)
    assert report.mean_average_precision == real.mean_average_precision
    assert report.paper_precision == precision_score(y[:, :2], p[:, :2] >= 0.5, average="macro")
    assert report.paper_recall == recall_score(y[:, :2], p[:, :2] >= 0.5, average="macro")
    assert report.paper_f1 == report.macro_f1
    # Micro figures keep every genre: the Crime false positives count against precision.
    assert report.micro_f1 < real.micro_f1
    text = report_markdown(report)
    assert "(no positive in this set): Crime, Other" in text
    assert "| Crime | 0.000 | 0.000 | 0.000 | n/a | 0 | 0.500 |" in text
    assert "left out" not in report_markdown(real)


def test_no_genre_with_a_positive_scores_nan() -> None:
    report = evaluate(np.zeros((3, 2)), np.full((3, 2), 0.7), ("A", "B"))
    assert np.isnan(report.macro_f1) and np.isnan(report.mean_average_precision)
    assert report.genres_left_out == ("A", "B")
