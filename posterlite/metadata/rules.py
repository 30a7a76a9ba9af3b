"""The rules a model's facts obey, on writing (`check_spec`) and reading alike: labels,
thresholds, normalization, and strict UTF-8 / JSON for the files that carry them.

Every check returns the checked value or raises a one-line `PosterliteError` naming where
the value came from and what is wrong with it.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Sequence

import numpy as np

from posterlite.errors import PosterliteError
from posterlite.interpreter import first_line
from posterlite.metadata.limits import MAX_LABEL_CHARS
from posterlite.metadata.records import MetadataSpec


def shown(value: object, limit: int = 40) -> str:
    """A short repr of a hostile value for an error message (the CLI escapes the line)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def check_labels(labels: Sequence[str], where: str, unique: bool = True) -> tuple[str, ...]:
    """`labels` if they obey the label rules (writing and reading alike), else one line.

    A label is text of 1..MAX_LABEL_CHARS characters, one line, no surrounding whitespace
    (labels.txt is read line by line and stripped, so anything else would not survive a
    round trip); with `unique` no label repeats (scores are keyed by label).
    Returns them as a tuple; raises PosterliteError otherwise.
    """
    for index, label in enumerate(labels, 1):
        if not isinstance(label, str):
            raise PosterliteError(f"{where}: label {index} is not text ({shown(label)})")
        if not label.strip():
            raise PosterliteError(f"{where}: label {index} is empty")
        if label != label.strip() or label.splitlines() != [label]:
            raise PosterliteError(
                f"{where}: label {index} has surrounding whitespace or a line break "
                f"({shown(label)})"
            )
        if len(label) > MAX_LABEL_CHARS:
            raise PosterliteError(
                f"{where}: label {index} is {len(label)} characters long (at most "
                f"{MAX_LABEL_CHARS})"
            )
    if unique:
        first: dict[str, int] = {}
        for index, label in enumerate(labels, 1):
            if label in first:
                raise PosterliteError(
                    f"{where}: label {index} repeats label {first[label]} ({shown(label)}); "
                    "labels must be unique"
                )
            first[label] = index
    return tuple(labels)


def check_threshold(value: object, where: str) -> float:
    """A threshold: a finite number in [0, 1] (not a bool, not a string), else one line.
    Returns it as a float; raises PosterliteError otherwise."""
    if (
        isinstance(value, bool | np.bool_)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or not 0.0 <= float(value) <= 1.0
    ):
        raise PosterliteError(f"{where} must be a number in [0, 1], not {shown(value)}")
    return float(value)


def check_thresholds(values: Sequence[object], count: int, where: str) -> tuple[float, ...]:
    """One valid threshold per label (`count`), else one line. Returns them as floats; raises
    PosterliteError otherwise."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise PosterliteError(f"{where}: thresholds must be a list, not {shown(values)}")
    if len(values) != count:
        raise PosterliteError(f"{where}: {len(values)} thresholds for {count} labels")
    return tuple(
        check_threshold(value, f"{where}: threshold {index}")
        for index, value in enumerate(values, 1)
    )


def check_normalization(mean: object, std: object, where: str) -> tuple[float, float]:
    """(mean, std) of the input normalization: finite numbers, std > 0, else one line. Raises
    PosterliteError otherwise."""
    for label, value in (("mean", mean), ("std", std)):
        if (
            isinstance(value, bool | np.bool_)
            or not isinstance(value, numbers.Real)
            or not math.isfinite(value)
        ):
            raise PosterliteError(f"{where}: normalization {label} {shown(value)} is not finite")
    if not std > 0:  # type: ignore[operator]
        raise PosterliteError(f"{where}: normalization std must be > 0, not {std!r}")
    return float(mean), float(std)  # type: ignore[arg-type]


def check_spec(spec: MetadataSpec) -> MetadataSpec:
    """`spec` if `read_metadata` would accept what it writes, else one line. Raises
    PosterliteError otherwise (the first rule broken)."""
    check_labels(spec.genres, "metadata")
    check_thresholds(spec.thresholds, len(spec.genres), "metadata")
    check_threshold(spec.default_threshold, "metadata: default threshold")
    check_normalization(spec.norm_mean, spec.norm_std, "metadata")
    return spec


def utf8_text(data: bytes, where: str) -> str:
    """UTF-8 text (a leading BOM allowed), else one line naming the first bad byte. Raises
    PosterliteError for bytes that are not UTF-8."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PosterliteError(
            f"{where}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from exc


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"key {shown(key)} appears twice")
        result[key] = value
    return result


def strict_json(data: bytes, where: str) -> object:
    """Strict JSON from a file's bytes: UTF-8, no NaN/Infinity, no repeated keys, not nested
    beyond what the parser's recursion allows; anything else is one line. Returns the parsed
    value; raises PosterliteError otherwise."""
    text = utf8_text(data, where)
    try:
        return json.loads(text, parse_constant=_refuse_constant, object_pairs_hook=_unique_keys)
    except RecursionError as exc:
        raise PosterliteError(f"{where}: JSON nested too deeply") from exc
    except ValueError as exc:  # JSONDecodeError, refused constants, too many digits
        raise PosterliteError(f"{where}: not valid JSON ({first_line(exc)})") from exc
