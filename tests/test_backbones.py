"""posterlite.backbones: TFLite MobileNet import, weight resolution and the CLI command.

Fast tests build tiny int8 TFLite models with the TFLite converter; `shared` tests import
Google's real MobileNets from ../shared/pretrained and compare them on real posters.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import LocalServer, QuietHandler

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from posterlite import backbones  # noqa: E402
from posterlite.backbones import sources as backbone_sources  # noqa: E402
from posterlite.backbones import weights as backbone_weights  # noqa: E402
from posterlite.cli import main  # noqa: E402
from posterlite.errors import PosterliteError  # noqa: E402

SMALL = 32  # input side of the synthetic MobileNet: weights do not depend on it


@pytest.fixture(scope="module", autouse=True)
def _few_threads() -> None:
    # 2 cores shared by several people: keep TF to one thread when it is not yet running.
    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass


def _convert_int8(model, size: int, per_channel: bool = True, uint8_input: bool = True) -> bytes:
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]

    def representative():
        rng = np.random.default_rng(0)
        for _ in range(4):
            yield [rng.uniform(-1, 1, (1, size, size, 3)).astype(np.float32)]

    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if uint8_input:
        converter.inference_input_type = tf.uint8
    if not per_channel:
        converter._experimental_disable_per_channel = True  # per-tensor weight scales
    return converter.convert()


def _tiny_net():
    """conv 3x3/2 + bias, depthwise 3x3 + bias, pointwise 1x1 + bias (no BN to fold)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu6")(inputs)
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu6")(x)
    x = keras.layers.Conv2D(4, 1)(x)
    model = keras.Model(inputs, x)
    for layer in model.layers:
        if hasattr(layer, "bias") and layer.bias is not None:
            layer.bias.assign(np.linspace(-0.5, 0.5, layer.bias.shape[0]).astype(np.float32))
    return model


def _random_mobilenet_v1():
    """Keras MobileNetV1 with random weights and non-trivial, data-derived BN statistics."""
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNet(
        input_shape=(SMALL, SMALL, 3), include_top=False, weights=None, pooling="avg"
    )
    rng = np.random.default_rng(1)
    norms = [x for x in model.layers if isinstance(x, keras.layers.BatchNormalization)]
    for layer in norms:
        n = layer.gamma.shape[0]
        layer.gamma.assign(rng.uniform(0.5, 1.5, n))
        layer.beta.assign(rng.normal(0, 0.3, n))
        layer.momentum = 0.0
    # Moving statistics from one batch in training mode (momentum 0 keeps exactly the batch
    # statistics): with them every layer sees normalised inputs, so the random net's
    # features depend on the image instead of collapsing to a constant.
    model(backbones.synthetic_pixels(16, SMALL, seed=9) / 127.5 - 1, training=True)
    return model


@pytest.fixture(scope="module")
def random_v1(tmp_path_factory) -> tuple[object, Path, Path]:
    """(Keras model, float32 TFLite of it, int8 TFLite of it)."""
    model = _random_mobilenet_v1()
    folder = tmp_path_factory.mktemp("tflite")
    float_path = folder / "float" / "mobilenet_v1_random.tflite"
    float_path.parent.mkdir()
    float_path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    int8_path = folder / "mobilenet_v1_random.tflite"
    int8_path.write_bytes(_convert_int8(model, SMALL))
    return model, float_path, int8_path


@pytest.fixture(scope="module")
def random_v1_tflite(random_v1) -> Path:
    return random_v1[2]


# --- dequantization --------------------------------------------------------------------
@pytest.mark.parametrize("per_channel", [True, False])
def test_dequantized_weights_match_keras(tmp_path: Path, per_channel: bool) -> None:
    model = _tiny_net()
    path = tmp_path / "tiny.tflite"
    path.write_bytes(_convert_int8(model, 16, per_channel=per_channel))
    info = backbones.read_tflite(path)
    assert [x.op for x in info.layers] == ["CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D"]
    assert [x.stride for x in info.layers] == [2, 1, 1]
    assert info.layers[0].activation == "RELU6" and info.layers[2].activation == "NONE"
    assert info.input_dtype == "uint8"
    kinds = {x.quantization for x in info.layers}
    assert kinds == {"per-channel" if per_channel else "per-tensor"}
    conv, depthwise, pointwise = (layer for layer in model.layers[1:])
    expected = [
        np.transpose(conv.kernel.numpy(), (3, 0, 1, 2)),  # Keras [H,W,I,O] -> [O,H,W,I]
        depthwise.kernel.numpy().reshape(1, 3, 3, 8),  # [H,W,C,1] -> [1,H,W,C]
        np.transpose(pointwise.kernel.numpy(), (3, 0, 1, 2)),
    ]
    for tfl, want, keras_layer in zip(
        info.layers, expected, (conv, depthwise, pointwise), strict=True
    ):
        # Symmetric int8: error at most half a step; the step is max|w| / 127 per channel
        # (per-tensor: over the whole tensor).
        axis = 3 if tfl.op == "DEPTHWISE_CONV_2D" else 0
        reduce = tuple(i for i in range(want.ndim) if i != axis)
        step = (
            np.abs(want).max(axis=reduce, keepdims=True) / 127
            if per_channel
            else np.abs(want).max() / 127
        )
        assert np.all(np.abs(tfl.kernel - want) <= step / 2 + 1e-6)
        # int32 bias dequantized with its own scale (input scale x weight scale): tiny error
        np.testing.assert_allclose(tfl.bias, keras_layer.bias.numpy(), atol=1e-3)


