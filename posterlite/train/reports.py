"""What a run writes besides the model: the validation summary, the Markdown report,
training curves and the confusion plots, and the full-model consistency check.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from posterlite.fileio import JSONValue, atomic_path, jsonable
from posterlite.preprocess import pixels_to_input
from posterlite.train.dataset import Dataset, Workspace, decode_batch

if TYPE_CHECKING:
    import keras

    from posterlite.metrics import MultiLabelReport


def consistency_check(
    ws: Workspace, data: Dataset, model: keras.Model, probabilities: np.ndarray, size: int
) -> float:
    """Max |full model on images - probabilities used for the report| on a few val posters.

    Proves the saved image-in model is the model that was evaluated (cache, preprocessing
    and head wiring agree). Returns that maximum difference.
    """
    n = min(8, len(data.val.paths))
    inputs = pixels_to_input(decode_batch(data.val.paths[:n], size), "float32")
    direct = np.asarray(model(inputs, training=False), dtype=np.float64)
    return float(np.max(np.abs(direct - probabilities[:n])))


def summary(report: MultiLabelReport, tuned: MultiLabelReport) -> dict[str, JSONValue]:
    """The validation numbers of a run (at 0.5 and at tuned thresholds), JSON-ready.
    Returns metric name -> value (non-finite values as None)."""
    facts: dict[str, object] = {
        "n_samples": report.n_samples,
        "mAP": report.mean_average_precision,
        "macro_f1": report.macro_f1,
        "micro_f1": report.micro_f1,
        "hamming_loss": report.hamming_loss,
        "subset_accuracy": report.subset_accuracy,
        "paper_accuracy": report.paper_accuracy,
        "paper_f1": report.paper_f1,
        "per_genre_ap": {m.genre: m.average_precision for m in report.per_genre},
        "per_genre_f1": {m.genre: m.f1 for m in report.per_genre},
        "tuned_macro_f1": tuned.macro_f1,
        "tuned_micro_f1": tuned.micro_f1,
        # No positive in the scored set: left out of macro F1 and mAP (see metrics).
        "genres_left_out": list(report.genres_left_out),
    }
    return {name: jsonable(value) for name, value in facts.items()}


def plot_curves(history: dict[str, list[float]], path: Path, title: str) -> None:
    """Write loss / accuracy / PR-AUC per epoch (train and val, each stage) as a PNG at
    `path` (atomically). Returns nothing; raises OSError if `path` cannot be written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [("loss", "loss"), ("accuracy", "binary accuracy"), ("pr_auc", "PR-AUC (~mAP)")]
    fig, axes = plt.subplots(1, len(metrics), figsize=(13, 3.6))
    for axis, (key, label) in zip(axes, metrics, strict=True):
        for prefix in ("trunk_", "", "fine_tune_"):
            for split in ("", "val_"):
                values = history.get(f"{prefix}{split}{key}")
                if values:
                    axis.plot(
                        range(1, len(values) + 1), values, label=f"{prefix}{split or 'train_'}"
                    )
        axis.set_title(label)
        axis.set_xlabel("epoch")
        axis.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)


def plot_confusion(report: MultiLabelReport, path: Path, title: str) -> None:
    """Write one 2x2 confusion matrix per genre (threshold 0.5) as a PNG at `path`
    (atomically). Returns nothing; raises OSError if `path` cannot be written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(report.per_genre)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), squeeze=False)
    for axis, metrics in zip(axes.ravel(), report.per_genre, strict=False):
        tn, fp, fn, tp = metrics.confusion
        grid = np.array([[tn, fp], [fn, tp]])
        axis.imshow(grid, cmap="Blues")
        for (i, j), value in np.ndenumerate(grid):
            color = "white" if value > grid.max() / 2 else "black"
            axis.text(j, i, str(value), ha="center", va="center", color=color)
        axis.set_xticks([0, 1], ["pred 0", "pred 1"])
        axis.set_yticks([0, 1], ["true 0", "true 1"])
        axis.set_title(f"{metrics.genre} (F1 {metrics.f1:.2f})", fontsize=9)
    for axis in axes.ravel()[n:]:
        axis.axis("off")
    fig.suptitle(f"{title}: validation, threshold 0.5")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)


def report_md_titled(title: str, report: MultiLabelReport, tuned: MultiLabelReport) -> str:
    """The Markdown validation report: `report` at 0.5, then `tuned` (per-genre thresholds
    tuned on the same set). Returns the text."""
    from posterlite.metrics import report_markdown

    return (
        f"# Validation report: {title}\n\n"
        "## At the default threshold 0.5\n\n"
        + report_markdown(report)
        + "\n## At per-genre thresholds tuned on this same validation set (optimistic)\n\n"
        + report_markdown(tuned)
    )
