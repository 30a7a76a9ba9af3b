"""The whole run: `BenchReport` (rows, ratios, settings, the labelled set, where it ran),
which writes itself as JSON (`to_json`) and reads back any report posterlite wrote
(`from_json`; schema 2 reports included)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import cast

from posterlite.bench.environment import Environment
from posterlite.bench.records.json_values import (
    JSONObject,
    JSONReader,
    as_object,
    to_json_value,
)
from posterlite.bench.records.rows import (
    MEMORY_METHOD,
    BenchRow,
    KerasReference,
    Ratio,
    Where,
)
from posterlite.errors import PosterliteError
from posterlite.fileio import jsonable

SCHEMA = "posterlite-bench/3"
READABLE_SCHEMAS: tuple[str, ...] = ("posterlite-bench/2", SCHEMA)


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
    limit: int | None = None  # the first N posters of the labelled set were scored
    arm_cpu: tuple[str, ...] | None = None  # arm64: the CPU classes

    def to_json_value(self) -> dict[str, object]:
        """The settings as JSON, target-specific ones only when set."""
        return {k: jsonable(v) for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, data: object) -> RunSettings:
        """Settings as `to_json_value` wrote them."""
        obj = JSONReader.of(data, "settings")

        def given(key: str) -> bool:
            return obj.get(key, None) is not None

        return cls(
            models=obj.texts("models"),
            formats=obj.texts("formats"),
            threads=obj.integers("threads"),
            runs=obj.integer("runs"),
            warmup=obj.integer("warmup"),
            rounds=obj.integer("rounds"),
            threshold=obj.number("threshold"),
            references=bool(obj.get("references")),
            use_gpu=bool(obj.get("use_gpu")) if given("use_gpu") else None,
            use_nnapi=bool(obj.get("use_nnapi")) if given("use_nnapi") else None,
            cpu_throttle=obj.integers("cpu_throttle") if given("cpu_throttle") else None,
            browser_runtimes=obj.texts("browser_runtimes") if given("browser_runtimes") else None,
            browser_threads=obj.opt_integer("browser_threads"),
            app_runtime=obj.text("app_runtime") if given("app_runtime") else None,
            limit=obj.opt_integer("limit"),
            arm_cpu=obj.texts("arm_cpu") if given("arm_cpu") else None,
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
        obj = JSONReader.of(json.loads(data) if isinstance(data, str) else data, "report")
        schema = obj.get("schema", None)
        if schema not in READABLE_SCHEMAS:
            raise PosterliteError(f"not a posterlite bench report (schema {schema!r})")
        if schema == SCHEMA:
            environment = Environment.from_json(obj.get("environment"))
        else:  # schema 2: `hardware` + `library_versions`, a script's `environment` beside
            merged = {
                **as_object(obj.get("hardware", None) or {}, "hardware"),
                "libraries": obj.get("library_versions", None) or {},
                **as_object(obj.get("environment", None) or {}, "environment"),
            }
            environment = Environment.from_json(merged)
        data_obj = obj.child("data")
        path = data_obj.get("path", None)
        references = {
            name: KerasReference.from_dict(as_object(value, "keras_reference"))
            for name, value in as_object(obj.get("keras_references", None) or {}, "refs").items()
        }
        return cls(
            rows=[BenchRow.from_json(r.data) for r in obj.children("rows")],
            target=cast(Where, obj.choice("target", Where)),
            settings=RunSettings.from_json(obj.get("settings")),
            environment=environment,
            data=DataRecord(
                path=None if path is None else str(path),
                posters=data_obj.integer("posters", 0),
                skipped_by_scan=data_obj.integer("skipped_by_scan", 0),
            ),
            ratios=[Ratio.from_json(r.data) for r in obj.children("ratios", [])],
            keras_references={k: v for k, v in references.items() if v is not None},
            warnings=list(obj.texts("warnings", [])),
            created=obj.text("created", ""),
            memory_method=obj.text("memory_method", MEMORY_METHOD),
        )
