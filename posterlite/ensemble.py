"""Ensembles of trained posterlite models as ONE Keras model: the same poster goes to every
member, the members' sigmoid scores are averaged.

This module owns the ensemble folder's recipe (`ensemble.json`: the member folders and the
sha256 of each member's `model.keras`) and building the Keras graph from it:

- the input is the largest member's size; a member trained at a smaller size gets a
  `Resizing` layer (bilinear) inside the graph, so one `.tflite` takes one bitmap. Members
  must share genres and normalization (every posterlite model takes `[-1, 1]`);
- members are frozen (`trainable = False`): batch norm always runs on its moving statistics;
- `model.keras` is NOT committed (it would duplicate the members' weights): it is rebuilt
  from the members whenever missing (`materialize`), byte-identical each time (the zip's
  timestamps and Keras' save date are fixed), so the sha256 the int8 sidecar records for it
  stays valid and `convert`, `benchmarks/export_int8.py` and `bench` see the same file.

The training side (scoring candidates on validation, thresholds, reports) is
`posterlite.train.ensemble`.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from posterlite.card import CARD_NAME, MODEL_NAME, read_card
from posterlite.errors import PosterliteError
from posterlite.fileio import atomic_path, atomic_write_text, sha256_file

RECIPE_NAME = "ensemble.json"
COMBINE = "mean of the members' sigmoid scores"
ARCH = "ensemble"
# Written into the rebuilt .keras instead of the save time, so rebuilds are byte-identical.
FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
FIXED_SAVE_DATE = "rebuilt from ensemble.json"


@dataclass(frozen=True)
class Member:
    """One member as the recipe records it (`dir` relative to the ensemble folder)."""

    name: str
    dir: str
    input_size: int
    model_sha256: str


@dataclass(frozen=True)
class Recipe:
    name: str
    input_size: int
    members: tuple[Member, ...]
    combine: str = COMBINE
    keras_sha256: str = ""  # of the rebuilt model.keras, once built

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"


def is_ensemble(folder: Path) -> bool:
    return (Path(folder) / RECIPE_NAME).is_file()


def read_recipe(folder: Path) -> Recipe:
    path = Path(folder) / RECIPE_NAME
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        members = tuple(Member(**m) for m in raw.pop("members"))
        return Recipe(members=members, **raw)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise PosterliteError(f"{path}: unreadable ensemble recipe ({exc})") from exc


def write_recipe(recipe: Recipe, folder: Path) -> Path:
    target = Path(folder) / RECIPE_NAME
    atomic_write_text(target, recipe.to_json())
    return target


def member_dir(folder: Path, member: Member) -> Path:
    return (Path(folder) / member.dir).resolve()


def recipe_for(members: list[Path], name: str, folder: Path) -> Recipe:
    """The recipe of an ensemble of trained model folders, written into `folder`.

    Checks that the members can share one input: same genres (in order), same
    normalization; at least two; no folder twice.
    """
    if len(members) < 2:
        raise PosterliteError("an ensemble needs at least two member model folders")
    if len({Path(m).resolve() for m in members}) != len(members):
        raise PosterliteError("an ensemble member is named twice")
    cards = []
    for path in members:
        if not (Path(path) / MODEL_NAME).is_file() or not (Path(path) / CARD_NAME).is_file():
            raise PosterliteError(f"{path}: not a trained model folder (model.keras + card.json)")
        if is_ensemble(path):
            raise PosterliteError(f"{path}: is an ensemble itself; name its members instead")
        cards.append(read_card(path))
    first = cards[0]
    for path, card in zip(members, cards, strict=True):
        if card.genres != first.genres:
            raise PosterliteError(f"{path}: genres {card.genres} differ from {first.genres}")
        norm = (card.normalization_mean, card.normalization_std)
        if norm != (first.normalization_mean, first.normalization_std):
            raise PosterliteError(f"{path}: normalization {norm} differs from the other members")
    folder = Path(folder).resolve()
    return Recipe(
        name=name,
        input_size=max(int(c.input_size) for c in cards),
        members=tuple(
            Member(
                name=card.name,
                dir=os.path.relpath(Path(path).resolve(), folder),
                input_size=int(card.input_size),
                model_sha256=sha256_file(Path(path) / MODEL_NAME),
            )
            for path, card in zip(members, cards, strict=True)
        ),
    )


def member_branch(model: Any, index: int, input_size: int, image: Any) -> Any:
    """`image` (at the ensemble's size) through member `model`: resized first if smaller."""
    import keras

    model.name = f"member{index}_{model.name}"  # nested models need unique names
    model.trainable = False
    size = int(model.input_shape[1])
    x = image
    if size != input_size:
        x = keras.layers.Resizing(size, size, interpolation="bilinear", name=f"resize{index}")(x)
    return model(x, training=False)


def build_model(recipe: Recipe, folder: Path) -> Any:
    """The averaging Keras model of a recipe, members loaded from their folders (each
    checked against the sha256 the recipe recorded)."""
    import keras

    image = keras.Input((recipe.input_size, recipe.input_size, 3), name="image")
    scores = []
    for index, member in enumerate(recipe.members):
        path = member_dir(folder, member) / MODEL_NAME
        if not path.is_file():
            raise PosterliteError(f"ensemble member {member.name}: no model at {path}")
        if sha256_file(path) != member.model_sha256:
            raise PosterliteError(
                f"ensemble member {member.name} ({path}) changed since the ensemble was built: "
                f"rebuild it (posterlite train ensemble ... --out {folder})"
            )
        model = keras.models.load_model(path, compile=False)
        scores.append(member_branch(model, index, recipe.input_size, image))
    mean = keras.layers.Average(name="mean_score")(scores)
    return keras.Model(image, mean, name=recipe.name)


def numbered_shared_objects(config: Any) -> Any:
    """`config` with each `shared_object_id` replaced by 1, 2, ... in order of appearance.

    Keras writes a shared object's `id()` (a memory address) there, so the same model
    saved by two processes gives two configs; loading only matches equal ids, so
    renumbering them consistently keeps the model the same."""
    numbers: dict[Any, int] = {}

    def renumber(node: Any) -> Any:
        if isinstance(node, dict):
            out = {key: renumber(value) for key, value in node.items()}
            if "shared_object_id" in out:
                out["shared_object_id"] = numbers.setdefault(
                    node["shared_object_id"], len(numbers) + 1
                )
            return out
        if isinstance(node, list):
            return [renumber(item) for item in node]
        return node

    return renumber(config)


def save_deterministic(model: Any, target: Path) -> None:
    """Save a Keras model as `.keras`, then fix what changes between saves (the zip entries'
    times, the metadata's save date, the shared objects' memory addresses in the config), so
    the same model gives the same bytes in any process."""
    with atomic_path(target) as tmp:
        staged = tmp.with_name(tmp.name + ".keras")
        model.save(staged)
        buffer = io.BytesIO()
        with zipfile.ZipFile(staged) as source, zipfile.ZipFile(buffer, "w") as out:
            for info in source.infolist():
                data = source.read(info.filename)
                if info.filename == "metadata.json":
                    meta = json.loads(data)
                    meta["date_saved"] = FIXED_SAVE_DATE
                    data = json.dumps(meta, sort_keys=True).encode()
                elif info.filename == "config.json":
                    data = json.dumps(numbered_shared_objects(json.loads(data))).encode()
                entry = zipfile.ZipInfo(info.filename, FIXED_ZIP_TIME)
                entry.compress_type = info.compress_type
                entry.external_attr = info.external_attr
                out.writestr(entry, data)
        staged.unlink()
        tmp.write_bytes(buffer.getvalue())


def materialize(folder: Path) -> Path:
    """`folder/model.keras` of an ensemble, rebuilt from its members when missing or not the
    recorded build. Returns its path."""
    folder = Path(folder)
    recipe = read_recipe(folder)
    target = folder / MODEL_NAME
    if target.is_file() and (not recipe.keras_sha256 or sha256_file(target) == recipe.keras_sha256):
        return target
    save_deterministic(build_model(recipe, folder), target)
    return target
