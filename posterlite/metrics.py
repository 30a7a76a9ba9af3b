"""Multi-label quality figures, computed the same way by train, convert and bench.

All figures come from scikit-learn, following its conventions (`zero_division=0`):
- per genre: precision, recall, F1 at the decision threshold, average precision (AP);
- macro / micro F1, mAP (mean over genres of AP), hamming loss, subset accuracy (exact
  match of the whole label set);
- the paper's figures, so results compare with Andika & Wulandhari's tables: "accuracy" is
  the example-based accuracy |Y & Y'| / |Y | Y'| (sklearn's samples-averaged Jaccard), and
  precision / recall / F1 are macro averages over the genres at the threshold.

Genres with no positive in the set are left out of every macro figure and mAP (sklearn's
`labels=` selects the scored genres): their AP is undefined and their F1 is 0 whatever
the model does, so counting them would only measure the data set's genre list
(`MultiLabelReport.genres_left_out` names them; reports print them). Micro F1, hamming
loss and the example-based figures keep every genre: a false positive of an absent genre
is still a wrong prediction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from posterlite.genres import DEFAULT_THRESHOLD


@dataclass(frozen=True)
class GenreMetrics:
    """One genre's scores at one threshold."""

    genre: str
    precision: float
    recall: float
    f1: float
    average_precision: float  # nan when the genre has no positive in the set
    support: int
    threshold: float
    confusion: tuple[int, int, int, int]  # tn, fp, fn, tp


@dataclass(frozen=True)
class MultiLabelReport:
    """Every figure of a multi-label evaluation (`evaluate`): per genre and averaged."""

    genres: tuple[str, ...]
    n_samples: int
    per_genre: tuple[GenreMetrics, ...]
    macro_f1: float
    micro_f1: float
    mean_average_precision: float
    hamming_loss: float
    subset_accuracy: float
    paper_accuracy: float
    paper_precision: float
    paper_recall: float
    paper_f1: float
    thresholds: tuple[float, ...] = field(default=())
    genres_left_out: tuple[str, ...] = field(default=())  # no positive: not in macro / mAP

    def to_dict(self) -> dict[str, object]:
        """Every field (per-genre metrics as nested dicts), for report.json."""
        return asdict(self)


def as_thresholds(thresholds: float | Sequence[float] | np.ndarray, n_genres: int) -> np.ndarray:
    """`thresholds` (one value, or one per genre) as a float64 (n_genres,) array; raises
    ValueError when the count does not broadcast."""
    values = np.asarray(thresholds, dtype=np.float64)
    cut: np.ndarray = np.broadcast_to(values, (n_genres,)).copy()
    return cut


def binarize(
    probabilities: np.ndarray, thresholds: float | Sequence[float] | np.ndarray
) -> np.ndarray:
    """0/1 int64 decisions (N, G): probability >= the genre's threshold; raises
    ValueError when the thresholds do not broadcast to G."""
    cut = as_thresholds(thresholds, probabilities.shape[1])
    return (probabilities >= cut[None, :]).astype(np.int64)


