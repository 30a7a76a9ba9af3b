"""convert: four formats from a tiny Keras run, self-checks, the gate, bad inputs."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_poster
from tiny_models import SIZE, make_brightness_run, make_run

from posterlite.cli import main
from posterlite.convert import FAILED_TAG, convert_model
from posterlite.convert_report import Quality, gate, quality
from posterlite.errors import PosterliteError
from posterlite.formats import FORMAT_NAMES as FORMATS
from posterlite.genres import DEFAULT_GENRES


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("convert")
    run = make_run(root)
    calibration = root / "calibration"
    for index in range(6):
        make_poster(calibration / f"c{index}.png", 500 + index)
    out = root / "out"
    # max_drop 1.0: random weights on 12 noise posters make mAP itself noise; the gate has
    # its own test below.
    report = convert_model(run, formats=FORMATS, out_dir=out, calibration=calibration, max_drop=1.0)
    return run, calibration, out, report


def test_every_format_converts_and_checks_itself(converted) -> None:
    _, _, out, report = converted
    assert [r.format for r in report.results] == list(FORMATS)
    for result in report.results:
        path = Path(result.path)
        assert path == out / f"tiny.{result.format}.tflite" and path.is_file()
        assert path.with_suffix(".json").is_file()
        assert result.passed and result.quality is not None
        assert result.size_bytes == path.stat().st_size
    by_format = {r.format: r for r in report.results}
    assert by_format["fp32"].max_abs_diff < 1e-5
    assert by_format["fp16"].max_abs_diff < 1e-2
    assert by_format["int8"].max_abs_diff < 0.05
    assert report.eval_count == 12 and "split val" in report.eval_source
    saved = json.loads((out / "conversion.json").read_text())
    assert [r["format"] for r in saved["results"]] == list(FORMATS)
    assert "| int8 |" in (out / "conversion.md").read_text()
    # Nothing half-written or staged is left behind.
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_int8_has_uint8_input_and_output(converted) -> None:
    from posterlite.runtime import PosterModel

    _, _, out, _ = converted
    model = PosterModel.load(out / "tiny.int8.tflite")
    assert model.input_dtype == np.uint8
    assert model.interpreter.get_output_details()[0]["dtype"] == np.uint8
    assert model.input_quant[0] > 0 and model.output_quant[0] > 0
    ops = {op["op_name"] for op in model.interpreter._get_ops_details()}
    assert "CONV_2D" in ops and "DEQUANTIZE" not in ops


@pytest.mark.parametrize("value", ["-0.001", "-1", "nan"])
def test_max_drop_below_zero_is_refused_before_any_work(
    converted, tmp_path: Path, value: str
) -> None:
    """A negative allowance would fail every faithful conversion (issue 17: `-0.001` was
    accepted and its failing rerun destroyed the good files); NaN would pass every one.
    Refused by the CLI and by the API, before anything is written."""
    run, _, _, _ = converted
    out = tmp_path / "out"
    args = ["convert", str(run), "--format", "fp16", "--out", str(out), "--max-drop", value]
    result = CliRunner().invoke(main, args)
    assert result.exit_code in (1, 2) and "Traceback" not in result.output
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert "max-drop" in result.stderr
    with pytest.raises(PosterliteError, match="max-drop must be 0 or more"):
        convert_model(run, formats=("fp16",), out_dir=out, max_drop=float(value))
    with pytest.raises(PosterliteError, match="max-drop must be 0 or more"):
        gate(Quality(0.5, 0.5), Quality(0.5, 0.5), float(value))
    assert not out.exists()


@pytest.mark.parametrize("where", ["under_a_file", "proc", "read_only"])
def test_unwritable_output_folder_is_refused_before_converting(
    converted, tmp_path: Path, where: str
) -> None:
    """Root ignores permission bits, so the cases that fail for root too: an --out whose
    parent is a regular file, and one inside /proc (where nobody can create a file, though
    os.access says writable). A chmod 555 folder is tried when not running as root."""
    import os

    run, _, _, _ = converted
    if where == "under_a_file":
        blocker = tmp_path / "a-file"
        blocker.write_text("not a folder")
        out = blocker / "out"
    elif where == "proc":
        if not Path("/proc/self").is_dir():
            pytest.skip("no /proc")
        out = Path("/proc/posterlite-convert-out")
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes into a chmod 555 folder")
        out = tmp_path / "locked"
        out.mkdir(mode=0o555)
    result = CliRunner().invoke(main, ["convert", str(run), "--format", "fp32", "--out", str(out)])
    line = _one_error_line(result)
    assert line.startswith(f"error: cannot write to output folder {out}")
    # Refused before the model was even loaded: no check set, no conversion logged.
    assert result.stderr.strip() == line
    assert not out.exists() or not list(out.iterdir())


def test_eval_dir_in_folders_layout(converted, tmp_path: Path) -> None:
    run, _, _, _ = converted
    data = tmp_path / "folders"
    for index, genre in enumerate(["Drama", "Comedy", "Action", "Drama"]):
        make_poster(data / genre / f"f{index}.jpg", 900 + index)
    report = convert_model(
        run, formats=("fp32",), out_dir=tmp_path / "o", eval_dir=data, max_drop=1.0
    )
    assert report.eval_count == 4 and "folders" in report.eval_source


@pytest.mark.parametrize("kind", ["garbage", "foreign_zip", "missing"])
def test_bad_input_is_one_line_error_and_leaves_nothing(
    converted, tmp_path: Path, kind: str
) -> None:
    run, _, _, _ = converted
    bad = tmp_path / "bad"
    bad.mkdir()
    shutil.copy(run / "card.json", bad / "card.json")
    if kind == "garbage":
        (bad / "model.keras").write_bytes(b"\x00not a model" * 50)
    elif kind == "foreign_zip":
        with zipfile.ZipFile(bad / "model.keras", "w") as archive:
            archive.writestr("hello.txt", "not keras")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["convert", str(bad), "--out", str(out)])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert not list(out.glob("*.tflite")) if out.exists() else True


def test_bare_model_without_card_still_checks(converted, tmp_path: Path) -> None:
    run, calibration, _, _ = converted
    bare = tmp_path / "bare_model"
    bare.mkdir()
    shutil.copy(run / "model.keras", bare / "model.keras")
    report = convert_model(
        bare / "model.keras", formats=("fp32",), out_dir=tmp_path / "o", calibration=calibration
    )
    result = report.results[0]
    assert report.model == "bare_model" and result.passed and "gate not applied" in result.note
    assert result.max_abs_diff < 1e-5  # compared with Keras on the calibration posters


# --- the gate, where the drop is known -------------------------------------------------
@pytest.mark.parametrize(
    ("keras_map", "converted_map", "max_drop", "passed"),
    [
        (0.75, 0.50, 0.30, True),  # drop 0.25 within 0.30
        (0.75, 0.50, 0.25, True),  # a drop of exactly max_drop is allowed
        (0.75, 0.50, 0.20, False),  # drop 0.25 beyond 0.20
        (0.50, 0.75, 0.00, True),  # a gain always passes
        (0.50, 0.50, 0.00, True),  # no drop at all passes the strictest gate
        (0.50, 0.49, 0.00, False),
    ],
)
def test_gate_both_sides_of_the_threshold(
    keras_map: float, converted_map: float, max_drop: float, passed: bool
) -> None:
    verdict = gate(Quality(converted_map, 0.25), Quality(keras_map, 0.5), max_drop)
    assert verdict.passed is passed
    assert verdict.map_delta == pytest.approx(converted_map - keras_map)
    assert verdict.macro_f1_delta == -0.25
    assert ("mAP drop" in verdict.note) is not passed


def test_gate_without_labels_is_not_applied() -> None:
    verdict = gate(None, None, 0.0)
    assert verdict.passed and verdict.map_delta is None and "not applied" in verdict.note


def test_gate_on_fixed_prediction_sets() -> None:
    """Two prediction sets with hand-computed mAPs: the reference ranks every genre
    perfectly (mAP 1); the other ranks the one Action negative above the one Action
    positive (AP 1/2), so its mAP is 1 - 1/12."""
    labels = np.array([[1, 0, 1, 0, 1, 0], [0, 1, 0, 1, 0, 1]])
    reference = labels * 0.8 + 0.1
    worse = reference.copy()
    worse[:, 0] = [0.4, 0.6]
    keras_q = quality(labels, reference, DEFAULT_GENRES)
    worse_q = quality(labels, worse, DEFAULT_GENRES)
    assert keras_q.mean_average_precision == pytest.approx(1.0)
    assert worse_q.mean_average_precision == pytest.approx(1 - 1 / 12)
    assert gate(worse_q, keras_q, 0.09).passed
    assert not gate(worse_q, keras_q, 0.08).passed
    assert gate(keras_q, keras_q, 0.0).passed


@pytest.fixture(scope="module")
def known_drop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_brightness_run(tmp_path_factory.mktemp("known_drop"))


def test_gate_end_to_end_int8_twin_loses_half_the_map(known_drop: Path, tmp_path: Path) -> None:
    """int8 calibrated on black posters loses exactly 0.5 mAP (see `make_brightness_run`);
    fp32 loses nothing. max-drop 0.4 fails int8 only, 0.6 passes it."""
    root = known_drop.parent
    out = tmp_path / "out"
    args = ["convert", str(known_drop), "--out", str(out), "--calibration", str(root / "black")]
    failing = CliRunner().invoke(
        main, [*args, "--format", "fp32", "--format", "int8", "--max-drop", "0.4"]
    )
    assert failing.exit_code == 1, failing.output
    errors = [line for line in failing.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "int8 (mAP drop 0.5000 > max-drop 0.4)" in errors[0]
    assert "fp32" not in errors[0]
    report = json.loads((out / "conversion.json").read_text())
    assert report["keras_quality"]["mean_average_precision"] == pytest.approx(1.0)
    fp32, int8 = report["results"]
    assert (fp32["format"], fp32["passed"], fp32["map_delta"]) == ("fp32", True, 0.0)
    assert (int8["format"], int8["passed"]) == ("int8", False)
    assert int8["map_delta"] == pytest.approx(-0.5)
    assert (out / "bright.fp32.tflite").is_file()
    assert (out / f"bright.int8.{FAILED_TAG}.tflite").is_file()
    assert not (out / "bright.int8.tflite").exists()

    passing = CliRunner().invoke(main, [*args, "--format", "int8", "--max-drop", "0.6"])
    assert passing.exit_code == 0, passing.output
    (result,) = json.loads((out / "conversion.json").read_text())["results"]
    assert result["passed"] and result["map_delta"] == pytest.approx(-0.5)
    assert (out / "bright.int8.tflite").is_file()
    assert not (out / f"bright.int8.{FAILED_TAG}.tflite").exists()  # the stale verdict went

    # A failing rerun must not destroy what the passing run made (issue 17).
    good = {p: p.read_bytes() for p in (out / "bright.int8.tflite", out / "bright.int8.json")}
    again = CliRunner().invoke(main, [*args, "--format", "int8", "--max-drop", "0.4"])
    errors = [line for line in again.stderr.splitlines() if line.startswith("error:")]
    assert again.exit_code == 1 and len(errors) == 1
    assert "earlier bright.int8.tflite kept" in errors[0]
    assert {p: p.read_bytes() for p in good} == good
    assert (out / f"bright.int8.{FAILED_TAG}.tflite").is_file()
    assert (out / f"bright.int8.{FAILED_TAG}.json").is_file()


# --- what users get wrong -----------------------------------------------------------------
def _one_error_line(result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    return errors[0]


@pytest.mark.parametrize("kind", ["missing", "empty", "no_images", "undecodable"])
def test_int8_with_unusable_calibration_folder(converted, tmp_path: Path, kind: str) -> None:
    run, _, _, _ = converted
    folder = tmp_path / "calibration"
    if kind != "missing":
        folder.mkdir()
    if kind == "no_images":
        (folder / "notes.txt").write_text("posters go here\n")
    if kind == "undecodable":
        (folder / "broken.jpg").write_bytes(b"not a jpeg at all")
    out = tmp_path / "out"
    args = ["convert", str(run), "--format", "int8", "--calibration", str(folder)]
    line = _one_error_line(CliRunner().invoke(main, [*args, "--out", str(out)]))
    expected = {
        "missing": f"calibration folder not found: {folder}",
        "empty": f"no poster images in calibration folder {folder}",
        "no_images": f"no poster images in calibration folder {folder}",
        "undecodable": "none of the calibration posters decode",
    }[kind]
    assert expected in line
    assert not out.exists() or not list(out.glob("*.tflite"))


def _four_output_model(folder: Path) -> Path:
    import keras

    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    model = keras.Model(inputs, keras.layers.Dense(4, activation="sigmoid")(x))
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / "model.keras")
    return folder / "model.keras"


@pytest.mark.parametrize("with_card", [True, False])
def test_outputs_not_matching_the_genre_list(converted, tmp_path: Path, with_card: bool) -> None:
    """A 4-output model against the 6-genre scheme (from its card, or the default scheme
    for a bare model.keras): refused before anything is written."""
    run, calibration, _, _ = converted
    model = _four_output_model(tmp_path / "four")
    if with_card:
        shutil.copy(run / "card.json", model.parent / "card.json")
    out = tmp_path / "out"
    args = ["convert", str(model), "--out", str(out), "--calibration", str(calibration)]
    line = _one_error_line(CliRunner().invoke(main, args))
    assert "4 outputs but the card names 6 genres" in line
    assert not out.exists()


def test_eval_limit_checks_on_a_seeded_sample(converted, tmp_path: Path) -> None:
    run, _, _, _ = converted
    reports = []
    for attempt in ("a", "b"):
        out = tmp_path / attempt
        args = ["convert", str(run), "--format", "fp32", "--out", str(out), "--eval-limit", "5"]
        result = CliRunner().invoke(main, [*args, "--max-drop", "1"])
        assert result.exit_code == 0, result.output
        assert "check set: 5 posters" in result.stderr
        reports.append(json.loads((out / "conversion.json").read_text()))
    first, second = reports
    assert first["eval_count"] == 5 and first["eval_source"].endswith("(split val), limit 5")
    # the same seeded sample both times, so the same Keras figures
    assert first["keras_quality"] == second["keras_quality"]
    # a limit above the val split's size checks on all 12
    out = tmp_path / "all"
    args = ["convert", str(run), "--format", "fp32", "--out", str(out), "--eval-limit", "100"]
    assert CliRunner().invoke(main, [*args, "--max-drop", "1"]).exit_code == 0
    assert json.loads((out / "conversion.json").read_text())["eval_count"] == 12
