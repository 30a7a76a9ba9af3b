"""The paper's grid: 3 architectures x +-SMOTE x 5 optimizer settings, resumable through a
state file, each model name's best run (by validation mAP) published whole.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypedDict, cast

from posterlite.archs import GRID_MODEL_NAMES
from posterlite.card import CARD_NAME, MODEL_NAME, read_card, write_card
from posterlite.fileio import (
    jsonable,
    replace_dir,
)
from posterlite.train.config import (
    ARCHS,
    GRID_OPTIMIZERS,
    SELECTION_METRIC,
    TrainConfig,
    peak_rss_mb,
    write_json,
)
from posterlite.train.dataset import Workspace
from posterlite.train.run import train_run

MODEL_NAMES = GRID_MODEL_NAMES


class GridRun(TypedDict):
    """One finished grid run in `state.json` (None: a score NaN had no value)."""

    name: str
    config_key: str  # `TrainConfig.key()`: a changed config is redone
    dir: str
    val_map: float | None
    val_macro_f1: float | None
    val_micro_f1: float | None
    paper_accuracy: float | None
    per_genre_ap: dict[str, float | None]
    per_genre_f1: dict[str, float | None]
    params: int
    wall_time_s: float


class GridState(TypedDict):
    """The grid's `state.json`: its runs, for one manifest."""

    manifest_sha256: str
    runs: dict[str, GridRun]  # run_id -> run


@dataclass(frozen=True)
class GridResult:
    """What `run_grid` did: every run, the published best per model name and the cost."""

    runs: dict[str, GridRun]  # run_id -> state entry
    best: dict[str, str]  # model name -> run_id
    wall_time_s: float
    peak_rss_mb: float
    redone: list[str]  # run ids trained by this call (the others came from the state file)


def grid_configs(base: TrainConfig, archs: Iterable[str] = ARCHS) -> list[TrainConfig]:
    """3 architectures x +-SMOTE x the paper's optimizers; plain runs precede their twins."""
    configs = []
    for arch in archs:
        for smote in (False, True):
            for optimizer, lr in GRID_OPTIMIZERS:
                configs.append(
                    replace(base, arch=arch, smote=smote, optimizer=optimizer, learning_rate=lr)
                )
    return configs


def _load_state(path: Path, manifest_sha: str) -> GridState:
    if path.is_file():
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
            if state.get("manifest_sha256") == manifest_sha:
                return cast(GridState, state)  # written by `run_grid` (json: untyped)
        except ValueError:
            pass  # a damaged state file means starting over, not crashing
    return {"manifest_sha256": manifest_sha, "runs": {}}


def _finished(entry: GridRun | None, config: TrainConfig) -> bool:
    return bool(
        entry
        and entry.get("config_key") == config.key()
        and (Path(entry["dir"]) / MODEL_NAME).is_file()
        and (Path(entry["dir"]) / CARD_NAME).is_file()
    )


def run_grid(
    manifest: Path,
    out: Path,
    base: TrainConfig | None = None,
    ws: Workspace | None = None,
    archs: Iterable[str] = ARCHS,
    progress: bool = True,
) -> GridResult:
    """Run (or resume) the grid; publish each model name's best run to `out/<name>`.

    Grid runs live in `<cache>/grid/<manifest sha>/`, with `state.json` rewritten after each
    run: an interrupted grid resumes where it stopped and finished runs are not redone.
    """
    from tqdm import tqdm

    started = time.perf_counter()
    ws = ws or Workspace()
    base = base or TrainConfig()
    data = ws.dataset(manifest)
    grid_dir = ws.cache / "grid" / data.manifest_sha256[:16]
    state_path = grid_dir / "state.json"
    state = _load_state(state_path, data.manifest_sha256)
    configs = grid_configs(base, archs)
    redone: list[str] = []
    bar = tqdm(configs, desc="grid", unit="run", disable=not progress)
    for config in bar:
        entry = state["runs"].get(config.run_id)
        bar.set_postfix_str(config.run_id)
        if _finished(entry, config):
            continue
        run_dir = grid_dir / config.run_id
        trunk = None
        if config.arch == "cnn" and config.smote:
            trunk = grid_dir / replace(config, smote=False).run_id / MODEL_NAME
        result = train_run(config, manifest, run_dir, ws, trunk_model=trunk)
        state["runs"][config.run_id] = cast(  # jsonable keeps the keys: NaN -> None only
            GridRun,
            jsonable(
                {
                    "name": config.name,
                    "config_key": config.key(),
                    "dir": str(run_dir),
                    "val_map": result.val_map,
                    "val_macro_f1": result.val_macro_f1,
                    "val_micro_f1": result.val_micro_f1,
                    "paper_accuracy": result.paper_accuracy,
                    "per_genre_ap": result.per_genre_ap,
                    "per_genre_f1": result.per_genre_f1,
                    "params": result.params,
                    "wall_time_s": result.wall_time_s,
                }
            ),
        )
        write_json(state_path, state)
        redone.append(config.run_id)
    bar.close()
    best = publish_best(state, configs, Path(out))
    return GridResult(
        runs=state["runs"],
        best=best,
        wall_time_s=time.perf_counter() - started,
        peak_rss_mb=peak_rss_mb(),
        redone=redone,
    )


def _score(entry: GridRun) -> tuple[float, float]:
    # Selection: validation mAP; macro F1 at 0.5 breaks ties. None (no AP) ranks last.
    return (entry.get("val_map") or -1.0, entry.get("val_macro_f1") or -1.0)


def publish_best(state: GridState, configs: list[TrainConfig], out: Path) -> dict[str, str]:
    """Copy each model name's best finished run to `out/<name>` (swap in whole).
    Returns model name -> the run id published; raises OSError if a copy fails."""
    best: dict[str, str] = {}
    by_name: dict[str, list[str]] = {}
    for config in configs:
        if config.run_id in state["runs"]:
            by_name.setdefault(config.name, []).append(config.run_id)
    for name, run_ids in by_name.items():
        winner = max(run_ids, key=lambda r: _score(state["runs"][r]))
        best[name] = winner
        source = Path(state["runs"][winner]["dir"])
        target = out / name
        staging = out / f".{name}.staging"
        if staging.exists():
            shutil.rmtree(staging)
        shutil.copytree(source, staging)
        card = read_card(staging)
        card.extra["grid"] = {
            "selected_run": winner,
            "selected_by": SELECTION_METRIC,
            "candidates": {
                r: {
                    "val_map": state["runs"][r]["val_map"],
                    "val_macro_f1": state["runs"][r]["val_macro_f1"],
                }
                for r in run_ids
            },
        }
        write_card(card, staging)
        replace_dir(staging, target)
    return best
