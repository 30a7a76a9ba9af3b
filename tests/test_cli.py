"""The command line as users meet it: `train` through its options only (success and missing
options), Ctrl-C, and a model whose outputs do not match its genre list at `predict`.

Train is driven through the CLI alone (no train internals), on generated posters at 32 px.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from conftest import LocalServer, QuietHandler, make_poster
from tiny_models import make_posters

from posterlite.bench.options import BenchOptions
from posterlite.cli import bench as cli_bench
from posterlite.cli import data as cli_data
from posterlite.cli import main
from posterlite.cli import train as cli_train
from posterlite.data import DEFAULT_WORKERS, DownloadLimits, SplitOptions
from posterlite.errors import PosterliteError
from posterlite.genres import DEFAULT_GENRES
from posterlite.manifest import write_manifest
from posterlite.train.config import GRID_TIME_BUDGET_S, RUN_FILES, EndToEndConfig, TrainConfig

POSTERLITE = Path(sys.executable).with_name("posterlite")
TRAIN_FILES = RUN_FILES


# --- train --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 generated posters (8 train, 8 val) with random genres."""
    root = tmp_path_factory.mktemp("train_cli")
    manifest = root / "manifest.csv"
    write_manifest(make_posters(root, 16), manifest)
    return manifest


def test_train_cli_success(tiny_manifest: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["train", "--data", str(tiny_manifest), "--model", "cnn", "--input-size", "32"]
    args += ["--epochs", "1", "--batch-size", "8", "--head-hidden", "8", "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    (line,) = result.stdout.strip().splitlines()
    match = re.fullmatch(
        r"(\S+): val mAP (\d\.\d{4}), macro F1@0\.5 (\d\.\d{4}), micro F1 (\d\.\d{4}), "
        r"([\d,]+) params, \d+ s -> (.+)",
        line,
    )
    assert match, line
    assert match.group(6) == str(out)
    for name in TRAIN_FILES:
        assert (out / name).is_file(), name
    card = json.loads((out / "card.json").read_text())
    assert card["arch"] == "cnn" and card["input_size"] == 32
    assert card["genres"] == list(DEFAULT_GENRES) and len(card["thresholds"]) == 6
    # The printed figures are the ones the run wrote down, on the 8 val posters.
    written = json.loads((out / "report.json").read_text())["threshold_0.5"]
    assert written["n_samples"] == 8
    assert match.group(2) == f"{written['mean_average_precision']:.4f}"
    assert match.group(3) == f"{written['macro_f1']:.4f}"
    assert match.group(4) == f"{written['micro_f1']:.4f}"
    assert f"{card['validation']['mAP']:.4f}" == match.group(2)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # nothing half-written


@pytest.mark.parametrize(
    ("given", "missing"),
    [((), ("--data", "--out")), (("--data",), ("--out",)), (("--out",), ("--data",))],
)
def test_train_cli_missing_options(
    tiny_manifest: Path, tmp_path: Path, given: tuple[str, ...], missing: tuple[str, ...]
) -> None:
    values = {"--data": str(tiny_manifest), "--out": str(tmp_path / "run")}
    args = ["train", "--model", "cnn"] + [a for flag in given for a in (flag, values[flag])]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output  # click's usage error, like `train grid`
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines  # one line, not click's usage block
    error = lines[0]
    assert error.startswith("error: Missing option")
    for flag in ("--data", "--out"):
        assert (flag in error) is (flag in missing), error
    assert "train --help" in result.stderr
    assert not (tmp_path / "run").exists()


def test_train_cli_missing_manifest_is_one_line(tmp_path: Path) -> None:
    args = ["train", "--data", str(tmp_path / "nope.csv"), "--model", "cnn"]
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "run")])
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "nope.csv" in lines[0]
    assert not (tmp_path / "run").exists()


def test_train_grid_cli_missing_data(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["train", "grid", "--out", str(tmp_path / "models")])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: Missing option '--data'. (see 'main train grid --help')"
    ]


