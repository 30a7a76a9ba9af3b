"""Reading the bench's JSON back: typed accessors that refuse a malformed report in one line
(`JSONReader`), writing any record as plain JSON values (`to_json_value`), and the accuracy
report's reader. The bottom of `posterlite.bench.records`: it knows no record type."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, is_dataclass
from typing import cast, get_args

from posterlite.errors import PosterliteError
from posterlite.fileio import jsonable
from posterlite.metrics import GenreMetrics, MultiLabelReport

JSONObject = Mapping[str, object]


# ------------------------------------------------------------------- reading JSON values
MISSING = object()


def read_number(value: object, key: str) -> float:
    """`value` (JSON `key`) as a float; null reads as NaN (strict JSON writes NaN as null)."""
    if value is None:  # NaN is written as null (strict JSON)
        return float("nan")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PosterliteError(f"bench record: {key} is not a number ({value!r})")
    return float(value)


def read_integer(value: object, key: str) -> int:
    """`value` (JSON `key`) as an int (not a bool); raises PosterliteError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise PosterliteError(f"bench record: {key} is not an integer ({value!r})")
    return value


def read_text(value: object, key: str) -> str:
    """`value` (JSON `key`) as a str; raises PosterliteError otherwise."""
    if not isinstance(value, str):
        raise PosterliteError(f"bench record: {key} is not a string ({value!r})")
    return value


def read_items(value: object, key: str) -> list[object]:
    """`value` (JSON `key`) as a list; raises PosterliteError otherwise."""
    if not isinstance(value, list | tuple):
        raise PosterliteError(f"bench record: {key} is not a list")
    return list(value)


def as_object(value: object, what: str) -> JSONObject:
    """`value` as a JSON object; raises PosterliteError naming `what` when it is not one."""
    if not isinstance(value, Mapping):
        raise PosterliteError(f"bench record: {what} is not a JSON object")
    return cast(JSONObject, value)


@dataclass(frozen=True)
class JSONReader:
    """Typed reads from one JSON object. Each returns the value at `key` as its Python type
    (`default` when the key is missing and a default is given) and raises PosterliteError
    naming the key when it is missing or of another type."""

    data: JSONObject
    what: str = "record"

    @classmethod
    def of(cls, value: object, what: str) -> JSONReader:
        """A reader of `value`; raises PosterliteError when it is not a JSON object."""
        return cls(as_object(value, what), what)

    def get(self, key: str, default: object = MISSING) -> object:
        """The raw value at `key`."""
        if key in self.data:
            return self.data[key]
        if default is MISSING:
            raise PosterliteError(f"bench record: {self.what} has no {key!r}")
        return default

    def number(self, key: str, default: object = MISSING) -> float:
        """A number as float (null: NaN, how strict JSON writes it)."""
        return read_number(self.get(key, default), key)

    def opt_number(self, key: str) -> float | None:
        """A number as float; None when missing or null."""
        value = self.get(key, None)
        return None if value is None else read_number(value, key)

    def integer(self, key: str, default: object = MISSING) -> int:
        """An integer (a boolean is not one)."""
        return read_integer(self.get(key, default), key)

    def opt_integer(self, key: str) -> int | None:
        """An integer; None when missing or null."""
        value = self.get(key, None)
        return None if value is None else read_integer(value, key)

    def text(self, key: str, default: object = MISSING) -> str:
        """A string."""
        return read_text(self.get(key, default), key)

    def choice(self, key: str, allowed: object) -> str:
        """A string that is one of the `Literal` type `allowed`'s values."""
        value = self.text(key)
        if value not in get_args(allowed):
            raise PosterliteError(
                f"bench record: {key} {value!r} is not one of {get_args(allowed)}"
            )
        return value

    def numbers(self, key: str, default: object = MISSING) -> tuple[float, ...]:
        """A list of numbers as a tuple of floats."""
        return tuple(read_number(v, key) for v in read_items(self.get(key, default), key))

    def integers(self, key: str, default: object = MISSING) -> tuple[int, ...]:
        """A list of integers as a tuple."""
        return tuple(read_integer(v, key) for v in read_items(self.get(key, default), key))

    def texts(self, key: str, default: object = MISSING) -> tuple[str, ...]:
        """A list of strings as a tuple."""
        return tuple(read_text(v, key) for v in read_items(self.get(key, default), key))

    def child(self, key: str, default: object = MISSING) -> JSONReader:
        """A reader of the object at `key`."""
        return JSONReader.of(self.get(key, default), key)

    def children(self, key: str, default: object = MISSING) -> list[JSONReader]:
        """Readers of the objects listed at `key`."""
        return [JSONReader.of(v, key) for v in read_items(self.get(key, default), key)]

    def string_map(self, key: str) -> dict[str, str]:
        """The object at `key` as str -> str ({} when missing or null)."""
        return {str(k): str(v) for k, v in as_object(self.get(key, None) or {}, key).items()}


def to_json_value(record: object) -> object:
    """A dataclass record (or any JSON-able value) as strict-JSON values."""
    if is_dataclass(record) and not isinstance(record, type):
        return jsonable(asdict(record))
    return jsonable(record)


def accuracy_from_json(data: object) -> MultiLabelReport:
    """A `metrics.MultiLabelReport` from its JSON form (as `BenchRow.accuracy` is written)."""
    obj = JSONReader.of(data, "accuracy")
    per_genre = []
    for g in obj.children("per_genre"):
        tn, fp, fn, tp = g.integers("confusion")
        per_genre.append(
            GenreMetrics(
                genre=g.text("genre"),
                precision=g.number("precision"),
                recall=g.number("recall"),
                f1=g.number("f1"),
                average_precision=g.number("average_precision"),
                support=g.integer("support"),
                threshold=g.number("threshold"),
                confusion=(tn, fp, fn, tp),
            )
        )
    return MultiLabelReport(
        genres=obj.texts("genres"),
        n_samples=obj.integer("n_samples"),
        per_genre=tuple(per_genre),
        macro_f1=obj.number("macro_f1"),
        micro_f1=obj.number("micro_f1"),
        mean_average_precision=obj.number("mean_average_precision"),
        hamming_loss=obj.number("hamming_loss"),
        subset_accuracy=obj.number("subset_accuracy"),
        paper_accuracy=obj.number("paper_accuracy"),
        paper_precision=obj.number("paper_precision"),
        paper_recall=obj.number("paper_recall"),
        paper_f1=obj.number("paper_f1"),
        thresholds=obj.numbers("thresholds", ()),
        genres_left_out=obj.texts("genres_left_out", ()),
    )
