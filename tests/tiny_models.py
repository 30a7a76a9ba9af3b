"""Tiny trained-run folders for the convert / runtime / metadata tests (seconds, 32 px)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from conftest import make_poster

from posterlite.card import ModelCard, write_card
from posterlite.genres import DEFAULT_GENRES
from posterlite.manifest import ManifestRow, write_manifest

SIZE = 32
THRESHOLDS = [0.3, 0.4, 0.5, 0.5, 0.6, 0.45]


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
SAMPLE_COLUMNS = ("Action", "Drama", "Comedy", "Crime", "Romance", "Horror")


def write_sample(root: Path) -> Path:
    """A labelled set of 8 posters in the multi-hot layout (`labels.csv` + `Images/<Id>.jpg`)."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / "labels.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Id", "Genre", *SAMPLE_COLUMNS])
        for index, genres in enumerate(SAMPLE_LABELS):
            film = f"tt{index + 1:07d}"
            make_poster(root / "Images" / f"{film}.jpg", seed=index, size=(40, 60))
            writer.writerow([film, str(list(genres)), *(int(c in genres) for c in SAMPLE_COLUMNS)])
    return root


def make_posters(root: Path, count: int, seed: int = 0) -> list[ManifestRow]:
    """`count` random posters with random genres; odd ones in the val split."""
    rng = np.random.default_rng(seed)
    rows = []
    for index in range(count):
        path = make_poster(root / "posters" / f"p{index:03d}.jpg", seed * 1000 + index)
        genres = tuple(g for g in DEFAULT_GENRES if rng.random() < 0.4) or ("Other",)
        split = "val" if index % 2 else "train"
        rows.append(ManifestRow(str(path), genres, split, "test", f"tt{index:07d}"))
    return rows


def make_run(root: Path, name: str = "tiny", posters: int = 24) -> Path:
    """root/<name>/model.keras + card.json, trained for nothing (weights seeded), plus
    root/manifest.csv with train/val posters the card points at."""
    import keras

    rows = make_posters(root, posters)
    manifest = root / "manifest.csv"
    write_manifest(rows, manifest)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    # A wide bias spread keeps probabilities away from 0.5 so decisions are stable.
    outputs = keras.layers.Dense(
        len(DEFAULT_GENRES),
        activation="sigmoid",
        bias_initializer=keras.initializers.Constant(np.linspace(-2, 2, len(DEFAULT_GENRES))),
    )(x)
    model = keras.Model(inputs, outputs)
    run = root / name
    run.mkdir(parents=True, exist_ok=True)
    model.save(run / "model.keras")
    write_card(
        ModelCard(
            name=name,
            arch="cnn",
            genres=list(DEFAULT_GENRES),
            input_size=SIZE,
            thresholds=list(THRESHOLDS),
            version="7",
            manifest=str(manifest),
        ),
        run,
    )
    return run


def convert_tiny_run(root: Path) -> dict[str, Path]:
    """A tiny trained run converted to fp32 and int8 (gate off), calibrated on its posters."""
    from posterlite.convert import convert_model

    run = make_run(root)
    out = root / "out"
    convert_model(
        run, formats=("fp32", "int8"), out_dir=out, calibration=root / "posters", max_drop=1.0
    )
    return {"fp32": out / "tiny.fp32.tflite", "int8": out / "tiny.int8.tflite", "root": root}