# --- Ctrl-C -------------------------------------------------------------------------------
class _HangingServer(LocalServer):
    """Each request blocks until `release` is set (then 404), so a download is in flight
    for as long as the test wants; `started` is set by the first request."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.hits: list[str] = []
        server = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                server.hits.append(self.path)
                server.started.set()
                server.release.wait(60)
                self.send(404, b"")

        super().__init__(Handler)

    def close(self) -> None:
        self.release.set()
        super().close()


@pytest.fixture
def hanging_server() -> Iterator[_HangingServer]:
    server = _HangingServer()
    yield server
    server.close()


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_exits_130_without_traceback(hanging_server: _HangingServer, tmp_path: Path) -> None:
    """SIGINT while `data download` waits on the network: "interrupted", exit 130, no
    traceback (and the run ends: the posters still queued are not waited for)."""
    csv_path = tmp_path / "posters.csv"
    rows = [f"{i},Drama,{hanging_server.url}/{i}.jpg" for i in range(1, 6)]
    csv_path.write_text("imdbId,Genre,Poster\n" + "\n".join(rows) + "\n")
    args = ["data", "download", str(csv_path), "--out", str(tmp_path / "posters")]
    process = subprocess.Popen(
        [str(POSTERLITE), *args, "--workers", "1", "--retries", "0", "--timeout", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # As from a terminal: a shell's background job (CI runners, `make test &`) starts
        # with SIGINT ignored, and Python then installs no KeyboardInterrupt handler.
        preexec_fn=_default_sigint,
    )
    try:
        assert hanging_server.started.wait(120), "the download never reached the server"
        process.send_signal(signal.SIGINT)
        # The request in flight must end for the worker thread to stop.
        hanging_server.release.set()
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    assert stderr.strip().splitlines()[-1] == "interrupted"
    assert not (tmp_path / "posters").exists() or not list((tmp_path / "posters").iterdir())


# --- predict: outputs that do not match the genre list -------------------------------------
@pytest.fixture(scope="module")
def four_outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 4-output model as .tflite: bare (no labels), with TFLite Metadata naming the six
    genres, and with a six-genre sidecar; plus one poster."""
    import keras

    from posterlite.convert import convert_saved_model, export_saved_model
    from posterlite.metadata import MetadataSpec, embed_metadata, write_sidecar

    root = tmp_path_factory.mktemp("four_outputs")
    inputs = keras.Input((32, 32, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    model = keras.Model(inputs, keras.layers.Dense(4, activation="sigmoid")(pooled))
    raw = convert_saved_model(export_saved_model(model, root), "fp32")
    six = MetadataSpec(
        name="six", version="1", genres=DEFAULT_GENRES, thresholds=(0.5,) * 6, input_size=32
    )
    paths = {"bare": root / "bare.tflite", "metadata": root / "meta.tflite"}
    paths["bare"].write_bytes(raw)
    paths["metadata"].write_bytes(embed_metadata(raw, six))
    paths["sidecar"] = root / "side.tflite"
    paths["sidecar"].write_bytes(raw)
    write_sidecar(paths["sidecar"], six)
    paths["poster"] = make_poster(root / "poster.jpg", 3)
    return paths


def test_predict_model_without_labels_names_its_outputs(four_outputs) -> None:
    """No labels anywhere: the outputs are named by index (as for an ImageNet file), never
    by the six default genres."""
    result = CliRunner().invoke(
        main, ["predict", str(four_outputs["bare"]), str(four_outputs["poster"]), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["genres"] == ["class_0", "class_1", "class_2", "class_3"]


@pytest.mark.parametrize("labels", ["metadata", "sidecar"])
def test_predict_labels_not_matching_outputs_is_one_line_error(four_outputs, labels) -> None:
    result = CliRunner().invoke(
        main, ["predict", str(four_outputs[labels]), str(four_outputs["poster"])]
    )
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "4 outputs" in lines[0] and "6" in lines[0]


# --- options to configs -------------------------------------------------------------------
def _parsed(command: click.Command, *args: str) -> dict[str, Any]:
    """The click parameters `command` parses from `args` (nothing is run)."""
    return dict(command.make_context(command.name or "", list(args)).params)


def _train_config(*args: str) -> TrainConfig:
    params = _parsed(cli_train.train, *args)
    for name in ("manifest", "out", "grid_mode"):
        params.pop(name)
    return cli_train.train_config(params)


def test_train_defaults_are_the_configs() -> None:
    """No option: exactly the dataclasses' defaults (the CLI repeats none of them)."""
    assert _train_config() == TrainConfig()
    end_to_end = _train_config("--fine-tune", "all")
    assert end_to_end == TrainConfig(end_to_end=EndToEndConfig())
    grid = _parsed(cli_train.train_grid, "--data", "m.csv")
    assert TrainConfig(**{k: grid[k] for k in grid if k not in ("manifest", "out", "archs")}) == (
        TrainConfig(time_budget_s=GRID_TIME_BUDGET_S)
    )


def test_train_options_reach_their_fields() -> None:
    config = _train_config(
        *("--model", "mobilenet_v2", "--lr", "0.01", "--time-budget", "9", "--seed", "3"),
        *("--fine-tune", "all", "--fine-tune-lr", "0.001", "--ft-schedule", "96:2"),
        *("--ft-warmup", "0.5", "--ft-bn", "train", "--ft-ema", "0.9", "--smote"),
        *("--ft-teacher", "a", "--ft-teacher", "b", "--ft-distill", "0.25", "--init", "run"),
    )
    assert (config.arch, config.learning_rate, config.time_budget_s, config.seed) == (
        "mobilenet_v2",
        0.01,
        9.0,
        3,
    )
    assert config.smote and config.init == "run" and config.fine_tune_learning_rate is None
    e2e = config.end_to_end
    assert e2e is not None
    assert (e2e.learning_rate, e2e.schedule, e2e.warmup_epochs, e2e.bn, e2e.ema) == (
        0.001,
        ((96, 2),),
        0.5,
        "train",
        0.9,
    )
    assert e2e.teachers == ("a", "b") and e2e.distill == 0.25
    assert e2e.sampler == "powerset"  # --smote's default sampler
    blocks = _train_config("--fine-tune", "2", "--fine-tune-lr", "0.001")
    assert (blocks.fine_tune, blocks.fine_tune_learning_rate, blocks.end_to_end) == (2, 0.001, None)


def test_train_option_errors() -> None:
    with pytest.raises(click.UsageError, match="number of blocks or 'all'"):
        _train_config("--fine-tune", "some")
    with pytest.raises(click.UsageError, match="--init needs --fine-tune all"):
        _train_config("--init", "run")
    # 0 was silently replaced by the default peak lr; now the config refuses it
    with pytest.raises(PosterliteError, match="fine-tune lr"):
        _train_config("--fine-tune", "all", "--fine-tune-lr", "0")


def test_bench_and_data_defaults_are_the_configs() -> None:
    params = _parsed(cli_bench.bench)
    models = params.pop("models")
    for name in ("json_out", "plot_out", "wide"):
        params.pop(name)
    assert cli_bench.bench_options(models, params) == BenchOptions()
    split = _parsed(cli_data.data_split, "src", "--out", "m.csv")
    fields = ("val_fraction", "test_fraction", "seed", "per_genre", "fmt")
    assert SplitOptions(*(split[f] for f in fields)) == SplitOptions()
    download = _parsed(cli_data.data_download, "k.csv", "--out", "posters")
    limits = DownloadLimits(
        timeout=download["timeout"], deadline=download["deadline"], retries=download["retries"]
    )
    assert limits == DownloadLimits() and download["workers"] == DEFAULT_WORKERS


def test_a_command_loads_only_its_own_module() -> None:
    """`predict` runs without importing the training, bench or data code (the root --help
    lists every command, so it loads them all)."""
    code = (
        "import sys\n"
        "from posterlite.cli import main\n"
        "main(sys.argv[1:], standalone_mode=False)\n"
        "print(sorted(m for m in sys.modules if m.startswith('posterlite.')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "predict", "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    loaded = done.stdout.splitlines()[-1]
    assert "posterlite.cli.predict" in loaded
    for heavy in (
        "posterlite.train",
        "posterlite.bench",
        "posterlite.data",
        "posterlite.cli.train",
    ):
        assert f"'{heavy}'" not in loaded
    done = subprocess.run([sys.executable, "-c", code, "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "'posterlite.cli.train'" in done.stdout.splitlines()[-1]
