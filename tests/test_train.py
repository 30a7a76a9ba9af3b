"""Training: artifacts of a run, the content-keyed feature cache, SMOTE's memory bound,
grid resume and the CLI's one-line errors. Tiny generated posters at 32 px, 1 epoch."""

from __future__ import annotations

import json
import tracemalloc
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_poster

from posterlite import train as T
from posterlite.card import read_card
from posterlite.manifest import ManifestRow, write_manifest
from posterlite.smote import codes_to_labels, label_codes, plan_smote, smote_multilabel
from posterlite.train import grid
from posterlite.train.config import RUN_FILES

LABEL_SETS = (
    ("Action", "Crime"),
    ("Drama",),
    ("Comedy", "Romance"),
    ("Other",),
    ("Drama", "Other"),
)
ARTIFACTS = RUN_FILES
TINY = T.TrainConfig(
    input_size=32,
    epochs=1,
    batch_size=8,
    pretrained=False,
    patience=1,
    head_hidden=8,
    smote_target_fraction=1.0,
)


@pytest.fixture
def tiny_manifest(tmp_path: Path) -> Path:
    return _write_tiny_manifest(tmp_path)


def _write_tiny_manifest(tmp_path: Path) -> Path:
    """50 generated posters; train label sets 12/6/6/3/3 (imbalanced: SMOTE has work), val and
    test 2 each."""
    train_counts = (12, 6, 6, 3, 3)
    plan = [(g, "train") for g, n in zip(LABEL_SETS, train_counts, strict=True) for _ in range(n)]
    plan += [(g, "val") for g in LABEL_SETS for _ in range(2)]
    plan += [(g, "test") for g in LABEL_SETS for _ in range(2)]
    rows = []
    for index, (genres, split) in enumerate(plan):
        path = make_poster(tmp_path / "posters" / f"p{index}.png", seed=index, size=(30, 45))
        rows.append(ManifestRow(str(path), genres, split, "generated", f"f{index}"))
    manifest = tmp_path / "manifest.csv"
    write_manifest(rows, manifest)
    return manifest


@pytest.fixture
def ws(tmp_path: Path) -> T.Workspace:
    return T.Workspace(cache=tmp_path / "cache")


def _check_run(out: Path, arch: str, size: int) -> None:
    import keras

    for name in ARTIFACTS:
        assert (out / name).is_file(), name
    card = read_card(out)
    assert card.arch == arch and card.input_size == size and len(card.thresholds) == 6
    assert card.manifest_sha256 and card.library_versions["keras"]
    assert card.extra["full_model_vs_cached_features_max_abs_diff"] < 1e-4
    report = json.loads((out / "report.json").read_text())
    assert set(report) == {"threshold_0.5", "tuned"}
    model = keras.models.load_model(out / "model.keras")  # as convert loads it
    probabilities = np.asarray(model(np.zeros((2, size, size, 3), np.float32)))
    assert probabilities.shape == (2, 6) and np.all((probabilities >= 0) & (probabilities <= 1))


@pytest.mark.parametrize(
    "config",
    [
        replace(TINY, arch="cnn"),
        replace(TINY, arch="cnn", smote=True),
        replace(TINY, arch="mobilenet_v1", smote=True),
        replace(TINY, arch="mobilenet_v2", fine_tune=2),
    ],
    ids=lambda c: c.name,
)
def test_run_writes_every_artifact(config, tiny_manifest, ws, tmp_path):
    out = tmp_path / config.name
    result = T.train_run(config, tiny_manifest, out, ws)
    _check_run(out, config.arch, 32)
    assert result.params > 0 and 0 <= result.val_map <= 1
    if config.fine_tune:
        extra = read_card(out).extra
        assert extra["fine_tuned_blocks"] == 2
        assert any(
            k.startswith("fine_tune_") for k in json.loads((out / "history.json").read_text())
        )
        # Cached path: V2's top 2 blocks (block_16 + Conv_1) train on block_15_add outputs,
        # stored once as float16; the blocks' weights train, not just the head.
        tuned = extra["fine_tune"]
        assert tuned["cut_layer"] == "block_15_add" and tuned["activations_computed"] == 40
        assert tuned["trainable_params"] > 1280 * 8 + 8 * 6 + 14
        data = T.load_dataset(tiny_manifest)
        rows, fresh = T.cached_activations(data.val, None, Path(tuned["activation_stores"][1]), 32)
        assert not fresh and rows.dtype == np.float16 and rows.shape == (10, 1, 1, 160)
    if config.arch == "cnn" and not config.smote:
        # Test is scored after the run, once, into report.json / report.md / the card.
        entry = T.score_test(out, ws=ws)
        assert entry["n_samples"] == 10 and 0 <= entry["mAP"] <= 1
        assert read_card(out).extra["test"]["model_sha256"] == entry["model_sha256"]
        assert set(json.loads((out / "report.json").read_text())) == {
            "threshold_0.5",
            "tuned",
            "test",
        }
        assert "## Test split" in (out / "report.md").read_text()
    if config.smote:
        smote = read_card(out).extra["smote"]
        assert smote["n_synthetic"] > 0 and smote["measured_peak_bytes"] > 0


