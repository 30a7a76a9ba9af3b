"""posterlite: film posters to multi-label genre predictions on a phone.

The Python API does what the CLI does; heavy modules load on first use, so
`import posterlite` stays light and works on the runtime-only install (LiteRT, no
TensorFlow) for `load` / `predict`:

    import posterlite

    model = posterlite.load("models/mobilenet_v2/model.int8.tflite")
    result = model.predict("poster.jpg")        # a path, bytes, PIL image or uint8 array
    result.predicted                            # ('Drama',): genres at or above the threshold
    result.scores                               # {'Action': 0.08, 'Drama': 0.71, ...}
    model.predict(["a.jpg", "b.jpg"], threshold="tuned")  # a list in, a list out

    posterlite.convert("models/mobilenet_v2", formats=["int8"], out_dir="out")  # full install
    report = posterlite.bench(["out/mobilenet_v2.int8.tflite"], rounds=3)
    print(posterlite.bench.summary_table(report))

`posterlite.convert` and `posterlite.bench` are the stage module and package, callable as
functions (`posterlite.bench(...)` is `posterlite.bench.bench(...)`).

`threshold` is the fixed cut (default: the model's, 0.5), a list of one per genre, or
"tuned" for the per-genre thresholds stored in the model's metadata. Importing posterlite
keeps TensorFlow's and LiteRT's C++ logging off the terminal (`posterlite.quiet`; set
POSTERLITE_VERBOSE=1 to keep it).
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from posterlite import quiet as _quiet

__version__ = "0.1.0"
__all__ = ["__version__", "bench", "convert", "load"]

_quiet.install()

if TYPE_CHECKING:
    from posterlite.convert_report import ConversionReport
    from posterlite.runtime import PosterModel


def load(path: str | Path, threads: int = 1) -> PosterModel:
    """A `.tflite` genre model ready to `predict`, its labels and thresholds from its metadata."""
    from posterlite.runtime import PosterModel

    return PosterModel.load(Path(path), threads=threads)


def _convert(
    model: str | Path,
    formats: Sequence[str] = ("int8",),
    out_dir: str | Path | None = None,
    *,
    calibration: str | Path | None = None,
    max_drop: float = 0.01,
    eval_dir: str | Path | None = None,
    eval_limit: int | None = None,
) -> ConversionReport:
    """`posterlite convert`: a trained run folder (or model.keras) to checked `.tflite` files.

    Needs the full install (TensorFlow). Returns the report; each result's `path` is a file.
    """
    from posterlite.convert import convert_model

    return convert_model(
        Path(model),
        formats=tuple(formats),
        out_dir=Path(out_dir) if out_dir is not None else None,
        calibration=Path(calibration) if calibration is not None else None,
        max_drop=max_drop,
        eval_dir=Path(eval_dir) if eval_dir is not None else None,
        eval_limit=eval_limit,
    )


# `posterlite.convert` is also the name of the stage module, and importing a submodule
# binds its name on the package. So the module itself is made callable: `posterlite.convert(
# ...)` runs `_convert` whether or not the module was imported first, and `from posterlite
# import convert` still gives the module. (`posterlite.bench`, a package, declares itself
# callable in its own __init__.)
class _CallableConvert(types.ModuleType):
    # Any: a pass-through to `_convert`, whose own signature mypy checks at the call.
    def __call__(self, *args: Any, **kwargs: Any) -> ConversionReport:
        return _convert(*args, **kwargs)


_CALLABLE = {"convert": _CallableConvert}


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value: object) -> None:
        if name in _CALLABLE and isinstance(value, types.ModuleType):
            value.__class__ = _CALLABLE[name]
        super().__setattr__(name, value)


def __getattr__(name: str) -> types.ModuleType:
    # First use of `bench` (a callable package, see its __init__) or of a stage module (made
    # callable on binding). import_module returns the module already in sys.modules, even
    # while it is still initializing (`import posterlite.bench.x as y` inside the bench
    # package asks for this attribute before the package is bound).
    if name == "bench" or name in _CALLABLE:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


sys.modules[__name__].__class__ = _Package
for _name in _CALLABLE:  # imported before this module finished (not the usual case)
    if f"{__name__}.{_name}" in sys.modules:
        setattr(sys.modules[__name__], _name, sys.modules[f"{__name__}.{_name}"])
