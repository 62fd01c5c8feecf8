"""Check a body-model folder: load everything found and report what works and what does not."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from humanbench.bodymodels.files import (
    GENDERS,
    KINDS,
    SIDES,
    BodyModelNotFoundError,
    BodyModelRoot,
    LocatedFile,
    locate_index_file,
    locate_kid_template,
    locate_model,
    resolve_root,
)
from humanbench.bodymodels.index_sets import INDEX_SETS, load_index_sets, read_index_set
from humanbench.bodymodels.models import load_body_model, read_kid_template

__all__ = ["ModelReport", "inspect_body_model_folder", "format_report"]


@dataclass(frozen=True)
class ModelReport:
    """Outcome of loading one file (or the synthetic stand-in).

    ``kind``: smpl / smplh / smplx / mano / kid_template / index_set / folder;
    ``variant``: gender, hand side, template kind or index-set name.
    """

    kind: str
    variant: str
    file: str
    synthetic: bool = False
    num_vertices: int | None = None
    num_joints: int | None = None
    num_betas: int | None = None
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


def _attempt(kind: str, variant: str, file: str, load: Callable[..., ModelReport], *args: Any, **kwargs: Any) -> ModelReport:
    """Run ``load(*args, **kwargs)``; any failure becomes a problem entry instead of an exception."""
    try:
        return load(*args, **kwargs)
    except Exception as exc:  # a diagnostics report must list every failure, whatever its type
        return ModelReport(kind, variant, file, problems=(f"{type(exc).__name__}: {exc}",))


def _load_model(kind: str, variant: str, root: BodyModelRoot | None, **options: Any) -> ModelReport:
    model = load_body_model(kind, root=root, **options)
    return ModelReport(
        "kid_template" if model.age == "kid" else kind, variant, model.source, model.synthetic,
        model.num_vertices, model.num_joints, model.num_betas, notes=model.notes,
    )


def _load_kid_template(path: Path, kind: str) -> ModelReport:
    return ModelReport("kid_template", kind, str(path), num_vertices=read_kid_template(path, kind).shape[0])


def _load_index_set(root: BodyModelRoot, name: str) -> ModelReport:
    array, path = read_index_set(root, name)
    return ModelReport("index_set", name, str(path), notes=(f"shape {array.shape}",))


def _found(locate: Callable[..., LocatedFile], *args: Any) -> Path | None:
    try:
        return locate(*args).path
    except BodyModelNotFoundError:
        return None


def _folder_reports(root: BodyModelRoot) -> list[ModelReport]:
    reports = []
    for kind in KINDS:
        for variant in SIDES if kind == "mano" else GENDERS:
            path = _found(locate_model, root, kind, variant)
            if path is not None:
                options = dict(gender="neutral", hand=variant) if kind == "mano" else dict(gender=variant)
                reports.append(_attempt(kind, variant, str(path), _load_model, kind, variant, root, **options))
    for kind in ("smpl", "smplx"):
        path = _found(locate_kid_template, root, kind)
        if path is not None:
            reports.append(_attempt("kid_template", kind, str(path), _load_kid_template, path, kind))
    for name, spec in INDEX_SETS.items():
        path = _found(locate_index_file, root, spec.file_name)
        if path is not None:
            reports.append(_attempt("index_set", name, str(path), _load_index_set, root, name))
    return reports


def _synthetic_reports() -> list[ModelReport]:
    reports = []
    for kind in ("smpl", "smplx"):
        for gender in GENDERS:
            reports.append(_attempt(kind, gender, "synthetic", _load_model, kind, gender, None, gender=gender))
        reports.append(_attempt("kid_template", kind, "synthetic", _load_model, kind, kind, None, age="kid"))
    try:
        sets = load_index_sets(None)
    except Exception as exc:  # reported like any other failure
        return reports + [ModelReport("index_set", "all", "synthetic", True, problems=(f"{type(exc).__name__}: {exc}",))]
    for name in INDEX_SETS:
        reports.append(ModelReport("index_set", name, "synthetic", True, notes=(f"shape {getattr(sets, name).shape}",)))
    return reports


def inspect_body_model_folder(root: str | Path | None) -> list[ModelReport]:
    """Load every model, kid template and index set found under ``root`` and report on each.

    ``root`` resolves as for :func:`load_body_model`; with no folder at all
    the synthetic models are checked.  Missing optional files are not
    problems, but a folder with nothing recognisable in it is.
    """
    try:
        resolved = resolve_root(root)
    except BodyModelNotFoundError as exc:
        return [ModelReport("folder", "", str(root), problems=(str(exc),))]
    if resolved is None:
        return _synthetic_reports()
    reports = _folder_reports(resolved)
    if not reports:
        problem = (
            f"no body-model files found under {resolved.path} (chosen by {resolved.chosen_by}); expected e.g. "
            "smpl/SMPL_NEUTRAL.pkl or smplx/SMPLX_NEUTRAL.npz, see docs/body-models.md"
        )
        return [ModelReport("folder", "", str(resolved.path), problems=(problem,))]
    return reports


def format_report(reports: list[ModelReport]) -> str:
    """Human-readable table: one line per file, problems and notes indented below it."""
    lines = []
    for r in reports:
        counts = " ".join(
            f"{label}={value}"
            for label, value in (("V", r.num_vertices), ("J", r.num_joints), ("betas", r.num_betas))
            if value is not None
        )
        origin = "synthetic" if r.synthetic else r.file
        lines.append(f"{'OK  ' if r.ok else 'FAIL'} {r.kind:<12} {r.variant:<22} {counts:<28} {origin}".rstrip())
        lines.extend(f"     problem: {line}" for p in r.problems for line in p.splitlines())
        lines.extend(f"     note: {n}" for n in r.notes)
    failed = sum(not r.ok for r in reports)
    lines.append(f"{len(reports)} checked, {failed} with problems.")
    return "\n".join(lines)
