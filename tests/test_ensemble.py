"""posterlite.ensemble (+ its training side, posterlite.train.ensemble): the averaging graph,
the recipe, byte-identical rebuilds of model.keras, and an ensemble folder that converts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from tiny_models import SIZE, make_run

from posterlite.card import MODEL_NAME, read_card, write_card
from posterlite.cli import main
from posterlite.ensemble import (
    RECIPE_NAME,
    build_model,
    is_ensemble,
    materialize,
    member_dir,
    numbered_shared_objects,
    read_recipe,
    recipe_for,
    save_deterministic,
    write_recipe,
)
from posterlite.errors import PosterliteError
from posterlite.fileio import sha256_file

SMALL = 16


def make_small_member(root: Path, name: str = "small") -> Path:
    """A second member at 16 px (so the ensemble resizes for it), other weights than
    make_run's, with the same card fields and manifest."""
    import keras

    keras.utils.set_random_seed(7)
    inputs = keras.Input((SMALL, SMALL, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs))
    outputs = keras.layers.Dense(6, activation="sigmoid")(x)
    run = root / name
    run.mkdir(parents=True, exist_ok=True)
    keras.Model(inputs, outputs).save(run / MODEL_NAME)
    card = read_card(root / "tiny")
    card.name, card.input_size = name, SMALL
    write_card(card, run)
    return run


