"""posterlite.apprun: MediaPipe Tasks' ImageClassifier (real, CPU) on posterlite's files.

MediaPipe is the main check that the embedded TFLite Metadata works for apps: it must read
the labels, the normalization and the score threshold from a posterlite-converted model.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, make_poster
from PIL import Image
from tiny_models import THRESHOLDS, session_tiny_run

from posterlite.genres import DEFAULT_GENRES
from posterlite.preprocess import load_poster

mp = pytest.importorskip("mediapipe")
apprun = pytest.importorskip("posterlite.apprun")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    return session_tiny_run(tmp_path_factory)


@pytest.fixture
def poster_png(tmp_path: Path) -> Path:
    """PNG: lossless, so MediaPipe's own decoder and Pillow give the same pixels."""
    pixels = np.random.default_rng(4).integers(0, 256, (75, 50, 3), dtype=np.uint8)
    path = tmp_path / "poster.png"
    Image.fromarray(pixels).save(path)
    return path


# ---------------------------------------------------------------------- pixel probe
@pytest.mark.parametrize("dtype", ["float32", "uint8"])
def test_pixel_probe_echoes_its_input_in_litert(tmp_path, dtype: str) -> None:
    from ai_edge_litert.interpreter import Interpreter

    path = tmp_path / "probe.tflite"
    path.write_bytes(apprun.build_pixel_probe(8, dtype))
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert list(inp["shape"]) == [1, 8, 8, 3] and list(out["shape"]) == [1, 192]
    pixels = np.random.default_rng(0).integers(0, 256, (1, 8, 8, 3)).astype(inp["dtype"])
    interpreter.set_tensor(inp["index"], pixels)
    interpreter.invoke()
    assert np.array_equal(interpreter.get_tensor(out["index"]).reshape(pixels.shape), pixels)


def test_probe_pixels_rejects_values_that_are_not_pixels(tmp_path) -> None:
    path = tmp_path / "probe.tflite"
    path.write_bytes(apprun.build_pixel_probe(4, norm_mean=0.5, norm_std=1.0))
    with apprun.AppClassifier.open(path) as probe:
        image = probe.to_image(np.full((4, 4, 3), 200, np.uint8))
        with pytest.raises(apprun.AppRunError, match="not uint8 pixels"):
            apprun.probe_pixels(probe, image, 4)


# ------------------------------------------------------------- metadata read by MediaPipe
@pytest.mark.parametrize("fmt", ["fp32", "int8"])
def test_mediapipe_reads_labels_and_normalization_from_metadata(tiny, poster_png, fmt) -> None:
    """Category names come from the embedded labels.txt, in output order; the float
    model's normalization comes from the metadata: the scores equal LiteRT's on the same
    pixels (posterlite runtime), bit for bit for the integer model."""
    from posterlite.runtime import PosterModel

    model = PosterModel.load(tiny[fmt])
    with apprun.AppClassifier.open(tiny[fmt]) as app:
        result = app._classifier.classify(app.load_file(poster_png))
        categories = result.classifications[0].categories
        assert sorted((c.index, c.category_name) for c in categories) == list(
            enumerate(DEFAULT_GENRES)
        )
        theirs = app.classify_file(poster_png)
    ours = model.predict_pixels(load_poster(poster_png, model.input_size))[0]
    if fmt == "int8":
        assert np.array_equal(ours, theirs)
    else:
        np.testing.assert_allclose(ours, theirs, atol=1e-6)


def test_default_options_apply_the_metadata_threshold(tiny, poster_png) -> None:
    """Without our options MediaPipe applies the metadata's global 0.5 (ScoreThresholding
    read from posterlite's metadata) -- and in the Python/C API a threshold of 0 means
    "not set": why `NO_SCORE_CUT` is the smallest positive float, not 0."""
    from mediapipe.tasks.python import BaseOptions, vision

    with apprun.AppClassifier.open(tiny["fp32"]) as app:
        everything = app.classify_file(poster_png)
    assert (everything > 0).all() and (everything < 0.5).any()
    for threshold in (None, 0.0):
        options = vision.ImageClassifierOptions(
            base_options=BaseOptions(model_asset_path=str(tiny["fp32"])),
            max_results=-1,
            score_threshold=threshold,
        )
        with vision.ImageClassifier.create_from_options(options) as classifier:
            result = classifier.classify(mp.Image.create_from_file(str(poster_png)))
        kept = {c.index for c in result.classifications[0].categories}
        assert kept == set(np.flatnonzero(everything >= 0.5)), threshold


