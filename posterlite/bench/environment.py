"""Where and when a measurement ran: the one environment record of every bench run and every
`benchmarks/` script (CPU model, cores, load, date, platform, library versions,
preprocessing version).

Bottom layer: imports no other bench module. `capture()` takes the record at the start of a
run (the 1-min load average then says how busy the machine was before the run added its
own work); `finished()` adds the load at the end. `from_json` also reads the two records
this one replaced: `benchmarks/results_io.environment` (`cpu`) and the bench's former
`hardware` (`cpu_model`, load at the end only).
"""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from posterlite.errors import PosterliteError


def cpu_model() -> str:
    """The CPU's name as `lscpu` prints it ("Model name"), else /proc/cpuinfo's model name
    (or an ARM board's "Hardware"), else `platform.processor()`, else "unknown"."""
    try:
        out = subprocess.run(
            ["lscpu"], capture_output=True, text=True, check=True, timeout=10
        ).stdout
        for line in out.splitlines():
            if line.strip().lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.lower().startswith(("model name", "hardware")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 0


@dataclass(frozen=True)
class Environment:
    """The machine and software a measurement ran on."""

    cpu_model: str
    logical_cores: int | None
    usable_cores: int | None
    load_average_1min_at_start: float | None
    date: str  # UTC, ISO 8601, when the record was taken
    machine: str
    system: str
    libraries: dict[str, str]  # library -> version (python included)
    preprocess: str | None  # posterlite.preprocess.PREPROCESS_VERSION
    load_average_1min_at_end: float | None = None
    note: str | None = None

    def finished(self) -> Environment:
        """This record with the 1-min load average now, at the end of the run."""
        return replace(self, load_average_1min_at_end=_load_average())

    def to_json_value(self) -> dict[str, object]:
        """The record as JSON values (`note` and the end load only when set)."""
        data: dict[str, object] = dict(asdict(self))
        for key in ("note", "load_average_1min_at_end"):
            if data[key] is None:
                del data[key]
        return data

    @classmethod
    def from_json(cls, data: object) -> Environment:
        """The record as `to_json_value` wrote it, or one of the two it replaced."""
        if not isinstance(data, Mapping):
            raise PosterliteError("environment record is not a JSON object")

        def number(key: str) -> float | None:
            value = data.get(key)
            return float(value) if isinstance(value, int | float) else None

        def count(key: str) -> int | None:
            value = data.get(key)
            return value if isinstance(value, int) else None

        libraries = data.get("libraries") or {}
        preprocess = data.get("preprocess")
        note = data.get("note")
        return cls(
            cpu_model=str(data.get("cpu_model") or data.get("cpu") or "unknown"),
            logical_cores=count("logical_cores"),
            usable_cores=count("usable_cores"),
            load_average_1min_at_start=number("load_average_1min_at_start"),
            date=str(data.get("date", "")),
            machine=str(data.get("machine", "")),
            system=str(data.get("system", "")),
            libraries={str(k): str(v) for k, v in dict(libraries).items()},
            preprocess=None if preprocess is None else str(preprocess),
            load_average_1min_at_end=number("load_average_1min_at_end"),
            note=None if note is None else str(note),
        )


def capture() -> Environment:
    """The record now (taken at the start of a run)."""
    from posterlite.fileio import library_versions
    from posterlite.preprocess import PREPROCESS_VERSION

    return Environment(
        cpu_model=cpu_model(),
        logical_cores=os.cpu_count(),
        usable_cores=_usable_cores(),
        load_average_1min_at_start=_load_average(),
        date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        machine=platform.machine(),
        system=platform.platform(),
        libraries=library_versions(),
        preprocess=PREPROCESS_VERSION,
    )
