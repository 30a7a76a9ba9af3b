"""runtime + predict: inputs per dtype, files with a corrupt poster, CLI output, no TensorFlow."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_poster
from tiny_models import SIZE, THRESHOLDS, session_tiny_run

from posterlite.cli import main
from posterlite.errors import PosterliteError
from posterlite.genres import DEFAULT_GENRES
from posterlite.preprocess import load_poster, pixels_to_input
from posterlite.runtime import PosterModel, load_interpreter

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return session_tiny_run(tmp_path_factory)


@pytest.fixture
def posters(tmp_path: Path) -> Path:
    folder = tmp_path / "posters"
    for index in range(3):
        make_poster(folder / f"ok{index}.jpg", 40 + index)
    make_poster(folder / "sub" / "deep.png", 50)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    (folder / "notes.txt").write_text("not a poster")
    return folder


def test_model_reads_its_metadata(models) -> None:
    model = PosterModel.load(models["int8"])
    assert model.genres == DEFAULT_GENRES and model.metadata_source == "metadata"
    assert np.allclose(model.thresholds, THRESHOLDS)
    assert model.input_size == SIZE and (model.name, model.version) == ("tiny", "7")


def test_prepare_float_and_quantized(models) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (2, SIZE, SIZE, 3), dtype=np.uint8)
    float_model = PosterModel.load(models["fp32"])
    prepared = float_model.prepare(pixels)
    assert prepared.dtype == np.float32
    assert np.array_equal(prepared, pixels_to_input(pixels, "float32"))
    int8 = PosterModel.load(models["int8"])
    scale, zero_point = int8.input_quant
    real = pixels_to_input(pixels).astype(np.float64) / scale + zero_point
    assert int8.prepare(pixels).dtype == np.uint8
    nearest = np.abs(int8.prepare(pixels) - np.clip(real, 0, 255))
    # <= half a step, give or take the 4th-decimal rounding the table applies to settle
    # ties (it removes float32 jitter of the stored scale, see PosterModel._build_lut).
    assert nearest.max() <= 0.5 + 1e-4
    # The usual calibrated input (scale 2/255 stored as float32) puts every pixel on a half
    # step; ties go away from zero like TFLite's Quantize: zero point 127 -> the pixel
    # itself, 128 -> one step up (saturating). Not a blind pass-through of pixels.
    levels = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1).repeat(3, axis=3)
    for zero_point, expected in ((127, np.arange(256)), (128, np.minimum(np.arange(256) + 1, 255))):
        int8.input_quant = (float(np.float32(1 / 127.5)), zero_point)
        int8.input_size = 16
        int8.configure_input()
        assert np.array_equal(int8.prepare(levels)[0, :, :, 0].ravel(), expected)


def test_predict_pixels_float_vs_int8_and_batching(models) -> None:
    pixels = np.stack(
        [load_poster(make_poster(models["root"] / f"x{i}.jpg", i), SIZE) for i in range(5)]
    )
    float_model = PosterModel.load(models["fp32"])
    int8 = PosterModel.load(models["int8"])
    single = float_model.predict_pixels(pixels)
    assert single.shape == (5, len(DEFAULT_GENRES)) and single.dtype == np.float32
    assert np.abs(int8.predict_pixels(pixels) - single).max() < 0.05
    float_model.batch_size = 3  # 5 = 3 + 2 padded
    assert np.allclose(float_model.predict_pixels(pixels), single, atol=1e-6)


def test_predict_files_skips_undecodable(models, posters: Path) -> None:
    model = PosterModel.load(models["int8"])
    paths = [posters / "ok0.jpg", posters / "broken.jpg", posters / "ok1.jpg"]
    results = model.predict_files(paths, workers=2)
    assert [Path(r.path).name for r in results] == ["ok0.jpg", "broken.jpg", "ok1.jpg"]
    assert [r.ok for r in results] == [True, False, True]
    assert results[1].error in {"truncated", "undecodable", "not an image"}
    assert set(results[0].confidences()) == set(DEFAULT_GENRES)


def test_load_interpreter_errors(tmp_path: Path) -> None:
    with pytest.raises(PosterliteError, match="not found"):
        load_interpreter(tmp_path / "absent.tflite")
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"\0\0\0\0TFL3" + os.urandom(2000))  # right identifier, garbage after
    with pytest.raises(PosterliteError, match="not a usable TFLite model") as info:
        load_interpreter(junk)
    assert "\n" not in str(info.value) and "truncated or corrupt" in str(info.value)


def _predict(*args: str):
    return CliRunner().invoke(main, ["predict", *args])


def test_cli_text_dirs_and_corrupt(models, posters: Path) -> None:
    result = _predict(str(models["fp32"]), str(posters))
    assert result.exit_code == 0, result.output
    assert result.stdout.count("Predicted classes: [") == 4  # 3 jpg + sub/deep.png
    assert "deep.png" in result.stdout and "notes.txt" not in result.stdout
    assert "broken.jpg" in result.stderr and "skipped" in result.stderr
    block = result.stdout.split("\n\n")[0].splitlines()
    assert block[1].startswith("Predicted classes: ")
    assert [line.split()[0] for line in block[2:]] == list(DEFAULT_GENRES)


def test_cli_json_csv_glob_and_tuned(models, posters: Path) -> None:
    result = _predict(str(models["int8"]), str(posters / "ok*.jpg"), "--json", "--threshold", "0")
    assert result.exit_code == 0
    payload = json.loads(result.stdout)
    assert len(payload["predictions"]) == 3 and payload["genres"] == list(DEFAULT_GENRES)
    assert all(p["predicted"] == list(DEFAULT_GENRES) for p in payload["predictions"])
    tuned = json.loads(
        _predict(
            str(models["int8"]), str(posters / "ok0.jpg"), "--json", "--tuned-thresholds"
        ).stdout
    )
    assert tuned["thresholds"] == pytest.approx(THRESHOLDS)
    probabilities = tuned["predictions"][0]["probabilities"]
    expected = [g for g, t in zip(DEFAULT_GENRES, THRESHOLDS, strict=True) if probabilities[g] >= t]
    assert tuned["predictions"][0]["predicted"] == expected
    table = _predict(
        str(models["fp32"]), str(posters / "ok0.jpg"), str(posters / "broken.jpg"), "--csv"
    )
    rows = list(csv.DictReader(io.StringIO(table.stdout)))
    assert table.exit_code == 0 and len(rows) == 1 and set(DEFAULT_GENRES) <= set(rows[0])


def test_cli_json_and_csv_conflict(models, posters: Path) -> None:
    result = _predict(str(models["int8"]), str(posters / "ok0.jpg"), "--json", "--csv")
    assert result.exit_code == 1
    assert result.stdout == "" and result.stderr == "error: choose one of --json and --csv\n"


def test_cli_non_default_threshold_cuts_where_asked(models, posters: Path) -> None:
    """--threshold T: exactly the genres scoring >= T, for a T that splits the scores."""
    everything = json.loads(
        _predict(str(models["int8"]), str(posters), "--json", "--threshold", "0").stdout
    )
    scores = sorted({v for p in everything["predictions"] for v in p["probabilities"].values()})
    cut = (scores[len(scores) // 2 - 1] + scores[len(scores) // 2]) / 2  # between two scores
    result = _predict(str(models["int8"]), str(posters), "--json", "--threshold", f"{cut!r}")
    payload = json.loads(result.stdout)
    assert payload["thresholds"] == pytest.approx([cut] * len(DEFAULT_GENRES))
    chosen = 0
    for prediction in payload["predictions"]:
        expected = [g for g in DEFAULT_GENRES if prediction["probabilities"][g] >= cut]
        assert prediction["predicted"] == expected
        chosen += len(expected)
    total = len(payload["predictions"]) * len(DEFAULT_GENRES)
    assert 0 < chosen < total  # the cut really splits: neither nothing nor everything
    text = _predict(str(models["int8"]), str(posters / "ok0.jpg"), "--threshold", f"{cut!r}")
    first = next(p for p in payload["predictions"] if p["path"].endswith("ok0.jpg"))
    assert f"Predicted classes: {first['predicted']}" in text.stdout


def test_cli_info_shows_what_the_model_carries(models) -> None:
    result = CliRunner().invoke(main, ["info", str(models["int8"])])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"model: {models['int8']} (")
    assert lines[1] == "name: tiny  version: 7"
    assert lines[2] == "labels from: metadata (files: labels.txt, thresholds.json)"
    assert lines[3] == "normalization: (pixel - 127.5) / 127.5"
    assert (
        lines[4].startswith("input: ") and f"[1, {SIZE}, {SIZE}, 3] uint8, quantization" in lines[4]
    )
    assert lines[5].startswith("output: ") and f"[1, {len(DEFAULT_GENRES)}] uint8" in lines[5]
    rows = [line.split() for line in lines[lines.index("genres (tuned threshold):") + 1 :]]
    assert [r[0] for r in rows] == list(DEFAULT_GENRES)
    assert [float(r[1]) for r in rows] == pytest.approx(THRESHOLDS)
    details = json.loads(CliRunner().invoke(main, ["info", str(models["fp32"]), "--json"]).stdout)
    assert details["genres"] == list(DEFAULT_GENRES) and details["source"] == "metadata"
    assert details["input"]["dtype"] == "float32" and details["input"]["shape"] == [
        1,
        SIZE,
        SIZE,
        3,
    ]


def test_cli_nothing_predictable_exits_1(models, posters: Path) -> None:
    result = _predict(str(models["fp32"]), str(posters / "broken.jpg"), str(posters / "absent.jpg"))
    assert result.exit_code == 1
    assert "absent.jpg" in result.stderr and result.stderr.strip().splitlines()[-1].startswith(
        "error:"
    )


GUARD = textwrap.dedent(
    """
    import os
    import sys

    BLOCKED = {"tensorflow", "keras", "sklearn", "tf_keras", "jax", "torch"}

    class _Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                # Logged too, so an import attempt that some library swallows still shows.
                with open(os.environ["GUARD_LOG"], "a") as log:
                    log.write(name + "\\n")
                raise ImportError(f"import guard: {name} is not allowed on the runtime install")
            return None

    sys.meta_path.insert(0, _Block())
    """
)


def test_predict_and_info_run_without_tensorflow(models, posters: Path, tmp_path: Path) -> None:
    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(GUARD)
    log = tmp_path / "blocked.log"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(guard), str(REPO)]),
        "GUARD_LOG": str(log),
    }
    check = [sys.executable, "-c", "import tensorflow"]
    assert subprocess.run(check, env=env, capture_output=True).returncode != 0
    log.unlink()
    for args in (
        ["predict", str(models["int8"]), str(posters), "--json"],
        ["info", str(models["int8"])],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "posterlite.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert "import guard" not in done.stderr
        if args[0] == "info":  # the whole answer, not just the exit status
            assert "name: tiny  version: 7" in done.stdout
            assert "labels from: metadata (files: labels.txt, thresholds.json)" in done.stdout
            assert all(f"  {g}" in done.stdout for g in DEFAULT_GENRES)
        else:
            assert len(json.loads(done.stdout)["predictions"]) == 4
    code = (
        "import posterlite.runtime, posterlite.metadata, posterlite.preprocess, posterlite.genres"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert not log.exists(), f"blocked imports attempted: {log.read_text()}"


@pytest.mark.slow
def test_runtime_only_install(models, posters: Path, tmp_path: Path) -> None:
    """A fresh venv with `pip install .[runtime]` only predicts and shows info."""
    venv = tmp_path / "venv"
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", f"{REPO}[runtime]"],
            check=True,
            capture_output=True,
            timeout=900,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot install posterlite[runtime]: {exc}")
    python = str(venv / "bin" / "python")
    for blocked in ("tensorflow", "keras", "sklearn"):
        probe = subprocess.run([python, "-c", f"import {blocked}"], capture_output=True)
        assert probe.returncode != 0, f"{blocked} came with the runtime install"
    cli = str(venv / "bin" / "posterlite")
    done = subprocess.run(
        [cli, "predict", str(models["int8"]), str(posters), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["predictions"]) == 4
    info = subprocess.run([cli, "info", str(models["int8"])], capture_output=True, text=True)
    assert info.returncode == 0 and "labels from: metadata" in info.stdout


def test_hostile_posters_each_get_one_line_and_the_good_one_its_result(
    models, tmp_path: Path
) -> None:
    """Issue 17 in one run: a 5,000,000 x 1 PNG, an 8 GB sparse file, a FIFO named on the
    command line, a link to /dev/zero and a symlink loop under a `**` glob, beside one
    good poster. A real `posterlite predict` process (a hang is a timeout, not a hung
    suite): one `skipped:` line per bad poster, the good one predicted, exit 0."""
    from PIL import Image

    good = make_poster(tmp_path / "good.jpg", 7)
    Image.new("RGB", (5_000_000, 1), (200, 10, 10)).save(tmp_path / "strip.png")
    with open(tmp_path / "huge.jpg", "wb") as file:
        file.truncate(8 * 1024**3)  # sparse: no disk used
    os.mkfifo(tmp_path / "pipe.jpg")
    (tmp_path / "zero.jpg").symlink_to("/dev/zero")
    loop = tmp_path / "loop"
    loop.mkdir()
    (loop / "up").symlink_to("..")
    (loop / "up2").symlink_to("../..")
    named = [good, tmp_path / "strip.png", tmp_path / "huge.jpg", tmp_path / "pipe.jpg"]
    args = [*map(str, named), str(tmp_path / "zero.jpg"), str(loop / "**" / "*.jpg")]
    done = subprocess.run(
        [sys.executable, "-m", "posterlite.cli", "predict", str(models["int8"]), *args, "--json"],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "Warning" not in done.stderr
    payload = json.loads(done.stdout)
    assert [p["path"] for p in payload["predictions"]] == [str(good)]
    skipped = sorted(line for line in done.stderr.splitlines() if line.startswith("skipped:"))
    assert skipped == sorted(
        [
            f"skipped: {tmp_path / 'strip.png'}: absurd size (5000000x1)",
            f"skipped: {tmp_path / 'huge.jpg'}: too large (over 67108864 bytes)",
            f"skipped: {tmp_path / 'pipe.jpg'}: not a regular file (FIFO)",
            f"skipped: {tmp_path / 'zero.jpg'}: not a regular file (character device)",
            f"skipped: {loop / '**' / '*.jpg'}: missing file",  # the loop holds no poster
        ]
    )


def test_api_caps_bytes_and_in_memory_images(models) -> None:
    """The Python API: over-cap bytes and absurdly shaped PIL images / arrays are each one
    poster's error (checked before a re-encode), the good poster beside them predicted."""
    from PIL import Image

    from posterlite.preprocess import MAX_FILE_BYTES

    model = PosterModel.load(models["fp32"])
    good = np.random.default_rng(3).integers(0, 256, (60, 40, 3), dtype=np.uint8)
    results = model.predict(
        [
            b"\xff\xd8" + bytes(MAX_FILE_BYTES),
            Image.new("L", (100_000, 2)),
            np.zeros((1, 20_000, 3), np.uint8),
            good,
        ]
    )
    assert [r.error for r in results] == ["too large", "absurd size", "absurd size", None]
    assert results[3].ok and set(results[3].confidences()) == set(DEFAULT_GENRES)


