"""Reading a model's metadata: `read_metadata` (labels, thresholds, normalization, name and
version of a `.tflite`: embedded TFLite Metadata, else the JSON sidecar, else the default
genre scheme) and `info_text` (`posterlite info`).

Runs on the runtime-only install (flatbuffers, the standard library and LiteRT for the
tensor details). Every read is bounded (see the package docstring): the model is
memory-mapped, and what the file claims never decides how much is allocated.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from posterlite.errors import PosterliteError
from posterlite.genres import DEFAULT_THRESHOLD, default_scheme
from posterlite.interpreter import TensorDetail, check_model_file, first_line, load_interpreter
from posterlite.metadata.limits import (
    LABELS_FILE,
    MAX_METADATA_BYTES,
    MAX_MODEL_METADATA_ENTRIES,
    MAX_SIDECAR_BYTES,
    METADATA_NAME,
    THRESHOLDS_FILE,
    sidecar_path,
)
from posterlite.metadata.records import ModelInfo, Quantization, TensorInfo
from posterlite.metadata.rules import (
    check_labels,
    check_normalization,
    check_threshold,
    check_thresholds,
    shown,
    strict_json,
    utf8_text,
)
from posterlite.metadata.schema import EmbeddedMetadata, parse_metadata_buffer
from posterlite.metadata.zipped import zip_entries
from posterlite.preprocess import NORM_MEAN, NORM_STD
from posterlite.safetext import display
from posterlite.tflite_file import FLATBUFFER_ERRORS, named_metadata_buffer


def metadata_buffer(model_bytes: bytes | mmap.mmap) -> bytes | None:
    """The raw TFLITE_METADATA flatbuffer of a model, or None when it has none.

    Reads only what it needs from `model_bytes` (bytes or a read-only mmap of the file):
    the metadata entries' names are compared in place (the first
    MAX_MODEL_METADATA_ENTRIES), the buffer copied only when it is within
    MAX_METADATA_BYTES. Raises PosterliteError without the TFL3 identifier or for a larger
    buffer; one of `tflite_file.FLATBUFFER_ERRORS` for offsets past the end.
    """
    return named_metadata_buffer(
        model_bytes,
        METADATA_NAME.encode(),
        max_entries=MAX_MODEL_METADATA_ENTRIES,
        max_bytes=MAX_METADATA_BYTES,
    )


def _tensor_infos(path: Path) -> tuple[TensorInfo | None, TensorInfo | None]:
    interpreter = load_interpreter(path)

    def info(detail: TensorDetail) -> TensorInfo:
        scale, zero = detail.get("quantization", (0.0, 0))
        return TensorInfo(
            name=str(detail["name"]),
            shape=tuple(int(v) for v in detail["shape"]),
            dtype=np.dtype(detail["dtype"]).name,
            quantization=Quantization(float(scale), int(zero)),
        )

    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    return (info(inputs[0]) if inputs else None, info(outputs[0]) if outputs else None)


def _label_lines(data: bytes, where: str) -> list[str]:
    """The labels of a label file: one per line, stripped; blank lines only at the end."""
    lines = [line.strip() for line in utf8_text(data, where).split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise PosterliteError(f"{where}: no labels")
    return lines


def _numbered_repeats(labels: tuple[str, ...], where: str) -> tuple[str, ...]:
    """Repeated names made unique by their output index: `crane`, ..., `crane [518]`."""
    seen: set[str] = set()
    named = []
    for index, label in enumerate(labels):
        named.append(f"{label} [{index}]" if label in seen else label)
        seen.add(label)
    if len(set(named)) != len(named):  # a file naming both `crane` twice and `crane [1]`
        check_labels(named, where)
    return tuple(named)


@dataclass(frozen=True)
class _Labelling:
    """What one source (embedded files or the sidecar) says about the outputs."""

    genres: tuple[str, ...]
    thresholds: tuple[float, ...] | None  # None: the source tunes none (default everywhere)


def _embedded_labelling(packed: dict[str, bytes], label_file: str, where: str) -> _Labelling | None:
    """Labels (+ tuned thresholds) from the zipped files, None when there is no label file.

    With posterlite's thresholds.json beside it the label file is a genre list: its labels
    must obey `check_labels` and the thresholds must be one valid value per label. A label
    file alone comes from another tool (Google's ImageNet file names `crane` twice): its
    repeated names get their output index so no score hides another.
    """
    if label_file not in packed:
        return None
    lines = _label_lines(packed[label_file], f"{where}: {label_file}")
    if THRESHOLDS_FILE not in packed:
        labels = check_labels(lines, f"{where}: {label_file}", unique=False)
        return _Labelling(_numbered_repeats(labels, f"{where}: {label_file}"), None)
    genres = check_labels(lines, f"{where}: {label_file}")
    tuned = strict_json(packed[THRESHOLDS_FILE], f"{where}: {THRESHOLDS_FILE}")
    if not isinstance(tuned, dict) or "thresholds" not in tuned:
        raise PosterliteError(f'{where}: {THRESHOLDS_FILE} holds no "thresholds" list')
    if "genres" in tuned and tuned["genres"] != list(genres):
        raise PosterliteError(f"{where}: {THRESHOLDS_FILE} names other genres than {label_file}")
    thresholds = check_thresholds(tuned["thresholds"], len(genres), f"{where}: {THRESHOLDS_FILE}")
    return _Labelling(genres, thresholds)


def _read_capped(path: Path, limit: int) -> bytes:
    """At most `limit` bytes of a file; one line when it holds more or cannot be read."""
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise PosterliteError(f"{path}: cannot read ({first_line(exc)})") from exc
    if len(data) > limit:
        raise PosterliteError(f"{path}: larger than {limit} bytes")
    return data


def _sidecar_text(value: object, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise PosterliteError(f"{where} must be text, not {shown(value)}")
    return str(value)


@dataclass(frozen=True)
class _Sidecar:
    labelling: _Labelling
    name: str | None
    version: str | None
    description: str | None
    norm: tuple[float, float] | None
    default_threshold: float | None


def _read_sidecar(path: Path) -> _Sidecar | None:
    """`<model>.json`, when it holds a genre list; None when absent or not a sidecar.

    Read like the embedded files (capped, strict JSON, the same label and threshold
    rules): a sidecar that is there but broken is one line, not a silent fallback.
    """
    target = sidecar_path(path)
    if not target.is_file():
        return None
    data = strict_json(_read_capped(target, MAX_SIDECAR_BYTES), str(target))
    if not isinstance(data, dict) or not data.get("genres"):
        return None
    where = str(target)
    raw_genres = data["genres"]
    if not isinstance(raw_genres, list):
        raise PosterliteError(f'{where}: "genres" must be a list, not {shown(raw_genres)}')
    genres = check_labels(raw_genres, where)
    thresholds = None
    if data.get("thresholds") is not None:
        thresholds = check_thresholds(data["thresholds"], len(genres), where)
    norm = data.get("normalization")
    if norm is not None:
        if not isinstance(norm, dict):
            raise PosterliteError(f'{where}: "normalization" must be an object')
        norm = check_normalization(norm.get("mean", NORM_MEAN), norm.get("std", NORM_STD), where)
    default = data.get("default_threshold")
    texts = {
        key: _sidecar_text(data[key], f"{where}: {key}") if data.get(key) else None
        for key in ("name", "version", "description")
    }
    return _Sidecar(
        labelling=_Labelling(genres, thresholds),
        norm=norm,
        default_threshold=None
        if default is None
        else check_threshold(default, f"{where}: default threshold"),
        **texts,
    )


def _embedded_metadata(path: Path) -> tuple[EmbeddedMetadata | None, int]:
    """The parsed TFLITE_METADATA of a model file (None: none) and the file's size.

    The file is mapped, not read: only the pages the flatbuffer walk touches are loaded,
    whatever the file's size.
    """
    try:
        with path.open("rb") as handle:
            mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError) as exc:  # ValueError: an empty file
        raise PosterliteError(f"{path}: cannot read ({first_line(exc)})") from exc
    with mapped:
        try:
            raw = metadata_buffer(mapped)
            return (parse_metadata_buffer(raw) if raw is not None else None), len(mapped)
        except FLATBUFFER_ERRORS as exc:
            raise _corrupt(path, exc) from exc


def _corrupt(path: Path, exc: BaseException) -> PosterliteError:
    # Offsets past the end of the file: truncated, or not written by a TFLite writer.
    return PosterliteError(
        f"{path}: not a usable TFLite model (corrupt or truncated flatbuffer: {type(exc).__name__})"
    )


def read_metadata(path: Path, with_tensors: bool = True, n_outputs: int | None = None) -> ModelInfo:
    """Labels, thresholds, normalization, name and version of a `.tflite`.

    Source order: the embedded TFLite Metadata, then the JSON sidecar, then the default
    genre scheme with threshold 0.5 everywhere. Runtime-only (no TensorFlow). The labels
    are checked against the model's output count: read from the tensors (`with_tensors`)
    or given by a caller that already holds an interpreter (`n_outputs`). Everything read
    obeys the limits and rules of the package docstring; a file that breaks one is refused
    with a one-line `PosterliteError`. Returns the model's `ModelInfo`.
    """
    path = check_model_file(Path(path))
    # The interpreter verifies the whole flatbuffer: a truncated file stops here, in one line.
    input_info, output_info = _tensor_infos(path) if with_tensors else (None, None)
    embedded, size = _embedded_metadata(path)
    if n_outputs is None and output_info and output_info.shape:
        n_outputs = output_info.shape[-1]

    name, version, description, parser = path.stem, "", "", ""
    mean, std, default_threshold = NORM_MEAN, NORM_STD, DEFAULT_THRESHOLD
    labelling: _Labelling | None = None
    files: tuple[str, ...] = ()
    source = "default"
    if embedded is not None:
        with path.open("rb") as handle:
            try:
                packed = zip_entries(handle)
            except PosterliteError as exc:
                raise PosterliteError(f"{path}: {exc}") from exc
        files = tuple(packed)
        name, version, description = embedded.name or name, embedded.version, embedded.description
        parser = embedded.min_parser_version
        if embedded.norm_mean is not None or embedded.norm_std is not None:
            mean, std = check_normalization(
                mean if embedded.norm_mean is None else embedded.norm_mean,
                std if embedded.norm_std is None else embedded.norm_std,
                f"{path}: metadata",
            )
        if embedded.default_threshold is not None:
            default_threshold = check_threshold(
                embedded.default_threshold, f"{path}: metadata: default threshold"
            )
        # Any model's labels file works (Google's ship `imagenet_labels.txt`), ours is
        # labels.txt.
        labelling = _embedded_labelling(packed, embedded.label_file or LABELS_FILE, str(path))
        if labelling is not None:
            source = "metadata"
    if labelling is None:
        sidecar = _read_sidecar(path)
        if sidecar is not None:
            labelling, source = sidecar.labelling, "sidecar"
            name = sidecar.name or name
            version = sidecar.version or version
            description = sidecar.description or description
            mean, std = sidecar.norm or (mean, std)
            if sidecar.default_threshold is not None:
                default_threshold = sidecar.default_threshold
    genres = labelling.genres if labelling is not None else ()
    if genres and n_outputs is not None and len(genres) != n_outputs:
        # Renaming the outputs would hand an app scores under the wrong genre names.
        raise PosterliteError(
            f"{path}: the model has {n_outputs} outputs but its {source} names "
            f"{len(genres)} labels ({', '.join(genres[:8])}{', ...' if len(genres) > 8 else ''})"
        )
    thresholds = labelling.thresholds if labelling is not None else None
    if not genres:
        scheme = default_scheme()
        if n_outputs is None or scheme.size == n_outputs:
            genres = scheme.names
        else:
            # Not a genre model (e.g. an ImageNet classifier): index names keep it usable.
            genres = tuple(f"class_{index}" for index in range(n_outputs))
        thresholds, source = None, "default"
    return ModelInfo(
        path=path,
        size_bytes=size,
        name=name,
        version=version,
        description=description,
        genres=genres,
        thresholds=thresholds or tuple(default_threshold for _ in genres),
        default_threshold=default_threshold,
        norm_mean=mean,
        norm_std=std,
        input=input_info,
        output=output_info,
        source=source,
        associated_files=files,
        min_parser_version=parser,
    )


def info_text(info: ModelInfo) -> str:
    """Human-readable `posterlite info` output; every line `display`-escaped."""

    def tensor(label: str, t: TensorInfo | None) -> str:
        if t is None:
            return f"{label}: -"
        quant = (
            f", quantization scale={t.quantization.scale:.8g} zero_point={t.quantization.zero_point}"
            if t.quantization.quantized
            else ""
        )
        return f"{label}: {t.name} {list(t.shape)} {t.dtype}{quant}"

    genres = [display(g) for g in info.genres]
    width = max((len(g) for g in genres), default=0)
    lines = [
        f"model: {info.path} ({info.size_bytes / 1e6:.3f} MB)",
        f"name: {info.name}  version: {info.version or '-'}",
        f"labels from: {info.source}"
        + (f" (files: {', '.join(info.associated_files)})" if info.associated_files else ""),
        f"normalization: (pixel - {info.norm_mean:g}) / {info.norm_std:g}",
        tensor("input", info.input),
        tensor("output", info.output),
        f"default threshold: {info.default_threshold:g}",
        "genres (tuned threshold):",
        *(f"  {g:<{width}}  {t:.3f}" for g, t in zip(genres, info.thresholds, strict=True)),
    ]
    return "".join(display(line) + "\n" for line in lines)
