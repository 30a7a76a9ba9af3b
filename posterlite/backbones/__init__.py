"""ImageNet MobileNet backbones without internet: import Google's int8 TFLite MobileNets.

This package owns everything between a published `.tflite` MobileNet and a Keras backbone
with ImageNet weights:

- reading the TFLite flatbuffer (`read_tflite`): every CONV_2D / DEPTHWISE_CONV_2D /
  FULLY_CONNECTED op in execution order, its constant weights and bias dequantized with
  their own scales and zero points (per-tensor or per-channel along the tensor's
  `quantized_dimension`; int32 biases too), strides, padding and fused activation;
- mapping them onto `keras.applications.MobileNet` / `MobileNetV2` (alpha 1.0,
  include_top=False) in layer order (`import_tflite_backbone`): TFLite conv kernels
  [O,H,W,I] become Keras [H,W,I,O], depthwise [1,H,W,C] becomes [H,W,C,1]. The graphs
  have batch norm folded into the conv weights + bias, so each following Keras
  BatchNormalization becomes an exact identity-plus-bias in inference mode: gamma=1,
  beta=bias, moving_mean=0, moving_variance=1-epsilon (so sqrt(var + eps) = 1);
- writing a Keras `.weights.h5` atomically, a JSON record beside it (source sha256, arch,
  verification figures) and, when the source has one, the ImageNet classifier
  (`<name>.classifier.npz`: kernel [features, 1001], bias [1001]; index 0 = background);
- `build_backbone` and `resolve_backbone_weights`, the API the training stage calls.

Padding: TFLite SAME with stride 2 on an even input pads (0, 1) rows/columns; Keras pads
its stride-2 depthwise convs with ZeroPadding2D(((0, 1), (0, 1))) + VALID and its first
conv with 'same', which is the same (0, 1) split. Padding zeros are the real value 0 in
both (TFLite pads with the zero point). Verified numerically, see benchmarks.

PRETRAINED_INPUT: how the TFLite models' uint8 inputs meet posterlite's preprocessing.
posterlite feeds Keras models `pixel / 127.5 - 1` in [-1, 1] (`preprocess.pixels_to_input`).
- `tf2_mobilenet_v2_1.0_224_ptq.tflite` expects uint8 with scale 1/127.5, zero point 127:
  the pixel itself, read as `(pixel - 127) / 127.5`, i.e. ours shifted by +0.5/127.5
  (0.0039, half a quantization step) everywhere.
- `mobilenet_v2_1.0_224_quant.tflite` and the V1 embedding extractor expect uint8 with
  scale 1/128, zero point 128: `(pixel - 128) / 128`, range [-1, 0.992] instead of
  [-1, 1]; it differs from ours by at most 0.008 (at pixel 255), 0.0039 around mid-grey.
Both are `~ pixel / 127.5 - 1`, so the imported Keras backbones take posterlite's float
input unchanged; the difference is below one input quantization step and is part of what
verification measures. Verification (`verify_import`, `benchmarks/backbone_import.py`) feeds
each TFLite model the raw `load_poster` uint8 pixels, its own expected input, and the Keras
model `pixels_to_input(pixels)` from the same pixels.

The package, each module importing only those above it:
- `sources`: backbone names and facts (views of `posterlite.archs`), where Google's files,
  the import cache and Keras' files live, Keras' download;
- `tflite_reader`: `read_tflite`, a MobileNet's conv ops with dequantized weights;
- `keras_map`: `build_backbone`, `map_onto_keras` (TFLite weights -> Keras layers);
- `verify`: the TFLite model vs the imported Keras one on the same pixels;
- `importer`: `import_tflite_backbone` (weights, record, classifier);
- `weights`: `resolve_backbone_weights`, the API the training stage calls.
"""

from __future__ import annotations

from posterlite.backbones.importer import (
    ImportRecord,
    classifier_path,
    import_tflite_backbone,
    load_classifier,
    record_path,
)
from posterlite.backbones.keras_map import (
    Classifier,
    build_backbone,
    empty_backbone,
    limit_tf_threads,
    map_onto_keras,
)
from posterlite.backbones.sources import (
    ARCHS,
    ENV_CACHE,
    ENV_PRETRAINED,
    ENV_WEIGHTS,
    FEATURE_DIMS,
    KERAS_DOWNLOAD_TIMEOUT,
    KERAS_NOTOP_URLS,
    PREFERRED_TFLITE,
    WEIGHTS_SUFFIX,
    Arch,
    cache_dir,
    find_pretrained_tflite,
    pretrained_dirs,
)
from posterlite.backbones.tflite_reader import TFLiteLayer, TFLiteModelInfo, read_tflite
from posterlite.backbones.verify import (
    TFLiteOutputs,
    VerifyFigures,
    compare_with_tflite,
    cosine_rows,
    poster_pixels,
    run_tflite,
    synthetic_pixels,
    tflite_input,
    topk_agreement,
)
from posterlite.backbones.weights import cached_import, resolve_backbone_weights

__all__ = [
    "ARCHS",
    "ENV_CACHE",
    "ENV_PRETRAINED",
    "ENV_WEIGHTS",
    "FEATURE_DIMS",
    "KERAS_DOWNLOAD_TIMEOUT",
    "KERAS_NOTOP_URLS",
    "PREFERRED_TFLITE",
    "WEIGHTS_SUFFIX",
    "Arch",
    "Classifier",
    "ImportRecord",
    "TFLiteLayer",
    "TFLiteModelInfo",
    "TFLiteOutputs",
    "VerifyFigures",
    "build_backbone",
    "cache_dir",
    "cached_import",
    "classifier_path",
    "compare_with_tflite",
    "cosine_rows",
    "empty_backbone",
    "find_pretrained_tflite",
    "import_tflite_backbone",
    "limit_tf_threads",
    "load_classifier",
    "map_onto_keras",
    "poster_pixels",
    "pretrained_dirs",
    "read_tflite",
    "record_path",
    "resolve_backbone_weights",
    "run_tflite",
    "synthetic_pixels",
    "tflite_input",
    "topk_agreement",
]
