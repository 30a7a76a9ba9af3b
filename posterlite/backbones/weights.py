"""Which ImageNet weights training starts from (`resolve_backbone_weights`): an explicit
file, the environment, Google's `.tflite` imported once into a cache, or Keras' download.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
from pathlib import Path

from posterlite.backbones.importer import import_tflite_backbone, record_path
from posterlite.backbones.sources import (
    ENV_PRETRAINED,
    ENV_WEIGHTS,
    WEIGHTS_SUFFIX,
    cache_dir,
    check_arch,
    find_pretrained_tflite,
    keras_download,
)
from posterlite.errors import PosterliteError
from posterlite.fileio import sha256_file

log = logging.getLogger(__name__)


def cached_import(source: Path, arch: str) -> Path:
    """Import `source` once; later calls with the same file content reuse the cache
    (keyed by the source's sha256, so a replaced file is re-imported). Returns the cached
    `.weights.h5`; raises PosterliteError as `import_tflite_backbone` does."""
    digest = sha256_file(source)
    target = cache_dir() / f"{arch}-{digest[:16]}{WEIGHTS_SUFFIX}"
    record = record_path(target)
    if target.is_file() and record.is_file():
        try:
            if json.loads(record.read_text()).get("source_sha256") == digest:
                log.info("reusing imported %s weights %s", arch, target)
                return target
        except (OSError, ValueError):
            pass  # unreadable record: import again
    log.info("importing %s from %s into %s", arch, source, target)
    import_tflite_backbone(source, arch, target)
    return target


def _explicit_weights(arch: str, path: Path, what: str) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise PosterliteError(f"{what} not found: {path}")
    if path.name.endswith(".tflite"):
        return cached_import(path, arch)
    if path.name.endswith(".h5"):
        return path
    raise PosterliteError(f"{what} {path}: expected a .weights.h5 or a .tflite file")


def resolve_backbone_weights(arch: str, explicit: Path | None = None) -> Path | None:
    """Which ImageNet weights to train with. Order:

    1. `explicit` (`--backbone-weights`): a `.weights.h5`, or a `.tflite` (imported, cached);
    2. env `POSTERLITE_BACKBONE_WEIGHTS` (same);
    3. a matching `.tflite` in `$POSTERLITE_PRETRAINED`, `../shared/pretrained` (from the
       CWD) or `<repo>/../shared/pretrained`, imported once, cached by sha256 under
       `$POSTERLITE_CACHE/backbones` or `~/.cache/posterlite/backbones`;
    4. Keras' own download: returns None ("use Keras' ImageNet file") only if it succeeded;
    5. else PosterliteError naming the three ways to get weights.
    Returns a weights file, or None for Keras' own downloaded file.
    """
    arch = check_arch(arch)
    if explicit is not None:
        return _explicit_weights(arch, explicit, "--backbone-weights")
    env = os.environ.get(ENV_WEIGHTS)
    if env:
        return _explicit_weights(arch, Path(env), ENV_WEIGHTS)
    tflite = find_pretrained_tflite(arch)
    if tflite is not None:
        return cached_import(tflite, arch)
    try:
        keras_download(arch)
        return None
    except (OSError, http.client.HTTPException, ValueError) as exc:  # see keras_download
        log.info("Keras ImageNet download failed: %s", exc)
    raise PosterliteError(
        f"no ImageNet weights for {arch}: pass --backbone-weights FILE (.weights.h5 or "
        f".tflite) or set {ENV_WEIGHTS}, put Google's MobileNet .tflite in "
        f"${ENV_PRETRAINED} or ../shared/pretrained, or run once with internet so Keras "
        f"can download its own"
    )