# --- hostile file names and labels: data in CSV/JSON, escapes on the terminal ---------------
HOSTILE_NAMES = [
    '=HYPERLINK("http://127.0.0.1","x").jpg',
    "+1+1.jpg",
    "-2+3+cmd.jpg",
    "@SUM(A1).jpg",
    "\tTab.jpg",
    "\rret.jpg",
    "\x1b]0;pwned\x07.jpg",
    "\x1b[31mred.jpg",
    "new\nline.jpg",
    "\u202egpj.exe.jpg",
    os.fsdecode(b"caf\xe9-not-utf8.jpg"),
    "plain.jpg",
]
HOSTILE_LABELS = ("=1+1", "+SUM(1)", "-x", "@cmd", "\x1b]0;t\x07", "\u202eok")
FORMULA_FIRST = ("=", "+", "-", "@", "\t", "\r", "\n", "\0")
UNSAFE_CHARS = "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]"


@pytest.fixture
def hostile(models, tmp_path: Path) -> dict[str, Path]:
    from posterlite.metadata import MetadataSpec, embed_metadata

    folder = tmp_path / "posters"
    for index, name in enumerate(HOSTILE_NAMES):
        make_poster(folder / name, index)
    spec = MetadataSpec(
        name="hostile", version="1", genres=HOSTILE_LABELS, thresholds=(0.5,) * 6, input_size=SIZE
    )
    model = tmp_path / "hostile.tflite"
    model.write_bytes(embed_metadata(models["int8"].read_bytes(), spec))
    return {"posters": folder, "model": model}