def test_feature_cache_reused_and_invalidated(tiny_manifest, ws, tmp_path):
    data = T.load_dataset(tiny_manifest)
    calls: list[int] = []

    def extractor(inputs, training=False):
        calls.append(len(inputs))
        return inputs.mean(axis=(1, 2))

    store = T.feature_store_path(ws.cache, "fake", 32, "weights-a")
    first, _ = T.cached_features(data.train, extractor, store, 32)
    assert sum(calls) == len(data.train.paths)
    calls.clear()
    again, cache = T.cached_features(data.train, extractor, store, 32)
    assert calls == [] and cache.hits == len(data.train.paths)
    np.testing.assert_array_equal(first, again)

    # A changed poster (new bytes) is recomputed, alone.
    make_poster(Path(data.train.paths[0]), seed=999, size=(30, 45))
    data = T.load_dataset(tiny_manifest)
    changed, cache = T.cached_features(data.train, extractor, store, 32)
    assert sum(calls) == 1 and cache.computed == 1
    assert not np.array_equal(changed[0], first[0])
    np.testing.assert_array_equal(changed[1:], first[1:])

    # Other weights (or input size, or preprocessing version) mean another store.
    other = T.feature_store_path(ws.cache, "fake", 32, "weights-b")
    assert other != store and other != T.feature_store_path(ws.cache, "fake", 48, "weights-a")
    calls.clear()
    T.cached_features(data.train, extractor, other, 32)
    assert sum(calls) == len(data.train.paths)


def test_weights_sha_changes_with_weights():
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    before = T.weights_sha256(model)
    assert T.weights_sha256(model) == before
    model.layers[0].kernel.assign(np.ones((4, 2), np.float32))
    assert T.weights_sha256(model) != before


def test_smote_memory_bound_on_large_embeddings():
    rng = np.random.default_rng(0)
    n, dim, genres = 20_000, 256, 6
    codes = rng.choice([1, 2, 3, 6, 12, 33, 48], size=n, p=[0.5, 0.2, 0.1, 0.1, 0.05, 0.03, 0.02])
    labels = codes_to_labels(codes, genres)
    features = rng.standard_normal((n, dim)).astype(np.float32)
    budget = 64 * 2**20  # 64 MiB: forces the cap (uncapped it would want ~10k rows)
    plan = plan_smote(label_codes(labels), dim, max_bytes=budget)
    assert plan.capped and 0 < plan.bound_bytes <= budget
    import imblearn.over_sampling  # noqa: F401  (import-time objects are not SMOTE's)

    tracemalloc.start()
    result = smote_multilabel(features, labels, max_bytes=budget)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(result.features) == plan.n_out
    # Measured peak stays within the planned bound (+ 2 MiB of bookkeeping).
    assert peak <= plan.bound_bytes + 2 * 2**20, (peak, plan.bound_bytes)
    # Synthetic rows carry exactly one of the existing label sets.
    assert set(label_codes(result.labels[n:]).tolist()) <= set(codes.tolist())
    np.testing.assert_array_equal(result.labels[:n], labels)


def test_smote_leaves_rare_label_sets_alone():
    codes = np.array([1] * 30 + [2] * 8 + [4] * 3)
    plan = plan_smote(codes, dim=8)
    assert plan.targets[1] == 30 and plan.targets[2] == 15 and 4 in plan.skipped_rare


