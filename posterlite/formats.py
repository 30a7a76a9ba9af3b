"""The format registry: one spec per `.tflite` format posterlite writes, the only place their
facts live (Ultralytics' `export_formats()` table, in small).

A `FormatSpec` names the format, says what it is (the `--format` help), what the TFLite
converter is told for it (`convert.convert_saved_model` applies these fields and nothing
else: optimizations, supported types and ops, a representative data set, input/output
types), the file name a conversion writes (`<name>.<format>.tflite`) and its marker in the
bench's plot. `convert`, the CLI's `--format` / `--formats`, `bench` and the benchmarks read
it. Imports nothing heavy: TensorFlow's objects are named here by their attribute names and
looked up by the converter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from posterlite.errors import PosterliteError

FormatName = Literal["fp32", "fp16", "dynamic", "int8"]
TFLITE_SUFFIX = ".tflite"
# Chooses every format on the command line (`--format all`, `--formats all`).
ALL = "all"


@dataclass(frozen=True)
class FormatSpec:
    """One `.tflite` format: what it is and what the converter is told to make it."""

    name: FormatName
    description: str  # one line for --help and the README
    # converter.optimizations = [tf.lite.Optimize.DEFAULT] (quantize what the rest allows)
    optimize: bool = False
    # converter.target_spec.supported_types, as TensorFlow dtype names ("float16")
    supported_types: tuple[str, ...] = ()
    # converter.target_spec.supported_ops, as tf.lite.OpsSet member names
    supported_ops: tuple[str, ...] = ()
    # converter.representative_dataset from calibration posters (full-integer formats)
    calibrated: bool = False
    # converter.inference_input_type and inference_output_type (TensorFlow dtype name)
    io_type: str | None = None
    marker: str = "o"  # matplotlib marker of its points in the bench's plot

    @property
    def suffix(self) -> str:
        """The end of a converted file's name: `.int8.tflite`."""
        return f".{self.name}{TFLITE_SUFFIX}"

    def file_name(self, stem: str) -> str:
        """The file a conversion of model `stem` writes: `<stem>.<format>.tflite`."""
        return f"{stem}{self.suffix}"


FORMAT_SPECS: tuple[FormatSpec, ...] = (
    FormatSpec("fp32", "float32 weights and activations (the converter's plain output)"),
    FormatSpec(
        "fp16",
        "float16 weights, float32 activations (half the size)",
        optimize=True,
        supported_types=("float16",),
        marker="s",
    ),
    FormatSpec(
        "dynamic",
        "dynamic range: int8 weights, float activations (quantized at run time)",
        optimize=True,
        marker="^",
    ),
    FormatSpec(
        "int8",
        "full integer: int8 kernels, uint8 input and output, calibrated on posters",
        optimize=True,
        supported_ops=("TFLITE_BUILTINS_INT8",),
        calibrated=True,
        io_type="uint8",
        marker="D",
    ),
)
FORMAT_NAMES: tuple[FormatName, ...] = tuple(spec.name for spec in FORMAT_SPECS)
# The CLI's choices: a format, or all of them.
FORMAT_CHOICES: tuple[str, ...] = (*FORMAT_NAMES, ALL)
# The phone-ready format: what ships (models/<name>/model.int8.tflite), what `posterlite
# bench` measures by default and what the browser ratio is judged on.
SHIPPED_FORMAT: FormatName = "int8"
# The float file every size ratio is against (a conversion writes it first).
FLOAT_FORMAT: FormatName = "fp32"
# The float files the shipped int8 file is weighed against (its cost ratios).
FLOAT_FORMATS: tuple[FormatName, ...] = ("fp32", "fp16")
# `--format` help: each format and what it is.
FORMATS_HELP = "; ".join(f"{spec.name}: {spec.description}" for spec in FORMAT_SPECS)


def format_spec(name: str) -> FormatSpec:
    """The spec of format `name`; raises PosterliteError for an unknown name."""
    for spec in FORMAT_SPECS:
        if spec.name == name:
            return spec
    raise PosterliteError(f"unknown format {name!r} (choose {', '.join(FORMAT_NAMES)}, {ALL})")


def is_format(name: str) -> bool:
    """True when `name` is one of the registry's formats."""
    return name in FORMAT_NAMES