def _cli(*args: str) -> subprocess.CompletedProcess:
    """The real CLI, stdout a pipe (where click.echo would strip escape sequences)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "posterlite.cli", *args], capture_output=True, env=env, timeout=120
    )


def _unescaped(cell: str) -> str:
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(FORMULA_FIRST) else cell


def test_csv_is_formula_safe_and_names_the_exact_files(hostile) -> None:
    done = _cli("predict", str(hostile["model"]), str(hostile["posters"]), "--csv")
    assert done.returncode == 0 and done.stderr == b"", done.stderr
    rows = list(csv.reader(io.StringIO(done.stdout.decode("utf-8", "surrogateescape"))))
    assert all(not cell.startswith(FORMULA_FIRST) for row in rows for cell in row)
    assert [_unescaped(cell) for cell in rows[0][2:]] == list(HOSTILE_LABELS)
    assert rows[0][2] == "'=1+1"  # the usual defusing: a leading apostrophe
    paths = sorted(_unescaped(row[0]) for row in rows[1:])
    assert paths == sorted(str(hostile["posters"] / name) for name in HOSTILE_NAMES)
    assert all(os.path.isfile(os.fsencode(path)) for path in paths)  # byte-exact names


def test_json_names_the_exact_files_and_labels(hostile) -> None:
    done = _cli("predict", str(hostile["model"]), str(hostile["posters"]), "--json")
    assert done.returncode == 0 and done.stderr == b"", done.stderr
    assert done.stdout.isascii()  # every file name and label travels as a JSON escape
    payload = json.loads(done.stdout, parse_constant=lambda name: pytest.fail(name))
    assert payload["genres"] == list(HOSTILE_LABELS)
    paths = sorted(p["path"] for p in payload["predictions"])
    assert paths == sorted(str(hostile["posters"] / name) for name in HOSTILE_NAMES)


def test_text_output_shows_escapes_never_control_characters(hostile, tmp_path: Path) -> None:
    (hostile["posters"] / "\x1b]0;broken\x07.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    missing = str(tmp_path / "\x1b[2Jmissing.jpg")
    done = _cli("predict", str(hostile["model"]), str(hostile["posters"]), missing)
    assert done.returncode == 0, done.stderr
    stdout = done.stdout.decode("utf-8")  # UTF-8 throughout: the bad byte is an escape
    stderr = done.stderr.decode("utf-8")
    for line in stdout.splitlines() + stderr.splitlines():
        assert not re.search(UNSAFE_CHARS, line), repr(line)
    assert "\\x1b]0;pwned\\x07.jpg" in stdout and "new\\x0aline.jpg" in stdout
    assert "caf\\xe9-not-utf8.jpg" in stdout and "\\u202egpj.exe.jpg" in stdout
    assert stdout.count("Predicted classes: ") == len(HOSTILE_NAMES)
    assert "skipped: " in stderr and "\\x1b]0;broken\\x07.jpg" in stderr
    assert "\\x1b[2Jmissing.jpg: missing file" in stderr


def test_error_line_stays_one_line_for_any_file_name(tmp_path: Path) -> None:
    model = tmp_path / "evil\n\x1b]0;x\x07.tflite"
    model.write_bytes(b"not a model at all")
    done = _cli("info", str(model))
    assert done.returncode == 1
    (line,) = done.stderr.decode("utf-8").splitlines()
    assert line.startswith("error: ") and "evil\\x0a\\x1b]0;x\\x07.tflite" in line


def test_non_finite_scores_are_null_not_bare_nan(models) -> None:
    """A model may output NaN; the JSON document stays strict (null), never bare NaN."""
    from posterlite.runtime import Prediction, predictions_json

    model = PosterModel.load(models["int8"])
    scores = np.array([np.nan, np.inf, 0.5, 0.1, 0.2, 0.3], np.float32)
    prediction = Prediction("p.jpg", model.genres, scores, ())
    text = predictions_json(model, [prediction], model.cut(None))
    probabilities = json.loads(text, parse_constant=lambda name: pytest.fail(name))
    assert list(probabilities["predictions"][0]["probabilities"].values())[:3] == [None, None, 0.5]


@pytest.mark.parametrize("value", ["nan", "inf", "1.5", "-0.1"])
def test_threshold_option_outside_0_1_is_one_line(models, posters: Path, value: str) -> None:
    result = _predict(str(models["int8"]), str(posters / "ok0.jpg"), "--threshold", value)
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: --threshold must be a number in [0, 1], not {float(value)!r}"
    ]
