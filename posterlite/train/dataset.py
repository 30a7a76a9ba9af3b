"""Training data and its caches: the manifest's splits keyed by poster content, the
content-keyed array store (decoded pixels, frozen-backbone features), cached activations at
a fine-tune cut (float16 memmaps), and the tf.data / PyDataset pipelines over them.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from posterlite.errors import PosterliteError
from posterlite.fileio import (
    atomic_path,
    sha256_file,
)
from posterlite.genres import GenreScheme, default_scheme
from posterlite.manifest import ManifestRow, manifest_sha256, read_manifest
from posterlite.preprocess import (
    PREPROCESS_VERSION,
    PosterDecodeError,
    load_poster,
    pixels_to_input,
)
from posterlite.train.config import FEATURE_BATCH, cache_root

if TYPE_CHECKING:  # imported lazily at run time (seconds): named here for the annotations
    import keras
    import tensorflow as tf
    from numpy.typing import ArrayLike


class FeatureCall(Protocol):
    """A feature extractor that is not a Keras model (tests): float32 images -> rows."""

    def __call__(self, inputs: np.ndarray, training: bool = False) -> ArrayLike:
        """(N, S, S, 3) float32 images in [-1, 1] -> (N, D) features."""


@dataclass
class Split:
    """The posters of one split: files, content keys and multi-hot labels, row-aligned."""

    paths: list[str]
    keys: list[str]  # sha256 of each poster file's bytes: the cache key
    labels: np.ndarray  # (n, genres) float32 multi-hot


@dataclass
class Dataset:
    """A manifest's splits, ready to train on (posters that cannot be decoded skipped)."""

    train: Split
    val: Split
    genres: tuple[str, ...]
    manifest: Path
    manifest_sha256: str
    skipped: dict[str, str] = field(default_factory=dict)  # path -> reason
    # Scored once per shipped model (`run.score_test`); never used to train, stop or select.
    test: Split | None = None


def load_dataset(manifest: Path, scheme: GenreScheme | None = None) -> Dataset:
    """Train/val(/test) splits of a manifest, each poster keyed by the sha256 of its bytes.

    Missing or unreadable files are skipped and listed (they cannot be trained on); a
    manifest without a train or val split is an error; the test split is optional.
    """
    scheme = scheme or default_scheme()
    rows = read_manifest(manifest)
    splits: dict[str, list[tuple[ManifestRow, str]]] = {"train": [], "val": [], "test": []}
    skipped: dict[str, str] = {}
    for row in rows:
        if row.split not in splits:
            continue
        try:
            key = sha256_file(Path(row.path))
        except OSError as exc:
            skipped[row.path] = f"unreadable ({exc.__class__.__name__})"
            continue
        splits[row.split].append((row, key))
    for name in ("train", "val"):
        if not splits[name]:
            raise PosterliteError(f"{manifest}: no readable posters in the {name!r} split")

    def to_split(members: list[tuple[ManifestRow, str]]) -> Split:
        labels = np.stack([scheme.to_multi_hot(row.genres) for row, _ in members])
        return Split([row.path for row, _ in members], [key for _, key in members], labels)

    return Dataset(
        train=to_split(splits["train"]),
        val=to_split(splits["val"]),
        genres=scheme.names,
        manifest=Path(manifest),
        manifest_sha256=manifest_sha256(manifest),
        skipped=skipped,
        test=to_split(splits["test"]) if splits["test"] else None,
    )


