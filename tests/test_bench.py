"""`posterlite bench` on the host CPU: statistics, model resolution, the full CLI on a tiny model.

The models here are tiny (32x32 input, one conv) so the suite stays fast; real timings are
taken by `benchmarks/bench_overhead.py` and `make demo`, not by tests.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_poster

from posterlite import bench
from posterlite.card import ModelCard, write_card
from posterlite.cli import main
from posterlite.errors import PosterliteError
from posterlite.genres import DEFAULT_GENRES

TINY_SIZE = 32
# (raw genres per poster) -> the sample's multi-hot columns; Horror maps to Other.
SAMPLE_LABELS = [
    ("Action",),
    ("Drama", "Romance"),
    ("Comedy",),
    ("Crime", "Drama"),
    ("Horror",),
    ("Action", "Comedy"),
    ("Romance",),
    ("Drama",),
]
COLUMNS = ("Action", "Drama", "Comedy", "Crime", "Romance", "Horror")


def write_sample(root: Path) -> Path:
    """A labelled set in the multi-hot layout (`labels.csv` + `Images/<Id>.jpg`)."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / "labels.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Id", "Genre", *COLUMNS])
        for index, genres in enumerate(SAMPLE_LABELS):
            film = f"tt{index + 1:07d}"
            make_poster(root / "Images" / f"{film}.jpg", seed=index, size=(40, 60))
            writer.writerow([film, str(list(genres)), *(int(c in genres) for c in COLUMNS)])
    return root


