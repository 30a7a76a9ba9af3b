"""The bench's conversion cache: formats a trained run lacks, converted once into
`.cache/bench/<name>-<sha12 of model.keras>/` with `posterlite.convert` (metadata, sidecar,
self-check), so a retrained model gets a fresh folder and a rerun converts nothing."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from posterlite.bench.labelled import LabelledSet
from posterlite.errors import PosterliteError
from posterlite.fileio import sha256_file
from posterlite.formats import format_spec
from posterlite.preprocess import DEFAULT_SIZE

if TYPE_CHECKING:
    from posterlite.convert import EvalSet

# (keras_path, out_dir, name, formats, posters) -> writes `<out>/<name>.<fmt>.tflite`
Converter = Callable[[Path, Path, str, Sequence[str], "LabelledSet | None"], None]


def convert_to_cache(
    keras_path: Path,
    name: str,
    formats: Sequence[str],
    cache_dir: Path,
    posters: LabelledSet | None = None,
    *,
    convert: Converter | None = None,
) -> dict[str, Path]:
    """`<cache>/<name>-<sha12>/<name>.<fmt>.tflite` for each format, converting what is
    missing. Raises PosterliteError when the conversion does not produce every file."""
    out = Path(cache_dir) / f"{name}-{sha256_file(keras_path)[:12]}"
    result = {fmt: out / format_spec(fmt).file_name(name) for fmt in formats}
    todo = [fmt for fmt, path in result.items() if not path.is_file()]
    if todo:
        import click

        click.echo(f"converting {name} to {', '.join(todo)} (once, into {out})", err=True)
        (convert or convert_keras)(keras_path, out, name, todo, posters)
    missing = [str(p) for p in result.values() if not p.is_file()]
    if missing:
        raise PosterliteError(f"conversion did not produce {', '.join(missing)}")
    return result


def _eval_set(keras_path: Path, posters: LabelledSet | None) -> EvalSet | None:
    """The labelled set as `convert`'s check set (decoded once), or None to let it choose."""
    if posters is None:
        return None
    from posterlite.card import read_card
    from posterlite.convert import EvalSet, decode_posters

    card = read_card(keras_path)
    pixels, kept = decode_posters(list(posters.paths), card.input_size)
    if not kept:
        return None
    labels = posters.targets(card.genres)[kept]
    paths = tuple(str(posters.paths[i]) for i in kept)
    return EvalSet(pixels, labels, paths, f"{posters.root} (bench labelled set)")


def convert_keras(
    keras_path: Path,
    out: Path,
    name: str,
    formats: Sequence[str],
    posters: LabelledSet | None,
) -> None:
    """Convert with `posterlite.convert.convert_model` (metadata, sidecar, self-check).

    Bench reports accuracy itself, so the converter's accuracy gate is off here
    (`max_drop=inf`). int8 calibrates on what `convert` finds (calibration/ or the card's
    train split); only when it finds nothing are the bench posters used, with a warning,
    since calibrating on the evaluation set flatters int8 a little. Raises the converter's
    PosterliteError otherwise.
    """
    from posterlite.convert import convert_model, load_calibration

    eval_set = _eval_set(keras_path, posters)
    try:
        convert_model(keras_path, formats=list(formats), out_dir=out, eval_set=eval_set,
                      max_drop=math.inf)  # fmt: skip
    except PosterliteError as exc:
        if "calibration" not in str(exc) or posters is None:
            raise
        import click

        click.echo(f"warning: {exc}; calibrating {name} int8 on the bench posters", err=True)
        size = int(eval_set.pixels.shape[1]) if eval_set is not None else DEFAULT_SIZE
        convert_model(
            keras_path,
            formats=list(formats),
            out_dir=out,
            eval_set=eval_set,
            max_drop=math.inf,
            calibration_inputs=load_calibration(list(posters.paths), size),
        )