class ArrayStore:
    """A content-keyed array cache on disk: one row per key, in one .npz file.

    Rows are looked up by key (sha256 of a poster's bytes); only missing keys are computed,
    then the store is rewritten atomically. The file name carries everything else the rows
    depend on (input size, weights, preprocessing version), so a change there starts a
    new store instead of reusing stale rows.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._keys: list[str] = []
        self._rows: np.ndarray | None = None
        if self.path.is_file():
            try:
                with np.load(self.path, allow_pickle=False) as data:
                    self._keys = [str(k) for k in data["keys"]]
                    self._rows = data["rows"]
            except (OSError, ValueError, KeyError):
                self._keys, self._rows = [], None  # a corrupt cache is just recomputed
        self._index = {k: i for i, k in enumerate(self._keys)}
        self.hits = 0
        self.computed = 0

    def get(
        self,
        keys: Sequence[str],
        sources: Sequence[str],
        compute: Callable[[list[str]], np.ndarray],
        batch: int = FEATURE_BATCH,
        progress: str | None = None,
    ) -> np.ndarray:
        """Rows for `keys`; the missing ones come from `compute(paths)` in batches."""
        missing = [(k, s) for k, s in dict(zip(keys, sources, strict=True)).items()]
        missing = [(k, s) for k, s in missing if k not in self._index]
        self.hits = len(keys) - len(missing)
        self.computed = len(missing)
        if missing:
            from tqdm import tqdm

            chunks = []
            starts = range(0, len(missing), batch)
            for start in tqdm(starts, desc=progress, disable=progress is None, leave=False):
                chunks.append(compute([s for _, s in missing[start : start + batch]]))
            new_rows = np.concatenate(chunks)
            rows = new_rows if self._rows is None else np.concatenate([self._rows, new_rows])
            new_keys = self._keys + [k for k, _ in missing]
            self._save(new_keys, rows)
            self._keys, self._rows = new_keys, rows
            self._index = {k: i for i, k in enumerate(self._keys)}
        assert self._rows is not None
        return self._rows[[self._index[k] for k in keys]]

    def _save(self, keys: list[str], rows: np.ndarray) -> None:
        with atomic_path(self.path) as tmp:
            with tmp.open("wb") as handle:
                np.savez(handle, keys=np.array(keys), rows=rows)


def decode_batch(paths: Sequence[str], size: int) -> np.ndarray:
    """uint8 (n, size, size, 3) through the one preprocessing path."""
    try:
        return np.stack([load_poster(p, size) for p in paths])
    except PosterDecodeError as exc:
        raise PosterliteError(f"cannot train on {exc}") from exc


def cached_pixels(split: Split, size: int, cache: Path, progress: str | None = None) -> np.ndarray:
    """Decoded posters (uint8) at `size`, decoded once and cached by file content."""
    tag = hashlib.sha256(PREPROCESS_VERSION.encode()).hexdigest()[:12]
    store = ArrayStore(cache / "pixels" / f"{size}px-{tag}.npz")
    return store.get(
        split.keys, split.paths, lambda paths: decode_batch(paths, size), 256, progress
    )


def decoded_pixels(split: Split, size: int, cache: Path, progress: str | None = None) -> np.ndarray:
    """uint8 (n, size, size, 3) posters through `load_poster`, decoded ONCE, as a memmap.

    For end-to-end fine-tuning: epochs read rows from this file and never decode a JPEG.
    One .npy per (split content, size, PREPROCESS_VERSION) under `<cache>/decoded/`; written
    in batches straight into the memmap (RAM stays one batch), then renamed into place.
    """
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    key = hashlib.sha256(f"{size}|{PREPROCESS_VERSION}|".encode() + "\n".join(split.keys).encode())
    path = cache / "decoded" / f"{size}px-{len(split.keys)}-{key.hexdigest()[:20]}.npy"
    if path.is_file():
        try:
            rows: np.memmap = np.load(path, mmap_mode="r")
            if rows.shape == (len(split.keys), size, size, 3):
                return rows
        except (OSError, ValueError):
            pass  # a damaged file is rebuilt
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (len(split.keys), size, size, 3)
    with atomic_path(path) as tmp:
        out = np.lib.format.open_memmap(tmp, "w+", np.uint8, shape)
        # Pillow releases the GIL while decoding/resizing: two threads use both cores.
        with ThreadPoolExecutor(max_workers=2) as pool:
            starts = range(0, len(split.keys), 256)
            for start in tqdm(starts, desc=progress, disable=progress is None, leave=False):
                paths = split.paths[start : start + 256]
                out[start : start + len(paths)] = np.stack(
                    list(pool.map(lambda p: decode_batch([p], size)[0], paths))
                )
        out.flush()
        del out
    decoded: np.memmap = np.load(path, mmap_mode="r")
    return decoded


def weights_sha256(model: keras.Model) -> str:
    """sha256 over a model's weight arrays (covers weight files and random inits alike).
    Returns the hex digest."""
    digest = hashlib.sha256()
    for weight in model.weights:
        array = np.ascontiguousarray(weight.numpy())
        digest.update(f"{weight.path}:{array.shape}:{array.dtype}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def feature_store_path(cache: Path, arch: str, size: int, weights_sha: str) -> Path:
    """The feature store of one extractor: keyed by arch, size, weights and preprocessing."""
    key = hashlib.sha256(f"{arch}|{size}|{weights_sha}|{PREPROCESS_VERSION}".encode())
    return cache / "features" / f"{arch}-{size}px-{key.hexdigest()[:20]}.npz"


def cached_features(
    split: Split,
    extractor: keras.Model | FeatureCall,
    store_path: Path,
    size: int,
    progress: str | None = None,
) -> tuple[np.ndarray, ArrayStore]:
    """Frozen-extractor features per poster, computed once per (image bytes, weights).
    Returns (float32 (N, D) features in `split` order, the store with its hit counts)."""
    store = ArrayStore(store_path)

    def compute(paths: list[str]) -> np.ndarray:
        inputs = pixels_to_input(decode_batch(paths, size), "float32")
        if hasattr(extractor, "predict"):
            # predict() runs a compiled graph: measured 2x faster than an eager call, and
            # peak RSS 1.4 GB instead of 6.6 GB for MobileNetV2 at 224 px.
            return np.asarray(extractor.predict(inputs, batch_size=32, verbose=0), np.float32)
        return np.asarray(extractor(inputs, training=False), dtype=np.float32)

    return store.get(split.keys, split.paths, compute, FEATURE_BATCH, progress), store


def image_dataset(
    pixels: np.ndarray, labels: np.ndarray, batch: int, train: bool, seed: int
) -> tf.data.Dataset:
    """tf.data over the cached uint8 posters; float [-1, 1] is made per batch (RAM-lean).
    Returns batches of (images, labels), shuffled and mirrored at random when `train`."""
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices((pixels, labels))
    if train:
        data = data.shuffle(len(pixels), seed=seed, reshuffle_each_iteration=True)
    data = data.batch(batch)

    def prepare(x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        x = tf.cast(x, tf.float32) / 127.5 - 1.0
        if train:
            # Posters are not mirror-symmetric, but genre cues (colour, layout) mostly are.
            x = tf.image.random_flip_left_right(x, seed=seed)
        return x, y

    return data.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)


@dataclass
class Workspace:
    """Caches shared by the runs of one process (features stay in RAM across a grid)."""

    cache: Path = field(default_factory=cache_root)
    features: dict[str, tuple[np.ndarray, np.ndarray, dict[str, object]]] = field(
        default_factory=dict
    )
    datasets: dict[str, Dataset] = field(default_factory=dict)

    def dataset(self, manifest: Path) -> Dataset:
        """The data set of `manifest`, loaded once per process; raises PosterliteError
        for a manifest `load_dataset` refuses."""
        key = str(Path(manifest).resolve())
        if key not in self.datasets:
            self.datasets[key] = load_dataset(manifest)
        return self.datasets[key]


def activation_store_path(
    cache: Path,
    arch: str,
    size: int,
    weights_sha: str,
    cut: str,
    keys: Sequence[str],
    flipped: bool = False,
) -> Path:
    """One .npy per (data set, cut): keyed by image shas, weights, size, preprocessing, cut
    (and mirroring)."""
    mirror = "|flip" if flipped else ""
    config = hashlib.sha256(
        f"{arch}|{size}|{weights_sha}|{PREPROCESS_VERSION}|{cut}{mirror}".encode()
    )
    content = hashlib.sha256("\n".join(keys).encode())
    tag = "-flip" if flipped else ""
    name = f"{arch}-{size}px-{cut}{tag}-{config.hexdigest()[:16]}-{content.hexdigest()[:16]}.npy"
    return cache / "activations" / name


def cached_activations(
    split: Split,
    extractor: keras.Model,
    path: Path,
    size: int,
    progress: str | None = None,
    flipped: bool = False,
) -> tuple[np.memmap, bool]:
    """float16 activations at the cut, one row per poster, as a read-only memmap.

    Computed once in batches straight into a memmap (RAM stays one batch), then renamed
    into place; (array, computed_now).
    """
    if path.is_file():
        try:
            rows = np.load(path, mmap_mode="r")
            if rows.shape[0] == len(split.keys):
                return rows, False
        except (OSError, ValueError):
            pass  # a damaged file is recomputed
    from tqdm import tqdm

    shape = tuple(int(d) for d in extractor.output.shape[1:])
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        out = np.lib.format.open_memmap(tmp, "w+", np.float16, (len(split.keys), *shape))
        starts = range(0, len(split.keys), FEATURE_BATCH)
        for start in tqdm(starts, desc=progress, disable=progress is None, leave=False):
            paths = split.paths[start : start + FEATURE_BATCH]
            inputs = pixels_to_input(decode_batch(paths, size), "float32")
            if flipped:
                inputs = np.ascontiguousarray(inputs[:, :, ::-1])  # mirrored left-right
            out[start : start + len(paths)] = extractor.predict(inputs, batch_size=32, verbose=0)
        out.flush()
        del out
    return np.load(path, mmap_mode="r"), True


def activation_batches(
    rows: np.ndarray,
    labels: np.ndarray,
    batch: int,
    shuffle: bool,
    seed: int,
    flipped: np.ndarray | None = None,
) -> keras.utils.PyDataset:
    """A Keras PyDataset over memmapped float16 rows: float32 batches, reshuffled per epoch.

    With `flipped` (the mirrored posters' rows), each poster is drawn mirrored or not at
    random (p = 0.5) in each epoch: flip augmentation at the cost of one epoch.
    Returns the PyDataset ((x, labels) batches).
    """
    import keras

    class Batches(keras.utils.PyDataset):  # type: ignore[misc]  # Keras is untyped
        def __init__(self) -> None:
            super().__init__()
            self.rng = np.random.default_rng(seed)
            self.order = np.arange(len(rows))
            self.on_epoch_end()

        def __len__(self) -> int:
            return math.ceil(len(rows) / batch)

        def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
            index = np.sort(self.order[i * batch : (i + 1) * batch])  # sorted: sequential reads
            x = np.asarray(rows[index], np.float32)
            if flipped is not None:
                mirror = self.mirror[index]
                x[mirror] = flipped[index[mirror]]
            return x, labels[index]

        def on_epoch_end(self) -> None:
            if shuffle:
                self.rng.shuffle(self.order)
            self.mirror = self.rng.random(len(rows)) < 0.5

    return Batches()


EVAL_BATCH = 64


def predict_pixels(model: keras.Model, pixels: np.ndarray, size: int | None = None) -> np.ndarray:
    """Probabilities for uint8 posters (memmap ok); resized (bilinear, no antialias) if the
    model runs at another size than the cache. Returns (N, G) float64."""
    import tensorflow as tf

    cache = pixels.shape[1:]

    def load(i: tf.Tensor) -> tf.Tensor:
        row = tf.numpy_function(lambda j: np.asarray(pixels[int(j)]), [i], tf.uint8)
        x = tf.cast(tf.ensure_shape(row, cache), tf.float32)
        if size is not None and size != cache[0]:
            x = tf.image.resize(x[None], (size, size), "bilinear", antialias=False)[0]
        return x / 127.5 - 1.0

    data = tf.data.Dataset.range(len(pixels)).map(load, num_parallel_calls=tf.data.AUTOTUNE)
    data = data.batch(EVAL_BATCH).prefetch(2)
    return np.asarray(model.predict(data, verbose=0), dtype=np.float64)