def build_tiny_run(folder: Path) -> Path:
    """A trained-run folder: a tiny Keras sigmoid model + its card."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((TINY_SIZE, TINY_SIZE, 3))
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(len(DEFAULT_GENRES), activation="sigmoid")(x)
    model = keras.Model(inputs, outputs)
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / "model.keras")
    card = ModelCard(
        name="tiny",
        arch="cnn",
        genres=list(DEFAULT_GENRES),
        input_size=TINY_SIZE,
        thresholds=[0.5] * len(DEFAULT_GENRES),
    )
    write_card(card, folder)
    return folder


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """Tiny run dir, its fp32 / int8 conversions and a labelled sample, built once per session."""
    base = tmp_path_factory.getbasetemp() / "bench-tiny"
    run = base / "run"
    sample = base / "sample"
    converted = base / "converted"
    if not (converted / "tiny.int8.tflite").is_file():
        write_sample(sample)
        build_tiny_run(run)
        from posterlite.convert import convert_model

        convert_model(run, ["fp32", "int8"], converted, calibration=sample / "Images",
                      eval_dir=sample, max_drop=1.0)  # fmt: skip
    return {
        "run": run,
        "sample": sample,
        "fp32": converted / "tiny.fp32.tflite",
        "int8": converted / "tiny.int8.tflite",
    }


# ---------------------------------------------------------------------- pure pieces
def test_latency_stats_from_samples() -> None:
    stats = bench.LatencyStats.from_samples([0.001 * v for v in range(1, 101)], first_s=0.5)
    assert stats.count == 100
    assert stats.mean_ms == pytest.approx(50.5)
    assert stats.p50_ms == pytest.approx(50.5)
    assert stats.p90_ms == pytest.approx(90.1)
    assert stats.p99_ms == pytest.approx(99.01)
    assert (stats.min_ms, stats.max_ms, stats.first_ms) == pytest.approx((1.0, 100.0, 500.0))


def test_time_invokes_runs_warmup_then_timed_calls() -> None:
    calls = []
    samples = bench.time_invokes(lambda: calls.append(1), runs=7, warmup=3)
    assert len(calls) == 10 and len(samples) == 7 and all(s >= 0 for s in samples)
    with pytest.raises(PosterliteError):
        bench.time_invokes(lambda: None, runs=0, warmup=0)


def test_pareto_front_keeps_undominated_points_by_latency() -> None:
    points = [(10.0, 0.5), (5.0, 0.4), (20.0, 0.45), (5.0, 0.3), (30.0, 0.6)]
    assert bench.pareto_front(points) == [1, 0, 4]


def test_split_name_and_option_parsing() -> None:
    assert bench._split_name(Path("a/mobilenet_v2.int8.tflite")) == ("mobilenet_v2", "int8")
    assert bench._split_name(Path("model.tflite")) == ("model", "tflite")
    assert bench.parse_threads("1, 2") == (1, 2)
    assert bench.parse_formats("int8,fp32") == ("int8", "fp32")
    for bad in ("0", "x", ""):
        with pytest.raises(PosterliteError):
            bench.parse_threads(bad)
    with pytest.raises(PosterliteError, match="unknown format"):
        bench.parse_formats("int4")


def test_no_models_anywhere_is_a_clear_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(bench, "MODELS_DIR", tmp_path / "models")
    with pytest.raises(PosterliteError, match="no trained models"):
        bench.resolve_models([])
    with pytest.raises(PosterliteError, match="model not found"):
        bench.resolve_models([tmp_path / "missing.tflite"])


def test_labelled_set_maps_raw_genres_to_the_model(tiny) -> None:
    posters = bench.load_labelled_set(tiny["sample"])
    assert len(posters) == len(SAMPLE_LABELS)
    targets = posters.targets(DEFAULT_GENRES)
    horror = next(i for i, p in enumerate(posters.paths) if p.stem == "tt0000005")
    assert targets[horror].tolist() == [0, 0, 0, 0, 0, 1]  # Horror -> Other


# ---------------------------------------------------------------------- the real thing
def test_bench_cli_run_dir_keras_baseline_json_and_plot(tiny, tmp_path, monkeypatch) -> None:
    """A run dir is converted (cache), benched with its Keras baseline; every output written."""
    monkeypatch.setattr(bench, "CACHE_DIR", tmp_path / "cache")
    out_json, out_png = tmp_path / "bench.json", tmp_path / "bench.png"
    result = CliRunner().invoke(
        main,
        [
            "bench",
            str(tiny["run"]),
            "--formats",
            "fp32,int8",
            "--data",
            str(tiny["sample"]),
            "--threads",
            "1,2",
            "--runs",
            "3",
            "--warmup",
            "1",
            "--json",
            str(out_json),
            "--plot",
            str(out_png),
            "--no-references",
        ],
    )
    assert result.exit_code == 0, result.output
    table = result.stdout
    assert table.startswith("| model | format |")
    assert sum(line.startswith("| tiny |") for line in table.splitlines()) == 5  # keras + 2x2
    assert (tmp_path / "cache").is_dir()

    report = json.loads(out_json.read_text())
    assert report["schema"] == bench.SCHEMA
    assert report["hardware"]["cpu_model"] and report["hardware"]["logical_cores"] >= 1
    assert "ai-edge-litert" in report["library_versions"]
    rows = {(r["format"], r["threads"]): r for r in report["rows"]}
    fp32 = rows[("fp32", 1)]
    assert fp32["latency"]["count"] == 3 and fp32["latency"]["p99_ms"] > 0
    assert fp32["load_ms"] > 0 and fp32["end_to_end_ms"] > 0 and fp32["size_bytes"] > 0
    assert fp32["peak_memory_mb"] is not None and fp32["memory_method"]
    accuracy = fp32["accuracy"]
    assert accuracy["n_samples"] == len(SAMPLE_LABELS)
    assert len(accuracy["per_genre"]) == len(DEFAULT_GENRES)
    for key in ("mean_average_precision", "macro_f1", "micro_f1", "hamming_loss",
                "subset_accuracy", "paper_accuracy", "paper_f1"):  # fmt: skip
        assert key in accuracy
    keras_row = next(r for r in report["rows"] if r["kind"] == "keras")
    assert keras_row["accuracy"]["mean_average_precision"] == pytest.approx(
        accuracy["mean_average_precision"], abs=1e-6
    )  # same float model, same posters
    assert rows[("int8", 2)]["accuracy"] is not None
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_tflite_files_with_reference_rows(tiny, tmp_path, monkeypatch) -> None:
    """`.tflite` arguments run as they are; reference files become latency+size-only rows."""
    pretrained = tmp_path / "shared" / "pretrained"
    pretrained.mkdir(parents=True)
    shutil.copy(tiny["int8"], pretrained / bench.REFERENCE_FILES[0])
    monkeypatch.setenv("POSTERLITE_SHARED", str(tmp_path / "shared"))
    options = bench.BenchOptions(
        models=[str(tiny["fp32"])], data=tiny["sample"], threads=(1,), runs=2, warmup=0
    )
    report = bench.run_bench(options)
    kinds = [(r.kind, r.format) for r in report.rows]
    assert kinds == [("posterlite", "fp32"), ("reference", "int8-ptq")]
    reference = report.rows[1]
    assert reference.accuracy is None and reference.latency and reference.size_bytes > 0
    assert np.isfinite(report.rows[0].accuracy.mean_average_precision)


def test_bench_cli_errors_are_one_line(tiny, tmp_path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["bench", str(tiny["fp32"]), "--formats", "int3"])
    assert result.exit_code == 1 and "unknown format" in result.stderr
    result = runner.invoke(main, ["bench", str(tiny["fp32"]), "--serial", "emulator-5554"])
    assert result.exit_code == 1 and "--target android" in result.stderr
    result = runner.invoke(main, ["bench", str(tmp_path / "nope.tflite")])
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
