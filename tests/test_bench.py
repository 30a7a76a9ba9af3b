"""`posterlite bench` on the host CPU: statistics, rounds, ratios, model resolution, the
default run on a shipped-models layout, the full CLI on a tiny model.

The models here are tiny (32x32 input, one conv) so the suite stays fast; real timings are
taken by `benchmarks/bench_overhead.py` and `make demo`, not by tests (the real default run
is the `slow` test at the end).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_poster
from tiny_models import SAMPLE_LABELS, write_sample

from posterlite import bench
from posterlite.bench import BenchRow, LatencyStats, paths
from posterlite.bench.records import DataRecord, RunSettings
from posterlite.bench.sidecar import file_digest
from posterlite.card import ModelCard, write_card
from posterlite.cli import main
from posterlite.errors import PosterliteError
from posterlite.genres import DEFAULT_GENRES

TINY_SIZE = 32


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


def test_latency_p50_is_the_median_of_round_p50s() -> None:
    """One slow round (a burst of load elsewhere) moves the pooled p50, not the reported one."""
    rounds = [[0.001] * 9, [0.001] * 9, [0.010] * 9, [0.0011] * 9, [0.0009] * 9]
    stats = LatencyStats.from_rounds(rounds, first_s=0.02)
    assert stats.rounds == 5 and stats.count == 45
    assert stats.round_p50_ms == pytest.approx((1.0, 1.0, 10.0, 1.1, 0.9))
    assert stats.p50_ms == pytest.approx(1.0)
    assert stats.max_ms == pytest.approx(10.0) and stats.p90_ms == pytest.approx(10.0)
    assert stats.mean_ms == pytest.approx(2.8)
    with pytest.raises(ValueError):
        LatencyStats.from_rounds([[0.001], []])


def test_interleaved_rounds_rotate_and_time_every_row() -> None:
    calls: list[str] = []
    timed = [
        bench.Timed(BenchRow(name, "int8", "posterlite", name, "cpu", 1, 1), lambda n=name: calls.append(n))
        for name in "abc"
    ]  # fmt: skip
    bench.interleaved_rounds(timed, rounds=2, runs=3, warmup=1, block=2)
    assert calls[:3] == ["a", "b", "c"]  # warm-up once each
    # Each round: blocks of 2 timed invokes (then the rest, 1), each after 1 untimed one;
    # the rows take turns within the round, the order rotating each round.
    turns = "".join(calls[3:])
    assert turns == "aaabbbcccaabbcc" + "bbbcccaaabbccaa"
    for item in timed:
        assert item.row.latency.rounds == 2 and item.row.latency.count == 6
    with pytest.raises(PosterliteError, match="rounds"):
        bench.interleaved_rounds(timed, rounds=0, runs=1, warmup=0)


def _timed_row(model: str, fmt: str, kind: str, path: str, p50s: list[float]) -> BenchRow:
    row = BenchRow(model, fmt, kind, path, "cpu", 1, 1000)
    row.latency = LatencyStats.from_rounds([[v / 1e3] * 3 for v in p50s])
    return row


def test_ratios_anchor_and_int8_over_fp32_from_the_same_rounds() -> None:
    rows = [
        _timed_row("mobilenet_v2", "int8", "posterlite", "m.int8.tflite", [4.0, 4.4, 8.0]),
        _timed_row("mobilenet_v2", "fp32", "posterlite", "m.fp32.tflite", [8.0, 8.0, 16.0]),
        _timed_row("google", "int8-ptq", "reference", f"x/{bench.ANCHOR_REFERENCE}", [4.0, 4.0, 8.0]),
        _timed_row("cnn", "int8", "posterlite", "c.int8.tflite", [1.0, 1.0, 1.0]),
    ]  # fmt: skip
    ratios = {r.name.split(":")[0]: r for r in bench.compute_ratios(rows)}
    anchor = ratios["anchor"]
    # The one ratio definition: the median of the per-round ratios (1.0, 1.1, 1.0), not
    # the ratio of the median p50s (4.4 / 4.0), which the middle round alone would set.
    assert anchor.value == pytest.approx(1.0) and anchor.goal == bench.ANCHOR_GOAL
    assert anchor.per_round == pytest.approx((1.0, 1.1, 1.0)) and anchor.met is True
    assert anchor.numerator == "mobilenet_v2/int8" and anchor.threads == 1
    assert ratios["int8 / fp32"].value == pytest.approx(0.5)
    assert ratios["int8 / fp32"].per_round == pytest.approx((0.5, 0.55, 0.5))
    assert "CPU" in ratios["int8 / fp32"].note
    assert len(bench.compute_ratios(rows[3:])) == 0  # nothing to compare cnn with


def _arm_row(model: str, fmt: str, kind: str, path: str, cpu: str, millions: float,
             size: int = 224, identical: int = 8) -> BenchRow:  # fmt: skip
    count = int(millions * 1e6)
    figures = bench.ArmFigures(
        cpu=cpu, cpu_title=cpu, qemu_cpu=cpu, qemu_version="7.2.22", litert_version="2.3.0",
        posters=8, identical=identical, max_abs_diff=0.0 if identical == 8 else 3.0,
        output_dtype="uint8", changed_sets=0 if kind != "reference" else None,
        changed_sets_tuned=0 if kind != "reference" else None, instructions_median=count,
        instructions_min=count, instructions_max=count, warmup_instructions=2 * count,
        startup_instructions=300_000_000, first_instructions=(count, count),
        repeat_instructions=(count, count), repeat_outputs_identical=True,
        kernel_family="neondot", expected_family="neondot", matmul_kernel="xnn_qs8_gemm__neondot",
        top_kernels=(), xnnpack=True, emulation_wall_s=9.0, emulation_cpu_s=8.0,
    )  # fmt: skip
    return BenchRow(model, fmt, kind, path, "arm64", 1, 1000, input_size=size, arm=figures)


def test_arm_rows_get_instruction_ratios_per_cpu_class_beside_the_hosts() -> None:
    """The same pairs as the host's p50 ratios (anchor, int8 / fp32, int8 / fp16,
    160 px / 224 px), per ARM class, as guest instructions; never across classes."""
    google = f"x/{bench.ANCHOR_REFERENCE}"
    rows = [
        _timed_row("mobilenet_v2", "int8", "posterlite", "m.int8.tflite", [4.0, 4.0, 4.0]),
        _timed_row("mobilenet_v2", "fp16", "posterlite", "m.fp16.tflite", [8.0, 8.0, 8.0]),
    ]
    rows[0].input_size = rows[1].input_size = 224
    for cpu, scale in (("a53", 2.6), ("a76", 1.0)):
        rows += [
            _arm_row("mobilenet_v2", "int8", "posterlite", "m.int8.tflite", cpu, 49.5 * scale),
            _arm_row("mobilenet_v2", "fp32", "posterlite", "m.fp32.tflite", cpu, 120.0 * scale),
            _arm_row("mobilenet_v2", "fp16", "posterlite", "m.fp16.tflite", cpu, 121.0 * scale),
            _arm_row("mobilenet_v2_160", "int8", "posterlite", "s.int8.tflite", cpu, 25.5 * scale,
                     size=160),
            _arm_row("google", "int8-ptq", "reference", google, cpu, 49.6 * scale, identical=7),
        ]  # fmt: skip
    ratios = bench.compute_ratios(rows)
    host = [r for r in ratios if r.basis == "p50"]
    assert [(r.name, r.value) for r in host] == [("int8 / fp16", pytest.approx(0.5))]
    arm = {(r.cpu, r.name.split(":")[0]): r for r in ratios if r.basis == "instructions"}
    assert sorted(arm) == [(cpu, name) for cpu in ("a53", "a76") for name in
                           ("160 px / 224 px", "anchor", "int8 / fp16", "int8 / fp32")]  # fmt: skip
    assert arm[("a76", "anchor")].value == pytest.approx(49.5 / 49.6)
    assert arm[("a53", "anchor")].value == pytest.approx(49.5 / 49.6)  # the class's own counts
    assert arm[("a76", "anchor")].met is True and arm[("a76", "anchor")].per_round == ()
    assert arm[("a76", "160 px / 224 px")].numerator == "mobilenet_v2_160/int8"
    assert arm[("a76", "int8 / fp32")].value == pytest.approx(49.5 / 120.0)
    again = [bench.Ratio.from_json(json.loads(json.dumps(r.__dict__))) for r in ratios]
    assert again == ratios
    settings = RunSettings((), ("int8",), (1,), runs=1, warmup=0, rounds=3, threshold=0.5,
                           references=True, arm_cpu=("a53", "a76"))  # fmt: skip
    report = bench.BenchReport(rows, "arm64", settings, bench.Environment.from_json({}),
                               DataRecord(None, 0), ratios)  # fmt: skip
    table = bench.summary_table(report)
    assert (
        "| mobilenet_v2 | int8 | a76 | 8/8 | 0 | 0 | - | - | 49.50 | same | neondot | 0.998x |"
        in table
    )
    assert "| google (ImageNet) | int8-ptq | a53 | 7/8 | 3 | - |" in table
    assert (
        "anchor: our int8 MobileNetV2 / Google's int8 MobileNetV2, ARM a76, guest instructions"
        in table
    )
    assert "| mobilenet_v2 | int8 | 4.00 |" not in table.split("ARM64")[1]  # host rows above


def test_browser_ratio_is_to_native_litert_at_the_rows_own_thread_count() -> None:
    """A 2-thread page over 1-thread native LiteRT would read 3.04x (met); the fair figure,
    over native at 2 threads, is 4.8x (missed). A row with no native row at its count gets
    no ratio."""
    one = _timed_row("m", "int8", "posterlite", "m.int8.tflite", [4.0, 4.0, 4.0])
    two = _timed_row("m", "int8", "posterlite", "m.int8.tflite", [2.5, 2.5, 2.6])
    two.threads = 2
    page = _timed_row("m", "int8", "posterlite", "m.int8.tflite", [12.0, 12.16, 12.5])
    page.target, page.threads = "browser", 2
    page.device = {"cpu_throttle": "1", "model": "Pixel 7 emulated, CPU 1x, LiteRT.js"}
    (ratio,) = [r for r in bench.compute_ratios([one, two, page]) if r.name.startswith("browser")]
    assert ratio.threads == 2 and ratio.value == pytest.approx(12.5 / 2.6)  # median of rounds
    assert ratio.goal == 4.0 and ratio.met is False
    assert ratio.per_round == pytest.approx((12.0 / 2.5, 12.16 / 2.5, 12.5 / 2.6))
    assert "2 thread(s)" in ratio.note
    # Native LiteRT only at 1 thread: no ratio for the 2-thread page rather than a wrong one.
    assert not [r for r in bench.compute_ratios([one, page]) if r.name.startswith("browser")]
    # A 1-thread page is compared with 1-thread native LiteRT only.
    page.threads = 1
    (ratio,) = [r for r in bench.compute_ratios([one, two, page]) if r.name.startswith("browser")]
    assert ratio.value == pytest.approx(12.16 / 4.0) and ratio.met is True


def test_round_ratio_is_the_median_of_per_round_ratios() -> None:
    value, per_round = bench.round_ratio([6.0, 7.8, 10.0], [2.0, 2.0, 2.0])
    assert per_round == pytest.approx((3.0, 3.9, 5.0)) and value == pytest.approx(3.9)
    assert bench.round_ratio([17.9], [3.77])[0] == pytest.approx(4.748, abs=1e-3)
    for bad in (([1.0], [1.0, 2.0]), ([], []), ([1.0], [0.0])):
        with pytest.raises(ValueError):
            bench.round_ratio(*bad)


def test_ratios_need_rows_from_the_same_rounds() -> None:
    """A row timed in another number of rounds has no per-round partner: no ratio."""
    ours = _timed_row("mobilenet_v2", "int8", "posterlite", "m.int8.tflite", [4.0, 4.4])
    google = _timed_row("google", "int8-ptq", "reference", f"x/{bench.ANCHOR_REFERENCE}", [4.0])
    assert bench.compute_ratios([ours, google]) == []


def test_pareto_front_keeps_undominated_points_by_latency() -> None:
    points = [(10.0, 0.5), (5.0, 0.4), (20.0, 0.45), (5.0, 0.3), (30.0, 0.6)]
    assert bench.pareto_front(points) == [1, 0, 4]


def test_split_name_and_option_parsing() -> None:
    assert bench.split_name(Path("a/mobilenet_v2.int8.tflite")) == ("mobilenet_v2", "int8")
    assert bench.split_name(Path("model.tflite")) == ("model", "tflite")
    assert bench.parse_threads("1, 2") == (1, 2)
    assert bench.parse_formats("int8,fp32") == ("int8", "fp32")
    assert bench.parse_formats("all") == bench.FORMATS
    assert bench.split_name(Path("models/mobilenet_v2/model.int8.tflite")) == (
        "mobilenet_v2",
        "int8",
    )
    for bad in ("0", "x", ""):
        with pytest.raises(PosterliteError):
            bench.parse_threads(bad)
    with pytest.raises(PosterliteError, match="unknown format"):
        bench.parse_formats("int4")


def test_no_models_anywhere_is_a_clear_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(paths, "MODELS_DIR", tmp_path / "models")
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
def _bench_cli(*args: str):
    return CliRunner().invoke(main, ["bench", *args])


def test_bench_cli_run_dir_keras_baseline_json_and_plot(tiny, tmp_path, monkeypatch) -> None:
    """A run dir is converted (cache), benched with its Keras baseline; every output written."""
    monkeypatch.setattr(paths, "CACHE_DIR", tmp_path / "cache")
    out_json, out_png = tmp_path / "bench.json", tmp_path / "bench.png"
    result = _bench_cli(
        str(tiny["run"]), "--formats", "fp32,int8", "--data", str(tiny["sample"]),
        "--threads", "1,2", "--runs", "3", "--rounds", "2", "--warmup", "1",
        "--json", str(out_json), "--plot", str(out_png), "--no-references",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("posterlite bench | host CPU: ")
    assert bench.cpu_model() in lines[0] and "threads 1,2" in lines[0]
    assert "median of 2 interleaved rounds x 3 invokes" in lines[1]
    header = next(line for line in lines if line.startswith("| model"))
    assert header == "| model | format | threads | MB | p50 ms | mAP | macro F1 | mAP vs Keras |"
    rows = [line.split(" | ") for line in lines if line.startswith("| tiny |")]
    assert len(rows) == 5  # keras + fp32 x 2 threads + int8 x 2 threads
    keras_cells = next(r for r in rows if r[1] == "keras")
    assert keras_cells[-1] == "baseline |"
    fp32_cells = next(r for r in rows if r[1] == "fp32")
    assert abs(float(fp32_cells[-1].rstrip(" |"))) < 1e-3  # same float model as Keras
    assert any(
        line.startswith("int8 / fp32, 1 thread(s): tiny/int8 / tiny/fp32 = ") for line in lines
    )
    assert f"plot: {out_png}" in lines and f"every figure: {out_json}" in lines
    assert (tmp_path / "cache").is_dir()

    report = json.loads(out_json.read_text())
    assert report["schema"] == bench.SCHEMA
    assert report["environment"]["cpu_model"] == bench.cpu_model()
    assert report["environment"]["logical_cores"] >= 1
    assert "ai-edge-litert" in report["environment"]["libraries"]
    again = bench.BenchReport.from_json(out_json.read_text())  # the JSON reads back whole
    assert again.to_json_value() == report
    assert report["settings"]["rounds"] == 2
    rows = {(r["format"], r["threads"]): r for r in report["rows"]}
    fp32 = rows[("fp32", 1)]
    latency = fp32["latency"]
    assert latency["count"] == 6 and latency["rounds"] == 2 and len(latency["round_p50_ms"]) == 2
    assert latency["p99_ms"] > 0 and latency["pooled_p50_ms"] > 0
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
    assert fp32["vs_keras"]["source"] == "measured"
    assert fp32["vs_keras"]["mean_average_precision"] == pytest.approx(0.0, abs=1e-6)
    assert rows[("int8", 2)]["accuracy"] is not None
    assert [r["name"] for r in report["ratios"]] == ["int8 / fp32", "int8 / fp32"]
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    wide = _bench_cli(str(tiny["int8"]), "--data", str(tiny["sample"]), "--runs", "2",
                      "--rounds", "1", "--wide", "--no-references", "--json", str(out_json),
                      "--plot", str(out_png))  # fmt: skip
    assert wide.exit_code == 0, wide.output
    assert wide.stdout.startswith("| model | format | target | threads | size MB | load ms |")


def test_bench_tflite_files_with_reference_rows(tiny, tmp_path, monkeypatch) -> None:
    """`.tflite` arguments run as they are; reference files become latency+size-only rows."""
    pretrained = tmp_path / "shared" / "pretrained"
    pretrained.mkdir(parents=True)
    shutil.copy(tiny["int8"], pretrained / bench.REFERENCE_FILES[0])
    monkeypatch.setenv("POSTERLITE_SHARED", str(tmp_path / "shared"))
    options = bench.BenchOptions(
        models=[str(tiny["fp32"])], data=tiny["sample"], threads=(1,), runs=2, warmup=0, rounds=2
    )
    report = bench.run_bench(options)
    kinds = [(r.kind, r.format) for r in report.rows]
    assert kinds == [("posterlite", "fp32"), ("reference", "int8-ptq")]
    reference = report.rows[1]
    assert reference.accuracy is None and reference.latency and reference.size_bytes > 0
    assert np.isfinite(report.rows[0].accuracy.mean_average_precision)
    assert report.rows[0].vs_keras is None  # a bare .tflite: no Keras figures anywhere
    assert report.ratios == []  # no int8 MobileNetV2 of ours: no anchor


def _export_module():
    spec = importlib.util.spec_from_file_location(
        "export_int8", bench.REPO / "benchmarks" / "export_int8.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def shipped(tmp_path_factory) -> dict[str, Path]:
    """A shipped-models layout: models/mobilenet_v2 (a tiny run) with its exported int8
    file + sidecar (benchmarks/export_int8.py), a labelled sample, Google's file stand-in."""
    from tiny_models import make_run

    root = tmp_path_factory.mktemp("shipped")
    sample = write_sample(root / "sample")
    run = make_run(root, name=bench.ANCHOR_MODEL)
    models = root / "models"
    models.mkdir()
    shutil.move(str(run), models / bench.ANCHOR_MODEL)
    export = _export_module()
    args = ["--models", str(models), "--sample", str(sample), "--max-drop", "1", bench.ANCHOR_MODEL]
    assert export.main(args) == 0
    pretrained = root / "shared" / "pretrained"
    pretrained.mkdir(parents=True)
    shutil.copy(
        bench.shipped_file(models / bench.ANCHOR_MODEL, "int8"), pretrained / bench.ANCHOR_REFERENCE
    )
    return {"root": root, "models": models, "sample": sample, "export": export, "args": args}


