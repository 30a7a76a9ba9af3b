"""The bench's records, the bottom layer: what a run measured, as typed values, and its JSON.

Nothing here measures or imports another bench module. Every other bench module builds
these: `ModelSpec` (a model file and what it is), `LatencyStats`, `BenchRow` (one model x
format x thread count on one target), `Ratio` (one row's p50 over another's), `KerasReference`
(the Keras model's figures recorded at export), and `BenchReport`, the whole run, which
writes itself as JSON (`to_json`) and reads back any report posterlite wrote
(`from_json`; schema 2 reports included), so results re-render from their JSON alone.

Kinds and targets are `Literal`s, figures are numbers: a row's `device` holds only what the
device says about itself (strings, like `adb`'s `getprop`), never a measurement.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal, cast, get_args

import numpy as np

from posterlite.bench.environment import Environment
from posterlite.errors import PosterliteError
from posterlite.fileio import jsonable
from posterlite.metrics import GenreMetrics, MultiLabelReport

# What a spec or row is: one of posterlite's models, the Keras float baseline, one of
# Google's ImageNet reference files, or a posterlite model run by an app runtime.
Kind = Literal["posterlite", "keras", "reference", "app"]
# Where a row ran. (The registry's targets add "mediapipe": its rows run on the host CPU.)
Where = Literal["cpu", "android", "browser"]
SCHEMA = "posterlite-bench/3"
READABLE_SCHEMAS: tuple[str, ...] = ("posterlite-bench/2", SCHEMA)
MEMORY_METHOD = "peak RSS growth (ru_maxrss) of a fresh process across load + allocate + 1 invoke"

JSONObject = Mapping[str, object]


# ------------------------------------------------------------------- reading JSON values
# Each reads one JSON value as its Python type, or raises PosterliteError naming the key.
def field_of(data: JSONObject, key: str) -> object:
    """`data[key]`; raises PosterliteError when the key is missing."""
    if key not in data:
        raise PosterliteError(f"bench record: missing {key!r}")
    return data[key]


def as_object(value: object, what: str) -> JSONObject:
    """`value` as a JSON object; raises PosterliteError naming `what` when it is not one."""
    if not isinstance(value, Mapping):
        raise PosterliteError(f"bench record: {what} is not a JSON object")
    return cast(JSONObject, value)


def read_float(value: object, key: str) -> float:
    """A JSON number as float (null: NaN, how strict JSON writes it); raises otherwise."""
    if value is None:  # NaN is written as null (strict JSON)
        return float("nan")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PosterliteError(f"bench record: {key} is not a number ({value!r})")
    return float(value)


def read_opt_float(value: object, key: str) -> float | None:
    """A JSON number as float, or None for null; raises otherwise."""
    return None if value is None else read_float(value, key)


def read_int(value: object, key: str) -> int:
    """A JSON integer; raises PosterliteError otherwise (booleans included)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise PosterliteError(f"bench record: {key} is not an integer ({value!r})")
    return value


def read_opt_int(value: object, key: str) -> int | None:
    """A JSON integer, or None for null; raises otherwise."""
    return None if value is None else read_int(value, key)


def read_str(value: object, key: str) -> str:
    """A JSON string; raises PosterliteError otherwise."""
    if not isinstance(value, str):
        raise PosterliteError(f"bench record: {key} is not a string ({value!r})")
    return value


def read_strings(value: object, key: str) -> tuple[str, ...]:
    """A JSON list of strings as a tuple; raises PosterliteError otherwise."""
    if not isinstance(value, list | tuple):
        raise PosterliteError(f"bench record: {key} is not a list")
    return tuple(read_str(v, key) for v in value)


def read_floats(value: object, key: str) -> tuple[float, ...]:
    """A JSON list of numbers as a tuple of floats; raises PosterliteError otherwise."""
    if not isinstance(value, list | tuple):
        raise PosterliteError(f"bench record: {key} is not a list")
    return tuple(read_float(v, key) for v in value)


def read_ints(value: object, key: str) -> tuple[int, ...]:
    """A JSON list of integers as a tuple; raises PosterliteError otherwise."""
    if not isinstance(value, list | tuple):
        raise PosterliteError(f"bench record: {key} is not a list")
    return tuple(read_int(v, key) for v in value)


def read_string_map(value: object, key: str) -> dict[str, str]:
    """A JSON object as str -> str; raises PosterliteError when it is not an object."""
    return {str(k): str(v) for k, v in as_object(value, key).items()}


