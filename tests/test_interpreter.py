"""Opening a model: every bad-file case gives one `error:` line and exit 1, in every command
that opens one (predict, info, bench take a `.tflite`; convert takes a Keras run folder)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import make_poster
from tiny_models import session_tiny_run

from posterlite import bench
from posterlite.cli import main
from posterlite.errors import PosterliteError
from posterlite.interpreter import check_model_file, load_interpreter

REAL_INT8 = bench.shipped_file(bench.MODELS_DIR / "mobilenet_v2", "int8")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    models = session_tiny_run(tmp_path_factory)
    poster = make_poster(tmp_path_factory.mktemp("interpreter") / "poster.jpg", 3)
    return {**models, "poster": poster}


def _bad_tflite(case: str, tiny: dict[str, Path], folder: Path) -> tuple[Path, str]:
    """A bad `.tflite` of one kind and the text its one-line error must contain."""
    path = folder / f"{case}.tflite"
    real = tiny["int8"].read_bytes()
    if case == "truncated":
        path.write_bytes(real[: len(real) // 2])
        return path, "not a usable TFLite model (The model is not a valid Flatbuffer buffer: truncated or corrupt)"  # fmt: skip
    if case == "truncated-real-100k":  # the case: first 100,000 bytes of a real one
        if not REAL_INT8.is_file():
            pytest.skip(f"{REAL_INT8} not exported")
        path.write_bytes(REAL_INT8.read_bytes()[:100_000])
        return path, "truncated or corrupt"
    if case == "zero-byte":
        path.write_bytes(b"")
        return path, "empty file (0 bytes), not a TFLite model"
    if case == "not-a-flatbuffer":
        path.write_bytes(os.urandom(4096))
        return path, "not a TFLite model (no TFL3 identifier)"
    if case == "text-renamed":
        path.write_text("this is a text file renamed to .tflite\n" * 20)
        return path, "not a TFLite model (no TFL3 identifier)"
    if case == "missing":
        return path, f"model not found: {path}"
    raise AssertionError(case)


TFLITE_CASES = (
    "truncated",
    "truncated-real-100k",
    "zero-byte",
    "not-a-flatbuffer",
    "text-renamed",
    "missing",
)


def _one_error_line(result, expected: str) -> None:
    assert result.exit_code == 1, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert expected in lines[0]
    assert "Traceback" not in result.output


@pytest.mark.parametrize("case", TFLITE_CASES)
@pytest.mark.parametrize("command", ["predict", "info", "bench"])
def test_bad_tflite_is_one_line_in_every_command(command, case, tiny, tmp_path) -> None:
    path, expected = _bad_tflite(case, tiny, tmp_path)
    args = {
        "predict": ["predict", str(path), str(tiny["poster"])],
        "info": ["info", str(path)],
        "bench": ["bench", str(path), "--no-references", "--runs", "1", "--rounds", "1"],
    }[command]
    _one_error_line(CliRunner().invoke(main, args), expected)


def _bad_run(case: str, tiny: dict[str, Path], folder: Path) -> tuple[Path, str]:
    """A bad Keras run folder (what `convert` takes) and its expected error text."""
    run = folder / case
    if case == "missing":
        return run, f"no Keras model at {run}"
    shutil.copytree(tiny["run"], run)
    keras_file = run / "model.keras"
    real = keras_file.read_bytes()
    if case == "no-model-file":
        keras_file.unlink()
        return run, f"no Keras model at {keras_file}"
    if case == "truncated":
        keras_file.write_bytes(real[: len(real) // 2])
    elif case == "zero-byte":
        keras_file.write_bytes(b"")
    elif case == "not-a-zip":
        keras_file.write_bytes(os.urandom(4096))
    elif case == "text-renamed":
        keras_file.write_text("this is a text file renamed to .keras\n" * 20)
    else:
        raise AssertionError(case)
    return run, f"{keras_file}: not a Keras model (.keras zip archive)"


@pytest.mark.parametrize(
    "case", ["truncated", "zero-byte", "not-a-zip", "text-renamed", "missing", "no-model-file"]
)
def test_bad_keras_model_is_one_line_in_convert(case, tiny, tmp_path) -> None:
    run, expected = _bad_run(case, tiny, tmp_path)
    result = CliRunner().invoke(main, ["convert", str(run), "--format", "int8"])
    _one_error_line(result, expected)


def test_check_model_file_and_load_interpreter(tiny, tmp_path) -> None:
    assert check_model_file(tiny["int8"]) == tiny["int8"]
    with pytest.raises(PosterliteError, match="is a directory"):
        check_model_file(tmp_path)
    interpreter = load_interpreter(tiny["int8"], threads=2)
    assert interpreter.get_input_details()[0]["shape"].tolist() == [1, 32, 32, 3]
    with pytest.raises(PosterliteError, match="threads must be >= 1"):
        load_interpreter(tiny["int8"], threads=0)