@pytest.fixture(scope="module")
def members(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("ensemble")
    return [make_run(root), make_small_member(root)]


def test_graph_averages_the_members_with_the_small_one_resized(members, tmp_path):
    import keras

    recipe = recipe_for(members, "pair", tmp_path)
    assert recipe.input_size == SIZE
    assert [m.input_size for m in recipe.members] == [SIZE, SMALL]
    model = build_model(recipe, tmp_path)
    x = np.random.default_rng(0).uniform(-1, 1, (3, SIZE, SIZE, 3)).astype("float32")
    big = keras.models.load_model(members[0] / MODEL_NAME, compile=False)
    small = keras.models.load_model(members[1] / MODEL_NAME, compile=False)
    resized = keras.layers.Resizing(SMALL, SMALL, interpolation="bilinear")(x)
    expected = (np.asarray(big(x, training=False)) + np.asarray(small(resized, training=False))) / 2
    got = model.predict(x, verbose=0)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert not any(layer.trainable for layer in model.layers[1:] if layer.weights)


def test_rebuilds_are_byte_identical_and_materialize_restores_the_recorded_file(members, tmp_path):
    recipe = recipe_for(members, "pair", tmp_path)
    save_deterministic(build_model(recipe, tmp_path), tmp_path / "a.keras")
    save_deterministic(build_model(recipe, tmp_path), tmp_path / "b.keras")
    assert (tmp_path / "a.keras").read_bytes() == (tmp_path / "b.keras").read_bytes()
    folder = tmp_path / "ens"
    folder.mkdir()
    recipe = recipe_for(members, "pair", folder)
    save_deterministic(build_model(recipe, folder), folder / MODEL_NAME)
    sha = sha256_file(folder / MODEL_NAME)
    from dataclasses import replace

    write_recipe(replace(recipe, keras_sha256=sha), folder)
    (folder / MODEL_NAME).unlink()
    assert is_ensemble(folder)
    assert sha256_file(materialize(folder)) == sha
    recorded = read_recipe(folder).members[1]
    assert not Path(recorded.dir).is_absolute()  # the folder moves with the repository
    assert member_dir(folder, recorded) == members[1].resolve()


def test_rebuilds_in_two_processes_are_byte_identical(members, tmp_path):
    """Keras writes shared objects' memory addresses into config.json: two processes gave two
    files (the shipped ensemble's recorded sha256 could not be rebuilt elsewhere)."""
    import os
    import subprocess
    import sys
    import zipfile

    folder = tmp_path / "ens"
    folder.mkdir()
    write_recipe(recipe_for(members, "pair", folder), folder)
    build = (
        "import sys; from pathlib import Path; "
        "from posterlite.ensemble import build_model, read_recipe, save_deterministic; "
        "folder = Path(sys.argv[1]); "
        "save_deterministic(build_model(read_recipe(folder), folder), Path(sys.argv[2]))"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    for name in ("a.keras", "b.keras"):
        subprocess.run(
            [sys.executable, "-c", build, str(folder), str(tmp_path / name)],
            check=True,
            env=env,
            capture_output=True,
            timeout=300,
        )
    config = zipfile.ZipFile(tmp_path / "a.keras").read("config.json").decode()
    assert '"shared_object_id": 1' in config  # the case that used to differ is present
    assert (tmp_path / "a.keras").read_bytes() == (tmp_path / "b.keras").read_bytes()


def test_shared_object_ids_are_numbered_in_order_and_kept_paired():
    config = {
        "a": {"dtype": {"shared_object_id": 140000000000123}},
        "b": [{"shared_object_id": 139999999999999}, {"shared_object_id": 140000000000123}],
    }
    assert numbered_shared_objects(config) == {
        "a": {"dtype": {"shared_object_id": 1}},
        "b": [{"shared_object_id": 2}, {"shared_object_id": 1}],
    }


def test_recipe_refuses_what_cannot_share_one_input(members, tmp_path):
    with pytest.raises(PosterliteError, match="at least two"):
        recipe_for(members[:1], "x", tmp_path)
    with pytest.raises(PosterliteError, match="named twice"):
        recipe_for([members[0], members[0]], "x", tmp_path)
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / MODEL_NAME).write_bytes((members[1] / MODEL_NAME).read_bytes())
    card = read_card(members[1])
    card.genres = list(reversed(card.genres))
    write_card(card, odd)
    with pytest.raises(PosterliteError, match="genres"):
        recipe_for([members[0], odd], "x", tmp_path)


def test_a_changed_member_is_reported_not_silently_used(members, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in (MODEL_NAME, "card.json"):
        (copy / name).write_bytes((members[1] / name).read_bytes())
    recipe = recipe_for([members[0], copy], "x", tmp_path)
    (copy / MODEL_NAME).write_bytes((members[0] / MODEL_NAME).read_bytes())
    with pytest.raises(PosterliteError, match="changed since the ensemble was built"):
        build_model(recipe, tmp_path)


def test_train_ensemble_writes_a_folder_that_converts_without_a_stored_model(members, tmp_path):
    from posterlite.convert import convert_model
    from posterlite.train import Workspace
    from posterlite.train.ensemble import train_ensemble

    out = tmp_path / "pair"
    summary = train_ensemble(members, out, "pair", Workspace(cache=tmp_path / "cache"))
    card = read_card(out)
    assert card.arch == "ensemble" and card.input_size == SIZE
    assert len(card.thresholds) == 6 and card.validation["mAP"] == summary["mAP"]
    assert card.extra["graph_vs_member_mean_max_abs_diff"] < 1e-5
    assert json.loads((out / RECIPE_NAME).read_text())["keras_sha256"] == sha256_file(
        out / MODEL_NAME
    )
    (out / MODEL_NAME).unlink()  # as in a fresh clone: model.keras is not committed
    report = convert_model(
        out, formats=["int8"], out_dir=tmp_path / "tflite", calibration=members[0].parent / "posters",
        max_drop=1.0,
    )  # fmt: skip
    assert Path(report.results[0].path).is_file()
    assert (out / MODEL_NAME).is_file()


def test_cli_ensemble_needs_two_members(members, tmp_path):
    result = CliRunner().invoke(
        main, ["train", "ensemble", str(members[0]), "--out", str(tmp_path / "e")]
    )
    assert result.exit_code == 1
    assert result.output.strip().startswith("error: ") and "at least two" in result.output
