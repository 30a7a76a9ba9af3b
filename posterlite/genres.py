"""The label scheme: which genres a model predicts and how raw genre names map onto them.

This is the only place the genre list lives. The default is the paper's six
(Action, Drama, Comedy, Crime, Romance, Other); every raw genre outside the named ones
maps to the catch-all (`Other`). A different list is configuration: set
`POSTERLITE_GENRES="Horror,Comedy,Other"` (the last name is the catch-all when it is
`Other`) or build a `GenreScheme` yourself.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_GENRES: tuple[str, ...] = ("Action", "Drama", "Comedy", "Crime", "Romance", "Other")
GENRES_ENV = "POSTERLITE_GENRES"  # the variable that configures the scheme
CATCH_ALL = "Other"
# The decision threshold per genre unless a model's metadata or the caller says otherwise.
DEFAULT_THRESHOLD = 0.5
# Raw labels that mean "no genre" rather than a genre that maps to Other.
NO_GENRE = frozenset({"", "n/a", "na", "none", "nan", "null", "(no genres listed)"})


@dataclass(frozen=True)
class GenreScheme:
    """An ordered genre list; `catch_all` (if in `names`) absorbs every unknown raw genre."""

    names: tuple[str, ...] = DEFAULT_GENRES
    catch_all: str | None = CATCH_ALL

    def __post_init__(self) -> None:
        if len(set(self.names)) != len(self.names) or not self.names:
            raise ValueError(f"genre names must be unique and non-empty: {self.names}")
        if self.catch_all is not None and self.catch_all not in self.names:
            object.__setattr__(self, "catch_all", None)

    @property
    def size(self) -> int:
        """The number of genres."""
        return len(self.names)

    def map_raw(
        self, raw_genres: Iterable[str], no_genre_is_other: bool = False
    ) -> tuple[str, ...]:
        """Map raw genre names (any case, any spacing) to this scheme, in scheme order.

        `no_genre_is_other`: a data set whose own vocabulary has an explicit `N/A` genre
        column (imdb-7k's multi-hot CSV) labels those films; they go to the catch-all
        rather than being dropped as unlabelled.
        """
        lookup = {name.lower(): name for name in self.names}
        found: set[str] = set()
        for raw in raw_genres:
            key = raw.strip().lower()
            if key in NO_GENRE:
                if no_genre_is_other and key and self.catch_all is not None:
                    found.add(self.catch_all)
                continue
            if key in lookup:
                found.add(lookup[key])
            elif self.catch_all is not None:
                found.add(self.catch_all)
        return tuple(name for name in self.names if name in found)

    def to_multi_hot(self, genres: Iterable[str]) -> np.ndarray:
        """Multi-hot float32 vector for genres already in this scheme."""
        wanted = set(genres)
        return np.array([1.0 if name in wanted else 0.0 for name in self.names], np.float32)

    def from_multi_hot(self, vector: Iterable[float], threshold: float = 0.5) -> tuple[str, ...]:
        """The genres whose value reaches `threshold`; raises ValueError when `vector` has
        another length than the scheme."""
        return tuple(name for name, v in zip(self.names, vector, strict=True) if v >= threshold)


def default_scheme() -> GenreScheme:
    """The scheme in force: `POSTERLITE_GENRES` if set, else the paper's six."""
    configured = os.environ.get(GENRES_ENV, "").strip()
    if not configured:
        return GenreScheme()
    names = tuple(part.strip() for part in configured.split(",") if part.strip())
    return GenreScheme(names=names, catch_all=CATCH_ALL if CATCH_ALL in names else None)


def genres_without_posters(
    label_sets: Iterable[Iterable[str]], names: Sequence[str]
) -> tuple[str, ...]:
    """The genres of `names` that no label set has, in scheme order."""
    present = {genre for labels in label_sets for genre in labels}
    return tuple(name for name in names if name not in present)


def no_posters_warning(genres: Sequence[str], where: str) -> str:
    """The one line `data scan`, `data split` and `train` print when genres of the scheme
    have no poster `where` (e.g. "in data/x"): a model still predicts them, untrained, and
    reports leave them out of macro F1 and mAP (`posterlite.metrics`)."""
    configured = os.environ.get(GENRES_ENV, "").strip()
    scheme = f"{GENRES_ENV}={configured}" if configured else f"{GENRES_ENV} unset: the paper's six"
    return (
        f"warning: no posters of {', '.join(genres)} {where} ({scheme}): they cannot be "
        f"learnt or scored there (reports leave them out of macro F1 and mAP); set "
        f"{GENRES_ENV} to the genres the data has"
    )
