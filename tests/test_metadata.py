"""metadata: TFLite Metadata round trip, fallbacks, `info`, and Android's own reader."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_poster
from tiny_models import SIZE, THRESHOLDS, session_tiny_run

from posterlite.cli import main
from posterlite.genres import DEFAULT_GENRES
from posterlite.metadata import (
    METADATA_NAME,
    MetadataSpec,
    associated_files,
    embed_metadata,
    metadata_buffer,
    parse_metadata_buffer,
    read_metadata,
    sidecar_path,
)
from posterlite.preprocess import load_poster
from posterlite.runtime import PosterModel


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return session_tiny_run(tmp_path_factory)


def _bare_copy(source: Path, target: Path) -> Path:
    """The model without metadata: strip the zip and the TFLITE_METADATA entry."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(source.read_bytes()), 0)
    model.metadata = [m for m in model.metadata if m.name.decode() != METADATA_NAME]
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    target.write_bytes(bytes(builder.Output()))
    return target


def test_round_trip(models) -> None:
    for fmt in ("fp32", "int8"):
        info = read_metadata(models[fmt])
        assert info.source == "metadata"
        assert info.genres == DEFAULT_GENRES
        assert info.thresholds == pytest.approx(THRESHOLDS)
        assert (info.name, info.version, info.min_parser_version) == ("tiny", "7", "1.0.0")
        assert (info.norm_mean, info.norm_std, info.default_threshold) == (127.5, 127.5, 0.5)
        assert info.associated_files == ("labels.txt", "thresholds.json")
        assert info.input.shape == (1, SIZE, SIZE, 3)
        assert info.output.shape[-1] == len(DEFAULT_GENRES)
    int8 = read_metadata(models["int8"])
    assert int8.input.dtype == "uint8" and int8.input.quantization.quantized
    assert int8.output.dtype == "uint8" and int8.output.quantization.scale > 0
    packed = json.loads(associated_files(models["int8"].read_bytes())["thresholds.json"])
    assert packed["input_quantization"]["scale"] == pytest.approx(int8.input.quantization.scale)
    embedded = parse_metadata_buffer(metadata_buffer(models["int8"].read_bytes()))
    assert embedded.input_size == SIZE and embedded.output_files[0] == "labels.txt"


def test_embedding_keeps_predictions_and_is_idempotent(models, tmp_path: Path) -> None:
    bare = _bare_copy(models["fp32"], tmp_path / "bare.tflite")
    assert metadata_buffer(bare.read_bytes()) is None
    spec = MetadataSpec(
        name="again", version="2", genres=DEFAULT_GENRES, thresholds=(0.5,) * 6, input_size=SIZE
    )
    once = embed_metadata(bare.read_bytes(), spec)
    twice = embed_metadata(once, spec)
    assert once == twice
    (tmp_path / "meta.tflite").write_bytes(twice)
    pixels = np.random.default_rng(1).integers(0, 256, (3, SIZE, SIZE, 3), dtype=np.uint8)
    before = PosterModel.load(bare).predict_pixels(pixels)
    after = PosterModel.load(tmp_path / "meta.tflite").predict_pixels(pixels)
    assert np.array_equal(before, after)
    assert read_metadata(tmp_path / "meta.tflite").name == "again"


def test_fallbacks_sidecar_then_default(models, tmp_path: Path) -> None:
    bare = _bare_copy(models["fp32"], tmp_path / "bare.tflite")
    info = read_metadata(bare)
    assert info.source == "default" and info.genres == DEFAULT_GENRES
    assert info.thresholds == (0.5,) * 6
    shutil.copy(sidecar_path(models["fp32"]), sidecar_path(bare))
    info = read_metadata(bare)
    assert info.source == "sidecar" and info.thresholds == pytest.approx(THRESHOLDS)


def test_info_cli(models) -> None:
    result = CliRunner().invoke(main, ["info", str(models["int8"])])
    assert result.exit_code == 0
    assert "labels from: metadata" in result.stdout and "uint8" in result.stdout
    assert "Romance" in result.stdout and "zero_point" in result.stdout
    payload = json.loads(CliRunner().invoke(main, ["info", str(models["int8"]), "--json"]).stdout)
    assert payload["genres"] == list(DEFAULT_GENRES)
    assert payload["input"]["quantization"]["scale"] > 0
    bad = CliRunner().invoke(main, ["info", str(models["root"] / "manifest.csv")])
    assert bad.exit_code == 1 and bad.stderr.startswith("error: ")


