"""What a protocol is: frozen, versioned data naming every choice that changes the number.

A :class:`MeshProtocol` names the dataset and split, the body models and genders on each side,
which people count, the joint set and alignment (through its ``evaluate`` function from
:mod:`humanbench.metrics`), the metrics with their units and rounding, and which traps of
``protocols.md`` §9 it resolves and how. Every result record stores ``id``, ``version`` and
:meth:`MeshProtocol.describe`, so two numbers computed under different protocols can never be
shown as if they were comparable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from humanbench.metrics.hmr import EvalContext, PersonBatch, PersonErrors
    from humanbench.schema import Sample


@dataclass(frozen=True)
class Trap:
    """An implementation disagreement (``protocols.md`` §9 item ``number``) and how this protocol settles it."""

    number: int
    resolution: str


@dataclass(frozen=True)
class MetricSpec:
    """One reported metric: its name, unit, direction and the decimals papers print."""

    name: str
    unit: str = "mm"
    higher_is_better: bool = False
    decimals: int = 1
    description: str = ""


@dataclass(frozen=True)
class MeshProtocol:
    """A named, versioned mesh-recovery evaluation protocol.

    ``evaluate(batch, context)`` computes per-person errors (metres) for a batch of GT/predicted
    people; the evaluation driver averages them over people (×1000 for mm) exactly as the
    protocol's source does. ``person_flag`` names the sample flag that selects the people who
    count (``"valid"`` = the schema's ``valid`` array). ``subsample`` > 1 keeps every k-th selected
    person in the order given by ``person_order(sample, person)`` (default: sample key, person),
    counted over the whole split.
    """

    id: str
    version: int
    title: str
    dataset: str
    split: str
    gt_body_model: str
    pred_body_model: str
    gt_gender: str  # "gendered": each person's own gender; "neutral": neutral model for all
    evaluate: Callable[["PersonBatch", "EvalContext"], "PersonErrors"]
    metrics: tuple[MetricSpec, ...]
    joint_names: tuple[str, ...]
    person_flag: str = "valid"
    subsample: int = 1
    person_order: Callable[["Sample", int], tuple] | None = None
    traps: tuple[Trap, ...] = ()
    sources: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable definition (everything but the evaluate function) for result records."""
        return {
            "id": self.id, "version": self.version, "title": self.title, "dataset": self.dataset, "split": self.split,
            "gt_body_model": self.gt_body_model, "pred_body_model": self.pred_body_model, "gt_gender": self.gt_gender,
            "person_flag": self.person_flag, "subsample": self.subsample,
            "person_order": None if self.person_order is None else self.person_order.__qualname__,
            "joint_names": list(self.joint_names),
            "metrics": [vars(m) for m in self.metrics],
            "traps": [vars(t) for t in self.traps], "sources": list(self.sources), "notes": list(self.notes),
            "evaluate": f"{self.evaluate.__module__}.{self.evaluate.__qualname__}",
        }