def evaluate(
    y_true: np.ndarray,
    probabilities: np.ndarray,
    genres: Sequence[str],
    thresholds: float | Sequence[float] | np.ndarray = DEFAULT_THRESHOLD,
) -> MultiLabelReport:
    """Every figure of the report for multi-hot `y_true` and sigmoid `probabilities`."""
    from sklearn.metrics import (
        accuracy_score,
        average_precision_score,
        f1_score,
        hamming_loss,
        jaccard_score,
        multilabel_confusion_matrix,
        precision_recall_fscore_support,
        precision_score,
        recall_score,
    )

    y_true = np.asarray(y_true).astype(np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if y_true.shape != probabilities.shape or y_true.ndim != 2:
        raise ValueError(
            f"shape mismatch: labels {y_true.shape} vs probabilities {probabilities.shape}"
        )
    cut = as_thresholds(thresholds, y_true.shape[1])
    y_pred = binarize(probabilities, cut)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, average=None, zero_division=0
    )
    confusion = multilabel_confusion_matrix(y_true, y_pred)
    per_genre = []
    for index, genre in enumerate(genres):
        positives = int(y_true[:, index].sum())
        ap = (
            float(average_precision_score(y_true[:, index], probabilities[:, index]))
            if 0 < positives
            else float("nan")
        )
        tn, fp, fn, tp = (int(v) for v in confusion[index].ravel())
        per_genre.append(
            GenreMetrics(
                genre=genre,
                precision=float(precision[index]),
                recall=float(recall[index]),
                f1=float(f1[index]),
                average_precision=ap,
                support=int(support[index]),
                threshold=float(cut[index]),
                confusion=(tn, fp, fn, tp),
            )
        )
    scored = [int(i) for i in np.flatnonzero(y_true.sum(axis=0) > 0)]

    def macro(score: Callable[..., float]) -> float:  # a sklearn label-averaged score
        if not scored:
            return float("nan")
        return float(score(y_true, y_pred, labels=scored, average="macro", zero_division=0))

    macro_f1 = macro(f1_score)
    mean_ap = (
        float(average_precision_score(y_true[:, scored], probabilities[:, scored], average="macro"))
        if scored
        else float("nan")
    )
    return MultiLabelReport(
        genres=tuple(genres),
        n_samples=int(y_true.shape[0]),
        per_genre=tuple(per_genre),
        macro_f1=macro_f1,
        micro_f1=float(f1_score(y_true, y_pred, average="micro", zero_division=0)),
        mean_average_precision=mean_ap,
        hamming_loss=float(hamming_loss(y_true, y_pred)),
        subset_accuracy=float(accuracy_score(y_true, y_pred)),
        paper_accuracy=float(jaccard_score(y_true, y_pred, average="samples", zero_division=0)),
        paper_precision=macro(precision_score),
        paper_recall=macro(recall_score),
        paper_f1=macro_f1,
        thresholds=tuple(float(v) for v in cut),
        genres_left_out=tuple(g for i, g in enumerate(genres) if i not in scored),
    )


def tune_thresholds(
    y_true: np.ndarray,
    probabilities: np.ndarray,
    grid: Sequence[float] = tuple(np.round(np.arange(0.05, 0.951, 0.025), 3)),
) -> np.ndarray:
    """Per-genre threshold maximising that genre's F1 on a validation set (ties: closest to 0.5)."""
    from sklearn.metrics import f1_score

    y_true = np.asarray(y_true).astype(np.int64)
    chosen = np.full(y_true.shape[1], DEFAULT_THRESHOLD)
    for index in range(y_true.shape[1]):
        if y_true[:, index].sum() == 0:
            continue
        scores = [
            (
                f1_score(y_true[:, index], probabilities[:, index] >= t, zero_division=0),
                -abs(t - DEFAULT_THRESHOLD),
                t,
            )
            for t in grid
        ]
        chosen[index] = max(scores)[2]
    return chosen


def report_markdown(report: MultiLabelReport) -> str:
    """Per-genre table plus the summary figures, as Markdown."""
    lines = [
        "| genre | precision | recall | F1 | AP | support | threshold |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for m in report.per_genre:
        ap = "n/a" if np.isnan(m.average_precision) else f"{m.average_precision:.3f}"
        lines.append(
            f"| {m.genre} | {m.precision:.3f} | {m.recall:.3f} | {m.f1:.3f} | "
            f"{ap} | {m.support} | {m.threshold:.3f} |"
        )
    lines += ["", f"- samples: {report.n_samples}"]
    if report.genres_left_out:
        lines.append(
            f"- left out of macro F1, mAP and the paper's precision / recall / F1 (no positive "
            f"in this set): {', '.join(report.genres_left_out)}"
        )
    lines += [
        f"- mAP: {report.mean_average_precision:.4f}",
        f"- macro F1: {report.macro_f1:.4f}; micro F1: {report.micro_f1:.4f}",
        f"- hamming loss: {report.hamming_loss:.4f}; subset accuracy: {report.subset_accuracy:.4f}",
        f"- paper accuracy (example-based): {report.paper_accuracy:.4f}; paper precision / "
        f"recall / F1 (macro): {report.paper_precision:.4f} / {report.paper_recall:.4f} / "
        f"{report.paper_f1:.4f}",
    ]
    return "\n".join(lines) + "\n"
