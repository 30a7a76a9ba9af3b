"""Training: one run (`train_run`) and the paper's grid (`run_grid`), CPU-first.

Owns: the training configuration, the content-keyed caches (decoded pixels, frozen
backbone features), the small custom CNN, the heads trained on frozen features, SMOTE's
place in training (see `posterlite.smote`), and every artifact a run writes.

How a run trains, by architecture:
- mobilenet_v1 / mobilenet_v2: the ImageNet backbone (`posterlite.backbones`) is frozen with
  batch norm in inference mode, so its pooled features depend only on the image: they are
  computed once per image and cached by content (sha256 of the file's bytes + the weights'
  sha256 + input size + PREPROCESS_VERSION). A head (Dropout + Dense(256, relu) + Dropout +
  Dense(6, sigmoid); the hidden layer won on validation) is trained on the cached features
  in seconds. SMOTE runs on the same features. With `fine_tune=N`, the top N backbone
  blocks (BN frozen) + that head are then trained on activations at the blocks' input
  (V1, N=1: conv_pw_12_relu, 7x7x1024), computed once and cached as float16 memmapped .npy
  keyed like the features plus the cut layer; an epoch only runs the top blocks.
- cnn: a small depthwise-separable CNN trained from scratch on 96 px posters (decoded once
  into a cached uint8 array) with early stopping on validation. Its SMOTE twin freezes that
  CNN, oversamples its 160-d penultimate embeddings and retrains the head.
The grid (`run_grid`) gives every fit a wall-clock budget (`time_budget_s`, best epoch kept)
so 30 runs fit in an hour on 2 cores; history.json shows the epochs actually run.
The saved `model.keras` is always the full model: image in [-1, 1] -> backbone -> head ->
one sigmoid probability per genre, so convert / predict work on images.

Class imbalance: the loss is class-balanced binary cross-entropy (per genre, positives
weigh n / (2 * positives), negatives n / (2 * negatives), from the training labels), so a
rare genre gets recall at the default threshold 0.5. Everything is tuned on the validation
split only, so figures on it are optimistic; the manifest's test split (films disjoint from
train and val) is scored once per shipped model and never used to choose anything.

Package layout (each part in one place):
- `config`: TrainConfig, RunResult, constants, small helpers;
- `dataset`: manifest splits, content-keyed caches (pixels, features, activations), pipelines;
- `models`: backbone / head / CNN builders, loss, optimizers, callbacks, `fit`;
- `heads`: heads on frozen features (+ SMOTE in embedding space) and the CNN paths;
- `finetune`: fine-tuning after the head (top blocks on cached activations, or every layer
  end to end on augmented posters, resumable), and re-export at another input size;
- `reports`: report, plots, summary; `run`: one run's artifacts; `grid`: the paper's grid.
"""

from posterlite.preprocess import PREPROCESS_VERSION
from posterlite.train.blocks import fine_tune_blocks
from posterlite.train.config import (
    ARCHS,
    CONFUSION_PNG,
    CURVES_PNG,
    FEATURE_BATCH,
    GRID_OPTIMIZERS,
    HISTORY_NAME,
    OPTIMIZERS,
    REPORT_JSON,
    REPORT_MD,
    SELECTION_METRIC,
    THRESHOLDS_NAME,
    EndToEndConfig,
    RunResult,
    TrainConfig,
    cache_root,
    parse_schedule,
    peak_rss_mb,
    write_json,
)
from posterlite.train.dataset import (
    ArrayStore,
    Dataset,
    Split,
    Workspace,
    activation_batches,
    activation_store_path,
    cached_activations,
    cached_features,
    cached_pixels,
    decode_batch,
    decoded_pixels,
    feature_store_path,
    image_dataset,
    load_dataset,
    weights_sha256,
)
from posterlite.train.finetune import export_at_size, train_end_to_end
from posterlite.train.grid import MODEL_NAMES, GridResult, grid_configs, publish_best, run_grid
from posterlite.train.heads import Trained, train_cnn_trunk, train_head
from posterlite.train.models import (
    assemble,
    balanced_weights,
    build_backbone_for,
    build_cnn,
    build_head,
    compile_for_training,
    count_params,
    fine_tune_cut,
    make_loss,
    make_optimizer,
    strip_compile,
    top_blocks,
)
from posterlite.train.reports import plot_confusion, plot_curves
from posterlite.train.run import rescore_validation, score_test, train_run

__all__ = [
    "rescore_validation",
    "decoded_pixels",
    "ARCHS",
    "EndToEndConfig",
    "parse_schedule",
    "ArrayStore",
    "CONFUSION_PNG",
    "CURVES_PNG",
    "Dataset",
    "FEATURE_BATCH",
    "GRID_OPTIMIZERS",
    "GridResult",
    "HISTORY_NAME",
    "MODEL_NAMES",
    "OPTIMIZERS",
    "PREPROCESS_VERSION",
    "REPORT_JSON",
    "REPORT_MD",
    "RunResult",
    "SELECTION_METRIC",
    "Split",
    "THRESHOLDS_NAME",
    "TrainConfig",
    "Trained",
    "Workspace",
    "activation_batches",
    "activation_store_path",
    "assemble",
    "balanced_weights",
    "build_backbone_for",
    "build_cnn",
    "build_head",
    "cache_root",
    "cached_activations",
    "cached_features",
    "cached_pixels",
    "compile_for_training",
    "count_params",
    "decode_batch",
    "feature_store_path",
    "fine_tune_blocks",
    "export_at_size",
    "train_end_to_end",
    "fine_tune_cut",
    "grid_configs",
    "image_dataset",
    "load_dataset",
    "make_loss",
    "make_optimizer",
    "peak_rss_mb",
    "plot_confusion",
    "plot_curves",
    "publish_best",
    "run_grid",
    "strip_compile",
    "top_blocks",
    "train_cnn_trunk",
    "train_head",
    "score_test",
    "train_run",
    "weights_sha256",
    "write_json",
]