def read_literal(value: object, allowed: object, key: str) -> str:
    """A JSON string that is one of the `Literal` type `allowed`'s values; raises
    PosterliteError otherwise."""
    text = read_str(value, key)
    if text not in get_args(allowed):
        raise PosterliteError(f"bench record: {key} {text!r} is not one of {get_args(allowed)}")
    return text


def to_json_value(record: object) -> object:
    """A dataclass record (or any JSON-able value) as strict-JSON values."""
    if is_dataclass(record) and not isinstance(record, type):
        return jsonable(asdict(record))
    return jsonable(record)


def accuracy_from_json(data: object) -> MultiLabelReport:
    """A `metrics.MultiLabelReport` from its JSON form (as `BenchRow.accuracy` is written)."""
    obj = as_object(data, "accuracy")
    per_genre = []
    for item in cast(Sequence[object], field_of(obj, "per_genre")):
        g = as_object(item, "per_genre")
        tn, fp, fn, tp = read_ints(field_of(g, "confusion"), "confusion")
        per_genre.append(
            GenreMetrics(
                genre=read_str(field_of(g, "genre"), "genre"),
                precision=read_float(field_of(g, "precision"), "precision"),
                recall=read_float(field_of(g, "recall"), "recall"),
                f1=read_float(field_of(g, "f1"), "f1"),
                average_precision=read_float(field_of(g, "average_precision"), "average_precision"),
                support=read_int(field_of(g, "support"), "support"),
                threshold=read_float(field_of(g, "threshold"), "threshold"),
                confusion=(tn, fp, fn, tp),
            )
        )
    figures = {
        key: read_float(field_of(obj, key), key)
        for key in (
            "macro_f1",
            "micro_f1",
            "mean_average_precision",
            "hamming_loss",
            "subset_accuracy",
            "paper_accuracy",
            "paper_precision",
            "paper_recall",
            "paper_f1",
        )
    }
    return MultiLabelReport(
        genres=read_strings(field_of(obj, "genres"), "genres"),
        n_samples=read_int(field_of(obj, "n_samples"), "n_samples"),
        per_genre=tuple(per_genre),
        thresholds=read_floats(obj.get("thresholds", ()), "thresholds"),
        **figures,
    )


# ------------------------------------------------------------------------- the records
@dataclass(frozen=True)
class KerasReference:
    """The Keras model's figures on a labelled set, recorded at export in the `.tflite`'s
    JSON sidecar (`posterlite.bench.sidecar`), so bench reports the change against Keras
    without TensorFlow. It applies only to the same posters (`data_digest`: files +
    labels) preprocessed the same way (`pixels_digest`, `preprocess_version`)."""

    mean_average_precision: float
    macro_f1: float
    posters: int
    data: str  # the labelled set as given (repo-relative for the bundled sample)
    data_digest: str
    pixels_digest: str
    input_size: int
    keras_sha256: str
    accuracy: dict[str, object] = field(default_factory=dict)  # the whole MultiLabelReport
    preprocess_version: str = ""  # preprocess.PREPROCESS_VERSION at export

    @classmethod
    def from_dict(cls, data: JSONObject) -> KerasReference | None:
        """The reference in `data` (a sidecar's `keras_reference`), or None when malformed."""
        try:
            return cls(
                mean_average_precision=read_float(field_of(data, "mean_average_precision"), "mAP"),
                macro_f1=read_float(field_of(data, "macro_f1"), "macro_f1"),
                posters=read_int(field_of(data, "posters"), "posters"),
                data=str(field_of(data, "data")),
                data_digest=str(field_of(data, "data_digest")),
                pixels_digest=str(field_of(data, "pixels_digest")),
                input_size=read_int(field_of(data, "input_size"), "input_size"),
                keras_sha256=str(field_of(data, "keras_sha256")),
                accuracy=dict(as_object(data.get("accuracy") or {}, "accuracy")),
                preprocess_version=str(data.get("preprocess_version", "")),
            )
        except PosterliteError:
            return None


@dataclass(frozen=True)
class ModelSpec:
    """A model file to benchmark and what it is."""

    name: str
    format: str  # fp32 | fp16 | dynamic | int8 | keras | tflite | a reference's own tag
    path: Path
    kind: Kind
    keras_reference: KerasReference | None = None  # recorded Keras figures, when known


