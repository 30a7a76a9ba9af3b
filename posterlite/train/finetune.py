"""Fine-tuning a MobileNet end to end after its head (`blocks.fine_tune_blocks` tunes the
top N blocks only; `heads` calls it inside the head stage, and this module calls `heads`).

- `train_end_to_end` / `fine_tune_all` (`--fine-tune all`): every backbone layer, from the
  trained head, on augmented posters from a decoded uint8 cache; resumable per epoch.
- `export_at_size`: a trained MobileNet re-exported at another input size (the fast 160 px
  variant: the convolution weights are size-agnostic).

Where oversampling goes (issue 12, item 5): SMOTE stays in embedding space for the head
stage (`heads.train_head`, frozen features; synthetic embeddings have no pixels), and while
the backbone trains a label-powerset balanced sampler (`powerset_pool`: imbalanced-learn's
RandomOverSampler over label-set classes, the same targets as SMOTE's plan) decides which
real posters an epoch sees; augmentation makes the repeats differ. So `_smote` twins
differ from their plain twins in exactly those two places.

Batch norm: frozen by default (inference mode, moving statistics). The imported ImageNet
weights are BN-folded (each BN is identity + bias under its moving statistics); batch
statistics of 32 posters would replace that identity, so "train" is an option, not the
default.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict, cast

import numpy as np

from posterlite.archs import backbone_spec
from posterlite.card import MODEL_NAME
from posterlite.errors import PosterliteError
from posterlite.fileio import JSONValue, atomic_path, atomic_write_text, sha256_file
from posterlite.train.config import (
    CONFUSION_PNG,
    REPORT_JSON,
    REPORT_MD,
    THRESHOLDS_NAME,
    EndToEndConfig,
    TrainConfig,
    write_json,
)
from posterlite.train.dataset import (
    Dataset,
    Workspace,
    decoded_pixels,
    predict_pixels,
)
from posterlite.train.distill import blend_targets, teacher_probabilities
from posterlite.train.heads import Trained, train_mobilenet
from posterlite.train.models import (
    assemble,
    make_loss,
)

# --- end to end (`--fine-tune all`) ---------------------------------------------------
CHECKPOINT_DIR = "finetune"  # inside the run's out dir: state.json + weights per epoch
STATE_NAME = "state.json"
LAST_WEIGHTS = "last.weights.h5"
BEST_WEIGHTS = "best.weights.h5"
if TYPE_CHECKING:  # imported lazily at run time (seconds): named here for the annotations
    import keras
    import tensorflow as tf
    from tqdm import tqdm


class EpochHistory(TypedDict):
    """One value per finished epoch of `fine_tune_all` (state.json's "history")."""

    loss: list[float]
    val_map: list[float]
    size: list[int]
    seconds: list[float]


class FineTuneState(TypedDict, total=False):
    """`finetune/state.json`: what an interrupted `fine_tune_all` resumes from."""

    config_key: str  # `TrainConfig.key()`: a changed config starts over
    epochs_done: int
    best_epoch: int  # 0: the starting point (the trained head)
    best_val_map: float
    start_val_map: float
    stopped: bool  # early-stopped
    history: EpochHistory


OPTIMIZER_STATE = "optimizer.npz"
BEST_VAL = "best_val_probabilities.npy"


def augment(image: tf.Tensor, seed: tf.Tensor, size: int, e2e: EndToEndConfig) -> tf.Tensor:
    """One poster (uint8 HxWx3 tensor) -> augmented float32 (size, size, 3) in [-1, 1].

    Stateless random ops keyed by `seed` (int64 [2]): the same seed gives the same poster
    whatever the parallelism. Mild random-resized crop (posters carry title text and layout:
    at least `crop_scale` of the area), the crop resized with plain bilinear WITHOUT
    antialiasing (what phone-side bitmap scalers do), horizontal flip, brightness /
    contrast / saturation jitter.
    """
    import tensorflow as tf

    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 5)
    begin, extent, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image),
        bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]], tf.float32),
        seed=seeds[0],
        min_object_covered=0.0,
        aspect_ratio_range=(e2e.crop_ratio, 1.0 / e2e.crop_ratio),
        area_range=(e2e.crop_scale, 1.0),
        max_attempts=20,
        use_image_if_no_bounding_boxes=True,
    )
    crop = tf.slice(image, begin, extent)
    x = tf.image.resize(
        tf.cast(crop, tf.float32)[None], (size, size), method="bilinear", antialias=False
    )[0]
    x = x / 255.0
    if e2e.flip:
        x = tf.image.stateless_random_flip_left_right(x, seeds[1])
    if e2e.jitter > 0:
        low, high = 1.0 - e2e.jitter, 1.0 + e2e.jitter
        x = tf.image.stateless_random_brightness(x, e2e.jitter, seeds[2])
        x = tf.image.stateless_random_contrast(x, low, high, seeds[3])
        x = tf.image.stateless_random_saturation(x, low, high, seeds[4])
    return tf.clip_by_value(x, 0.0, 1.0) * 2.0 - 1.0


