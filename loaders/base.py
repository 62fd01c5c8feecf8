"""The contract every dataset converter fulfils: raw layout on disk -> schema samples.

A converter splits its work into small, ordered :class:`Unit` s (e.g. 64 frames of one sequence)
so that ``humanbench convert`` can run them in parallel, keep memory bounded, and resume a killed
run without redoing finished units. Samples of a unit are returned in key order, and units are
listed in key order, so the concatenation is sorted.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from humanbench.errors import HumanbenchError
from humanbench.schema import Sample


class ConversionError(HumanbenchError):
    """Raw data that cannot be converted; the message names the file, the item and what was expected."""


class UnknownSplitError(ConversionError):
    """A split the dataset does not have."""


@dataclass(frozen=True)
class Unit:
    """One piece of conversion work: frames ``[start, stop)`` of ``item`` (a sequence, scene or folder)."""

    item: str
    start: int = 0
    stop: int = 0

    def describe(self) -> str:
        """Human-readable id for progress, errors and the manifest's ``dropped`` list."""
        return f"{self.item}[{self.start}:{self.stop}]" if self.stop else self.item


@dataclass
class UnitResult:
    """What converting one unit produced: its samples (key order) and what it dropped, with reasons."""

    samples: list[Sample]
    dropped: list[dict[str, str]] = field(default_factory=list)


class Converter(abc.ABC):
    """Base class of the dataset converters in ``humanbench.loaders``.

    Subclasses set ``name`` and ``splits`` and implement :meth:`units`, :meth:`convert_unit` and
    :meth:`source_files`. Instances must be picklable (they are sent to worker processes), so
    keep only paths and small settings on ``self``.
    """

    name: ClassVar[str]
    splits: ClassVar[tuple[str, ...]]

    def __init__(self, root: str | Path, split: str, *, body_models: str | Path | None = None) -> None:
        self.root = Path(root)
        self.split = split
        self.body_models = body_models
        if split not in self.splits:
            raise UnknownSplitError(f"{self.name}: unknown split {split!r}; this dataset has {list(self.splits)}")
        if not self.root.is_dir():
            raise ConversionError(f"{self.name}: raw folder {self.root} does not exist (expected the dataset as downloaded; "
                                  f"see docs/datasets/{self.name}.md)")

    @abc.abstractmethod
    def units(self) -> list[Unit]:
        """All units of this split, in key order.

        Raises :class:`ConversionError` only when the layout as a whole is broken (e.g. the split
        folder is missing); a problem with one item must surface from :meth:`convert_unit`, so
        that ``--skip-bad`` can skip just that item.
        """

    @abc.abstractmethod
    def convert_unit(self, unit: Unit) -> UnitResult:
        """Convert one unit. Raises :class:`ConversionError` (naming file and item) on bad input."""

    @abc.abstractmethod
    def source_files(self) -> list[Path]:
        """The annotation files whose contents fingerprint this conversion (images are fingerprinted by name and size)."""