def flat_poster(path: Path, grey: int, size: tuple[int, int] = (40, 60)) -> Path:
    """A poster of one grey level: any resize filter leaves its pixels unchanged."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (grey, grey, grey)).save(path)
    return path


BRIGHT_GREYS = (140, 170, 200, 230)


def make_brightness_run(root: Path, name: str = "bright") -> Path:
    """A run with a KNOWN int8 loss. Its Keras model scores the five named genres by mean
    brightness and `Other` by darkness; its check set (the card's val split) is four flat
    posters, grey 140 and 170 labelled `Other`, 200 and 230 labelled with the five named
    genres: Keras ranks every genre perfectly, mAP 1.0. Its calibration folder
    `root/black` holds black posters only, so an int8 twin calibrated there quantizes its
    input to [-1, 0] and sees every check poster (all brighter than 127.5) as the same
    input: one constant output, every genre's AP 2/4, mAP 0.5 -- a drop of exactly 0.5."""
    import keras

    rows = []
    for index, grey in enumerate(BRIGHT_GREYS):
        path = flat_poster(root / "check" / f"g{grey}.png", grey)
        genres = DEFAULT_GENRES[:-1] if index >= 2 else (DEFAULT_GENRES[-1],)
        rows.append(ManifestRow(str(path), tuple(genres), "val", "test", f"tt{index:07d}"))
    manifest = root / "manifest.csv"
    write_manifest(rows, manifest)
    for index in range(4):
        flat_poster(root / "black" / f"b{index}.png", 0)
    sign = np.array([1.0] * (len(DEFAULT_GENRES) - 1) + [-1.0], np.float32)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    outputs = keras.layers.Dense(
        len(DEFAULT_GENRES),
        activation="sigmoid",
        kernel_initializer=keras.initializers.Constant(np.tile(2.0 * sign, (3, 1))),
        bias_initializer=keras.initializers.Constant(-sign),
    )(x)
    run = root / name
    run.mkdir(parents=True, exist_ok=True)
    keras.Model(inputs, outputs).save(run / "model.keras")
    write_card(
        ModelCard(
            name=name,
            arch="cnn",
            genres=list(DEFAULT_GENRES),
            input_size=SIZE,
            thresholds=[0.5] * len(DEFAULT_GENRES),
            manifest=str(manifest),
        ),
        run,
    )
    return run


def session_tiny_run(tmp_path_factory) -> dict[str, Path]:  # noqa: ANN001 (pytest factory)
    """`convert_tiny_run` once per test session, shared by the modules that only read it
    (runtime, interpreter, quiet, api): each conversion imports TensorFlow and costs seconds."""
    root = tmp_path_factory.getbasetemp() / "tiny-session"
    if not (root / "out" / "tiny.int8.tflite").is_file():
        root.mkdir(exist_ok=True)
        convert_tiny_run(root)
    return {"fp32": root / "out" / "tiny.fp32.tflite", "int8": root / "out" / "tiny.int8.tflite",
            "root": root, "run": root / "tiny"}  # fmt: skip


# --- hostile associated files: the zip on the end of a model, built by hand ---------------
def without_files(model_bytes: bytes) -> bytes:
    """A metadata-carrying model without its zipped files (the flatbuffer alone)."""
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(model_bytes)) as archive:
        start = min(info.header_offset for info in archive.infolist())
    return model_bytes[:start]


def with_files(
    model_bytes: bytes, files: dict[str, bytes], compression: int | None = None
) -> bytes:
    """`model_bytes`' flatbuffer with `files` zipped onto its end, bytes as given (any
    encoding, any size), the way MetadataPopulator appends them (STORED by default)."""
    import io
    import zipfile

    stream = io.BytesIO(without_files(model_bytes))
    stream.seek(0, io.SEEK_END)
    method = zipfile.ZIP_STORED if compression is None else compression
    with zipfile.ZipFile(stream, "a", compression=method) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return stream.getvalue()


def deflate_bomb(name: str, mebibytes: int) -> bytes:
    """A valid zip with one deflated entry `name` that inflates to `mebibytes` MiB of zeros,
    at ~1 KB per MiB (2 GB -> 2 MB): one full-flushed block of 1 MiB of zeros repeated, so
    building it costs no compression time, only the CRC."""
    import struct
    import zlib

    chunk = bytes(1 << 20)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    data = block * mebibytes + zlib.compressobj(9, zlib.DEFLATED, -15).flush()
    crc = 0
    for _ in range(mebibytes):
        crc = zlib.crc32(chunk, crc)
    size = mebibytes << 20
    raw_name = name.encode()
    fields = struct.pack("<HHHHHIII", 20, 0, 8, 0, 0x21, crc, len(data), size)
    local = b"PK\x03\x04" + fields + struct.pack("<HH", len(raw_name), 0) + raw_name
    directory = (
        b"PK\x01\x02"
        + struct.pack("<H", 20)
        + fields
        + struct.pack("<HHHHHII", len(raw_name), 0, 0, 0, 0, 0, 0)
        + raw_name
    )
    end = b"PK\x05\x06" + struct.pack(
        "<HHHHIIH", 0, 0, 1, 1, len(directory), len(local) + len(data), 0
    )
    return local + data + directory + end