READER = textwrap.dedent(
    """
    import json, sys
    from tflite_support import metadata as md
    from tflite_support.task import core, processor, vision

    out = {}
    for path in sys.argv[1:-1]:
        displayer = md.MetadataDisplayer.with_model_file(path)
        options = vision.ImageClassifierOptions(
            base_options=core.BaseOptions(file_name=path),
            classification_options=processor.ClassificationOptions(
                score_threshold=0.0, max_results=100
            ),
        )
        classifier = vision.ImageClassifier.create_from_options(options)
        result = classifier.classify(vision.TensorImage.create_from_file(sys.argv[-1]))
        out[path] = {
            "json": json.loads(displayer.get_metadata_json()),
            "files": displayer.get_packed_associated_file_list(),
            "labels": displayer.get_associated_file_buffer("labels.txt").decode(),
            "scores": {
                c.category_name: c.score for c in result.classifications[0].categories
            },
        }
    print(json.dumps(out))
    """
)


REPO = Path(__file__).resolve().parents[1]
TFLITE_SUPPORT_PYTHON = REPO / ".venv-tflite-support" / "bin" / "python"


@pytest.fixture(scope="session")
def tflite_support_python() -> str:
    """The separate venv with tflite-support 0.4.4 (it cannot live beside TF 2.21) that
    `make tflite-support-venv` builds; POSTERLITE_TFLITE_SUPPORT_PYTHON names another."""
    python = Path(os.environ.get("POSTERLITE_TFLITE_SUPPORT_PYTHON", TFLITE_SUPPORT_PYTHON))
    if not python.is_file():
        pytest.skip(
            f"Android's metadata reader (tflite-support 0.4.4) not installed at {python}: "
            "run `make test-tflite-support` (builds .venv-tflite-support, ~30 s) to run it"
        )
    return str(python)


def test_android_metadata_reader_and_task_library(
    models, tflite_support_python: str, tmp_path: Path
) -> None:
    """tflite-support's MetadataDisplayer and the Task Library's ImageClassifier (the C++
    core of the Android Task Library) read our labels and normalization."""
    # A poster already at the input size: no resize, so only normalization can differ.
    image = make_poster(tmp_path / "poster.png", 7, size=(SIZE, SIZE))
    paths = [str(models["fp32"]), str(models["int8"])]
    done = subprocess.run(
        [tflite_support_python, "-c", READER, *paths, str(image)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    pixels = load_poster(image, SIZE)[None]  # already SIZE x SIZE: the resize is an identity
    for path in paths:
        seen = result[path]
        assert seen["files"] == ["labels.txt", "thresholds.json"]
        assert seen["labels"].split() == list(DEFAULT_GENRES)
        meta = seen["json"]
        assert (meta["name"], meta["version"]) == ("tiny", "7")
        tensor = meta["subgraph_metadata"][0]["input_tensor_metadata"][0]
        options = tensor["process_units"][0]["options"]
        assert tensor["process_units"][0]["options_type"] == "NormalizationOptions"
        assert options == {"mean": [127.5], "std": [127.5]}
        assert tensor["content"]["content_properties"]["default_size"] == {
            "width": SIZE,
            "height": SIZE,
        }
        output = meta["subgraph_metadata"][0]["output_tensor_metadata"][0]
        assert output["associated_files"][0]["type"] == "TENSOR_AXIS_LABELS"
        ours = PosterModel.load(Path(path)).predict_pixels(pixels)[0]
        theirs = np.array([seen["scores"][g] for g in DEFAULT_GENRES])
        # Float: identical normalization. uint8: the Task Library feeds raw pixels, which
        # our calibrated input quantization (~1/127.5, ~128) matches to within one step.
        assert np.abs(ours - theirs).max() < (1e-4 if path.endswith("fp32.tflite") else 0.03)


@pytest.mark.shared
def test_reads_googles_metadata(pretrained_dir: Path) -> None:
    """The reader is not specific to our writer: Google's published model reads too."""
    info = read_metadata(pretrained_dir / "mobilenet_v2_1.0_224_quant.tflite")
    assert info.source == "metadata" and "imagenet_labels.txt" in info.associated_files
    assert len(info.genres) == 1001 and info.genres[0] == "background"
    assert (info.norm_mean, info.norm_std) == (127.5, 127.5)
    assert info.input.dtype == "uint8" and info.input.quantization.zero_point == 128
