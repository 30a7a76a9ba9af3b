"""metadata: TFLite Metadata round trip, fallbacks, `info`, and Android's own reader."""

from __future__ import annotations

import csv
import io
import json
import os
import random
import re
import shutil
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_poster
from tiny_models import (
    SIZE,
    THRESHOLDS,
    deflate_bomb,
    session_tiny_run,
    with_files,
    without_files,
)

from posterlite.cli import main
from posterlite.errors import PosterliteError
from posterlite.genres import DEFAULT_GENRES
from posterlite.metadata import (
    LABELS_FILE,
    MAX_ASSOCIATED_FILE_BYTES,
    MAX_ASSOCIATED_TOTAL_BYTES,
    METADATA_NAME,
    THRESHOLDS_FILE,
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


# --- hostile files: every read bounded, every bad file one line -----------------------------
# What must never reach a terminal raw: C0 (newline aside, checked per line), DEL, C1, bidi
# controls, line/paragraph separators, lone surrogates.
UNSAFE_CHARS = "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]"


def _run(*args: str):
    return CliRunner().invoke(main, list(args))


def _one_line_error(result, *fragments: str) -> str:
    """The single `error:` line of a refused run (exit 1, nothing on stdout, no traceback)."""
    assert result.exit_code == 1, (result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ")
    for fragment in fragments:
        assert fragment in line, line
    return line


def _variant(models, tmp_path: Path, files: dict[str, bytes], name: str = "v", **kw) -> Path:
    target = tmp_path / f"{name}.tflite"
    target.write_bytes(with_files(models["int8"].read_bytes(), files, **kw))
    return target


LABELS = "\n".join(DEFAULT_GENRES).encode() + b"\n"


def _thresholds(values: str = "0.3, 0.4, 0.5, 0.5, 0.6, 0.45") -> bytes:
    return ('{"thresholds": [' + values + "]}").encode()


@pytest.fixture(scope="module")
def bomb(models, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The issue's file: a ~2 MB .tflite whose zip holds a 2 GB labels.txt (deflated zeros)."""
    target = tmp_path_factory.mktemp("bomb") / "bomb.tflite"
    target.write_bytes(without_files(models["int8"].read_bytes()) + deflate_bomb(LABELS_FILE, 1907))
    return target


def test_zip_bomb_is_one_line_and_reads_a_few_megabytes(bomb: Path, tmp_path: Path) -> None:
    import zipfile

    assert bomb.stat().st_size < 3_000_000
    with zipfile.ZipFile(bomb) as archive:  # what the header promises: 2 GB
        assert archive.getinfo(LABELS_FILE).file_size == 1907 << 20
    poster = make_poster(tmp_path / "poster.jpg", 1)
    for args in (["info", str(bomb)], ["predict", str(bomb), str(poster), "--json"]):
        _one_line_error(
            _run(*args), "labels.txt", "larger than the limit", f"{MAX_ASSOCIATED_FILE_BYTES} bytes"
        )
    # In a real process: no MemoryError, and the peak stays near an ordinary run's (the
    # unbounded reader peaked at 4.3 GB on this file).
    code, stderr, peak_mb = _peak_rss(["info", str(bomb)], tmp_path)
    assert code == 1 and stderr.startswith("error: ") and "Traceback" not in stderr, stderr
    assert peak_mb < 300, f"peak RSS {peak_mb:.0f} MB"


# Runs the CLI and, at exit, records the process's own peak RSS (VmHWM: this mm only, unlike
# rusage, which also counts the forking pytest process's pages).
_MEASURED_CLI = """
import atexit, runpy, sys
target = sys.argv.pop(1)
def record():
    with open("/proc/self/status") as status, open(target, "w") as out:
        out.write(next(line for line in status if line.startswith("VmHWM:")).split()[1])
atexit.register(record)
sys.argv[0] = "posterlite"
runpy.run_module("posterlite.cli", run_name="__main__")
"""


def _peak_rss(args: list[str], tmp_path: Path) -> tuple[int, str, float]:
    """Exit status, stderr and peak RSS (MB) of one `posterlite` process."""
    import sys

    peak = tmp_path / "vmhwm"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", _MEASURED_CLI, str(peak), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    return done.returncode, done.stderr, int(peak.read_text()) / 1024


@pytest.mark.parametrize(
    ("files", "compression", "fragment"),
    [
        (
            {LABELS_FILE: LABELS + b"\n" * MAX_ASSOCIATED_FILE_BYTES},
            None,
            f"larger than the limit ({MAX_ASSOCIATED_FILE_BYTES} bytes)",
        ),
        (
            {LABELS_FILE: LABELS + b" " * (2 * MAX_ASSOCIATED_FILE_BYTES)},
            "deflate",
            f"larger than the limit ({MAX_ASSOCIATED_FILE_BYTES}",
        ),
        (
            {
                **{f"pad{i}.bin": bytes(MAX_ASSOCIATED_FILE_BYTES) for i in range(2)},
                LABELS_FILE: LABELS,
            },
            "deflate",
            f"{MAX_ASSOCIATED_TOTAL_BYTES} bytes for all files together",
        ),
        ({f"f{i}.txt": b"x" for i in range(17)}, None, "17 zip entries (at most 16)"),
    ],
    ids=["stored-over-cap", "deflated-over-cap", "total-over-cap", "too-many-entries"],
)
def test_associated_file_limits(models, tmp_path, files, compression, fragment) -> None:
    import zipfile

    method = zipfile.ZIP_DEFLATED if compression == "deflate" else None
    model = _variant(models, tmp_path, files, compression=method)
    with pytest.raises(PosterliteError, match="associated file"):
        associated_files(model.read_bytes())
    _one_line_error(_run("info", str(model)), fragment)


def test_zip_directory_is_checked_before_it_is_parsed(models, tmp_path: Path) -> None:
    """An end record claiming 65535 entries and a 4 GB directory is refused from its 22
    bytes: zipfile never gets to allocate for what it claims."""
    import struct

    data = bytearray(with_files(models["int8"].read_bytes(), {LABELS_FILE: LABELS}))
    end = data.rfind(b"PK\x05\x06")
    struct.pack_into("<HHI", data, end + 8, 0xFFFF, 0xFFFF, 0xFFFFFFF0)
    lying = tmp_path / "lying.tflite"
    lying.write_bytes(bytes(data))
    _one_line_error(_run("info", str(lying)), "65535 zip entries")


def test_damaged_or_encrypted_zip_is_one_line(models, tmp_path: Path) -> None:
    data = bytearray(
        with_files(
            models["int8"].read_bytes(), {LABELS_FILE: LABELS, THRESHOLDS_FILE: _thresholds()}
        )
    )
    crc_damaged = bytearray(data)
    at = crc_damaged.rfind(b"Drama")
    crc_damaged[at] = ord("d")  # content no longer matches its CRC
    encrypted = bytearray(data)
    for signature, flags_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = 0
        while (start := encrypted.find(signature, start)) >= 0:
            encrypted[start + flags_at] |= 1  # the "encrypted" flag bit
            start += 4
    for name, raw, fragment in (
        ("crc", crc_damaged, "BadZipFile"),
        ("encrypted", encrypted, "unreadable zip"),
    ):
        target = tmp_path / f"{name}.tflite"
        target.write_bytes(bytes(raw))
        _one_line_error(_run("info", str(target)), fragment)


@pytest.mark.parametrize(
    ("labels", "fragment"),
    [
        ("\n".join(DEFAULT_GENRES).encode("latin-1").replace(b"Drama", b"Dram\xe9"), "0xe9"),
        ("\n".join(DEFAULT_GENRES).encode("utf-16"), "not UTF-8 text (byte 0xff at offset 0)"),
        ("\n".join(DEFAULT_GENRES).encode("utf-8").replace(b"Crime", b"\xed\xa0\x80"), "0xed"),
    ],
    ids=["latin-1", "utf-16", "surrogate"],
)
def test_label_file_not_utf8_is_one_line(models, tmp_path, labels, fragment) -> None:
    model = _variant(models, tmp_path, {LABELS_FILE: labels, THRESHOLDS_FILE: _thresholds()})
    poster = make_poster(tmp_path / "poster.jpg", 1)
    for args in (["info", str(model)], ["predict", str(model), str(poster)]):
        _one_line_error(_run(*args), "labels.txt: not UTF-8 text", fragment)


def test_label_file_with_bom_and_crlf_reads(models, tmp_path: Path) -> None:
    labels = "\ufeff" + "\r\n".join(DEFAULT_GENRES) + "\r\n\r\n"
    model = _variant(
        models, tmp_path, {LABELS_FILE: labels.encode(), THRESHOLDS_FILE: _thresholds()}
    )
    assert read_metadata(model).genres == DEFAULT_GENRES


def test_deeply_nested_thresholds_is_one_line(models, tmp_path: Path) -> None:
    nested = b'{"thresholds": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    model = _variant(models, tmp_path, {LABELS_FILE: LABELS, THRESHOLDS_FILE: nested})
    poster = make_poster(tmp_path / "poster.jpg", 1)
    for args in (["info", str(model)], ["predict", str(model), str(poster), "--json"]):
        _one_line_error(_run(*args), "thresholds.json: JSON nested too deeply")


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ("NaN, 0.4, 0.5, 0.5, 0.6, 0.45", "NaN is not a JSON number"),
        ("0.3, Infinity, 0.5, 0.5, 0.6, 0.45", "Infinity is not a JSON number"),
        ("0.3, 0.4, -Infinity, 0.5, 0.6, 0.45", "-Infinity is not a JSON number"),
        ("0.3, 0.4, 0.5, 1e999, 0.6, 0.45", "threshold 4 must be a number in [0, 1], not inf"),
        ("true, 0.4, 0.5, 0.5, 0.6, 0.45", "threshold 1 must be a number in [0, 1], not True"),
        ('0.3, "nan", 0.5, 0.5, 0.6, 0.45', "threshold 2 must be a number in [0, 1], not 'nan'"),
        ("0.3, 0.4, null, 0.5, 0.6, 0.45", "threshold 3 must be a number in [0, 1], not None"),
        ("0.3, 0.4, 0.5, 0.5, 1.5, 0.45", "threshold 5 must be a number in [0, 1], not 1.5"),
        ("0.3, 0.4, 0.5, 0.5, 0.6, -0.1", "threshold 6 must be a number in [0, 1], not -0.1"),
        ("0.3, 0.4, 0.5", "3 thresholds for 6 labels"),
        ("0.3, 0.4, 0.5, 0.5, 0.6, 0.45, 0.5", "7 thresholds for 6 labels"),
        ("1" + "0" * 5000 + ", 0.4, 0.5, 0.5, 0.6, 0.45", "not valid JSON (Exceeds the limit"),
    ],
)
def test_invalid_thresholds_refuse_the_model(models, tmp_path, values, fragment) -> None:
    """Thresholds are finite numbers in [0, 1], one per label; anything else refuses the
    model (it never runs with silently different thresholds, never writes bare NaN)."""
    model = _variant(models, tmp_path, {LABELS_FILE: LABELS, THRESHOLDS_FILE: _thresholds(values)})
    poster = make_poster(tmp_path / "poster.jpg", 1)
    for args in (
        ["info", str(model)],
        ["predict", str(model), str(poster), "--json", "--tuned-thresholds"],
    ):
        _one_line_error(_run(*args), "thresholds.json", fragment)


@pytest.mark.parametrize(
    "document",
    [b"[0.5, 0.5, 0.5, 0.5, 0.5, 0.5]", b'{"default_threshold": 0.5}', b'{"thresholds": 0.5}',
     b'{"thresholds": [0.5, 0.5, 0.5, 0.5, 0.5, 0.5], "thresholds": []}',
     b'{"genres": ["A", "B", "C", "D", "E", "F"], "thresholds": [0.5, 0.5, 0.5, 0.5, 0.5, 0.5]}'],
    ids=["array", "no-key", "scalar", "repeated-key", "other-genres"],
)  # fmt: skip
def test_malformed_thresholds_file_refuses_the_model(models, tmp_path, document) -> None:
    model = _variant(models, tmp_path, {LABELS_FILE: LABELS, THRESHOLDS_FILE: document})
    _one_line_error(_run("info", str(model)), "thresholds.json")


def test_thresholds_at_the_bounds_are_valid(models, tmp_path: Path) -> None:
    model = _variant(
        models,
        tmp_path,
        {LABELS_FILE: LABELS, THRESHOLDS_FILE: _thresholds("0, 1, 0.0, 1.0, 1e-9, 0.5")},
    )
    assert read_metadata(model).thresholds == (0.0, 1.0, 0.0, 1.0, 1e-9, 0.5)


@pytest.mark.parametrize(
    ("labels", "fragment"),
    [
        (["Drama"] * 6, "label 2 repeats label 1 ('Drama')"),
        (["A", "B", "", "D", "E", "F"], "label 3 is empty"),
        (["A", "B", "C", " \t ", "E", "F"], "label 4 is empty"),
        (["A", "B", "C", "D", "E", "x" * 257], "label 6 is 257 characters long (at most 256)"),
        (
            ["A", "B", "C", "D", "E\u2028F", "G"],
            "label 5 has surrounding whitespace or a line break",
        ),
    ],
)
def test_genre_labels_must_be_unique_and_non_empty(models, tmp_path, labels, fragment) -> None:
    """A genre model (labels + thresholds.json) with a repeated or empty label is refused:
    `predict --json` would collapse scores into one key and bench would stop on it."""
    text = "\n".join(labels).encode() + b"\n"
    model = _variant(models, tmp_path, {LABELS_FILE: text, THRESHOLDS_FILE: _thresholds()})
    poster = make_poster(tmp_path / "poster.jpg", 1)
    for args in (["info", str(model)], ["predict", str(model), str(poster), "--json"]):
        _one_line_error(_run(*args), "labels.txt", fragment)
    spec = MetadataSpec(
        name="x", version="1", genres=tuple(labels), thresholds=(0.5,) * 6, input_size=SIZE
    )
    with pytest.raises(PosterliteError, match="label"):  # the writer obeys the same rules
        embed_metadata(models["int8"].read_bytes(), spec)


def test_a_foreign_label_file_numbers_its_repeats(models, tmp_path: Path) -> None:
    """Without posterlite's thresholds.json the labels come from another tool (Google's
    ImageNet file names `crane` twice): the repeat is named by its output index, so no
    score is lost and `predict --json` keeps six keys."""
    text = b"crane\nDrama\ncrane\nThriller\nRomance\ncrane\n"
    model = _variant(models, tmp_path, {LABELS_FILE: text})
    poster = make_poster(tmp_path / "poster.jpg", 1)
    genres = ("crane", "Drama", "crane [2]", "Thriller", "Romance", "crane [5]")
    assert read_metadata(model).genres == genres
    result = _run("predict", str(model), str(poster), "--json")
    assert result.exit_code == 0, result.output
    assert list(json.loads(result.stdout)["predictions"][0]["probabilities"]) == list(genres)


def test_writer_refuses_invalid_thresholds_and_normalization(models) -> None:
    base = dict(name="x", version="1", genres=DEFAULT_GENRES, input_size=SIZE)
    for bad, match in (
        ({"thresholds": (float("nan"),) + (0.5,) * 5}, r"threshold 1 must be a number"),
        ({"thresholds": (True,) + (0.5,) * 5}, r"threshold 1 must be a number"),
        ({"thresholds": (0.5,) * 5}, "5 thresholds for 6 labels"),
        ({"thresholds": (0.5,) * 6, "default_threshold": float("inf")}, "default threshold"),
        ({"thresholds": (0.5,) * 6, "norm_std": 0.0}, "std must be > 0"),
    ):
        with pytest.raises(PosterliteError, match=match):
            embed_metadata(models["int8"].read_bytes(), MetadataSpec(**{**base, **bad}))


@pytest.mark.parametrize(
    ("sidecar", "fragment"),
    [
        (b'{"genres": ["A", "B", "C", "D", "E", "F"], "thresholds": [NaN, 1, 1, 1, 1, 1]}',
         "NaN is not a JSON number"),
        (b'{"genres": ["A", "A", "C", "D", "E", "F"]}', "label 2 repeats label 1"),
        (b'{"genres": "ABCDEF"}', '"genres" must be a list'),
        (b'{"genres": ["A", 2, "C", "D", "E", "F"]}', "label 2 is not text"),
        (b'{"genres": ["\xe9"]}', "not UTF-8 text"),
        (b'{"genres": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "JSON nested too deeply"),
        (b'{"genres": ["A"]}' + b" " * (1 << 20), "larger than 1048576 bytes"),
        (b'{"genres": ["A", "B", "C", "D", "E", "F"], "normalization": {"std": 0}}',
         "std must be > 0"),
    ],
)  # fmt: skip
def test_sidecar_obeys_the_same_rules(models, tmp_path, sidecar, fragment) -> None:
    bare = _bare_copy(models["fp32"], tmp_path / "bare.tflite")
    sidecar_path(bare).write_bytes(sidecar)
    _one_line_error(_run("info", str(bare)), "bare.json", fragment)


def test_info_escapes_what_the_model_says(models, tmp_path: Path) -> None:
    """Labels, names and file names are data: `info` shows escapes, never sends them."""
    labels = ["\x1b]0;pwned\x07", "\u202eevil", "a\x00b", "\x9b31m", "=cmd|' /C calc'!A0", "ok"]
    spec = MetadataSpec(
        name="\x1b[2Jname", version="1\x07", genres=tuple(labels), thresholds=(0.5,) * 6,
        input_size=SIZE,
    )  # fmt: skip
    model = tmp_path / "x\x1b[31m.tflite"
    model.write_bytes(embed_metadata(models["int8"].read_bytes(), spec))
    result = _run("info", str(model))
    assert result.exit_code == 0, result.output
    assert not re.search(UNSAFE_CHARS, result.stdout.replace("\n", ""))
    assert "x\\x1b[31m.tflite" in result.stdout and "name: \\x1b[2Jname" in result.stdout
    assert "\\x1b]0;pwned\\x07" in result.stdout and "\\u202eevil" in result.stdout
    details = json.loads(_run("info", str(model), "--json").stdout)
    assert details["genres"] == labels and details["path"] == str(model)  # exact in JSON


# --- fuzz: hostile labels and thresholds through info and predict ----------------------------
# Labels `check_labels` accepts (shown escaped, written exact) and labels it refuses.
FUZZ_GOOD_LABELS = [
    "Drama",
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    '=HYPERLINK("http://127.0.0.1","x")',
    "+SUM(1)",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(A1)",
    "\x1b]0;pwned\x07",
    "\x1b[31mred\x1b[0m",
    "a\x00b",
    "\u202eevil",
    "\u2066iso\u2069",
    "\x9b31m",
    "del\x7f",
    "tab\tinside",
    "Science-Fiction & été",
    "日本語",
    "\U0001f3ac clapper",
    "'quote",
    '"double"',
    "comma, semi;",
    "x" * 256,
]
FUZZ_BAD_LABELS = ["", "   ", "x" * 257, "line\u2028sep", "nel\x85x", "cr\rx", "vt\x0bx"]
FUZZ_GOOD_THRESHOLDS = ["0", "1", "0.5", "0.25", "1e-9", "0.999999"]
FUZZ_BAD_THRESHOLDS = ["NaN", "Infinity", "-Infinity", "1e999", "true", "false", "null",
                       '"nan"', '"0.5"', "-0.1", "1.5", "[0.5]", "{}", "1" + "0" * 5000]  # fmt: skip
FUZZ_TEXT = FUZZ_GOOD_LABELS + ["", "<b>v</b>", "\x1b[2J\x1b[H"]  # names, versions
FUZZ_POSTERS = ["=cmd|' /C calc'!A0.jpg", "\x1b]0;pwned\x07.jpg", os.fsdecode(b"\xff\xfe.jpg")]
FUZZ_FORMULA_FIRST = ("=", "+", "-", "@", "\t", "\r", "\n", "\0")


@dataclass
class FuzzCase:
    """One generated model: its zipped files, and what a correct reader must make of them."""

    files: dict[str, bytes]
    name: str
    version: str
    deflate: bool
    valid: bool
    repeated: bool  # a label repeats in labels.txt
    genres: tuple[str, ...] = ()
    thresholds: tuple[float, ...] = ()


def _fuzz_labels(rng: random.Random) -> tuple[list[str], bytes, bool]:
    """Six labels and their file's bytes (some encoding, line end, padding); valid?"""
    labels = rng.sample(FUZZ_GOOD_LABELS, 6)
    if rng.random() < 0.15:
        labels[rng.randrange(6)] = rng.choice(FUZZ_BAD_LABELS)
    if rng.random() < 0.15:
        labels[rng.randrange(1, 6)] = labels[0]
    good = all(label in FUZZ_GOOD_LABELS for label in labels)
    encoding = rng.choice(["utf-8", "utf-8", "utf-8", "utf-8-sig", "crlf", "crlf",
                           "utf-16", "latin-1", "surrogate", "huge"])  # fmt: skip
    text = "\n".join(labels) + "\n"
    if encoding == "crlf":
        raw = text.replace("\n", "\r\n").encode()
    elif encoding == "latin-1":
        raw = text.replace(labels[0], "Café", 1).encode("latin-1", "replace")
    elif encoding == "surrogate":
        raw = text.replace(labels[0], "\ud83c", 1).encode("utf-8", "surrogatepass")
    elif encoding == "huge":
        raw = text.encode() + b"\n" * MAX_ASSOCIATED_FILE_BYTES  # past the cap
    else:
        raw = text.encode(encoding)
    return labels, raw, good and encoding in ("utf-8", "utf-8-sig", "crlf")


def _numbered(labels: list[str]) -> tuple[str, ...]:
    return tuple(f"{g} [{i}]" if g in labels[:i] else g for i, g in enumerate(labels))


def fuzz_case(seed: int) -> FuzzCase:
    """A seeded hostile model description: labels x thresholds x structure x size."""
    rng = random.Random(seed)
    labels, raw_labels, labels_valid = _fuzz_labels(rng)
    unique = len(set(labels)) == len(labels)
    tokens = [rng.choice(FUZZ_GOOD_THRESHOLDS) for _ in labels]
    mode = rng.choice(["good", "good", "good", "absent", "absent", "genres-key", "genres-key",
                       "bad-value", "count", "nested", "array", "repeated-key", "entries"])  # fmt: skip
    if mode == "bad-value":
        tokens[rng.randrange(len(tokens))] = rng.choice(FUZZ_BAD_THRESHOLDS)
    if mode == "count":
        tokens = tokens[: rng.randrange(len(tokens))]
    values = "[" + ", ".join(tokens) + "]"
    document = {
        "nested": '{"thresholds": ' + "[" * 50_000 + "]" * 50_000 + "}",
        "array": values,
        "repeated-key": f'{{"thresholds": {values}, "thresholds": {values}}}',
        "genres-key": f'{{"genres": {json.dumps(labels)}, "thresholds": {values}}}',
    }.get(mode, f'{{"thresholds": {values}}}')
    files = {LABELS_FILE: raw_labels}
    if mode != "absent":
        files[THRESHOLDS_FILE] = document.encode()
    if mode == "entries":
        files.update({f"extra{i}.txt": b"x" for i in range(16)})
    valid = labels_valid and (
        mode == "absent" or (unique and mode in ("good", "genres-key", "bad-value"))
    )
    if mode == "bad-value":
        valid = valid and all(token in FUZZ_GOOD_THRESHOLDS for token in tokens)
    return FuzzCase(
        files=files,
        name=rng.choice(FUZZ_TEXT),
        version=rng.choice(FUZZ_TEXT),
        deflate=rng.random() < 0.3,
        valid=valid,
        repeated=not unique,
        genres=_numbered(labels) if mode == "absent" else tuple(labels),
        thresholds=(0.5,) * 6 if mode == "absent" or not valid else tuple(map(float, tokens)),
    )


def _strict(text: str) -> object:
    def refuse(name: str) -> None:
        raise AssertionError(f"bare {name} in JSON output")

    return json.loads(text, parse_constant=refuse)


def _terminal_safe(text: str) -> None:
    for line in text.split("\n"):
        assert not re.search(UNSAFE_CHARS, line), repr(line)


def _cell_value(cell: str) -> str:
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(FUZZ_FORMULA_FIRST) else cell


@pytest.fixture(scope="module")
def fuzz_posters(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fuzz_posters")
    for index, name in enumerate(FUZZ_POSTERS):
        make_poster(folder / name, index)
    return folder


FUZZ_SEEDS = range(36)


def test_fuzz_cases_cover_both_outcomes() -> None:
    """The generator is not degenerate: it makes valid and refused models of every kind."""
    cases = [fuzz_case(seed) for seed in FUZZ_SEEDS]
    assert 8 <= sum(case.valid for case in cases) <= 28
    assert any(THRESHOLDS_FILE not in case.files for case in cases if case.valid)
    assert any(case.repeated for case in cases) and any(case.deflate for case in cases)


@pytest.mark.parametrize("seed", FUZZ_SEEDS)
def test_fuzz_hostile_metadata(models, fuzz_posters: Path, tmp_path: Path, seed: int) -> None:
    """info / info --json / predict (text, --json, --csv) on a generated hostile model: never
    a traceback; exit 0 with exactly the labels and thresholds the file holds, or exit 1
    with one `error:` line; JSON strict, CSV formula-safe, terminal text escaped."""
    import zipfile

    case = fuzz_case(seed)
    spec = MetadataSpec(
        name=case.name, version=case.version, genres=DEFAULT_GENRES,
        thresholds=(0.5,) * 6, input_size=SIZE,
    )  # fmt: skip
    base = embed_metadata(models["int8"].read_bytes(), spec)
    model = tmp_path / "fuzz.tflite"
    method = zipfile.ZIP_DEFLATED if case.deflate else zipfile.ZIP_STORED
    model.write_bytes(with_files(base, case.files, compression=method))
    runs = {
        "info": ["info", str(model)],
        "info-json": ["info", str(model), "--json"],
        "text": ["predict", str(model), str(fuzz_posters), "--tuned-thresholds"],
        "json": ["predict", str(model), str(fuzz_posters), "--json", "--tuned-thresholds"],
        "csv": ["predict", str(model), str(fuzz_posters), "--csv"],
    }
    for kind, args in runs.items():
        result = CliRunner().invoke(main, args)
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            kind,
            result.exc_info,
        )
        stdout = result.stdout_bytes.decode("utf-8", "surrogateescape")
        stderr = result.stderr_bytes.decode("utf-8")
        _terminal_safe(stderr)
        if not case.valid:
            _one_line_error(result)
            continue
        assert result.exit_code == 0, (kind, stderr)
        if kind in ("info", "text"):
            _terminal_safe(stdout)
        elif kind == "info-json":
            details = _strict(stdout)
            assert tuple(details["genres"]) == case.genres
            assert tuple(details["thresholds"]) == case.thresholds
            assert (details["name"], details["version"]) == (case.name or "fuzz", case.version)
        elif kind == "json":
            payload = _strict(stdout)
            assert tuple(payload["genres"]) == case.genres
            assert payload["thresholds"] == list(case.thresholds)
            for prediction in payload["predictions"]:
                assert list(prediction["probabilities"]) == list(case.genres)  # none collapsed
            paths = sorted(p["path"] for p in payload["predictions"])
            assert paths == sorted(str(fuzz_posters / name) for name in FUZZ_POSTERS)
        else:
            rows = list(csv.reader(io.StringIO(stdout)))
            cells = [cell for row in rows for cell in row]
            assert not [cell for cell in cells if cell.startswith(FUZZ_FORMULA_FIRST)]
            assert tuple(_cell_value(cell) for cell in rows[0][2:]) == case.genres
            paths = sorted(_cell_value(row[0]) for row in rows[1:])
            assert paths == sorted(str(fuzz_posters / name) for name in FUZZ_POSTERS)


@pytest.mark.parametrize(
    ("files", "fragment"),
    [
        ({LABELS_FILE: LABELS.replace(b"Drama", b"Dram\xe9"), THRESHOLDS_FILE: _thresholds()},
         "labels.txt: not UTF-8 text"),
        ({LABELS_FILE: LABELS, THRESHOLDS_FILE: b"[" * 100_000 + b"]" * 100_000},
         "thresholds.json: JSON nested too deeply"),
        ({LABELS_FILE: b"Drama\n" * 6, THRESHOLDS_FILE: _thresholds()},
         "label 2 repeats label 1"),
    ],
    ids=["not-utf8", "nested", "duplicates"],
)  # fmt: skip
def test_bench_reads_through_the_same_rules(models, tmp_path, files, fragment) -> None:
    """bench loads models through `read_metadata`: the same one-line refusals."""
    model = _variant(models, tmp_path, files)
    args = ["bench", str(model), "--no-keras", "--no-references", "--runs", "1", "--rounds", "1"]
    args += ["--warmup", "0", "--json", str(tmp_path / "b.json"), "--plot", str(tmp_path / "b.png")]
    result = _run(*args)
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert result.stdout == ""
    error = result.stderr.strip().splitlines()[-1]  # after bench's progress bar
    assert error.startswith("error: ") and fragment in error, result.stderr
    assert "Traceback" not in result.output