def test_import_float_mobilenet_v1_is_exact(random_v1, tmp_path: Path) -> None:
    """Float TFLite (BN folded by the converter): the mapping itself must be exact, so the
    imported Keras model reproduces the original Keras model and the TFLite model."""
    original, float_path, _ = random_v1
    out = tmp_path / "v1f.weights.h5"
    record = backbones.import_tflite_backbone(float_path, "mobilenet_v1", out, verify_count=0)
    assert record.quantization == {"float": 27} and record.tflite_input["dtype"] == "float32"
    model = backbones.build_backbone("mobilenet_v1", SMALL, out)
    pixels = backbones.synthetic_pixels(6, SMALL, seed=3)
    figures, arrays = backbones.compare_with_tflite(float_path, model, None, pixels, "t")
    want = np.asarray(original(pixels / 127.5 - 1, training=False))
    np.testing.assert_allclose(arrays["keras_pooled"], want, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(arrays["tflite_pooled"], want, rtol=1e-3, atol=1e-3)
    assert figures.feature_cosine_min > 0.99999
    # Features differ per image (the test would be vacuous otherwise).
    assert float(np.abs(want - want.mean(0)).max()) > 0.1

    # Frozen backbone: BN runs on moving statistics even when called with training=True.
    model.trainable = False
    x = np.asarray(pixels / 127.5 - 1, np.float32)
    np.testing.assert_allclose(model(x, training=True), model(x, training=False), atol=1e-6)


def test_import_int8_mobilenet_v1(random_v1_tflite: Path, tmp_path: Path) -> None:
    out = tmp_path / "v1.weights.h5"
    record = backbones.import_tflite_backbone(random_v1_tflite, "mobilenet_v1", out, verify_count=4)
    assert out.is_file() and backbones.record_path(out).is_file()
    saved = json.loads(backbones.record_path(out).read_text())
    assert saved["source_sha256"] == record.source_sha256 and saved["arch"] == "mobilenet_v1"
    assert saved["quantization"] == {"per-channel": 27} and saved["input_size"] == SMALL
    assert saved["tflite_input"]["dtype"] == "uint8" and saved["classifier_file"] is None
    # A random 27-layer net quantizes far worse than Google's trained ones (those reach
    # >= 0.99, see the shared tests): this only guards against a broken mapping (~0).
    assert record.verification["feature_cosine_mean"] >= 0.75


# --- error lines -----------------------------------------------------------------------
def test_not_a_tflite_file(tmp_path: Path) -> None:
    bad = tmp_path / "poster.tflite"
    bad.write_text("not a model\n")
    with pytest.raises(PosterliteError, match="not a TFLite model"):
        backbones.import_tflite_backbone(bad, "mobilenet_v1", tmp_path / "x.weights.h5")
    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(b"\x10\x00\x00\x00TFL3" + b"\xff" * 64)
    with pytest.raises(PosterliteError, match="not a readable TFLite model"):
        backbones.read_tflite(garbage)
    assert not (tmp_path / "x.weights.h5").exists()


def test_wrong_architecture_names_the_layer(random_v1_tflite: Path, tmp_path: Path) -> None:
    out = tmp_path / "v2.weights.h5"
    with pytest.raises(PosterliteError) as caught:
        backbones.import_tflite_backbone(random_v1_tflite, "mobilenet_v2", out)
    message = str(caught.value)
    assert "\n" not in message
    assert (
        "conv 2" in message and "expanded_conv_project" in message and "(64, 1, 1, 32)" in message
    )
    assert not out.exists()


def test_tiny_net_does_not_fit_mobilenet(tmp_path: Path) -> None:
    path = tmp_path / "tiny.tflite"
    path.write_bytes(_convert_int8(_tiny_net(), 16))
    with pytest.raises(
        PosterliteError, match=r"conv 0 .* Keras layer conv1 expects \(32, 3, 3, 3\)"
    ):
        backbones.import_tflite_backbone(path, "mobilenet_v1", tmp_path / "x.weights.h5")


def test_cli_bad_file_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "model.tflite"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32)
    result = CliRunner().invoke(
        main,
        [
            "backbone",
            "import",
            str(bad),
            "--arch",
            "mobilenet_v2",
            "--out",
            str(tmp_path / "o.weights.h5"),
        ],
    )
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "not a TFLite model" in lines[0]


