"""Where ImageNet backbone weights come from: the names, folders and files `backbones`
looks in, and Keras' own download.

Views of the architecture registry (`posterlite.archs`, where the facts live): the backbone
names, feature widths, Google's preferred `.tflite` files and Keras' no-top URLs. Then the
places: `$POSTERLITE_PRETRAINED` / `../shared/pretrained` for Google's files, the import
cache (`$POSTERLITE_CACHE/backbones`), Keras' own cache (`$KERAS_HOME/models`) and the
download into it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from posterlite.archs import BACKBONE_NAMES, BackboneName, backbone_spec
from posterlite.fileio import atomic_path

# Views of the architecture registry (`posterlite.archs`), where these facts live.
ARCHS: tuple[str, ...] = BACKBONE_NAMES
FEATURE_DIMS: dict[str, int | None] = {
    name: backbone_spec(name).feature_dim for name in BACKBONE_NAMES
}
WEIGHTS_SUFFIX = ".weights.h5"
ENV_WEIGHTS = "POSTERLITE_BACKBONE_WEIGHTS"
ENV_PRETRAINED = "POSTERLITE_PRETRAINED"
ENV_CACHE = "POSTERLITE_CACHE"
# The files of ../shared/pretrained, in order of preference per architecture.
PREFERRED_TFLITE: dict[str, tuple[str, ...]] = {
    name: backbone_spec(name).pretrained_files for name in BACKBONE_NAMES
}
# Keras' own ImageNet files (need internet), as keras.applications names them.
KERAS_NOTOP_URLS: dict[str, str] = {
    name: str(backbone_spec(name).keras_notop_url) for name in BACKBONE_NAMES
}
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
KERAS_DOWNLOAD_TIMEOUT = 60.0  # seconds without a byte before the download gives up

Arch = BackboneName


def check_arch(arch: str) -> Arch:
    """`arch` as a backbone name; raises PosterliteError unless it is one (`archs`)."""
    return backbone_spec(arch).name  # type: ignore[return-value]  # raises for a non-backbone


def cache_dir() -> Path:
    """Where imported weights are cached: `$POSTERLITE_CACHE/backbones`, else
    `~/.cache/posterlite/backbones` (not created here)."""
    root = os.environ.get(ENV_CACHE)
    if root:
        return Path(root).expanduser() / "backbones"
    return Path.home() / ".cache" / "posterlite" / "backbones"


def pretrained_dirs() -> list[Path]:
    """Where to look for Google's .tflite MobileNets, in order."""
    dirs: list[Path] = []
    env = os.environ.get(ENV_PRETRAINED)
    if env:
        dirs.append(Path(env).expanduser())
    dirs.append(Path.cwd().parent / "shared" / "pretrained")
    repo_root = Path(__file__).resolve().parent.parent
    dirs.append(repo_root.parent / "shared" / "pretrained")
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique


def find_pretrained_tflite(arch: str, dirs: Sequence[Path] | None = None) -> Path | None:
    """Google's `.tflite` for `arch` in `dirs` (default `pretrained_dirs()`): a preferred
    file first, else the first match of the family's glob; None when there is none. Raises
    PosterliteError for an unknown backbone."""
    arch = check_arch(arch)
    for folder in dirs if dirs is not None else pretrained_dirs():
        if not folder.is_dir():
            continue
        for name in PREFERRED_TFLITE[arch]:
            if (folder / name).is_file():
                return folder / name
        matches = sorted(folder.glob(str(backbone_spec(arch).pretrained_glob)))
        if matches:
            return matches[0]
    return None


def keras_file_path(arch: str) -> Path:
    """Where Keras keeps its ImageNet no-top file: $KERAS_HOME/models, else ~/.keras/models."""
    keras_home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    return keras_home / "models" / KERAS_NOTOP_URLS[arch].rsplit("/", 1)[1]


def keras_cached_file(arch: str) -> Path | None:
    """Keras' ImageNet no-top file if a previous download left it in ~/.keras/models."""
    path = keras_file_path(arch)
    return path if path.is_file() else None


def keras_download(arch: str, timeout: float = KERAS_DOWNLOAD_TIMEOUT) -> Path:
    """Keras' own ImageNet weights (the file weights="imagenet" fetches) into Keras' cache,
    written whole or not at all. Fetched with urllib rather than `keras.utils.get_file`,
    which turns every failure into a bare `Exception`: here offline, refused, timed-out and
    HTTP-error downloads raise `OSError` (`URLError`, `HTTPError`, `TimeoutError`), a broken
    response `http.client.HTTPException`, and a body that is not HDF5 (a proxy's error page)
    `ValueError`."""
    import urllib.request

    from tqdm import tqdm

    url = KERAS_NOTOP_URLS[arch]
    target = keras_file_path(arch)
    with urllib.request.urlopen(url, timeout=timeout) as response, atomic_path(target) as tmp:
        size = int(response.headers.get("Content-Length") or 0) or None
        with (
            open(tmp, "wb") as handle,
            tqdm(total=size, unit="B", unit_scale=True, desc=target.name, disable=None) as bar,
        ):
            while chunk := response.read(1 << 20):
                handle.write(chunk)
                bar.update(len(chunk))
        with open(tmp, "rb") as handle:
            if handle.read(len(_HDF5_MAGIC)) != _HDF5_MAGIC:
                raise ValueError(f"{url} did not send an HDF5 file")
    return target
