"""The architecture registry: one spec per network posterlite trains, the only place their
facts live (MediaPipe Model Maker's `SupportedModels` of model specs, in small).

An `ArchSpec` names the network, its default input size, the width of its pooled features
(the head's input), the `keras.applications` class that builds it, and where its ImageNet
weights come from: Google's int8 TFLite files in `../shared/pretrained` (in order of
preference) and Keras' own no-top file (needs internet). `train.config`, `train.grid`,
`backbones` and `bench` read these; the CLI's choices are `ARCH_NAMES` / `BACKBONE_NAMES`.

Imports nothing heavy (no Keras): `keras.applications.<keras_application>` is looked up by
whoever builds the network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast

from posterlite.errors import PosterliteError

ArchName = Literal["cnn", "mobilenet_v1", "mobilenet_v2"]
BackboneName = Literal["mobilenet_v1", "mobilenet_v2"]


@dataclass(frozen=True)
class ArchSpec:
    """One network posterlite trains."""

    name: ArchName
    input_size: int  # default input side, pixels
    # ImageNet backbones: the pooled feature width, the keras.applications class, Google's
    # TFLite files (preferred first) and the glob that finds another file of the family.
    feature_dim: int | None = None
    keras_application: str | None = None
    pretrained_files: tuple[str, ...] = ()
    pretrained_glob: str | None = None
    keras_notop_url: str | None = None  # Keras' own ImageNet no-top weights

    @property
    def is_backbone(self) -> bool:
        """True for the ImageNet MobileNets (a frozen backbone + a trained head)."""
        return self.feature_dim is not None


ARCHS: tuple[ArchSpec, ...] = (
    # The paper's small CNN, trained from scratch on 96 px posters.
    ArchSpec("cnn", input_size=96),
    ArchSpec(
        "mobilenet_v1",
        input_size=224,
        feature_dim=1024,
        keras_application="MobileNet",
        pretrained_files=("mobilenet_v1_1.0_224_quant_embedding_extractor.tflite",),
        pretrained_glob="*mobilenet_v1*.tflite",
        keras_notop_url="https://storage.googleapis.com/tensorflow/keras-applications/mobilenet/"
        "mobilenet_1_0_224_tf_no_top.h5",
    ),
    ArchSpec(
        "mobilenet_v2",
        input_size=224,
        feature_dim=1280,
        keras_application="MobileNetV2",
        # The TF2 post-training per-channel model first (finer weight quantization than the
        # QAT one).
        pretrained_files=(
            "tf2_mobilenet_v2_1.0_224_ptq.tflite",
            "mobilenet_v2_1.0_224_quant.tflite",
        ),
        pretrained_glob="*mobilenet_v2*.tflite",
        keras_notop_url="https://storage.googleapis.com/tensorflow/keras-applications/"
        "mobilenet_v2/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
    ),
)
ARCH_NAMES: tuple[ArchName, ...] = tuple(spec.name for spec in ARCHS)
BACKBONE_NAMES: tuple[BackboneName, ...] = tuple(
    cast(BackboneName, spec.name) for spec in ARCHS if spec.is_backbone
)
# The paper's grid: each architecture trained plain and with SMOTE (`<arch>_smote`).
SMOTE_SUFFIX = "_smote"
GRID_MODEL_NAMES: tuple[str, ...] = tuple(f"{a}{s}" for a in ARCH_NAMES for s in ("", SMOTE_SUFFIX))


def arch_spec(name: str) -> ArchSpec:
    """The spec of architecture `name`; raises PosterliteError for an unknown name."""
    for spec in ARCHS:
        if spec.name == name:
            return spec
    raise PosterliteError(f"unknown model {name!r}; choose one of {', '.join(ARCH_NAMES)}")


def backbone_spec(name: str) -> ArchSpec:
    """The spec of ImageNet backbone `name`; raises PosterliteError unless it is one."""
    spec = next((s for s in ARCHS if s.name == name and s.is_backbone), None)
    if spec is None:
        raise PosterliteError(
            f"unknown backbone {name!r}; expected one of {', '.join(BACKBONE_NAMES)}"
        )
    return spec