def powerset_pool(labels: np.ndarray, seed: int) -> tuple[np.ndarray, dict[str, int]]:
    """Training indices resampled by label powerset (imbalanced-learn RandomOverSampler).

    Same policy as the head stage's SMOTE (`posterlite.smote.plan_smote`): label sets with
    enough posters are raised towards half the largest set's count, rare ones left alone,
    synthetic draws <= 0.5 x the train set. Pixels are never synthesised: oversampled
    posters are repeats, which augmentation makes differ. Epochs draw from this pool.
    Returns (pool of train indices, {"oversampled_label_sets", "pool"} counts).
    """
    from imblearn.over_sampling import RandomOverSampler

    from posterlite.smote import label_codes, plan_smote

    codes = label_codes(labels)
    plan = plan_smote(codes, dim=1)
    strategy = {c: t for c, t in plan.targets.items() if t > plan.counts[c]}
    if not strategy:
        return np.arange(len(labels)), {"oversampled_label_sets": 0, "pool": len(labels)}
    sampler = RandomOverSampler(sampling_strategy=strategy, random_state=seed)
    index, _ = sampler.fit_resample(np.arange(len(labels))[:, None], codes)
    pool = index[:, 0].astype(np.int64)
    return pool, {"oversampled_label_sets": len(strategy), "pool": int(len(pool))}


def epoch_indices(
    n: int, epoch: int, seed: int, pool: np.ndarray | None, limit: int | None
) -> np.ndarray:
    """The train posters of one epoch, in order: a seeded permutation (or, with a balanced
    pool, n draws from it without replacement, so an epoch costs the same)."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(n) if pool is None else rng.choice(pool, size=n, replace=False)
    return order[:limit] if limit is not None else order


def train_batches(
    pixels: np.ndarray,
    labels: np.ndarray,
    order: np.ndarray,
    size: int,
    batch: int,
    seed: int,
    epoch: int,
    e2e: EndToEndConfig,
) -> tf.data.Dataset:
    """tf.data for one epoch: rows read from the uint8 memmap, augmented in parallel.
    Returns batches of (images, targets)."""
    import tensorflow as tf

    cache = pixels.shape[1:]
    positions = np.arange(len(order), dtype=np.int64)

    def load(i: tf.Tensor) -> tf.Tensor:
        row = tf.numpy_function(lambda j: np.asarray(pixels[int(j)]), [i], tf.uint8)
        return tf.ensure_shape(row, cache)

    data = tf.data.Dataset.from_tensor_slices((order.astype(np.int64), positions))
    data = data.map(
        lambda i, k: (
            augment(
                load(i), tf.stack([tf.constant(seed * 1_000_003 + epoch, tf.int64), k]), size, e2e
            ),
            tf.gather(tf.constant(labels, tf.float32), i),
        ),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return data.batch(batch).prefetch(2)


def warmup_cosine(
    peak: float, warmup_steps: int, total_steps: int
) -> keras.optimizers.schedules.LearningRateSchedule:
    """Linear warm-up to `peak`, then cosine decay to 0 at `total_steps` (per optimizer step).
    Returns the schedule."""
    import keras
    from keras import ops

    class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):  # type: ignore[misc]
        def __call__(self, step: tf.Tensor) -> tf.Tensor:
            step = ops.cast(step, "float32")
            warm = ops.minimum(1.0, (step + 1.0) / float(max(warmup_steps, 1)))
            progress = ops.clip(step / float(max(total_steps, 1)), 0.0, 1.0)
            return peak * warm * 0.5 * (1.0 + ops.cos(np.pi * progress))

        def get_config(self) -> dict[str, float]:
            return {"peak": peak, "warmup_steps": warmup_steps, "total_steps": total_steps}

    return WarmupCosine()


def split_full_model(model: keras.Model) -> tuple[keras.Model, keras.Model]:
    """(backbone, head) of a full model built by `assemble` (or loaded from model.keras).
    Raises PosterliteError when `model` does not nest exactly two models."""
    import keras

    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if len(nested) != 2:
        raise PosterliteError(f"{model.name}: expected a backbone and a head, got {len(nested)}")
    return nested[0], nested[1]


def _run_epoch(
    step: Callable[[tf.Tensor, tf.Tensor], tf.Tensor],
    batches: Iterable[tuple[tf.Tensor, tf.Tensor]],
    bar: tqdm[None],
) -> float:
    """One pass; returns the mean training loss. (A seam for the interruption test.)"""
    total, count = 0.0, 0
    for x, y in batches:
        loss = float(step(x, y))
        total, count = total + loss, count + 1
        bar.update(1)
        bar.set_postfix_str(f"loss {total / count:.4f}")
    return total / max(count, 1)


def _swap_in_averages(
    optimizers: Sequence[keras.optimizers.Optimizer],
    backbone_vars: Sequence[keras.Variable],
    head_vars: Sequence[keras.Variable],
) -> list[np.ndarray]:
    """Write the optimizers' moving averages into the weights; return the live weights."""
    live = [np.asarray(v) for v in list(backbone_vars) + list(head_vars)]
    optimizers[0].finalize_variable_values(backbone_vars)
    optimizers[1].finalize_variable_values(head_vars)
    return live


