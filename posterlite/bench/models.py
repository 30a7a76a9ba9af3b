"""Which models a bench run measures: the CLI's MODEL arguments turned into `ModelSpec`s.

`.tflite` files are taken as they are; trained run folders and `.keras` files give one spec
per format (the committed phone-ready file when it is up to date, else a conversion beside
the run, else one made into the cache, `posterlite.bench.cache`), plus a Keras baseline
when no recorded Keras figures fit the posters. No argument: the shipped models. Google's
published int8 MobileNetV2 files join as latency + size references.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import posterlite.bench.paths as paths
from posterlite.archs import GRID_MODEL_NAMES, arch_spec
from posterlite.bench.cache import Converter, convert_to_cache
from posterlite.bench.labelled import LabelledSet
from posterlite.bench.records import ModelSpec
from posterlite.bench.sidecar import (
    file_digest,
    fitting_reference,
    recorded_reference,
    shipped_file,
)
from posterlite.ensemble import is_ensemble, materialize
from posterlite.errors import PosterliteError
from posterlite.formats import SHIPPED_FORMAT, format_spec, is_format

DEFAULT_FORMATS: tuple[str, ...] = (SHIPPED_FORMAT,)
# The accuracy-first file: mobilenet_v1_smote + mobilenet_v2 averaged in one graph
# (`posterlite.ensemble`); its cost is read as a multiple of the anchor model's.
ENSEMBLE_MODEL = "ensemble_v1smote_v2"
# The paper's six (each architecture plain and with SMOTE), then the fine-tuned
# mobilenet_v2 exported at 160 px (the fast point of the frontier) and the ensemble.
SHIPPED_MODELS: tuple[str, ...] = (*GRID_MODEL_NAMES, "mobilenet_v2_160", ENSEMBLE_MODEL)
# Google's int8 MobileNetV2 files in ../shared/pretrained (the registry's, preferred first).
REFERENCE_FILES: tuple[str, ...] = arch_spec("mobilenet_v2").pretrained_files
# The one the anchor ratio divides by (`ratios`; the arm64 target runs it on every class).
ANCHOR_REFERENCE = REFERENCE_FILES[0]


def split_name(path: Path) -> tuple[str, str]:
    """`<name>.<fmt>.tflite` -> (name, fmt); anything else -> (stem, "tflite").

    A shipped `model.<fmt>.tflite` is named after its folder (`models/<name>/`).
    """
    stem = path.name[: -len(".tflite")] if path.name.endswith(".tflite") else path.stem
    name, _, fmt = stem.rpartition(".")
    if name and is_format(fmt):
        if name == "model" and path.parent.name:
            name = path.parent.resolve().name
        return name, fmt
    return stem, "tflite"


def _run_name(source: Path) -> str:
    """Name of a trained run (its card), else of its folder."""
    from posterlite.card import read_card

    try:
        return str(read_card(source).name)
    except PosterliteError:
        return (source if source.is_dir() else source.parent).name


def _keras_file(source: Path) -> Path:
    path = source / "model.keras" if source.is_dir() else source
    if source.is_dir() and is_ensemble(source):
        path = materialize(source)  # an ensemble's model.keras is rebuilt, not committed
    if not path.is_file():
        raise PosterliteError(f"{source}: no model.keras in this run folder")
    return path


def _shipped_if_fresh(folder: Path, fmt: str, keras_path: Path) -> tuple[Path | None, str]:
    """The committed `model.<fmt>.tflite` when it was exported from this `model.keras`.

    Returns (path or None, warning). A file exported from another `model.keras` (the model
    was retrained since) would report figures of the old model: it is not used.
    """
    path = shipped_file(folder, fmt)
    if not path.is_file():
        return None, ""
    reference = recorded_reference(path)
    if reference is not None and reference.keras_sha256 != file_digest(keras_path, 64):
        return None, (
            f"{path} was exported from an older {keras_path.name}; converting instead "
            "(refresh it: python benchmarks/export_int8.py)"
        )
    return path, ""


def _existing_tflite(folder: Path, name: str, fmt: str) -> Path | None:
    """A conversion already written beside the run (`convert`'s naming), if any."""
    file_name = format_spec(fmt).file_name(name)
    for candidate in (folder / file_name, folder / "tflite" / file_name):
        if candidate.is_file():
            return candidate
    return None


def shipped_sources() -> list[Path]:
    """The shipped model folders present under models/; raises PosterliteError for none."""
    models = paths.MODELS_DIR
    found = [models / name for name in SHIPPED_MODELS if (models / name).is_dir()]
    if not found:
        raise PosterliteError(
            f"no trained models under {models} (expected {', '.join(SHIPPED_MODELS)}); "
            "train them first or pass MODEL paths"
        )
    return found


def resolve_models(
    sources: Sequence[str | Path],
    formats: Sequence[str] = DEFAULT_FORMATS,
    *,
    keras_baseline: bool = True,
    cache_dir: Path | None = None,
    posters: LabelledSet | None = None,
    convert: Converter | None = None,
    warnings: list[str] | None = None,
) -> list[ModelSpec]:
    """ModelSpecs for the CLI's MODEL arguments (or the shipped models when empty).

    `.tflite` files are taken as they are. For run dirs and `.keras` files each format is
    the committed `model.<fmt>.tflite` when it is up to date, else a conversion found
    beside the run, else one made into the cache. A Keras baseline spec is added when
    `keras_baseline` is set and no recorded Keras figures fit `posters`. Raises
    PosterliteError for a missing model or a file that is none of those.
    """
    specs: list[ModelSpec] = []
    for raw in sources or shipped_sources():
        source = Path(raw)
        if not source.exists():
            raise PosterliteError(f"model not found: {source}")
        if source.is_file() and source.suffix == ".tflite":
            from posterlite.interpreter import verify_model_file

            name, fmt = split_name(verify_model_file(source))
            reference = fitting_reference(recorded_reference(source), posters)
            specs.append(ModelSpec(name, fmt, source, "posterlite", reference))
            continue
        if source.is_file() and source.suffix != ".keras":
            raise PosterliteError(f"{source}: not a .tflite, .keras or trained run folder")
        keras_path = _keras_file(source)
        name = _run_name(source)
        folder = keras_path.parent
        wanted: dict[str, Path | None] = {}
        for fmt in formats:
            path, warning = _shipped_if_fresh(folder, fmt, keras_path)
            if warning and warnings is not None:
                warnings.append(warning)
            wanted[fmt] = path or _existing_tflite(folder, name, fmt)
        missing = [fmt for fmt, path in wanted.items() if path is None]
        if missing:
            converted = convert_to_cache(
                keras_path, name, missing, cache_dir or paths.CACHE_DIR, posters, convert=convert
            )
            wanted.update(converted)
        reference = None
        for path in wanted.values():
            if path is not None:
                reference = reference or fitting_reference(recorded_reference(path), posters)
        if reference is None and posters is not None and SHIPPED_FORMAT not in wanted:
            # With int8 among the formats its shipped file was already looked at above.
            shipped, _ = _shipped_if_fresh(folder, SHIPPED_FORMAT, keras_path)
            reference = fitting_reference(recorded_reference(shipped), posters) if shipped else None
        if keras_baseline and (reference is None or posters is None):
            specs.append(ModelSpec(name, "keras", keras_path, "keras"))
        specs.extend(
            ModelSpec(name, fmt, path, "posterlite", reference)
            for fmt, path in wanted.items()
            if path
        )
    return specs


def reference_specs(directory: Path | None = None) -> list[ModelSpec]:
    """Google's published int8 MobileNetV2 files, when `../shared/pretrained` has them."""
    directory = directory or paths.shared_dir() / "pretrained"
    specs = []
    for filename in REFERENCE_FILES:
        path = directory / filename
        if path.is_file():
            tag = "int8-ptq" if "ptq" in filename else "int8-qat"
            specs.append(ModelSpec(f"google_{path.stem}", tag, path, "reference"))
    return specs