# ------------------------------------------------------------------ decoding and errors
def test_grayscale_jpeg_is_classified_like_an_app_bitmap(tiny, tmp_path) -> None:
    """MediaPipe decodes a grayscale JPEG to one channel, which its classifier rejects; an
    app's bitmap is RGBA, so AppClassifier expands it to RGB first."""
    path = make_poster(tmp_path / "gray.jpg", 3, size=(40, 60), mode="L")
    with apprun.AppClassifier.open(tiny["int8"]) as app:
        assert app._mp.Image.create_from_file(str(path)).channels == 1
        scores = app.classify_file(path)
    assert scores.shape == (len(DEFAULT_GENRES),) and (scores > 0).all()


def test_a_refused_image_does_not_break_the_classifier(tiny, poster_png, tmp_path) -> None:
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    with apprun.AppClassifier.open(tiny["int8"]) as app:
        before = app.classify_file(poster_png)
        with pytest.raises(apprun.AppRunError, match="cannot decode"):
            app.classify_file(tmp_path / "broken.jpg")
        with pytest.raises(apprun.AppRunError, match="MediaPipe failed"):
            app.classify_image(app._mp.Image.create_from_file(str(poster_png)).__class__(
                image_format=app._mp.ImageFormat.GRAY8,
                data=np.zeros((20, 20), np.uint8),
            ))  # fmt: skip
        assert np.array_equal(app.classify_file(poster_png), before)


def _bad_models(folder: Path, good: Path) -> list[Path]:
    truncated = folder / "truncated.tflite"
    truncated.write_bytes(good.read_bytes()[:2000])
    text = folder / "text.tflite"
    text.write_text("not a model\n")
    return [truncated, text, folder / "missing.tflite"]


def test_bad_model_files_are_posterlite_errors(tmp_path, tiny) -> None:
    """Labels from posterlite's metadata reader or given: either way a clean error."""
    from posterlite.errors import PosterliteError

    for path in _bad_models(tmp_path, Path(tiny["int8"])):
        for labels in (None, DEFAULT_GENRES):
            with pytest.raises(PosterliteError) as info:
                apprun.AppClassifier.open(path, labels=labels)
            assert path.name in str(info.value)


def test_bench_runtime_mediapipe_bad_model_files_one_line(tmp_path, tiny) -> None:
    from click.testing import CliRunner

    from posterlite.cli import main

    for path in _bad_models(tmp_path, Path(tiny["int8"])):
        args = ["bench", str(path), "--runtime", "mediapipe", "--no-references"]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1, (path.name, result.output)
        lines = result.output.strip().splitlines()
        assert lines[-1].startswith("error: ") and path.name in lines[-1]
        assert "Traceback" not in result.output


def test_missing_category_name_mismatch_is_an_error(tiny, poster_png) -> None:
    with apprun.AppClassifier.open(tiny["int8"], labels=list(reversed(DEFAULT_GENRES))) as app:
        with pytest.raises(apprun.AppRunError, match="names category"):
            app.classify_file(poster_png)


# ------------------------------------------------------------- bench --runtime mediapipe
def _labelled_set(root: Path) -> Path:
    """A labelled set in the multi-hot layout bench reads (`labels.csv` + `Images/`)."""
    root.mkdir(parents=True, exist_ok=True)
    columns = DEFAULT_GENRES[:-1]
    with (root / "labels.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Id", "Genre", *columns])
        for index in range(6):
            genres = [columns[index % len(columns)], columns[(index + 2) % len(columns)]]
            film = f"tt{index + 1:07d}"
            make_poster(root / "Images" / f"{film}.jpg", seed=index, size=(40, 60))
            writer.writerow([film, str(genres), *(int(c in genres) for c in columns)])
    return root