@dataclass(frozen=True)
class LatencyStats:
    """Latency figures in milliseconds; a figure the source does not give is None.

    With several interleaved rounds, `p50_ms` is the median of the per-round p50s (listed
    in `round_p50_ms`), which a burst of load from other processes moves far less than a
    pooled percentile; the other percentiles pool every sample.
    """

    count: int
    mean_ms: float
    p50_ms: float | None
    p90_ms: float | None = None
    p99_ms: float | None = None
    min_ms: float | None = None
    max_ms: float | None = None
    std_ms: float | None = None
    first_ms: float | None = None  # first (cold) inference, when known
    p5_ms: float | None = None  # benchmark_model prints p5 / median / p95
    p95_ms: float | None = None
    rounds: int = 1
    round_p50_ms: tuple[float, ...] = ()
    pooled_p50_ms: float | None = None

    @classmethod
    def from_samples(cls, seconds: Sequence[float], first_s: float | None = None) -> LatencyStats:
        """Statistics of one round of samples (seconds); raises ValueError when empty."""
        return cls.from_rounds([seconds], first_s)

    @classmethod
    def from_rounds(
        cls, rounds: Sequence[Sequence[float]], first_s: float | None = None
    ) -> LatencyStats:
        """Statistics of several rounds of samples (seconds): p50 is the median of the
        rounds' p50s, the other figures pool every sample. Raises ValueError when a round
        is empty."""
        if not rounds or not all(len(r) for r in rounds):
            raise ValueError("no latency samples")
        ms = np.concatenate([np.asarray(r, dtype=np.float64) for r in rounds]) * 1e3
        p50, p90, p99 = (float(v) for v in np.percentile(ms, [50, 90, 99]))
        per_round = tuple(float(np.percentile(np.asarray(r) * 1e3, 50)) for r in rounds)
        return cls(
            count=int(ms.size),
            mean_ms=float(ms.mean()),
            p50_ms=float(statistics.median(per_round)),
            p90_ms=p90,
            p99_ms=p99,
            min_ms=float(ms.min()),
            max_ms=float(ms.max()),
            std_ms=float(ms.std()),
            first_ms=None if first_s is None else first_s * 1e3,
            rounds=len(rounds),
            round_p50_ms=per_round,
            pooled_p50_ms=p50,
        )

    @property
    def per_round_p50_ms(self) -> tuple[float, ...]:
        """The p50 of each round; a source without rounds counts as one round of `p50_ms`."""
        if self.round_p50_ms:
            return self.round_p50_ms
        return () if self.p50_ms is None else (self.p50_ms,)

    @classmethod
    def from_json(cls, data: object) -> LatencyStats:
        """The statistics as `to_json_value` wrote them."""
        obj = as_object(data, "latency")
        opt = {
            key: read_opt_float(obj.get(key), key)
            for key in ("p50_ms", "p90_ms", "p99_ms", "min_ms", "max_ms", "std_ms", "first_ms",
                        "p5_ms", "p95_ms", "pooled_p50_ms")
        }  # fmt: skip
        return cls(
            count=read_int(field_of(obj, "count"), "count"),
            mean_ms=read_float(field_of(obj, "mean_ms"), "mean_ms"),
            rounds=read_int(obj.get("rounds", 1), "rounds"),
            round_p50_ms=read_floats(obj.get("round_p50_ms", ()), "round_p50_ms"),
            **opt,
        )


@dataclass(frozen=True)
class KerasDelta:
    """A row's accuracy minus its Keras model's, on the same posters."""

    mean_average_precision: float
    macro_f1: float
    source: Literal["measured", "recorded"]  # Keras ran in this bench | recorded at export


