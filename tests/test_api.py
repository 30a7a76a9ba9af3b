"""The Python API (`import posterlite`): the README's example run as written on a tiny model,
every input kind giving the CLI's answer, thresholds, errors, and a runtime-only import."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_poster
from PIL import Image
from test_runtime import GUARD
from tiny_models import SIZE, THRESHOLDS, session_tiny_run

import posterlite
from posterlite.cli import main
from posterlite.genres import DEFAULT_GENRES
from posterlite.runtime import PosterModel

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return session_tiny_run(tmp_path_factory)


def readme_example() -> str:
    """The first ```python block of the README's "Python API" section."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "README has no Python API example"
    return match.group(1)


def test_readme_example_runs_as_written(tiny, tmp_path, monkeypatch) -> None:
    """The README block, unchanged, in a folder laid out like the repository root."""
    run = tmp_path / "models" / "mobilenet_v2"
    shutil.copytree(tiny["run"], run)
    shutil.copy(tiny["int8"], run / "model.int8.tflite")
    # A random tiny model cannot pass the 0.01 gate on its 12 check posters: without a
    # manifest in its card, convert compares probabilities with Keras and skips the gate.
    card = json.loads((run / "card.json").read_text())
    (run / "card.json").write_text(json.dumps({**card, "manifest": ""}))
    make_poster(tmp_path / "poster.jpg", 1)
    make_poster(tmp_path / "other.jpg", 2, size=(50, 75))
    monkeypatch.chdir(tmp_path)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(readme_example(), "README.md", "exec"), {})  # noqa: S102
    lines = printed.getvalue().splitlines()
    assert lines[0].startswith("(") and "'Action':" in lines[0]  # predicted, scores
    assert lines[1].startswith("[(") or lines[1].startswith("[()")
    assert any(line.startswith("| model | format |") for line in lines)
    assert any(line.startswith("| mobilenet_v2 | int8 |") for line in lines)
    assert lines[-1] == "['out/tiny.int8.tflite']"
    assert (tmp_path / "out" / "tiny.int8.tflite").is_file()


def test_predict_inputs_agree_with_the_cli(tiny, tmp_path) -> None:
    """Path, bytes, PIL image, full-size array and model-size array: the CLI's scores."""
    poster = make_poster(tmp_path / "p.jpg", 7, size=(61, 93))
    cli = json.loads(
        CliRunner().invoke(main, ["predict", str(tiny["int8"]), str(poster), "--json"]).stdout
    )["predictions"][0]["probabilities"]
    model = posterlite.load(tiny["int8"])
    assert isinstance(model, PosterModel) and model.genres == DEFAULT_GENRES
    from posterlite.preprocess import load_poster

    inputs = {
        "path": str(poster),
        "Path": poster,
        "bytes": poster.read_bytes(),
        "PIL": Image.open(poster),
        "array": np.asarray(Image.open(poster).convert("RGB")),
        "resized array": load_poster(poster, SIZE),
    }
    for kind, image in inputs.items():
        result = model.predict(image)
        assert result.ok, kind
        assert result.scores == pytest.approx(cli, abs=1e-6), kind
    batch = model.predict(list(inputs.values()))
    assert [r.scores for r in batch] == [model.predict(i).scores for i in inputs.values()]
    stacked = model.predict(np.stack([load_poster(poster, SIZE)] * 2))
    assert isinstance(stacked, list) and len(stacked) == 2


def test_pil_image_orientation_and_modes_follow_the_file_path(tiny, tmp_path) -> None:
    """An in-memory image keeps its EXIF orientation and odd modes, like the same file."""
    model = posterlite.load(tiny["int8"])
    rng = np.random.default_rng(3)
    image = Image.fromarray(rng.integers(0, 256, (90, 60, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 on display
    rotated = tmp_path / "rotated.jpg"
    image.save(rotated, exif=exif)
    assert model.predict(Image.open(rotated)).scores == model.predict(rotated).scores
    cmyk = tmp_path / "cmyk.jpg"
    image.convert("CMYK").save(cmyk)
    assert model.predict(Image.open(cmyk)).scores == pytest.approx(
        model.predict(cmyk).scores, abs=1e-6
    )


def test_thresholds_fixed_list_and_tuned(tiny, tmp_path) -> None:
    model = posterlite.load(tiny["int8"])
    poster = make_poster(tmp_path / "t.jpg", 11)
    scores = model.predict(poster).scores
    assert model.predict(poster, threshold=0.0).predicted == DEFAULT_GENRES
    assert model.predict(poster, threshold=1.01).predicted == ()
    cut = sorted(scores.values())[2]
    assert model.predict(poster, threshold=cut).predicted == tuple(
        g for g in DEFAULT_GENRES if scores[g] >= cut
    )
    tuned = model.predict(poster, threshold="tuned").predicted
    assert tuned == tuple(
        g for g, t in zip(DEFAULT_GENRES, THRESHOLDS, strict=True) if scores[g] >= t
    )
    per_genre = [1.01] * 5 + [0.0]
    assert model.predict(poster, threshold=per_genre).predicted == ("Other",)
    default = model.predict(poster).predicted
    assert default == tuple(g for g in DEFAULT_GENRES if scores[g] >= 0.5)


def test_bad_inputs(tiny, tmp_path) -> None:
    model = posterlite.load(tiny["int8"])
    broken = model.predict(b"\xff\xd8\xff not a jpeg")
    assert not broken.ok and broken.error and broken.scores == {}
    missing = model.predict(tmp_path / "absent.jpg")
    assert missing.error == "missing file" and missing.path.endswith("absent.jpg")
    with pytest.raises(TypeError, match="uint8"):
        model.predict(np.zeros((SIZE, SIZE, 3), np.float32))
    with pytest.raises(TypeError, match="takes a path"):
        model.predict(42)
    with pytest.raises(ValueError, match="shape"):
        model.predict(np.zeros((4, 4, 7), np.uint8))
    with pytest.raises(posterlite.errors.PosterliteError, match="model not found"):
        posterlite.load(tmp_path / "absent.tflite")


def test_convert_and_bench_are_callable_stage_modules() -> None:
    from posterlite import bench, convert

    assert callable(posterlite.bench) and posterlite.bench is bench
    assert callable(posterlite.convert) and posterlite.convert is convert
    assert bench.run_bench and convert.convert_model  # still the modules


def test_import_and_predict_without_tensorflow(tiny, tmp_path) -> None:
    """`import posterlite` + load + predict on the runtime-only install (TF blocked)."""
    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(GUARD)
    poster = make_poster(tmp_path / "g.jpg", 4)
    code = (
        "import posterlite, sys\n"
        f"m = posterlite.load({str(tiny['int8'])!r})\n"
        f"print(sorted(m.predict({str(poster)!r}).scores))\n"
        "print('tensorflow' in sys.modules)\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(guard), str(REPO)]),
        "GUARD_LOG": str(tmp_path / "blocked.log"),
    }
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [str(sorted(DEFAULT_GENRES)), "False"]
    assert not (tmp_path / "blocked.log").exists()
