"""benchmarks/ship_models.py: models/README.md and the README's results table are rendered
from the models' JSON only, deterministically, with the targets computed from the figures."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from posterlite.card import ModelCard, write_card
from posterlite.fileio import sha256_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import ship_models  # noqa: E402

GENRES = ["Action", "Drama", "Comedy", "Crime", "Romance", "Other"]


def _summary(m: float, f1: float, tuned: float) -> dict:
    return {
        "mAP": m,
        "macro_f1": f1,
        "tuned_macro_f1": tuned,
        "per_genre_ap": {g: m for g in GENRES},
        "per_genre_f1": {g: f1 for g in GENRES},
    }


def _model(root: Path, name: str, test_map: float, delta: float, smote: bool = False) -> None:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "model.keras").write_bytes(name.encode())  # any bytes: only hashed and sized
    e2e = {
        "schedule": [[160, 3], [224, 1]],
        "learning_rate": 2e-4,
        "bn": "frozen",
        "sampler": "none",
        "best_epoch": 3,
        "epochs_run": 4,
    }
    card = ModelCard(
        name=name,
        arch="mobilenet_v2",
        genres=GENRES,
        input_size=224,
        thresholds=[0.5] * 6,
        smote=smote,
        hyperparameters={"optimizer": "adam", "learning_rate": 1e-3},
        wall_time_s=1800.0,
        peak_rss_mb=3000.0,
        validation=_summary(0.6, 0.58, 0.61),
        extra={"params": 2_587_462, "end_to_end": e2e, "test": _summary(test_map, 0.57, 0.6)},
    )
    write_card(card, folder)
    history = {
        "fine_tune_size": [160, 160, 160, 224],
        "fine_tune_loss": [0.6, 0.5, 0.45, 0.44],
        "fine_tune_val_map": [0.58, 0.59, 0.6, 0.598],
        "fine_tune_seconds": [120, 118, 119, 360],
    }
    (folder / "history.json").write_text(json.dumps(history))
    gate = {
        "command": "posterlite convert ...",
        "exit_code": 0,
        "model_sha256": sha256_file(folder / "model.keras"),
        "conversion": {"results": [{"format": "int8", "map_delta": delta, "passed": True}]},
    }
    (folder / ship_models.GATE_NAME).write_text(json.dumps(gate))


@pytest.fixture
def shipped(tmp_path: Path) -> tuple[Path, Path]:
    models = tmp_path / "models"
    _model(models, "mobilenet_v2", test_map=0.62, delta=-0.004)
    _model(models, "mobilenet_v2_smote", test_map=0.61, delta=-0.002, smote=True)
    readme = tmp_path / "README.md"
    readme.write_text(
        f"# x\n\n## Results\n\n{ship_models.BEGIN}\nold table\n{ship_models.END}\n\nrest\n"
    )
    return models, readme


def test_render_is_deterministic_and_idempotent(shipped):
    models, readme = shipped
    first, first_readme = ship_models.render(models, readme)
    assert (models / "README.md").read_text() == first
    again, again_readme = ship_models.render(models, readme)
    assert again == first and again_readme == first_readme == readme.read_text()
    assert "old table" not in first_readme and first_readme.endswith("\n\nrest\n")


def test_figures_and_verdicts_come_from_the_json(shipped):
    models, readme = shipped
    text, _ = ship_models.render(models, readme)
    assert "| mobilenet_v2 | 224 | 0.6000 | 0.5800 | 0.6100 | 0.6200 |" in text
    assert "-0.0040" in text  # int8 - Keras, from int8_gate.json
    assert "on this test split (Keras) 0.6200: MISSED" in text  # 0.62 < 0.65
    assert "30.0 min: met" in text  # 1800 s <= 60 min
    # A changed figure changes the verdict: nothing is hand-written.
    card = json.loads((models / "mobilenet_v2" / "card.json").read_text())
    card["extra"]["test"]["mAP"] = 0.66
    (models / "mobilenet_v2" / "card.json").write_text(json.dumps(card))
    text, _ = ship_models.render(models, readme)
    assert "on this test split (Keras) 0.6600: met" in text
    # A stale gate (model changed since) is not reported as passed.
    (models / "mobilenet_v2" / "model.keras").write_bytes(b"retrained")
    text, _ = ship_models.render(models, readme)
    assert "int8 gate not run (or stale) for: mobilenet_v2." in text