def test_grid_resumes_without_redoing_finished_runs(tiny_manifest, ws, tmp_path, monkeypatch):
    monkeypatch.setattr(grid, "GRID_OPTIMIZERS", (("adam", 1e-3), ("sgd", 1e-4)))
    real = grid.train_run
    trained: list[str] = []

    def interrupted(config, *args, **kwargs):
        if len(trained) == 2:
            raise KeyboardInterrupt
        trained.append(config.run_id)
        return real(config, *args, **kwargs)

    monkeypatch.setattr(grid, "train_run", interrupted)
    out = tmp_path / "models"
    base = replace(TINY, arch="mobilenet_v1")
    with pytest.raises(KeyboardInterrupt):
        T.run_grid(tiny_manifest, out, base, ws, archs=("mobilenet_v1",), progress=False)
    assert len(trained) == 2
    monkeypatch.setattr(grid, "train_run", real)
    result = T.run_grid(tiny_manifest, out, base, ws, archs=("mobilenet_v1",), progress=False)
    assert sorted(result.redone) == sorted(set(result.runs) - set(trained))
    assert len(result.runs) == 4 and len(result.redone) == 2
    assert set(result.best) == {"mobilenet_v1", "mobilenet_v1_smote"}
    for name in result.best:
        assert read_card(out / name).extra["grid"]["selected_run"] == result.best[name]
    again = T.run_grid(tiny_manifest, out, base, ws, archs=("mobilenet_v1",), progress=False)
    assert again.redone == []


