"""Opening a `.tflite` file: the checks every command runs first, and the LiteRT interpreter.

Owns `check_model_file` (missing, empty, not a TFLite flatbuffer -> one-line
`PosterliteError`) and `load_interpreter` (LiteRT's `Interpreter`, else `tflite_runtime`'s).
Both `metadata` (tensor details for `info`) and `runtime` (prediction) use it, so neither
has to import the other for it. The file format itself (the TFL3 identifier) is
`posterlite.tflite_file`'s. Imports LiteRT only, never TensorFlow (runtime install).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, TypedDict, cast

import numpy as np

from posterlite.errors import PosterliteError
from posterlite.quiet import captured_output
from posterlite.tflite_file import MIN_MODEL_BYTES, check_tflite_bytes


class TensorDetail(TypedDict):
    """One entry of LiteRT's `get_input_details()` / `get_output_details()` (the keys
    posterlite reads; LiteRT ships no type information)."""

    name: str
    index: int
    shape: np.ndarray
    shape_signature: np.ndarray  # -1 where a dimension is dynamic
    dtype: type[np.generic]
    quantization: tuple[float, int]


class LiteInterpreter(Protocol):
    """The part of LiteRT's (or tflite_runtime's) `Interpreter` posterlite calls."""

    def allocate_tensors(self) -> None:
        """Allocate (or re-allocate after a resize) every tensor."""

    def get_input_details(self) -> list[TensorDetail]:
        """One detail per input tensor."""

    def get_output_details(self) -> list[TensorDetail]:
        """One detail per output tensor."""

    def resize_tensor_input(self, input_index: int, tensor_size: Sequence[int]) -> None:
        """Change an input's shape (call `allocate_tensors` after)."""

    def set_tensor(self, tensor_index: int, value: np.ndarray) -> None:
        """Copy `value` into a tensor."""

    def invoke(self) -> None:
        """Run the model once."""

    def get_tensor(self, tensor_index: int) -> np.ndarray:
        """A copy of a tensor's value."""


def interpreter_class() -> type:
    """LiteRT's `Interpreter` class, else tflite_runtime's; raises PosterliteError when
    neither is installed."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return cast(type, Interpreter)
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter as RuntimeInterpreter
    except ImportError as exc:
        raise PosterliteError(
            "no TFLite runtime installed: pip install 'posterlite[runtime]' (ai-edge-litert)"
        ) from exc
    return cast(type, RuntimeInterpreter)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, else its class name (for one-line errors)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def check_model_file(path: Path) -> Path:
    """`path` if it looks like a TFLite model; else raises PosterliteError, one line saying
    what it is (missing, a folder, unreadable, empty, no TFL3 identifier)."""
    path = Path(path)
    if not path.exists():
        raise PosterliteError(f"model not found: {path}")
    if path.is_dir():
        raise PosterliteError(f"{path}: is a directory, not a .tflite file")
    try:
        with path.open("rb") as handle:
            head = handle.read(MIN_MODEL_BYTES)
    except OSError as exc:
        raise PosterliteError(f"{path}: cannot read ({first_line(exc)})") from exc
    if not head:
        raise PosterliteError(f"{path}: empty file (0 bytes), not a TFLite model")
    check_tflite_bytes(head, str(path))
    return path


def verify_model_file(path: Path) -> Path:
    """`check_model_file` plus LiteRT's flatbuffer verification (no tensors allocated, so
    it costs milliseconds): lets a command reject a truncated file before it starts work.
    Returns `path`; raises PosterliteError for a file LiteRT refuses."""
    path = check_model_file(path)
    try:
        with captured_output():
            interpreter_class()(model_path=str(path))
    except (ValueError, RuntimeError) as exc:
        raise PosterliteError(f"{path}: not a usable TFLite model ({_reason(exc)})") from exc
    return path


def _reason(exc: BaseException) -> str:
    reason = first_line(exc)
    if "not a valid Flatbuffer" in reason:
        reason += ": truncated or corrupt"
    return reason


def load_interpreter(path: Path, threads: int = 1) -> LiteInterpreter:
    """An allocated LiteRT interpreter for `path` (XNNPACK is applied as default delegate).

    LiteRT verifies the whole flatbuffer here, so a truncated or corrupt file fails with
    one line (PosterliteError, as for threads < 1). Its one-time `INFO: Created ... XNNPACK
    delegate` print is captured. LiteRT ships no type information: `LiteInterpreter` is
    what posterlite calls on it. Returns the interpreter.
    """
    path = check_model_file(path)
    if threads < 1:
        raise PosterliteError(f"threads must be >= 1, got {threads}")
    interpreter_type = interpreter_class()
    try:
        with captured_output():
            interpreter = interpreter_type(model_path=str(path), num_threads=threads)
            interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise PosterliteError(f"{path}: not a usable TFLite model ({_reason(exc)})") from exc
    return cast(LiteInterpreter, interpreter)


def interpreter_from_bytes(model_bytes: bytes) -> LiteInterpreter:
    """An (unallocated) interpreter over in-memory model bytes, its log print captured.
    Raises ValueError (LiteRT's) for bytes that are not a model."""
    with captured_output():
        return cast(LiteInterpreter, interpreter_class()(model_content=model_bytes))