@dataclass
class BenchRow:
    """One model x format x thread count on one target."""

    model: str
    format: str  # fp32 | fp16 | dynamic | int8 | keras | the reference's own tag
    kind: Kind
    path: str
    target: Where
    threads: int | None
    size_bytes: int
    latency: LatencyStats | None = None
    load_ms: float | None = None
    end_to_end_ms: float | None = None  # decode + preprocess + invoke, per poster (mean)
    peak_memory_mb: float | None = None
    memory_method: str = ""
    accuracy: MultiLabelReport | None = None
    device: dict[str, str] = field(default_factory=dict)  # what the device says it is
    delegate: str = "xnnpack"
    notes: list[str] = field(default_factory=list)
    vs_keras: KerasDelta | None = None
    end_to_end_p50_ms: float | None = None  # browser: per-poster decode + classify, p50
    end_to_end_p90_ms: float | None = None
    model_fetch_ms: float | None = None  # browser: fetching the model file in the page

    @property
    def label(self) -> str:
        """`model/format`, how tables and ratios name the row."""
        return f"{self.model}/{self.format}"

    @classmethod
    def from_json(cls, data: object) -> BenchRow:
        """A row as `BenchReport.to_json` wrote it (schema 2 rows included)."""
        obj = as_object(data, "row")
        latency, accuracy, delta = obj.get("latency"), obj.get("accuracy"), obj.get("vs_keras")
        vs_keras = None
        if delta is not None:
            d = as_object(delta, "vs_keras")
            vs_keras = KerasDelta(
                read_float(field_of(d, "mean_average_precision"), "vs_keras"),
                read_float(field_of(d, "macro_f1"), "vs_keras"),
                cast(Literal["measured", "recorded"], read_str(field_of(d, "source"), "source")),
            )
        return cls(
            model=read_str(field_of(obj, "model"), "model"),
            format=read_str(field_of(obj, "format"), "format"),
            kind=cast(Kind, read_literal(field_of(obj, "kind"), Kind, "kind")),
            path=read_str(field_of(obj, "path"), "path"),
            target=cast(Where, read_literal(field_of(obj, "target"), Where, "target")),
            threads=read_opt_int(obj.get("threads"), "threads"),
            size_bytes=read_int(field_of(obj, "size_bytes"), "size_bytes"),
            latency=None if latency is None else LatencyStats.from_json(latency),
            load_ms=read_opt_float(obj.get("load_ms"), "load_ms"),
            end_to_end_ms=read_opt_float(obj.get("end_to_end_ms"), "end_to_end_ms"),
            peak_memory_mb=read_opt_float(obj.get("peak_memory_mb"), "peak_memory_mb"),
            memory_method=read_str(obj.get("memory_method", ""), "memory_method"),
            accuracy=None if accuracy is None else accuracy_from_json(accuracy),
            device=read_string_map(obj.get("device") or {}, "device"),
            delegate=read_str(obj.get("delegate", "xnnpack"), "delegate"),
            notes=list(read_strings(obj.get("notes", []), "notes")),
            vs_keras=vs_keras,
            end_to_end_p50_ms=read_opt_float(obj.get("end_to_end_p50_ms"), "end_to_end_p50_ms"),
            end_to_end_p90_ms=read_opt_float(obj.get("end_to_end_p90_ms"), "end_to_end_p90_ms"),
            model_fetch_ms=read_opt_float(obj.get("model_fetch_ms"), "model_fetch_ms"),
        )


@dataclass(frozen=True)
class Ratio:
    """One row's p50 over another's, both from the same interleaved rounds.

    `value` is `posterlite.bench.timing.round_ratio`'s figure: the median of the per-round
    ratios (`per_round`), the one ratio definition every target uses.
    """

    name: str
    numerator: str  # row label
    denominator: str
    threads: int | None
    value: float
    per_round: tuple[float, ...] = ()  # the ratio within each round
    goal: float | None = None  # at most
    note: str = ""

    @property
    def met(self) -> bool | None:
        """Whether `value` is within `goal`; None without a goal."""
        return None if self.goal is None else self.value <= self.goal

    @classmethod
    def from_json(cls, data: object) -> Ratio:
        """A ratio as `BenchReport.to_json` wrote it (its `met` is recomputed)."""
        obj = as_object(data, "ratio")
        return cls(
            name=read_str(field_of(obj, "name"), "name"),
            numerator=read_str(field_of(obj, "numerator"), "numerator"),
            denominator=read_str(field_of(obj, "denominator"), "denominator"),
            threads=read_opt_int(obj.get("threads"), "threads"),
            value=read_float(field_of(obj, "value"), "value"),
            per_round=read_floats(obj.get("per_round", ()), "per_round"),
            goal=read_opt_float(obj.get("goal"), "goal"),
            note=read_str(obj.get("note", ""), "note"),
        )


@dataclass(frozen=True)
class DataRecord:
    """The labelled set a run scored on (no posters: no accuracy figures)."""

    path: str | None
    posters: int
    skipped_by_scan: int = 0


