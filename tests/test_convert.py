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
from tiny_models import make_run

from posterlite.cli import main
from posterlite.convert import FAILED_TAG, FORMATS, convert_model


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


def test_gate_fails_and_keeps_failed_file(converted, tmp_path: Path) -> None:
    run, calibration, _, _ = converted
    out = tmp_path / "gate"
    # A pass file from an earlier run must not survive a failing run.
    out.mkdir()
    (out / "tiny.fp16.tflite").write_bytes(b"old")
    # A negative allowance demands an improvement, so the gate must trip.
    result = CliRunner().invoke(
        main, ["convert", str(run), "--format", "fp16", "--out", str(out), "--max-drop", "-1"]
    )
    assert result.exit_code == 1
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and "gate" in error_lines[0]
    assert (out / f"tiny.fp16.{FAILED_TAG}.tflite").is_file()
    assert not (out / "tiny.fp16.tflite").exists()
    report = json.loads((out / "conversion.json").read_text())
    assert report["results"][0]["passed"] is False


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