def test_cli_missing_backbone_file_is_one_line(tmp_path):
    from posterlite.cli import main

    args = ["train", "--data", str(tmp_path / "m.csv"), "--model", "mobilenet_v1"]
    args += ["--backbone-weights", str(tmp_path / "nope.weights.h5"), "--out", str(tmp_path)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert result.output.strip().count("\n") == 0
    assert "backbone weights file not found" in result.output


@pytest.mark.shared
def test_real_posters_pretrained_v1(shared_dir, tmp_path):
    """40 real posters through the ImageNet V1 (imported from ../shared/pretrained)."""
    import csv

    root = shared_dir / "data" / "imdb-7k"
    from posterlite.genres import default_scheme

    scheme = default_scheme()
    rows = []
    with (root / "train.csv").open(encoding="utf-8") as handle:
        for index, record in enumerate(csv.DictReader(handle)):
            if index == 40:
                break
            genres = scheme.map_raw(g for g in scheme.names + ("x",) if record.get(g) == "1")
            split = "val" if index % 3 == 0 else "train"
            path = root / "Images" / f"{record['Id']}.jpg"
            rows.append(
                ManifestRow(str(path), genres or ("Other",), split, "imdb-7k", record["Id"])
            )
    manifest = tmp_path / "manifest.csv"
    write_manifest(rows, manifest)
    config = T.TrainConfig(arch="mobilenet_v1", epochs=2, batch_size=8)
    out = tmp_path / "v1"
    T.train_run(config, manifest, out, T.Workspace(cache=tmp_path / "cache"))
    _check_run(out, "mobilenet_v1", 224)
    assert "weights_file_sha256" in read_card(out).extra["backbone"]


# --- end-to-end fine-tuning (--fine-tune all) ---------------------------------------------
E2E = T.EndToEndConfig(schedule=((32, 2), (48, 1)), cache_size=48, patience=5, jitter=0.2)


def _e2e_config(**changes) -> T.TrainConfig:
    return replace(TINY, arch="mobilenet_v2", end_to_end=replace(E2E, **changes))


def test_end_to_end_fine_tune_trains_every_layer(tiny_manifest, ws, tmp_path):
    import keras

    out = tmp_path / "e2e"
    T.train_run(_e2e_config(), tiny_manifest, out, ws)
    _check_run(out, "mobilenet_v2", 32)
    extra = read_card(out).extra
    e2e = extra["end_to_end"]
    assert e2e["epochs_run"] == 3 and 0 <= e2e["best_epoch"] <= 3  # 0: the start won
    assert e2e["start_val_map"] is not None
    assert e2e["trainable_params"] > 2_000_000  # the whole backbone, not just the head
    history = json.loads((out / "history.json").read_text())
    assert history["fine_tune_size"] == [32, 32, 48] and len(history["fine_tune_loss"]) == 3
    assert history["val_pr_auc"]  # the head stage ran first
    # The saved model carries the best epoch's weights: its val mAP is the recorded best.
    model = keras.models.load_model(out / "model.keras")
    assert model.input_shape[1:] == (32, 32, 3)
    assert abs(read_card(out).validation["mAP"] - e2e["best_val_map"]) < 1e-6
    # Epochs never decode a JPEG: the uint8 cache exists once, at the cache size.
    assert np.load(e2e["decoded_cache"], mmap_mode="r").shape == (30, 48, 48, 3)


@pytest.mark.slow  # two tiny fine-tunes (~1-2 min on 2 busy cores)
def test_end_to_end_resumes_after_interruption(tiny_manifest, ws, tmp_path, monkeypatch):
    from posterlite.train import finetune

    out = tmp_path / "resume"
    config = _e2e_config(schedule=((32, 2),))
    real = finetune._run_epoch
    calls: list[int] = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C in the middle of epoch 2
        return real(*args, **kwargs)

    monkeypatch.setattr(finetune, "_run_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        T.train_run(config, tiny_manifest, out, ws)
    state = json.loads((out / "finetune" / "state.json").read_text())
    assert state["epochs_done"] == 1 and not (out / "model.keras").exists()
    first_loss = state["history"]["loss"][0]
    monkeypatch.setattr(finetune, "_run_epoch", real)
    T.train_run(config, tiny_manifest, out, ws)
    e2e = read_card(out).extra["end_to_end"]
    assert e2e["resumed_from_epoch"] == 1 and e2e["epochs_run"] == 2
    history = json.loads((out / "history.json").read_text())
    assert history["fine_tune_loss"][0] == first_loss and len(history["fine_tune_loss"]) == 2


def test_augmentation_is_deterministic_for_a_seed():
    import tensorflow as tf

    from posterlite.train.finetune import augment

    rng = np.random.default_rng(0)
    image = tf.constant(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8))
    seed = tf.constant([7, 3], tf.int64)
    first = augment(image, seed, 32, E2E).numpy()
    again = augment(image, seed, 32, E2E).numpy()
    other = augment(image, tf.constant([7, 4], tf.int64), 32, E2E).numpy()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert first.shape == (32, 32, 3) and first.min() >= -1.0 and first.max() <= 1.0
    # Without crop, flip and jitter it is exactly the phone-side resize (bilinear, no AA).
    plain = replace(E2E, crop_scale=1.0, crop_ratio=1.0, flip=False, jitter=0.0)
    expected = tf.image.resize(tf.cast(image, tf.float32)[None], (32, 32), antialias=False)[0]
    np.testing.assert_allclose(
        augment(image, seed, 32, plain).numpy(), expected.numpy() / 127.5 - 1, atol=1e-5
    )


def test_powerset_sampler_raises_rare_label_sets():
    from posterlite.smote import label_codes
    from posterlite.train.finetune import epoch_indices, powerset_pool

    labels = np.zeros((60, 6), np.float32)
    labels[:40, 0] = 1  # 40 x {Action}
    labels[40:, 1] = 1  # 20 x {Drama}
    pool, info = powerset_pool(labels, seed=0)
    assert info["oversampled_label_sets"] == 0  # 20 is already half of 40
    labels[40:48, 1], labels[40:48, 2] = 0, 1  # 12 x {Drama}, 8 x {Comedy}: raised to 20
    pool, info = powerset_pool(labels, seed=0)
    codes = label_codes(labels[pool])
    counts = {c: int((codes == c).sum()) for c in np.unique(codes)}
    assert sorted(counts.values()) == [20, 20, 40] and info["pool"] == 80
    assert set(pool.tolist()) == set(range(60))  # only real posters are drawn
    order = epoch_indices(60, 0, 0, pool, None)
    assert len(order) == 60 and np.array_equal(order, epoch_indices(60, 0, 0, pool, None))


@pytest.fixture(scope="module")
def e2e_run(tmp_path_factory):
    """One tiny end-to-end fine-tuned V2 (1 epoch), shared by the int8 and export tests."""
    root = tmp_path_factory.mktemp("e2e_run")
    manifest = _write_tiny_manifest(root)
    ws = T.Workspace(cache=root / "cache")
    out = root / "e2e"
    T.train_run(_e2e_config(schedule=((32, 1),)), manifest, out, ws)
    return out, ws


@pytest.mark.slow  # a real int8 conversion + LiteRT check
def test_int8_gate_after_end_to_end_fine_tune(e2e_run):
    from posterlite.convert import convert_model

    out, _ = e2e_run
    report = convert_model(out, formats=("int8",), out_dir=out / "tflite", max_drop=1.0)
    (int8,) = report.results
    # The fine-tuned weights quantize: int8 probabilities track Keras on the val posters
    # (mAP on 10 noise posters is itself noise, so the 0.01 gate runs on the real models).
    assert int8.passed and int8.map_delta is not None and int8.max_abs_diff < 0.1


def test_export_at_another_size(e2e_run, tmp_path):
    import keras

    from posterlite.train.finetune import export_at_size

    out, ws = e2e_run
    fast = tmp_path / "fast"
    export_at_size(out, 48, fast, ws)
    card = read_card(fast)
    assert card.input_size == 48 and card.name == "mobilenet_v2_48" and len(card.thresholds) == 6
    source = keras.models.load_model(out / "model.keras")
    model = keras.models.load_model(fast / "model.keras")
    assert model.input_shape[1:] == (48, 48, 3)
    for a, b in zip(source.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # same network, another input size


def test_blend_targets_is_the_weighted_mean_and_checks_shapes():
    from posterlite.errors import PosterliteError
    from posterlite.train.distill import blend_targets

    labels = np.array([[1, 0], [0, 1]], np.float32)
    teacher = np.array([[0.6, 0.2], [0.1, 0.3]], np.float32)
    np.testing.assert_allclose(blend_targets(labels, teacher, 0.0), labels)
    np.testing.assert_allclose(blend_targets(labels, teacher, 1.0), teacher)
    np.testing.assert_allclose(blend_targets(labels, teacher, 0.5), [[0.8, 0.1], [0.05, 0.65]])
    with pytest.raises(PosterliteError, match="do not match"):
        blend_targets(labels, teacher[:1], 0.5)


def test_distillation_and_ema_in_end_to_end_fine_tune(e2e_run, tmp_path):
    """A tiny fine-tune distilled from the e2e_run model, validated on EMA weights: the
    teacher outputs are cached once and reused; a missing teacher is a clear error."""
    from posterlite.errors import PosterliteError
    from posterlite.train.distill import teacher_probabilities

    teacher, ws = e2e_run
    config = _e2e_config(schedule=((32, 1),), ema=0.9, teachers=(str(teacher),), distill=0.5)
    out = tmp_path / "student"
    T.train_run(config, _write_tiny_manifest(tmp_path), out, ws)
    e2e = read_card(out).extra["end_to_end"]
    assert e2e["weights_validated"] == "EMA (momentum 0.9)"
    assert e2e["distillation"]["alpha"] == 0.5
    assert list(e2e["distillation"]["teachers"]) == [str(teacher)]
    assert 0.0 <= e2e["distillation"]["teacher_train_map"] <= 1.0
    cached = list((ws.cache / "teachers").glob("*.npy"))
    assert len(cached) == 1
    probabilities = np.load(cached[0])
    assert probabilities.shape[1] == 6 and (probabilities > 0).all() and (probabilities < 1).all()
    with pytest.raises(PosterliteError, match="no model.keras"):
        teacher_probabilities([str(tmp_path / "nowhere")], np.zeros((1, 8, 8, 3)), ["k"], ws.cache)
    with pytest.raises(PosterliteError, match="needs at least one --ft-teacher"):
        T.EndToEndConfig(distill=0.5)


def test_genres_without_posters_warned_and_left_out_of_the_report(tmp_path, monkeypatch):
    """POSTERLITE_GENRES names five genres, the posters have three: `train` warns (one line
    naming the two and the variable) before training, and the report leaves them out of
    macro F1 and mAP and says so."""
    from posterlite.cli import main

    monkeypatch.setenv("POSTERLITE_GENRES", "Horror,Comedy,Romance,Crime,Other")
    monkeypatch.setenv("POSTERLITE_CACHE", str(tmp_path / "cache"))
    rows = []
    for index in range(18):
        genre = ("Horror", "Comedy", "Romance")[index % 3]
        path = make_poster(tmp_path / "posters" / f"p{index}.png", seed=index, size=(20, 30))
        split = "val" if index % 2 else "train"
        rows.append(ManifestRow(str(path), (genre,), split, "generated", f"f{index}"))
    manifest = tmp_path / "manifest.csv"
    write_manifest(rows, manifest)
    out = tmp_path / "run"
    args = ["train", "--data", str(manifest), "--model", "cnn", "--input-size", "32"]
    args += ["--epochs", "1", "--batch-size", "8", "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert warnings == [
        f"warning: no posters of Crime, Other in {manifest} "
        "(POSTERLITE_GENRES=Horror,Comedy,Romance,Crime,Other): they cannot be learnt or "
        "scored there (reports leave them out of macro F1 and mAP); set POSTERLITE_GENRES to "
        "the genres the data has"
    ]
    report = json.loads((out / "report.json").read_text())["threshold_0.5"]
    assert report["genres_left_out"] == ["Crime", "Other"]
    f1 = {m["genre"]: m["f1"] for m in report["per_genre"]}
    assert report["macro_f1"] == pytest.approx(
        np.mean([f1[g] for g in ("Horror", "Comedy", "Romance")])
    )
    assert "(no positive in this set): Crime, Other" in (out / "report.md").read_text()
    assert read_card(out).validation["genres_left_out"] == ["Crime", "Other"]
