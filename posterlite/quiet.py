"""Library logging off the terminal: the one place posterlite silences TensorFlow / LiteRT.

`install()` runs when `posterlite` is imported (before any TensorFlow / LiteRT import made
through posterlite) and does both of these, once; `POSTERLITE_VERBOSE=1` turns it off:

- Environment variables, read by the C++ libraries when they load: TensorFlow's
  `TF_CPP_MIN_LOG_LEVEL` (3: its runtime notices, e.g. the `E0000 ... cuInit` of a machine
  without GPU), gRPC's and glog's switches. Set only where the user has not set them.
- File-descriptor capture, for what no variable controls: TensorFlow prints absl lines at
  import (`WARNING: All log messages before absl::InitializeLog() ...`, `I0000 ... oneDNN`)
  before it reads any setting, the MLIR converter prints `fully_quantize: 0, ...`, and
  LiteRT prints `INFO: Created TensorFlow Lite XNNPACK delegate for CPU.` from C++ straight
  to file descriptor 2 (LiteRT has no severity switch). `captured_output()` points fds 1
  and 2 at a temporary file for a block and returns what was written, so a caller can keep
  it in a log and show it when the block failed. An import hook runs the first
  `import tensorflow` inside it and wraps LiteRT's `Interpreter.allocate_tensors` (where
  the delegate line is printed), so no command needs to remember to.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.abc
import importlib.machinery
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

VERBOSE_ENV = "POSTERLITE_VERBOSE"
# Read when the libraries load: must be in os.environ before TensorFlow / LiteRT import.
QUIET_ENV: dict[str, str] = {
    "TF_CPP_MIN_LOG_LEVEL": "3",  # TensorFlow C++ after import: fatal only (errors raise)
    "TF_CPP_MAX_VLOG_LEVEL": "-1",
    "GRPC_VERBOSITY": "ERROR",
    "GLOG_minloglevel": "2",
}
# The lines a user must never see on the terminal (tests assert their absence).
LOG_LINE_MARKERS: tuple[str, ...] = (
    "I0000 ",
    "W0000 ",
    "fully_quantize:",
    "All log messages before absl::InitializeLog()",
    "Created TensorFlow Lite XNNPACK delegate",
    "oneDNN custom operations",
    "Unable to register cu",
    "TF-TRT Warning",
)


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "").strip() not in ("", "0", "false", "no")


def quiet_environment() -> None:
    """Set the libraries' logging variables where the user has not set them."""
    if verbose():
        return
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)


def quiet_python_loggers() -> None:
    """TensorFlow's and absl's Python loggers: errors only (they print through `logging`)."""
    if verbose():
        return
    import logging

    for name in ("tensorflow", "absl", "h5py", "keras"):
        logging.getLogger(name).setLevel(logging.ERROR)


@dataclass
class Captured:
    """What C++ (and Python) wrote to fds 1 and 2 inside a `captured_output` block."""

    text: str = ""
    log_path: Path | None = None

    def tail(self, lines: int = 20) -> list[str]:
        return [line for line in self.text.splitlines() if line.strip()][-lines:]


_LOCK = threading.RLock()
_DEPTH = 0


@contextlib.contextmanager
def captured_output(log_path: Path | None = None) -> Iterator[Captured]:
    """Redirect fds 1 and 2 into a temporary file for the block; append it to `log_path`.

    A nested block shares the outer capture; another thread waits until the block ends
    (fds are process-wide). With `POSTERLITE_VERBOSE` set nothing is redirected. The text is available
    on the yielded object after the block, also when the block raised.
    """
    global _DEPTH
    result = Captured(log_path=Path(log_path) if log_path is not None else None)
    if verbose():
        yield result
        return
    with _LOCK:
        if _DEPTH:
            _DEPTH += 1
            try:
                yield result
            finally:
                _DEPTH -= 1
            return
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        try:
            saved = (os.dup(1), os.dup(2))
        except OSError:  # no real fds (embedded interpreter): nothing to capture
            yield result
            return
        sink = tempfile.TemporaryFile(mode="w+b", prefix="posterlite-log-")
        _DEPTH = 1
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            try:
                yield result
            finally:
                for stream in (sys.stdout, sys.stderr):
                    with contextlib.suppress(Exception):
                        stream.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
                sink.seek(0)
                result.text = sink.read().decode("utf-8", errors="replace")
                if result.log_path is not None and result.text:
                    result.log_path.parent.mkdir(parents=True, exist_ok=True)
                    with result.log_path.open("a", encoding="utf-8") as handle:
                        handle.write(result.text)
        finally:
            _DEPTH = 0
            os.close(saved[0])
            os.close(saved[1])
            sink.close()


def log_lines(text: str) -> list[str]:
    """The library log lines in `text` (what tests assert never reaches the terminal)."""
    return [line for line in text.splitlines() if any(m in line for m in LOG_LINE_MARKERS)]


# ------------------------------------------------------------------------- import hook
_QUIET_IMPORTS = frozenset({"tensorflow"})
_LITERT_MODULES = frozenset({"ai_edge_litert.interpreter", "tflite_runtime.interpreter"})


class _QuietLoader(importlib.abc.Loader):
    """Runs a module's first execution with fds 1 and 2 captured; patches LiteRT after."""

    def __init__(self, inner: importlib.abc.Loader, name: str) -> None:
        self._inner, self._name = inner, name

    def __getattr__(self, attr: str):  # get_resource_reader, is_package, ... of the real one
        return getattr(self._inner, attr)

    def create_module(self, spec):  # noqa: ANN001 (importlib protocol)
        return self._inner.create_module(spec)

    def exec_module(self, module) -> None:  # noqa: ANN001
        if self._name in _LITERT_MODULES:
            self._inner.exec_module(module)
            _quiet_allocate(getattr(module, "Interpreter", None))
            return
        captured = Captured()
        try:
            with captured_output() as captured:
                self._inner.exec_module(module)
        except BaseException:
            if captured.text:  # an import that fails shows what it printed
                sys.stderr.write(captured.text)
            raise


def _quiet_allocate(interpreter: type | None) -> None:
    if interpreter is None or getattr(interpreter.allocate_tensors, "_posterlite_quiet", False):
        return
    original = interpreter.allocate_tensors

    @functools.wraps(original)
    def allocate_tensors(self, *args, **kwargs):  # noqa: ANN001, ANN202
        with captured_output():
            return original(self, *args, **kwargs)

    allocate_tensors._posterlite_quiet = True  # type: ignore[attr-defined]
    interpreter.allocate_tensors = allocate_tensors  # type: ignore[method-assign]


class _QuietFinder(importlib.abc.MetaPathFinder):
    """Hands the watched modules' specs out with `_QuietLoader`; leaves others alone."""

    def find_spec(self, name: str, path=None, target=None):  # noqa: ANN001
        if name not in _QUIET_IMPORTS and name not in _LITERT_MODULES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _QuietLoader(spec.loader, name)
        return spec


_INSTALLED = False


def install() -> None:
    """Quiet environment + import hook; idempotent, a no-op with POSTERLITE_VERBOSE set."""
    global _INSTALLED
    if _INSTALLED or verbose():
        return
    _INSTALLED = True
    quiet_environment()
    for name in _LITERT_MODULES:  # already imported: patch in place
        module = sys.modules.get(name)
        if module is not None:
            _quiet_allocate(getattr(module, "Interpreter", None))
    sys.meta_path.insert(0, _QuietFinder())