def test_bench_runtime_mediapipe_adds_app_side_rows(tiny, tmp_path) -> None:
    from click.testing import CliRunner

    from posterlite.cli import main

    data = _labelled_set(tmp_path / "sample")
    out = tmp_path / "bench.json"
    args = ["bench", str(tiny["int8"]), "--data", str(data), "--runtime", "mediapipe",
            "--runs", "3", "--rounds", "2", "--warmup", "1", "--no-references",
            "--json", str(out), "--plot", str(tmp_path / "bench.png")]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    import json

    rows = json.loads(out.read_text())["rows"]
    app = [r for r in rows if r.get("delegate") == "mediapipe"]
    litert = [r for r in rows if r.get("delegate") != "mediapipe"]
    assert len(app) == 1 and app[0]["format"] == "int8 MediaPipe" and litert
    assert app[0]["latency"]["p50_ms"] > 0 and app[0]["latency"]["rounds"] == 2
    assert app[0]["accuracy"]["n_samples"] == 6
    assert "int8 MediaPipe" in result.output and "MediaPipe rows:" in result.output


def test_bench_runtime_mediapipe_needs_the_cpu_target(tiny) -> None:
    from click.testing import CliRunner

    from posterlite.cli import main

    result = CliRunner().invoke(
        main, ["bench", str(tiny["int8"]), "--runtime", "mediapipe", "--target", "android"]
    )
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        "error: --runtime mediapipe needs --target cpu"
    )


# ------------------------------------------------------------------ README "in your app"
def _readme_block(language: str, marker: str) -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)
    found = [b for b in blocks if marker in b]
    assert len(found) == 1, f"README: one ```{language} block containing {marker!r}"
    return found[0]


def test_readme_python_app_snippet_runs_and_matches_posterlite(tiny, poster_png) -> None:
    """The README's Python block (the same MediaPipe call and options as its Kotlin and
    Swift blocks) runs here on a posterlite model and gives posterlite's tuned genres."""
    from posterlite.runtime import PosterModel

    code = _readme_block("python", "ImageClassifierOptions")
    code = re.sub(r'^MODEL = ".*"$', f"MODEL = {str(tiny['int8'])!r}", code, flags=re.M)
    code = re.sub(r'^POSTER = ".*"$', f"POSTER = {str(poster_png)!r}", code, flags=re.M)
    scope: dict = {"print": lambda *a, **k: None}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 (our own README)
    model = PosterModel.load(tiny["int8"])
    ours = model.predict(poster_png, threshold="tuned")
    assert list(scope["genres"]) == list(ours.predicted)
    # every genre came back, with posterlite's exact score (int8 model, lossless poster)
    assert scope["scores"] == dict(zip(model.genres, ours.probabilities.tolist(), strict=True))
    assert list(scope["cut"].values()) == pytest.approx(THRESHOLDS)


def test_readme_kotlin_and_swift_use_the_same_options() -> None:
    """Not compiled here: their option values must at least be the Python block's."""
    python = _readme_block("python", "ImageClassifierOptions")
    kotlin = _readme_block("kotlin", "ImageClassifier")
    swift = _readme_block("swift", "ImageClassifier")
    assert "score_threshold=1.1754944e-38" in python and "max_results=-1" in python
    assert "setScoreThreshold(java.lang.Float.MIN_NORMAL)" in kotlin
    assert "setMaxResults" not in kotlin  # Java: unset = every category (-1 is refused)
    assert "scoreThreshold = Float.leastNormalMagnitude" in swift
    assert "maxResults = -1" in swift
    for block in (python, kotlin, swift):
        assert "thresholds.json" in block
    assert np.float32(1.1754944e-38) == np.finfo(np.float32).tiny == apprun.NO_SCORE_CUT


# ------------------------------------------------------- benchmarks/parity_mediapipe.py
@pytest.mark.parametrize("record", ["parity_mediapipe", "parity_mediapipe_ensemble"])
def test_parity_results_render_from_their_json_byte_for_byte(tmp_path, record) -> None:
    import shutil
    import sys

    sys.path.insert(0, str(REPO / "benchmarks"))
    import parity_mediapipe

    results = REPO / "benchmarks" / "results"
    shutil.copy(results / f"{record}.json", tmp_path / f"{record}.json")
    argv = ["--render-only", "--results", str(tmp_path), "--record", record]
    for _ in range(2):  # rendering unchanged data twice changes nothing
        assert parity_mediapipe.main(argv) == 0
        rendered = (tmp_path / f"{record}.md").read_text(encoding="utf-8")
        assert rendered == (results / f"{record}.md").read_text(encoding="utf-8")
    assert "| 100.0 % | 100.0 % | 0.0000 | 0.0000 |" in rendered  # the bitmap row, measured
