"""No library log lines on the terminal: real commands in fresh processes, the fd capture,
and the converter's log shown when a conversion fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import make_poster
from tiny_models import session_tiny_run

from posterlite import convert as convert_mod
from posterlite.cli import main
from posterlite.errors import PosterliteError
from posterlite.quiet import QUIET_ENV, VERBOSE_ENV, captured_output, log_lines

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    models = session_tiny_run(tmp_path_factory)
    poster = make_poster(tmp_path_factory.mktemp("quiet") / "poster.jpg", 5)
    return {**models, "poster": poster}


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The CLI in a fresh process, with none of the logging variables preset."""
    env = {k: v for k, v in os.environ.items() if k not in QUIET_ENV and k != VERBOSE_ENV}
    return subprocess.run(
        [sys.executable, "-m", "posterlite.cli", *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
        env={**env, "PYTHONPATH": str(REPO)},
    )


def test_commands_print_no_library_log_lines(tiny, tmp_path) -> None:
    """convert (TensorFlow import, MLIR converter), predict / info / bench (LiteRT)."""
    out = tmp_path / "out"
    runs = [
        _run(
            "convert",
            str(tiny["run"]),
            "--format",
            "int8",
            "--out",
            str(out),
            "--max-drop",
            "1",
            cwd=tmp_path,
        ),  # fmt: skip
        _run("predict", str(tiny["int8"]), str(tiny["poster"]), cwd=tmp_path),
        _run("info", str(tiny["int8"]), cwd=tmp_path),
        _run(
            "bench",
            str(tiny["int8"]),
            "--no-references",
            "--runs",
            "2",
            "--rounds",
            "1",
            "--json",
            str(tmp_path / "b.json"),
            "--plot",
            str(tmp_path / "b.png"),
            cwd=tmp_path,
        ),  # fmt: skip
    ]
    for done in runs:
        assert done.returncode == 0, done.stderr
        assert log_lines(done.stdout) == [] and log_lines(done.stderr) == [], done.args
    # The converter did print: into its log beside the report, not on the terminal.
    log = (out / convert_mod.CONVERT_LOG).read_text()
    assert "fully_quantize" in log
    assert "tiny.int8.tflite" in runs[0].stdout
    assert "Predicted classes" in runs[1].stdout and "name: tiny" in runs[2].stdout


def test_captured_output_keeps_fd_writes_and_restores(tmp_path) -> None:
    log = tmp_path / "logs" / "x.log"
    with pytest.raises(RuntimeError), captured_output(log) as captured:
        os.write(2, b"I0000 00:00 something from C++\n")
        os.write(1, b"fully_quantize: 0, inference_type: 6\n")
        raise RuntimeError("boom")
    assert captured.tail() == ["I0000 00:00 something from C++", "fully_quantize: 0, inference_type: 6"]  # fmt: skip
    assert log.read_text() == captured.text
    with captured_output() as outer:  # nested: one capture
        with captured_output() as inner:
            os.write(2, b"inner\n")
        assert inner.text == ""
    assert outer.text == "inner\n"


def test_a_failed_conversion_shows_the_converter_log(tiny, tmp_path, monkeypatch) -> None:
    def failing(saved_model, fmt, calibration=None):  # noqa: ANN001, ARG001
        os.write(2, b"E0000 mlir: fake legalization failure for this test\n")
        raise PosterliteError(f"{fmt} conversion failed: fake")

    monkeypatch.setattr(convert_mod, "convert_saved_model", failing)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["convert", str(tiny["run"]), "--format", "int8", "--out", str(out)]
    )
    assert result.exit_code == 1
    log = out / convert_mod.CONVERT_LOG
    assert "converter: E0000 mlir: fake legalization failure for this test" in result.stderr
    last = result.stderr.splitlines()[-1]
    assert last == f"error: int8 conversion failed: fake (converter log: {log})"
    assert "fake legalization failure" in log.read_text()