def _use_shipped(shipped, monkeypatch, cache: Path) -> None:
    monkeypatch.setattr(paths, "MODELS_DIR", shipped["models"])
    monkeypatch.setattr(paths, "DEFAULT_SAMPLE", shipped["sample"])
    monkeypatch.setattr(paths, "CACHE_DIR", cache)
    monkeypatch.setenv("POSTERLITE_SHARED", str(shipped["root"] / "shared"))


def test_export_int8_records_keras_and_is_idempotent(shipped, capsys) -> None:
    run = shipped["models"] / bench.ANCHOR_MODEL
    target = bench.shipped_file(run, "int8")
    sidecar = bench.read_sidecar(target)
    reference = bench.recorded_reference(target)
    assert reference is not None and reference.posters == len(SAMPLE_LABELS)
    assert reference.keras_sha256 == file_digest(run / "model.keras", 64)
    assert sidecar["genres"] == list(DEFAULT_GENRES) and sidecar["export"]["gate"]["passed"]
    assert sidecar["export"]["gate"]["posters"] > 0  # checked on the card's val split
    assert str(bench.REPO) not in json.dumps(sidecar)  # no machine path recorded
    before = target.stat().st_mtime_ns
    assert shipped["export"].main(shipped["args"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert target.stat().st_mtime_ns == before


def test_default_bench_uses_committed_int8_and_recorded_keras(
    shipped, tmp_path, monkeypatch
) -> None:
    """`posterlite bench` with no argument (what `make demo` runs): the shipped int8 file,
    no conversion, no TensorFlow, change vs Keras from the sidecar, the anchor ratio, the
    plot and JSON at their default place."""
    cache = tmp_path / "cache"
    _use_shipped(shipped, monkeypatch, cache)
    result = _bench_cli("--runs", "3", "--rounds", "2")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    ours = [line for line in lines if line.startswith(f"| {bench.ANCHOR_MODEL} |")]
    assert len(ours) == 1 and ours[0].split(" | ")[1] == "int8"
    assert any(line.startswith("| google_") and "(ImageNet)" in line for line in lines)
    assert any(
        line.startswith("anchor: our int8 MobileNetV2 / Google's int8 MobileNetV2, 1 thread(s)")
        and "goal <= 1.10x" in line
        for line in lines
    )
    report = json.loads((cache / "bench.json").read_text())
    assert (cache / "bench.png").read_bytes()[:4] == b"\x89PNG"
    assert f"plot: {cache / 'bench.png'}" in lines
    assert not any(r["kind"] == "keras" for r in report["rows"])  # recorded, not run
    row = next(r for r in report["rows"] if r["kind"] == "posterlite")
    assert row["path"] == str(bench.shipped_file(shipped["models"] / bench.ANCHOR_MODEL, "int8"))
    recorded = report["keras_references"][bench.ANCHOR_MODEL]
    assert row["vs_keras"]["source"] == "recorded"
    assert row["vs_keras"]["mean_average_precision"] == pytest.approx(
        row["accuracy"]["mean_average_precision"] - recorded["mean_average_precision"]
    )
    assert not any(cache.glob("*/*.tflite"))  # nothing converted
    assert report["data"]["posters"] == len(SAMPLE_LABELS)


def test_recorded_keras_figures_apply_only_to_the_same_posters(
    shipped, tiny, tmp_path, monkeypatch
) -> None:
    """Another labelled set (or other pixels): the Keras model runs instead of the record."""
    _use_shipped(shipped, monkeypatch, tmp_path / "cache")
    other = tmp_path / "other"
    shutil.copytree(shipped["sample"], other)
    first = sorted((other / "Images").iterdir())[0]
    make_poster(first, seed=99, size=(40, 60))  # one poster differs
    report = bench.run_bench(bench.BenchOptions(data=other, runs=2, rounds=1, references=False))
    kinds = [r.kind for r in report.rows]
    assert kinds == ["keras", "posterlite"]
    assert report.rows[1].vs_keras.source == "measured"


def test_stale_committed_file_is_not_benched(shipped, tmp_path, monkeypatch) -> None:
    """A model retrained after its export: the committed int8 file is not used (warning)."""
    copy = tmp_path / "models"
    shutil.copytree(shipped["models"], copy)
    keras_file = copy / bench.ANCHOR_MODEL / "model.keras"
    keras_file.write_bytes(keras_file.read_bytes() + b"\0")  # another model.keras
    warnings: list[str] = []
    calls = []
    with pytest.raises(PosterliteError, match="conversion did not produce"):
        bench.resolve_models(
            [copy / bench.ANCHOR_MODEL],
            ("int8",),
            cache_dir=tmp_path / "cache",
            convert=lambda *a: calls.append(a),
            warnings=warnings,
        )
    assert calls and calls[0][3] == ["int8"]  # it went to convert into the cache
    assert "was exported from an older model.keras" in warnings[0]
    assert "export_int8.py" in warnings[0]


def test_bench_cli_errors_are_one_line(tiny, tmp_path) -> None:
    result = _bench_cli(str(tiny["fp32"]), "--formats", "int3")
    assert result.exit_code == 1 and "unknown format" in result.stderr
    result = _bench_cli(str(tiny["fp32"]), "--serial", "emulator-5554")
    assert result.exit_code == 1 and "--target android" in result.stderr
    missing = tmp_path / "nope.tflite"
    result = _bench_cli(str(missing))
    assert result.exit_code == 1 and result.stderr == f"error: model not found: {missing}\n"
    result = _bench_cli(str(tiny["fp32"]), "--data", str(tmp_path / "no-such-set"))
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: labelled set not found: {tmp_path / 'no-such-set'} "
        "(--data takes a poster data set)\n"
    )
    result = _bench_cli(str(tiny["fp32"]), "--rounds", "0")
    assert result.exit_code == 1 and "--rounds must be >= 1" in result.stderr


@pytest.mark.slow
def test_the_real_default_bench() -> None:
    """`posterlite bench` exactly as `make demo` runs it, on the six shipped models."""
    from posterlite.quiet import log_lines

    done = subprocess.run(
        [sys.executable, "-m", "posterlite.cli", "bench"],
        capture_output=True, text=True, timeout=900, cwd=bench.REPO,
        env={**os.environ, "POSTERLITE_VERBOSE": ""},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert log_lines(done.stdout + done.stderr) == []
    lines = done.stdout.splitlines()
    for name in bench.SHIPPED_MODELS:
        assert sum(line.startswith(f"| {name} | int8 |") for line in lines) == 1
    if bench.reference_specs():
        assert any(line.startswith("anchor: ") for line in lines)
    assert not any(" | keras | " in line for line in lines)  # recorded figures, no TensorFlow