def test_cli_import_writes_weights_and_record(random_v1_tflite: Path, tmp_path: Path) -> None:
    out = tmp_path / "w" / "v1.weights.h5"
    result = CliRunner().invoke(
        main,
        [
            "backbone",
            "import",
            str(random_v1_tflite),
            "--arch",
            "mobilenet_v1",
            "--out",
            str(out),
            "--verify-count",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    assert out.is_file() and backbones.record_path(out).is_file()
    assert "feature_cosine_mean" in result.output


# --- resolving weights -----------------------------------------------------------------
class _WeightsServer(LocalServer):
    """Stands in for Keras' weight storage: serves the files in `files` (path -> bytes),
    404 for anything else."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.hits: list[str] = []
        server = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                server.hits.append(self.path)
                body = server.files.get(self.path)
                if body is None:
                    self.send(404, b"not found")
                else:
                    self.send(200, body)

        super().__init__(Handler)


@pytest.fixture(scope="module")
def weights_server() -> Iterator[_WeightsServer]:
    server = _WeightsServer()
    yield server
    server.close()


def _refused_url() -> str:
    """A 127.0.0.1 port nothing listens on: the connection is refused, as offline."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, weights_server) -> Path:
    """No env, no pretrained folder, a private Keras home and cache, and Keras' weight URLs
    pointing at the local server (each arch's file is served only once a test adds it)."""
    for name in (backbones.ENV_WEIGHTS, backbones.ENV_PRETRAINED):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(backbones.ENV_CACHE, str(tmp_path / "cache"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    monkeypatch.setattr(backbone_sources, "pretrained_dirs", lambda: [empty])
    weights_server.files.clear()
    weights_server.hits.clear()
    for arch, url in list(backbones.KERAS_NOTOP_URLS.items()):
        name = url.rsplit("/", 1)[1]
        monkeypatch.setitem(backbones.KERAS_NOTOP_URLS, arch, f"{weights_server.url}/{name}")
    return tmp_path


@pytest.mark.parametrize("failure", ["refused", "404", "error_page"])
def test_resolve_without_any_source_names_three_ways(
    isolated: Path, weights_server, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    url = backbones.KERAS_NOTOP_URLS["mobilenet_v2"]
    name = url.rsplit("/", 1)[1]
    if failure == "refused":
        monkeypatch.setitem(backbones.KERAS_NOTOP_URLS, "mobilenet_v2", f"{_refused_url()}/{name}")
    elif failure == "error_page":  # a proxy's page served as 200 is not weights
        weights_server.files[f"/{name}"] = b"<html><body>Service unavailable</body></html>"
    with pytest.raises(PosterliteError) as caught:
        backbones.resolve_backbone_weights("mobilenet_v2")
    message = str(caught.value)
    assert "\n" not in message
    assert "--backbone-weights" in message
    assert "POSTERLITE_PRETRAINED" in message and "../shared/pretrained" in message
    assert "internet" in message and "Keras" in message
    if failure != "refused":
        assert weights_server.hits == [f"/{name}"]  # it did try the download
    keras_models = isolated / "keras" / "models"
    assert not keras_models.exists() or not list(keras_models.iterdir())  # nothing half-kept


def test_resolve_keras_download_returns_none(
    isolated: Path, weights_server, random_v1: tuple
) -> None:
    """Keras' file downloaded over HTTP into Keras' cache; build_backbone then loads it."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    source = random_v1[0]
    served = isolated / "served.h5"
    with h5py.File(served, "w") as handle:  # the legacy layout of Keras' ImageNet files
        legacy_h5_format.save_weights_to_hdf5_group(handle, source)
    name = backbones.KERAS_NOTOP_URLS["mobilenet_v1"].rsplit("/", 1)[1]
    weights_server.files[f"/{name}"] = served.read_bytes()

    assert backbones.resolve_backbone_weights("mobilenet_v1") is None
    cached = isolated / "keras" / "models" / name
    assert cached.read_bytes() == served.read_bytes()
    model = backbones.build_backbone("mobilenet_v1", SMALL, None)
    for loaded, original in zip(model.weights, source.weights, strict=True):
        np.testing.assert_array_equal(loaded.numpy(), original.numpy())


def test_resolve_imports_once_and_reuses_cache(
    isolated: Path, random_v1_tflite: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pretrained = isolated / "pretrained"
    pretrained.mkdir()
    (pretrained / random_v1_tflite.name).write_bytes(random_v1_tflite.read_bytes())
    monkeypatch.setenv(backbones.ENV_PRETRAINED, str(pretrained))
    monkeypatch.setattr(backbone_sources, "pretrained_dirs", lambda: [pretrained])
    calls: list[Path] = []
    real_import = backbones.import_tflite_backbone

    def counting(source, arch, out, **kwargs):
        calls.append(Path(source))
        return real_import(source, arch, out, verify_count=1)

    monkeypatch.setattr(backbone_weights, "import_tflite_backbone", counting)
    first = backbones.resolve_backbone_weights("mobilenet_v1")
    second = backbones.resolve_backbone_weights("mobilenet_v1")
    assert first == second and first is not None and first.is_file()
    assert first.parent == isolated / "cache" / "backbones"
    assert len(calls) == 1
    # explicit .tflite goes through the same cache; explicit .weights.h5 is used as is
    assert (
        backbones.resolve_backbone_weights("mobilenet_v1", pretrained / random_v1_tflite.name)
        == first
    )
    assert backbones.resolve_backbone_weights("mobilenet_v1", first) == first
    assert len(calls) == 1
    monkeypatch.setenv(backbones.ENV_WEIGHTS, str(first))
    assert backbones.resolve_backbone_weights("mobilenet_v1") == first


def test_resolve_explicit_missing_or_wrong_kind(isolated: Path) -> None:
    with pytest.raises(PosterliteError, match="--backbone-weights not found"):
        backbones.resolve_backbone_weights("mobilenet_v1", isolated / "nope.weights.h5")
    other = isolated / "weights.bin"
    other.write_bytes(b"x")
    with pytest.raises(PosterliteError, match="expected a .weights.h5 or a .tflite"):
        backbones.resolve_backbone_weights("mobilenet_v1", other)
    with pytest.raises(PosterliteError, match="unknown backbone"):
        backbones.resolve_backbone_weights("resnet50")


def test_build_backbone_shapes_and_bad_weights(tmp_path: Path) -> None:
    model = backbones.build_backbone("mobilenet_v2", SMALL, None)
    assert model.output_shape == (None, 1280)
    bad = tmp_path / "bad.weights.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(PosterliteError, match="does not fit mobilenet_v1"):
        backbones.build_backbone("mobilenet_v1", SMALL, bad)


# --- Google's real MobileNets (../shared) -----------------------------------------------
REAL = [
    ("mobilenet_v2", "tf2_mobilenet_v2_1.0_224_ptq.tflite"),
    ("mobilenet_v2", "mobilenet_v2_1.0_224_quant.tflite"),
    ("mobilenet_v1", "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"),
]


@pytest.fixture(scope="module")
def posters20(shared_dir: Path) -> np.ndarray:
    return backbones.poster_pixels(shared_dir / "data" / "imdb-7k" / "Images", 20)


@pytest.mark.shared
@pytest.mark.parametrize(("arch", "name"), REAL)
def test_real_pretrained_agrees_with_tflite(
    pretrained_dir: Path, posters20: np.ndarray, tmp_path: Path, arch: str, name: str
) -> None:
    out = tmp_path / f"{arch}.weights.h5"
    record = backbones.import_tflite_backbone(
        pretrained_dir / name, arch, out, verify_pixels=posters20, verify_source="20 posters"
    )
    figures = record.verification
    assert figures["feature_cosine_mean"] >= 0.98
    if arch == "mobilenet_v2":
        assert record.classifier_file is not None
        assert figures["top1_agreement"] >= 0.9
        assert figures["top5_overlap_mean"] >= 4.0
        classifier = backbones.load_classifier(out)
        assert classifier is not None and classifier.kernel.shape == (1280, 1001)
    # the written file loads into the API's backbone and gives the same features
    model = backbones.build_backbone(arch, 224, out)
    assert model.output_shape == (None, backbones.FEATURE_DIMS[arch])
