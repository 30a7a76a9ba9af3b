"""The records of a model's metadata: what is written (`MetadataSpec`) and what is read
(`ModelInfo`, with its tensors' `TensorInfo` and `Quantization`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from posterlite.genres import DEFAULT_THRESHOLD
from posterlite.preprocess import NORM_MEAN, NORM_STD


@dataclass(frozen=True)
class Quantization:
    """Affine quantization of a tensor: real = scale * (q - zero_point); scale 0 = none."""

    scale: float = 0.0
    zero_point: int = 0

    @property
    def quantized(self) -> bool:
        """True when the tensor is quantized (scale not 0)."""
        return self.scale != 0.0


@dataclass(frozen=True)
class TensorInfo:
    """One input or output tensor as LiteRT reports it: name, shape, dtype, quantization."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    quantization: Quantization = Quantization()


@dataclass(frozen=True)
class MetadataSpec:
    """What `embed_metadata` writes into a model."""

    name: str
    version: str
    genres: tuple[str, ...]
    thresholds: tuple[float, ...]
    input_size: int
    default_threshold: float = DEFAULT_THRESHOLD
    norm_mean: float = NORM_MEAN
    norm_std: float = NORM_STD
    description: str = ""
    author: str = "posterlite"
    license: str = "Apache-2.0"
    input_quantization: Quantization = Quantization()
    output_quantization: Quantization = Quantization()
    extra: dict[str, object] = field(
        default_factory=dict
    )  # sidecar-only facts (format, source, ...)


@dataclass(frozen=True)
class ModelInfo:
    """Everything `posterlite info` shows about a `.tflite`."""

    path: Path
    size_bytes: int
    name: str
    version: str
    description: str
    genres: tuple[str, ...]
    thresholds: tuple[float, ...]
    default_threshold: float
    norm_mean: float
    norm_std: float
    input: TensorInfo | None
    output: TensorInfo | None
    source: str  # where labels came from: "metadata" | "sidecar" | "default"
    associated_files: tuple[str, ...] = ()
    min_parser_version: str = ""

    def to_dict(self) -> dict[str, object]:
        """The info as plain JSON-ready values (`posterlite info --json`), path as text."""
        data = asdict(self)
        data["path"] = str(self.path)
        return data
