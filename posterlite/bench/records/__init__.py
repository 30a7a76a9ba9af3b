"""The bench's records, the bottom layer: what a run measured, as typed values, and its JSON.

Nothing here measures or imports another bench module. Every other bench module builds
these: `ModelSpec` (a model file and what it is), `LatencyStats`, `BenchRow` (one model x
format x thread count on one target; an ARM row carries its `ArmFigures`), `Ratio` (one
row's p50, or guest instructions, over another's), `KerasReference`
(the Keras model's figures recorded at export), and `BenchReport`, the whole run, which
writes itself as JSON (`to_json`) and reads back any report posterlite wrote
(`from_json`; schema 2 reports included), so results re-render from their JSON alone.

Kinds and targets are `Literal`s, figures are numbers: a row's `device` holds only what the
device says about itself (strings, like `adb`'s `getprop`), never a measurement.

By job: `json_values` (reading and writing JSON values), `rows` (one measurement's
records), `run` (the whole run's report).
"""

from posterlite.bench.records.json_values import JSONObject, JSONReader, as_object, to_json_value
from posterlite.bench.records.rows import (
    MEMORY_METHOD,
    ArmFigures,
    BenchRow,
    KerasDelta,
    KerasReference,
    KernelShare,
    Kind,
    LatencyStats,
    ModelSpec,
    Ratio,
    RatioBasis,
    Where,
)
from posterlite.bench.records.run import (
    READABLE_SCHEMAS,
    SCHEMA,
    BenchReport,
    DataRecord,
    RunSettings,
)

__all__ = [
    "MEMORY_METHOD",
    "READABLE_SCHEMAS",
    "SCHEMA",
    "ArmFigures",
    "BenchReport",
    "BenchRow",
    "DataRecord",
    "JSONObject",
    "JSONReader",
    "KerasDelta",
    "KerasReference",
    "KernelShare",
    "Kind",
    "LatencyStats",
    "ModelSpec",
    "Ratio",
    "RatioBasis",
    "RunSettings",
    "Where",
    "as_object",
    "to_json_value",
]
