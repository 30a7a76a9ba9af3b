"""Fine-tuning the top N blocks of a MobileNet (`--fine-tune N`) on cached activations.

The head stage (`heads.train_mobilenet`) calls `fine_tune_blocks` after the head; the
end-to-end fine-tune (`finetune`) builds on the head stage. Living apart from both keeps
`heads` -> `blocks` and `finetune` -> `heads` one-way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from posterlite.train.config import TrainConfig
from posterlite.train.dataset import (
    Dataset,
    Workspace,
    activation_batches,
    activation_store_path,
    cached_activations,
    weights_sha256,
)
from posterlite.train.models import compile_for_training, fine_tune_cut, fit, top_blocks

if TYPE_CHECKING:
    import keras


def fine_tune_blocks(
    ws: Workspace,
    data: Dataset,
    backbone: keras.Model,
    head: keras.Model,
    config: TrainConfig,
    history: dict[str, list[float]],
) -> tuple[dict[str, list[float]], np.ndarray, dict[str, object]]:
    """Train the top N blocks + the trained head on cached activations at the cut.

    The layers below the cut stay frozen, so their output is computed once per poster and
    cached (float16, memmapped); each epoch then only runs the top blocks. Batch norm stays
    frozen (inference mode, moving statistics). The blocks are the backbone's own layers,
    so the full model (image -> backbone -> head) carries the tuned weights.
    Returns (history, validation probabilities of the cached path, extra); raises
    PosterliteError when the cut leaves no block to train.
    """
    import keras

    weights = weights_sha256(backbone)  # before training: the key of the frozen part
    cut = fine_tune_cut(backbone, config.fine_tune)
    unfrozen = {id(layer) for layer in top_blocks(backbone, config.fine_tune)}
    extractor = keras.Model(backbone.input, backbone.get_layer(cut).output, name="below_cut")
    acts: dict[str, np.memmap] = {}
    computed = 0
    for name, split in (("train", data.train), ("val", data.val)):
        path = activation_store_path(ws.cache, config.arch, config.size, weights, cut, split.keys)
        acts[name], fresh = cached_activations(
            split, extractor, path, config.size, f"{config.arch} {cut} {name}"
        )
        computed += len(split.keys) if fresh else 0
    flipped = None
    if config.fine_tune_flip:
        path = activation_store_path(
            ws.cache, config.arch, config.size, weights, cut, data.train.keys, flipped=True
        )
        flipped, fresh = cached_activations(
            data.train, extractor, path, config.size, f"{config.arch} {cut} train mirrored", True
        )
        computed += len(data.train.keys) if fresh else 0
    del extractor
    top = keras.Model(backbone.get_layer(cut).output, backbone.output, name="top_blocks")
    backbone.trainable = True
    for layer in backbone.layers:
        frozen_bn = isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = id(layer) in unfrozen and not frozen_bn
    inputs = keras.Input(acts["train"].shape[1:], name="activation")
    trainer = keras.Model(inputs, head(top(inputs, training=False)), name="fine_tune")
    lr = config.fine_tune_learning_rate or config.learning_rate / 10
    compile_for_training(trainer, config, data.train.labels, lr)
    tuned = fit(
        trainer,
        activation_batches(
            acts["train"], data.train.labels, config.batch_size, True, config.seed, flipped
        ),
        None,
        activation_batches(acts["val"], data.val.labels, 128, False, 0),
        config,
        config.epochs,
        None,
    )
    trainable = int(sum(int(np.prod(w.shape)) for w in trainer.trainable_weights))
    backbone.trainable = False
    val_p = trainer.predict(
        activation_batches(acts["val"], data.val.labels, 128, False, 0), verbose=0
    )
    extra: dict[str, object] = {
        "fine_tuned_blocks": config.fine_tune,
        "fine_tune": {
            "cut_layer": cut,
            "learning_rate": lr,
            "trainable_params": trainable,
            "activation_shape": list(acts["train"].shape[1:]),
            "activation_dtype": "float16",
            "activations_computed": computed,
            # np.memmap keeps the absolute path it was opened with
            "activation_stores": [str(a.filename) for a in acts.values()],
            "flip_augmentation": flipped is not None,
            "bn": "frozen (inference mode, moving statistics)",
            "head": "initialised from the head trained on pooled features",
        },
    }
    merged = {**history, **{f"fine_tune_{k}": v for k, v in tuned.items()}}
    return merged, np.asarray(val_p, dtype=np.float64), extra
