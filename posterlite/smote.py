"""Multi-label SMOTE in embedding space, with a memory bound decided before it runs.

The paper ran SMOTE on raw pixels (224 x 224 x 3 = 150,528 values per poster) and ran a
51 GB machine out of memory. Here SMOTE (imbalanced-learn) runs on a frozen network's
pooled embeddings (1024 values for MobileNetV1, 1280 for V2, 128 for the small CNN), and
the number of synthetic samples is capped so that the resampled set fits a byte budget.

SMOTE is single-label; posters are multi-label. The multi-label use is the label powerset:
- every distinct label set (e.g. ``Action|Crime``) is one class;
- label sets with at least ``k_neighbors + 1`` training posters are eligible; each is raised
  towards ``target_fraction`` of the largest label set's count (never lowered);
- rarer label sets (fewer than ``k_neighbors + 1`` posters) are left untouched: interpolating
  between 2-5 posters would clone them, and SMOTE needs k neighbours of the same class;
- the total synthetic count is capped (``max_synthetic`` and the byte budget); when the cap
  bites, every eligible class's deficit shrinks in proportion;
- a synthetic sample lies between two posters of the same label set, so it inherits that
  exact label set: no label is invented.

Memory: imbalanced-learn copies the originals (n_in x dim), builds the synthetic blocks
(n_synthetic x dim) and stacks both (n_out x dim): 2 x n_out x dim x itemsize. Its nearest
neighbour search adds one class's distance block (<= m^2 x 8 bytes, chunked by
scikit-learn's `working_memory`, set to 16 MiB here). So the bound is

    bound = 2 x n_out x dim x itemsize + min(m_max^2 x 8, 16 MiB)

(m_max: the largest oversampled class). tests/test_train.py checks it with tracemalloc on a
20k x 256 synthetic embedding set (measured 47 MB for a 64 MB bound); each SMOTE run's card
records its own bound and measured peak. `plan_smote` caps n_synthetic so the bound stays
under `max_bytes`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DEFAULT_K_NEIGHBORS = 5
DEFAULT_TARGET_FRACTION = 0.5
DEFAULT_MAX_BYTES = 1 << 30  # 1 GiB for the resampling step
# At most this many synthetic rows per original: SMOTE should rebalance, not drown the data.
DEFAULT_MAX_RATIO = 0.5
# imbalanced-learn allocates the synthetic block and the stacked output: ~2 copies of n_out.
PEAK_COPIES = 2
NEIGHBOUR_MEMORY_MIB = 16


@dataclass(frozen=True)
class SmotePlan:
    """How many samples each label-powerset class ends with, and the memory it costs."""

    counts: dict[int, int]  # label-set code -> posters in the training set
    targets: dict[int, int]  # eligible codes only -> count after resampling
    n_in: int
    n_synthetic: int
    dim: int
    itemsize: int
    capped: bool = False
    skipped_rare: list[int] = field(default_factory=list)

    @property
    def n_out(self) -> int:
        """Rows after SMOTE: real plus synthetic."""
        return self.n_in + self.n_synthetic

    @property
    def bound_bytes(self) -> int:
        """Peak bytes SMOTE may allocate (see the module docstring); 0 when it is skipped."""
        if self.n_synthetic == 0:
            return 0
        return _bound(self.n_in, self.n_out, self.dim, self.itemsize, self.largest_class)

    @property
    def largest_class(self) -> int:
        """Posters in the largest label set that is oversampled (0: none is)."""
        grown = [self.counts[c] for c, t in self.targets.items() if t > self.counts[c]]
        return max(grown, default=0)


def _bound(n_in: int, n_out: int, dim: int, itemsize: int, largest_class: int) -> int:
    neighbours = min(largest_class**2 * 8, NEIGHBOUR_MEMORY_MIB * 2**20)
    return PEAK_COPIES * n_out * dim * itemsize + neighbours


def label_codes(labels: np.ndarray) -> np.ndarray:
    """Multi-hot (n, G) to one integer per row: the label set as a bit mask."""
    bits = (np.asarray(labels) >= 0.5).astype(np.int64)
    return bits @ (1 << np.arange(bits.shape[1], dtype=np.int64))


def codes_to_labels(codes: np.ndarray, n_genres: int) -> np.ndarray:
    """Label-set bit masks back to multi-hot float32 (n, n_genres) (`label_codes`' inverse)."""
    codes = np.asarray(codes, dtype=np.int64)
    return ((codes[:, None] >> np.arange(n_genres)[None, :]) & 1).astype(np.float32)


def plan_smote(
    codes: np.ndarray,
    dim: int,
    itemsize: int = 4,
    k_neighbors: int = DEFAULT_K_NEIGHBORS,
    target_fraction: float = DEFAULT_TARGET_FRACTION,
    max_synthetic: int | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_ratio: float = DEFAULT_MAX_RATIO,
) -> SmotePlan:
    """Targets per label set, capped by `max_synthetic` and by the byte budget."""
    values, counts = np.unique(codes, return_counts=True)
    count_of = {int(v): int(c) for v, c in zip(values, counts, strict=True)}
    n_in = int(len(codes))
    largest = max(count_of.values()) if count_of else 0
    goal = int(round(target_fraction * largest))
    eligible = {c: n for c, n in count_of.items() if n >= k_neighbors + 1}
    rare = sorted(c for c in count_of if c not in eligible)
    deficits = {c: max(0, goal - n) for c, n in eligible.items()}
    wanted = sum(deficits.values())
    # Cap: the explicit count, the ratio, and what the byte budget leaves (worst-case
    # neighbour term reserved up front, so the cap never depends on which class grows).
    largest_grown = max((eligible[c] for c, d in deficits.items() if d > 0), default=0)
    fixed = min(largest_grown**2 * 8, NEIGHBOUR_MEMORY_MIB * 2**20)
    by_bytes = max(0, (max_bytes - fixed) // (PEAK_COPIES * dim * itemsize) - n_in)
    cap = min(by_bytes, int(max_ratio * n_in))
    if max_synthetic is not None:
        cap = min(cap, max_synthetic)
    capped = wanted > cap
    scale = cap / wanted if capped and wanted else 1.0
    targets = {c: eligible[c] + int(np.floor(d * scale)) for c, d in deficits.items()}
    n_synthetic = sum(targets[c] - eligible[c] for c in targets)
    return SmotePlan(
        counts=count_of,
        targets=targets,
        n_in=n_in,
        n_synthetic=n_synthetic,
        dim=dim,
        itemsize=itemsize,
        capped=capped,
        skipped_rare=rare,
    )


@dataclass(frozen=True)
class SmoteResult:
    """Features and labels after SMOTE (real rows first), and the plan that made them."""

    features: np.ndarray
    labels: np.ndarray
    plan: SmotePlan

    def summary(self) -> dict[str, int | bool]:
        """The plan's counts for a card: posters in / synthetic / out, label sets (all,
        oversampled, too rare), whether the cap applied and the memory bound in bytes."""
        return {
            "n_in": self.plan.n_in,
            "n_synthetic": self.plan.n_synthetic,
            "n_out": self.plan.n_out,
            "label_sets": len(self.plan.counts),
            "label_sets_oversampled": sum(
                1 for c, t in self.plan.targets.items() if t > self.plan.counts[c]
            ),
            "label_sets_too_rare": len(self.plan.skipped_rare),
            "capped": self.plan.capped,
            "bound_bytes": self.plan.bound_bytes,
        }


def smote_multilabel(
    features: np.ndarray,
    labels: np.ndarray,
    seed: int = 0,
    k_neighbors: int = DEFAULT_K_NEIGHBORS,
    target_fraction: float = DEFAULT_TARGET_FRACTION,
    max_synthetic: int | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_ratio: float = DEFAULT_MAX_RATIO,
) -> SmoteResult:
    """Label-powerset SMOTE on embeddings; synthetic rows inherit their class's label set."""
    from imblearn.over_sampling import SMOTE

    features = np.ascontiguousarray(features, dtype=np.float32)
    codes = label_codes(labels)
    plan = plan_smote(
        codes,
        dim=features.shape[1],
        itemsize=features.itemsize,
        k_neighbors=k_neighbors,
        target_fraction=target_fraction,
        max_synthetic=max_synthetic,
        max_bytes=max_bytes,
        max_ratio=max_ratio,
    )
    strategy = {c: t for c, t in plan.targets.items() if t > plan.counts[c]}
    if not strategy:
        return SmoteResult(features, np.asarray(labels, np.float32), plan)
    from sklearn import config_context

    sampler = SMOTE(sampling_strategy=strategy, k_neighbors=k_neighbors, random_state=seed)
    with config_context(working_memory=NEIGHBOUR_MEMORY_MIB):
        resampled, new_codes = sampler.fit_resample(features, codes)
    # imbalanced-learn keeps the originals first, in order, then the synthetic rows.
    out_labels = np.concatenate(
        [
            np.asarray(labels, np.float32),
            codes_to_labels(new_codes[len(codes) :], labels.shape[1]),
        ]
    )
    return SmoteResult(resampled.astype(np.float32, copy=False), out_labels, plan)