@dataclass(frozen=True)
class RunSettings:
    """The options a run measured with, as the report records them."""

    models: tuple[str, ...]
    formats: tuple[str, ...]
    threads: tuple[int, ...]
    runs: int
    warmup: int
    rounds: int
    threshold: float
    references: bool
    use_gpu: bool | None = None  # android
    use_nnapi: bool | None = None
    cpu_throttle: tuple[int, ...] | None = None  # browser
    browser_runtimes: tuple[str, ...] | None = None
    browser_threads: int | None = None
    app_runtime: str | None = None  # "mediapipe" when app-side rows joined

    def to_json_value(self) -> dict[str, object]:
        """The settings as JSON, target-specific ones only when set."""
        return {k: jsonable(v) for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, data: object) -> RunSettings:
        """Settings as `to_json_value` wrote them."""
        obj = as_object(data, "settings")

        def opt_ints(key: str) -> tuple[int, ...] | None:
            return None if obj.get(key) is None else read_ints(obj[key], key)

        def opt_bool(key: str) -> bool | None:
            value = obj.get(key)
            return None if value is None else bool(value)

        runtimes = obj.get("browser_runtimes")
        app = obj.get("app_runtime")
        return cls(
            models=read_strings(field_of(obj, "models"), "models"),
            formats=read_strings(field_of(obj, "formats"), "formats"),
            threads=read_ints(field_of(obj, "threads"), "threads"),
            runs=read_int(field_of(obj, "runs"), "runs"),
            warmup=read_int(field_of(obj, "warmup"), "warmup"),
            rounds=read_int(field_of(obj, "rounds"), "rounds"),
            threshold=read_float(field_of(obj, "threshold"), "threshold"),
            references=bool(field_of(obj, "references")),
            use_gpu=opt_bool("use_gpu"),
            use_nnapi=opt_bool("use_nnapi"),
            cpu_throttle=opt_ints("cpu_throttle"),
            browser_runtimes=None if runtimes is None else read_strings(runtimes, "runtimes"),
            browser_threads=read_opt_int(obj.get("browser_threads"), "browser_threads"),
            app_runtime=None if app is None else read_str(app, "app_runtime"),
        )


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class BenchReport:
    """One bench run: its rows, ratios, settings, the labelled set and where it ran."""

    rows: list[BenchRow]
    target: Where
    settings: RunSettings
    environment: Environment
    data: DataRecord
    ratios: list[Ratio] = field(default_factory=list)
    keras_references: dict[str, KerasReference] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    created: str = field(default_factory=_now)
    memory_method: str = MEMORY_METHOD

    def to_json_value(self) -> dict[str, object]:
        """The report as strict-JSON values (schema `SCHEMA`)."""
        return {
            "schema": SCHEMA,
            "created": self.created,
            "target": self.target,
            "settings": self.settings.to_json_value(),
            "environment": self.environment.to_json_value(),
            "data": to_json_value(self.data),
            "memory_method": self.memory_method,
            "ratios": [{**cast(dict[str, object], to_json_value(r)), "met": r.met}
                       for r in self.ratios],
            "keras_references": {k: to_json_value(v) for k, v in self.keras_references.items()},
            "warnings": list(self.warnings),
            "rows": [to_json_value(row) for row in self.rows],
        }  # fmt: skip

    def to_json(self) -> str:
        """The report as JSON text (strict: NaN written as null)."""
        return json.dumps(self.to_json_value(), indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, data: str | JSONObject) -> BenchReport:
        """A report from JSON text or its parsed object; raises PosterliteError when it is
        not a posterlite bench report. Extra keys (a script's command, wall time) are left."""
        obj = as_object(json.loads(data) if isinstance(data, str) else data, "report")
        schema = obj.get("schema")
        if schema not in READABLE_SCHEMAS:
            raise PosterliteError(f"not a posterlite bench report (schema {schema!r})")
        if schema == SCHEMA:
            environment = Environment.from_json(field_of(obj, "environment"))
        else:  # schema 2: `hardware` + `library_versions`, a script's `environment` beside
            merged = {
                **as_object(obj.get("hardware") or {}, "hardware"),
                "libraries": obj.get("library_versions") or {},
                **as_object(obj.get("environment") or {}, "environment"),
            }
            environment = Environment.from_json(merged)
        data_obj = as_object(field_of(obj, "data"), "data")
        path = data_obj.get("path")
        references = as_object(obj.get("keras_references") or {}, "keras_references")
        refs = {
            str(name): KerasReference.from_dict(as_object(value, "keras_reference"))
            for name, value in references.items()
        }
        return cls(
            rows=[BenchRow.from_json(r) for r in cast(Sequence[object], field_of(obj, "rows"))],
            target=cast(Where, read_literal(field_of(obj, "target"), Where, "target")),
            settings=RunSettings.from_json(field_of(obj, "settings")),
            environment=environment,
            data=DataRecord(
                path=None if path is None else read_str(path, "data.path"),
                posters=read_int(data_obj.get("posters", 0), "data.posters"),
                skipped_by_scan=read_int(data_obj.get("skipped_by_scan", 0), "data.skipped"),
            ),
            ratios=[Ratio.from_json(r) for r in cast(Sequence[object], obj.get("ratios", []))],
            keras_references={k: v for k, v in refs.items() if v is not None},
            warnings=list(read_strings(obj.get("warnings", []), "warnings")),
            created=read_str(obj.get("created", ""), "created"),
            memory_method=read_str(obj.get("memory_method", MEMORY_METHOD), "memory_method"),
        )
