"""Body models: SMPL / SMPL-H / SMPL-X / MANO from a user folder (chumpy-free) or the embedded synthetic humanoids.

``load_body_model(kind, gender, root=...)`` is the entry point; ``load_index_sets`` gives the
evaluation regressors and vertex id sets; ``inspect_body_model_folder`` backs ``humanbench info``.
"""

from humanbench.bodymodels.files import (
    ENV_VAR,
    BodyModelFormatError,
    BodyModelNotFoundError,
    BodyModelRoot,
    resolve_root,
)
from humanbench.bodymodels.index_sets import IndexSets, load_index_sets
from humanbench.bodymodels.models import BodyModel, BodyOutput, load_body_model, smplx_hand_means
from humanbench.bodymodels.report import ModelReport, format_report, inspect_body_model_folder
from humanbench.bodymodels.safe_pickle import PickleLoadError, UnsafePickleError, load_pickle_restricted

__all__ = [
    "ENV_VAR", "BodyModel", "BodyModelFormatError", "BodyModelNotFoundError", "BodyModelRoot", "BodyOutput",
    "IndexSets", "ModelReport", "PickleLoadError", "UnsafePickleError", "format_report", "inspect_body_model_folder",
    "load_body_model", "load_index_sets", "load_pickle_restricted", "resolve_root", "smplx_hand_means",
]
