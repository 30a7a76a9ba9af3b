"""What every benchmark script shares: the environment record (CPU, date, library versions),
the results header, repository-relative paths, and writing `<name>.json` + `<name>.md`.

The contract every script in `benchmarks/` keeps:
- a run measures, saves the measurement as `benchmarks/results/<name>.json` first (so a
  rendering bug cannot lose it), then renders `<name>.md` from that JSON alone;
- `--render-only` repeats only the rendering: unchanged JSON gives byte-identical Markdown
  (tests/test_benchmarks.py checks this for every renderer);
- every explanation in a results file is either computed from the JSON or fixed prose
  printed under a "Note (not a measurement)" label;
- no absolute path of the measuring machine is written: paths are relative to the
  repository (`../shared/...` for the shared data beside it).

This module imports nothing heavy (no TensorFlow), so the renderers can be tested quickly.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
if str(REPO) not in sys.path:  # run as `python benchmarks/x.py` without an install
    sys.path.insert(0, str(REPO))
NOT_RECORDED = "not recorded by the run that measured these figures"


def cpu_model() -> str:
    """`lscpu`'s "Model name" (the figure the project names), else /proc/cpuinfo's."""
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
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def environment() -> dict[str, Any]:
    """Where and when a measurement ran: CPU, cores, UTC date, library versions."""
    from posterlite.fileio import library_versions

    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 0
    try:
        from posterlite.preprocess import PREPROCESS_VERSION as preprocess
    except ImportError:  # a checkout from before the preprocessing was versioned
        preprocess = None
    return {
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "load_average_1min_at_start": round(os.getloadavg()[0], 2),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "libraries": library_versions(),
        "preprocess": preprocess,
    }


def rel(path: str | Path) -> str:
    """A path as the repository sees it: `models/x`, `../shared/...`; never the machine's."""
    path = Path(path)
    if not path.is_absolute():
        return path.as_posix()
    resolved = path.resolve()
    for base, prefix in ((REPO, ""), (REPO.parent / "shared", "../shared/")):
        try:
            return prefix + resolved.relative_to(base.resolve()).as_posix()
        except ValueError:
            continue
    return f"<outside the repository>/{path.name}"


def command(script: str, argv: list[str]) -> str:
    """The command that reproduces a run, with machine paths made repository-relative."""
    shown = [rel(a) if a.startswith("/") else a for a in argv]
    return shlex.join(["python", f"benchmarks/{script}", *shown])


def environment_lines(env: dict[str, Any] | None) -> list[str]:
    """The header lines naming CPU, date and library versions (or saying they are missing)."""
    if not env or not env.get("cpu"):
        lines = [f"- CPU: {NOT_RECORDED}"]
    else:
        cores = env.get("logical_cores")
        lines = [f"- CPU: {env['cpu']} ({cores} logical cores, shared with other jobs)"]
        if env.get("load_average_1min_at_start") is not None:
            lines[0] += f"; 1-min load average at start {env['load_average_1min_at_start']}"
    date = (env or {}).get("date")
    lines.append(f"- date: {date or NOT_RECORDED}")
    libraries = (env or {}).get("libraries")
    if libraries:
        shown = ", ".join(f"{k} {v}" for k, v in sorted(libraries.items()))
        lines.append(f"- libraries: {shown}")
    else:
        lines.append(f"- libraries: {NOT_RECORDED}")
    if env and env.get("preprocess"):
        lines.append(f"- preprocessing: {env['preprocess']}")
    if env and env.get("note"):
        lines.append(f"- note: {env['note']}")
    return lines


def header(title: str, payload: dict[str, Any], runtime: str) -> list[str]:
    """Title, reproduce command, typical runtime, environment; a stale mark when set."""
    lines = [f"# {title}", ""]
    if payload.get("stale"):
        lines += [
            f"**stale: not yet regenerated by `{payload['command']}`** ({payload['stale']})",
            "",
        ]
    lines += [
        f"Reproduce: `{payload['command']}` ({runtime}); re-render this file from the JSON "
        "beside it with `--render-only`.",
        "",
        *environment_lines(payload.get("environment")),
    ]
    if payload.get("wall_time_s") is not None:
        lines.append(f"- wall time of the run: {payload['wall_time_s']:.0f} s")
    lines.append("")
    return lines


def note(text: str) -> str:
    """Fixed prose, labelled so nobody reads it as a measurement."""
    return f"Note (not a measurement): {text}"


def verdict(ok: bool | None) -> str:
    if ok is None:
        return "not measured"
    return "met" if ok else "missed"


def add_common_args(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument(
        "--results",
        type=Path,
        default=RESULTS,
        help=f"folder of {name}.json / {name}.md (default: benchmarks/results)",
    )
    parser.add_argument(
        "--render-only",
        action="store_true",
        help=f"measure nothing: re-render {name}.md from {name}.json",
    )


def make_parser(doc: str, name: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_args(parser, name)
    return parser


def save_json(results: Path, name: str, payload: dict[str, Any]) -> Path:
    from posterlite.fileio import atomic_write_text, jsonable

    path = Path(results) / f"{name}.json"
    atomic_write_text(path, json.dumps(jsonable(payload), indent=2, sort_keys=True) + "\n")
    return path


def load_json(results: Path, name: str) -> dict[str, Any]:
    path = Path(results) / f"{name}.json"
    if not path.is_file():
        raise SystemExit(f"error: {rel(path)} not found: run the measurement first")
    return json.loads(path.read_text(encoding="utf-8"))


def save_markdown(results: Path, name: str, text: str) -> Path:
    from posterlite.fileio import atomic_write_text

    path = Path(results) / f"{name}.md"
    atomic_write_text(path, text)
    return path


def measured_or_loaded(
    args: argparse.Namespace, name: str, measure: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """The payload to render: `measure()` saved as `<name>.json` and read back, or with
    `--render-only` only read back."""
    if not args.render_only:
        save_json(args.results, name, measure())
    # render from what was saved, so a measuring run and --render-only give the same bytes
    return load_json(args.results, name)


def publish(results: Path, name: str, text: str) -> Path:
    """Write the rendered `<name>.md` and print it."""
    path = save_markdown(results, name, text)
    print(text)
    return path