def _save_optimizers(path: Path, optimizers: Sequence[keras.optimizers.Optimizer]) -> None:
    arrays = {
        f"o{i}_{j}": np.asarray(v)
        for i, o in enumerate(optimizers)
        for j, v in enumerate(o.variables)
    }
    with atomic_path(path) as tmp:
        with tmp.open("wb") as handle:
            np.savez(handle, **arrays)  # type: ignore[arg-type]  # stub: key may be allow_pickle


def _load_optimizers(path: Path, optimizers: Sequence[keras.optimizers.Optimizer]) -> None:
    with np.load(path) as saved:
        for i, optimizer in enumerate(optimizers):
            for j, variable in enumerate(optimizer.variables):
                variable.assign(saved[f"o{i}_{j}"])


def _save_array(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with tmp.open("wb") as handle:
            np.save(handle, array)


def _save_weights(model: keras.Model, path: Path) -> None:
    with atomic_path(path) as tmp:
        staged = tmp.with_name(tmp.name + ".weights.h5")  # Keras insists on the suffix
        model.save_weights(staged)
        os.replace(staged, tmp)


def fine_tune_all(
    ws: Workspace,
    data: Dataset,
    model: keras.Model,
    config: TrainConfig,
    out_dir: Path,
    progress: bool = True,
) -> tuple[keras.Model, np.ndarray, dict[str, list[float]], dict[str, object]]:
    """Train every backbone layer + the head of `model` (a trained full model), end to end.

    Two AdamW optimizers (backbone at the peak lr, head at `head_lr_multiplier` x), warm-up
    + cosine decay over all planned steps, class-balanced BCE, progressive resizing (the
    schedule's sizes), augmentation from a decoded uint8 cache; after each epoch validation
    mAP (sklearn, at `config.size`, the shipped input) decides early stopping and the best
    epoch is kept. After each epoch the weights, both optimizers' state and state.json are
    written to `out_dir/finetune/`: an interrupted run resumes after its last finished epoch.
    Returns (full model at config.size with the best weights, its val probabilities,
    history, extra).
    """
    import keras
    import tensorflow as tf
    from tqdm import tqdm

    from posterlite.metrics import evaluate

    e2e = config.end_to_end
    assert e2e is not None
    started = time.perf_counter()
    backbone, head = split_full_model(model)
    flexible = build_flexible_backbone(config.arch, None)
    flexible.set_weights(backbone.get_weights())
    flexible.trainable = True
    head.trainable = True
    for layer in flexible.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = e2e.bn == "train"
    inputs = keras.Input((None, None, 3), name="image")
    trainer = keras.Model(inputs, head(flexible(inputs)), name=f"{config.name}_trainer")

    train_px = decoded_pixels(data.train, e2e.cache_size, ws.cache, "decode train")
    val_px = decoded_pixels(data.val, config.size, ws.cache, "decode val")
    pool: np.ndarray | None = None
    pool_info: dict[str, int] = {}
    if e2e.sampler == "powerset":
        pool, pool_info = powerset_pool(data.train.labels, config.seed)
    # Balance weights from the distribution the epochs actually see.
    seen = data.train.labels if pool is None else data.train.labels[pool]
    loss_fn = make_loss(seen if config.class_weighted else None)
    targets = data.train.labels
    distill_info: dict[str, object] = {}
    if e2e.distill > 0:
        teacher = teacher_probabilities(e2e.teachers, train_px, data.train.keys, ws.cache)
        targets = blend_targets(data.train.labels, teacher.probabilities, e2e.distill)
        distill_info = {
            "teachers": teacher.model_sha256,
            "alpha": e2e.distill,
            "teacher_train_map": float(
                evaluate(
                    data.train.labels, teacher.probabilities, data.genres
                ).mean_average_precision
            ),
        }

    n = len(data.train.paths)
    steps = math.ceil(n / config.batch_size)
    if e2e.steps_per_epoch:
        steps = min(steps, e2e.steps_per_epoch)
    total_steps = steps * e2e.epochs
    warmup = max(1, int(round(e2e.warmup_epochs * steps)))
    peak_head = e2e.learning_rate * e2e.head_lr_multiplier
    backbone_vars, head_vars = flexible.trainable_variables, head.trainable_variables
    # Keras' optimizer EMA: averages kept beside the weights, swapped in to validate.
    ema = {"use_ema": True, "ema_momentum": e2e.ema} if e2e.ema > 0 else {}
    optimizers = [
        keras.optimizers.AdamW(
            warmup_cosine(peak, warmup, total_steps), weight_decay=e2e.weight_decay, **ema
        )
        for peak in (e2e.learning_rate, peak_head)
    ]
    optimizers[0].build(backbone_vars)
    optimizers[1].build(head_vars)
    n_backbone = len(backbone_vars)

    @tf.function(reduce_retracing=True)  # type: ignore[untyped-decorator]  # TF is untyped
    def step(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(loss_fn(y, trainer(x, training=True)))
        grads = tape.gradient(loss, backbone_vars + head_vars)
        optimizers[0].apply(grads[:n_backbone], backbone_vars)
        optimizers[1].apply(grads[n_backbone:], head_vars)
        return loss

    ckpt = Path(out_dir) / CHECKPOINT_DIR
    state_path = ckpt / STATE_NAME
    key = config.key()
    state: FineTuneState = {
        "config_key": key,
        "epochs_done": 0,
        "best_epoch": 0,
        "best_val_map": -1.0,
        "history": {"loss": [], "val_map": [], "size": [], "seconds": []},
    }
    resumed_from = 0
    if state_path.is_file():
        saved = json.loads(state_path.read_text(encoding="utf-8"))
        if saved.get("config_key") == key and (ckpt / LAST_WEIGHTS).is_file():
            trainer.load_weights(ckpt / LAST_WEIGHTS)
            _load_optimizers(ckpt / OPTIMIZER_STATE, optimizers)
            state = saved
            resumed_from = int(saved["epochs_done"])
    if state["best_epoch"] == 0 and state["best_val_map"] < 0:
        # Epoch 0: the starting point (trained head) is a candidate too, so fine-tuning
        # that does not beat it on validation keeps it.
        start_p = predict_pixels(trainer, val_px)
        state["start_val_map"] = float(
            evaluate(data.val.labels, start_p, data.genres).mean_average_precision
        )
        state["best_val_map"] = state["start_val_map"]
        _save_weights(trainer, ckpt / BEST_WEIGHTS)
        _save_array(ckpt / BEST_VAL, start_p)
        write_json(state_path, state)
    sizes = e2e.sizes()
    bar = tqdm(
        total=total_steps,
        initial=resumed_from * steps,
        desc="fine-tune",
        unit="step",
        disable=not progress,
        dynamic_ncols=True,
    )
    for epoch in range(resumed_from, len(sizes)):
        if state.get("stopped"):
            break
        tic = time.perf_counter()
        size = sizes[epoch]
        bar.set_description(f"fine-tune epoch {epoch + 1}/{len(sizes)} @{size}px")
        order = epoch_indices(n, epoch, config.seed, pool, steps * config.batch_size)
        batches = train_batches(
            train_px, targets, order, size, config.batch_size, config.seed, epoch, e2e
        )
        loss = _run_epoch(step, batches, bar)
        live = _swap_in_averages(optimizers, backbone_vars, head_vars) if ema else None
        val_p = predict_pixels(trainer, val_px)
        val_map = evaluate(data.val.labels, val_p, data.genres).mean_average_precision
        epochs_seen = state["history"]
        epochs_seen["loss"].append(loss)
        epochs_seen["val_map"].append(float(val_map))
        epochs_seen["size"].append(size)
        epochs_seen["seconds"].append(round(time.perf_counter() - tic, 1))
        state["epochs_done"] = epoch + 1
        if val_map > state["best_val_map"]:
            state["best_val_map"], state["best_epoch"] = float(val_map), epoch + 1
            _save_weights(trainer, ckpt / BEST_WEIGHTS)
            _save_array(ckpt / BEST_VAL, val_p)
        elif epoch + 1 - state["best_epoch"] >= e2e.patience:
            state["stopped"] = True  # early stop: the best epoch is kept
        if live is not None:  # training continues from the live weights, not the averages
            for variable, value in zip(backbone_vars + head_vars, live, strict=True):
                variable.assign(value)
        _save_weights(trainer, ckpt / LAST_WEIGHTS)
        _save_optimizers(ckpt / OPTIMIZER_STATE, optimizers)
        write_json(state_path, state)
        bar.write(
            f"epoch {epoch + 1} @{size}px: loss {loss:.4f}, val mAP {val_map:.4f} "
            f"(best {state['best_val_map']:.4f} @ {state['best_epoch']}), "
            f"{epochs_seen['seconds'][-1]:.0f} s"
        )
    bar.close()
    trainer.load_weights(ckpt / BEST_WEIGHTS)  # the best epoch (0: the starting point)
    val_p = np.load(ckpt / BEST_VAL)
    full = export_full_model(flexible, head, config.arch, config.size, config.name)
    trainable = int(sum(int(np.prod(w.shape)) for w in trainer.trainable_weights))
    # Per-epoch series (sizes are ints: still numbers on a curve).
    history = cast(
        "dict[str, list[float]]", {f"fine_tune_{k}": v for k, v in state["history"].items()}
    )
    history["fine_tune_val_pr_auc"] = history["fine_tune_val_map"]  # plotted with the head's
    extra: dict[str, object] = {
        "end_to_end": {
            **asdict(e2e),
            "start_val_map": state.get("start_val_map"),
            "best_epoch": state["best_epoch"],
            "best_val_map": state["best_val_map"],
            "epochs_run": state["epochs_done"],
            "early_stopped": bool(state.get("stopped")),
            "resumed_from_epoch": resumed_from,
            "steps_per_epoch": steps,
            "warmup_steps": warmup,
            "head_learning_rate": peak_head,
            "trainable_params": trainable,
            "optimizer": "AdamW x2 (backbone, head), warm-up + cosine decay",
            "loss": "class-balanced BCE"
            + (" (weights from the sampled distribution)" if pool is not None else ""),
            "sampler": pool_info or "uniform permutation per epoch",
            "weights_validated": f"EMA (momentum {e2e.ema})" if ema else "live weights",
            "distillation": distill_info or "none",
            "augmentation": "random-resized crop (bilinear, antialias=False) + flip + "
            "brightness/contrast/saturation jitter, stateless (seeded)",
            "decoded_cache": str(Path(train_px.filename)) if hasattr(train_px, "filename") else "",
            "validation_at": config.size,
            "seconds": round(time.perf_counter() - started, 1),
        }
    }
    return full, np.asarray(val_p, np.float64), history, extra


def build_flexible_backbone(arch: str, size: int | None) -> keras.Model:
    """The Keras MobileNet graph at `size` (None: any size), random weights (set them).
    Returns the model; raises PosterliteError for an unknown `arch`."""
    import keras

    factory = getattr(keras.applications, str(backbone_spec(arch).keras_application))
    import warnings

    with warnings.catch_warnings():  # "input shape not in [96..224]": weights come later
        warnings.simplefilter("ignore")
        return factory(
            input_shape=(size, size, 3), alpha=1.0, include_top=False, pooling="avg", weights=None
        )


def export_full_model(
    backbone: keras.Model, head: keras.Model, arch: str, size: int, name: str
) -> keras.Model:
    """A fixed-size full model (image -> backbone -> head) with `backbone`'s weights: the
    convolution weights are size-agnostic, so a 160 px export is the same network.
    Returns the new model (sharing `head`'s layers)."""
    fixed = build_flexible_backbone(arch, size)
    fixed.set_weights(backbone.get_weights())
    fixed.trainable = False
    return assemble(fixed, head, size, name)


def train_end_to_end(
    ws: Workspace, data: Dataset, config: TrainConfig, out_dir: Path, progress: bool = True
) -> Trained:
    """Head stage (or `config.init`'s trained model), then `fine_tune_all`: the trained
    full model. Raises PosterliteError for the cnn or a missing `--init` model."""
    import keras

    if config.arch == "cnn":
        raise PosterliteError("--fine-tune all is for the MobileNets (the cnn trains end to end)")
    if config.init:
        source = Path(config.init)
        file = source / MODEL_NAME if source.is_dir() else source
        if not file.is_file():
            raise PosterliteError(f"--init: no model.keras in {source}")
        model = keras.models.load_model(file, compile=False)
        history: dict[str, list[float]] = {}
        extra: dict[str, object] = {"init": str(source), "init_model_sha256": sha256_file(file)}
        if (file.parent / "card.json").is_file():
            from posterlite.card import read_card

            before = read_card(file.parent)
            extra["init_card"] = {
                "run_id": before.extra.get("run_id"),
                "fine_tuned_blocks": before.hyperparameters.get("fine_tune"),
                "end_to_end": bool(before.extra.get("end_to_end")),
                "smote": before.smote,
                "preprocess_version": before.extra.get("preprocess_version"),
                "manifest_sha256": before.manifest_sha256,
            }
    else:
        head_stage = train_mobilenet(ws, data, replace(config, end_to_end=None, fine_tune=0))
        model, history, extra = head_stage.model, head_stage.history, head_stage.extra
        extra["init"] = "head stage in this run (frozen ImageNet backbone, cached features)"
    full, val_p, tuned_history, tuned_extra = fine_tune_all(
        ws, data, model, config, out_dir, progress
    )
    extra.update(tuned_extra)
    return Trained(full, val_p, {**history, **tuned_history}, extra)


def export_at_size(
    source: Path, size: int, out_dir: Path, ws: Workspace | None = None
) -> dict[str, JSONValue]:
    """Re-export a trained MobileNet folder at another input size (e.g. the fast 160 px
    variant): same weights; validation re-scored at that size (posters through load_poster
    at `size`, as a phone would feed it) and thresholds re-tuned on validation. Writes the
    usual artifacts; returns the validation summary. Raises PosterliteError for the cnn."""
    import keras

    from posterlite.card import read_card, write_card
    from posterlite.metrics import evaluate, tune_thresholds
    from posterlite.train.reports import plot_confusion, report_md_titled, summary

    started = time.perf_counter()
    ws = ws or Workspace()
    card = read_card(source)
    if card.arch == "cnn":
        raise PosterliteError("export at another size is for the MobileNets")
    model = keras.models.load_model(Path(source) / MODEL_NAME, compile=False)
    backbone, head = split_full_model(model)
    name = f"{card.name}_{size}"
    full = export_full_model(backbone, head, card.arch, size, name)
    data = ws.dataset(Path(card.manifest))
    val_px = decoded_pixels(data.val, size, ws.cache, f"decode val {size}px")
    val_p = predict_pixels(full, val_px)
    at_half = evaluate(data.val.labels, val_p, data.genres, 0.5)
    thresholds = tune_thresholds(data.val.labels, val_p)
    tuned = evaluate(data.val.labels, val_p, data.genres, thresholds)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / MODEL_NAME) as tmp:
        staged = tmp.with_suffix(".keras")
        full.save(staged)
        os.replace(staged, tmp)
    write_json(
        out_dir / REPORT_JSON, {"threshold_0.5": at_half.to_dict(), "tuned": tuned.to_dict()}
    )
    title = f"{name} ({card.name} exported at {size} px)"
    atomic_write_text(out_dir / REPORT_MD, report_md_titled(title, at_half, tuned))
    write_json(
        out_dir / THRESHOLDS_NAME,
        {"genres": list(data.genres), "thresholds": [float(t) for t in thresholds]},
    )
    plot_confusion(at_half, out_dir / CONFUSION_PNG, name)
    card.name = name
    card.input_size = size
    card.thresholds = [float(t) for t in thresholds]
    card.hyperparameters = {**card.hyperparameters, "input_size": size}
    card.validation = summary(at_half, tuned)
    card.wall_time_s = round(card.wall_time_s + time.perf_counter() - started, 2)
    card.extra = {
        **card.extra,
        "exported_from": {
            "dir": str(source),
            "model_sha256": sha256_file(Path(source) / MODEL_NAME),
            "input_size": model.input_shape[1],
        },
        "export_seconds": round(time.perf_counter() - started, 1),
    }
    card.extra.pop("test", None)  # scored again, once, for this model
    write_card(card, out_dir)
    return card.validation
