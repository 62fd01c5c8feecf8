"""Locate body-model files in a user's folder and read them without unpickling untrusted code.

Root resolution: explicit argument (``--body-models``) > environment variable
``HUMANBENCH_BODY_MODELS`` > ``None`` (use the embedded synthetic models).

Standard layout (that of the ``smplx`` package)::

    ROOT/smpl/SMPL_{NEUTRAL,MALE,FEMALE}.{pkl,npz}   (+ original SMPL download names)
    ROOT/smplx/SMPLX_{NEUTRAL,MALE,FEMALE}.{npz,pkl}
    ROOT/smplh/SMPLH_{NEUTRAL,MALE,FEMALE}.pkl
    ROOT/mano/MANO_{LEFT,RIGHT}.pkl
    ROOT/smpl/smpl_kid_template.npy, ROOT/smplx/smplx_kid_template.npy
    ROOT/index_sets/<index-set files>                (or directly in ROOT)
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from humanbench.bodymodels.safe_pickle import load_pickle_restricted
from humanbench.errors import HumanbenchError

__all__ = [
    "ENV_VAR",
    "KINDS",
    "GENDERS",
    "SIDES",
    "INDEX_SET_SOURCES",
    "BodyModelNotFoundError",
    "BodyModelFormatError",
    "BodyModelRoot",
    "LocatedFile",
    "resolve_root",
    "locate_model",
    "locate_kid_template",
    "locate_index_file",
    "read_npz_numeric",
    "read_npy",
    "read_model_arrays",
]

ENV_VAR = "HUMANBENCH_BODY_MODELS"
KINDS = ("smpl", "smplh", "smplx", "mano")
GENDERS = ("neutral", "male", "female")
SIDES = ("left", "right")

_MODEL_SOURCES = {
    "smpl": "register at https://smpl.is.tue.mpg.de and download 'SMPL for Python' (v1.0.0: 10 shape "
    "components, male/female; v1.1.0: 300 components incl. neutral). The v1.0.0 neutral model ships "
    "with SMPLify (https://smplify.is.tue.mpg.de).",
    "smplx": "register at https://smpl-x.is.tue.mpg.de and download the SMPL-X model (npz and/or pkl).",
    "smplh": "register at https://mano.is.tue.mpg.de and download 'Extended SMPL+H model'.",
    "mano": "register at https://mano.is.tue.mpg.de and download 'Models & Code'.",
}
_KID_SOURCE = "download the kid template vertices (SMPL / SMPL-X) from the AGORA download page, https://agora.is.tue.mpg.de."
_SMPLX_SITE_IDS = "download 'MANO and FLAME vertex indices' from the SMPL-X website, https://smpl-x.is.tue.mpg.de."
_AGORA_EVAL = "copy it from the AGORA evaluation kit, https://github.com/pixelite1201/agora_evaluation (utils/)."

#: Index-set file name -> where to obtain it.
INDEX_SET_SOURCES = {
    "J_regressor_h36m.npy": "take it from SPIN's data (https://github.com/nkolot/SPIN, fetch_data.sh -> "
    "data/J_regressor_h36m.npy).",
    "J_regressor_h36m_smplx.npy": "take it from the data of SMPL-X methods that evaluate on Human3.6M, "
    "e.g. Hand4Whole / SMPLer-X (data/Human36M/J_regressor_h36m_smplx.npy).",
    "SMPLX_to_J14.pkl": "take it from the ExPose data, https://expose.is.tue.mpg.de (data/SMPLX_to_J14.pkl).",
    "MANO_SMPLX_vertex_ids.pkl": _SMPLX_SITE_IDS,
    "SMPL-X__FLAME_vertex_ids.npy": _SMPLX_SITE_IDS,
    "body_verts_smpl.npy": _AGORA_EVAL,
    "body_verts_smplx.npy": _AGORA_EVAL,
}


class BodyModelNotFoundError(HumanbenchError, FileNotFoundError):
    """A body-model file (or the folder) is missing; the message says what, where and how to get it."""


class BodyModelFormatError(HumanbenchError, ValueError):
    """A file exists but its content is wrong: missing key, wrong shape/dtype, corrupt archive."""


SYNTHETIC_MARKER = "HUMANBENCH_SYNTHETIC"
"""A file of this name marks a folder of official-format files with synthetic content (tests, demo)."""


@dataclass(frozen=True)
class BodyModelRoot:
    """A user's body-model folder and how it was chosen (for messages).

    ``synthetic`` is True when the folder holds the :data:`SYNTHETIC_MARKER` file: official file
    formats written from the embedded synthetic humanoid, so results stay marked synthetic.
    """

    path: Path
    chosen_by: str

    @property
    def synthetic(self) -> bool:
        """The folder was written by humanbench from its synthetic models."""
        return (self.path / SYNTHETIC_MARKER).is_file()


@dataclass(frozen=True)
class LocatedFile:
    """A file found in the folder; ``note`` is set when an alternative name was used."""

    path: Path
    note: str = ""


def resolve_root(root: str | Path | BodyModelRoot | None = None) -> BodyModelRoot | None:
    """Explicit ``root`` > ``$HUMANBENCH_BODY_MODELS`` > ``None`` (synthetic models)."""
    if isinstance(root, BodyModelRoot):
        return root
    if root is not None and str(root) != "":
        chosen = BodyModelRoot(Path(root).expanduser(), "the explicit root (--body-models / root=)")
    elif os.environ.get(ENV_VAR):
        chosen = BodyModelRoot(Path(os.environ[ENV_VAR]).expanduser(), f"the environment variable {ENV_VAR}")
    else:
        return None
    if not chosen.path.is_dir():
        raise BodyModelNotFoundError(
            f"body-model folder {chosen.path} does not exist or is not a folder (it was set by "
            f"{chosen.chosen_by}). Point it at the folder holding smpl/, smplx/, ...; "
            "see docs/body-models.md."
        )
    return chosen


def _smpl_download_names(gender: str) -> list[tuple[str, str]]:
    short = {"neutral": "neutral", "male": "m", "female": "f"}[gender]
    v10 = {
        "neutral": "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl",
        "male": "basicmodel_m_lbs_10_207_0_v1.0.0.pkl",
        "female": "basicModel_f_lbs_10_207_0_v1.0.0.pkl",
    }[gender]
    return [
        (f"smpl/{v10}", "original SMPL v1.0.0 download name"),
        (f"smpl/basicmodel_{short}_lbs_10_207_0_v1.1.0.pkl", "original SMPL v1.1.0 download name"),
    ]


def _model_candidates(kind: str, gender: str) -> list[tuple[str, str]]:
    """(relative path, note) pairs; the first is the standard name."""
    upper = gender.upper()
    if kind == "smpl":
        return [(f"smpl/SMPL_{upper}.pkl", ""), (f"smpl/SMPL_{upper}.npz", "")] + _smpl_download_names(gender)
    if kind == "smplx":
        return [(f"smplx/SMPLX_{upper}.npz", ""), (f"smplx/SMPLX_{upper}.pkl", "")]
    if kind == "smplh":
        return [
            (f"smplh/SMPLH_{upper}.pkl", ""),
            (f"smplh/SMPLH_{gender}.pkl", "original MANO-site download name"),
            (f"smplh/SMPLH_{upper}.npz", ""),
            (f"smplh/{gender}/model.npz", "AMASS-style SMPL+H layout"),
        ]
    return [(f"mano/MANO_{upper}.pkl", "")]


def _check_choice(value: str, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(allowed)}")


def _locate(root: BodyModelRoot, candidates: list[tuple[str, str]], what: str, source: str) -> LocatedFile:
    for relative, note in candidates:
        path = root.path / relative
        if path.is_file():
            standard = Path(candidates[0][0]).name
            return LocatedFile(path, f"using the {note} {path.name} (standard name: {standard})" if note else "")
    expected = root.path / candidates[0][0]
    alternatives = ", ".join(f"{rel}" + (f" ({note})" if note else "") for rel, note in candidates[1:])
    lines = [
        f"{what} not found.",
        f"  expected file:   {expected}",
        f"  searched folder: {expected.parent}",
        f"  body-model root: {root.path} (chosen by {root.chosen_by})",
    ]
    if alternatives:
        lines.append(f"  also accepted (relative to the root): {alternatives}")
    lines.append(f"  where to get it: {source}")
    raise BodyModelNotFoundError("\n".join(lines))


def locate_model(root: BodyModelRoot, kind: str, gender: str) -> LocatedFile:
    """Find the model file for ``kind`` and ``gender`` (for MANO: the side, ``left``/``right``)."""
    _check_choice(kind, KINDS, "body-model kind")
    _check_choice(gender, SIDES if kind == "mano" else GENDERS, "side" if kind == "mano" else "gender")
    label = {"smpl": "SMPL", "smplx": "SMPL-X", "smplh": "SMPL+H", "mano": "MANO"}[kind]
    return _locate(root, _model_candidates(kind, gender), f"{label} model ({gender})", _MODEL_SOURCES[kind])


def locate_kid_template(root: BodyModelRoot, kind: str) -> LocatedFile:
    """Find ``smpl_kid_template.npy`` / ``smplx_kid_template.npy``."""
    _check_choice(kind, ("smpl", "smplx"), "kid-template kind")
    name = f"{kind}_kid_template.npy"
    return _locate(root, [(f"{kind}/{name}", ""), (name, "")], f"{kind.upper()} kid template", _KID_SOURCE)


def locate_index_file(root: BodyModelRoot, file_name: str) -> LocatedFile:
    """Find an index-set file in ``ROOT/index_sets/``, ``ROOT``, ``ROOT/smplx/`` or ``ROOT/smpl/``."""
    _check_choice(file_name, tuple(INDEX_SET_SOURCES), "index-set file")
    candidates = [(f"{folder}{file_name}", "") for folder in ("index_sets/", "", "smplx/", "smpl/")]
    return _locate(root, candidates, f"index-set file {file_name}", INDEX_SET_SOURCES[file_name])


# --------------------------------------------------------------------------
# Reading


_NPY_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def read_npz_numeric(path: str | Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """Numeric arrays of an ``.npz`` and the names of skipped object entries (never unpickled).

    Each member's ``.npy`` header is parsed first; entries whose dtype holds
    Python objects (e.g. ``part2num`` in SMPL-X files) are skipped.
    """
    arrays: dict[str, np.ndarray] = {}
    skipped: list[str] = []
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                name = info.filename.removesuffix(".npy")
                with archive.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    if version not in _NPY_HEADER_READERS:
                        raise ValueError(f"entry {name!r} uses unsupported .npy format version {version}")
                    dtype = _NPY_HEADER_READERS[version](member)[2]
                if dtype.hasobject:
                    skipped.append(name)
                    continue
                with archive.open(info) as member:
                    arrays[name] = np.lib.format.read_array(member, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, EOFError, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise BodyModelFormatError(
            f"{path}: could not be read as an .npz archive ({type(exc).__name__}: {exc}). "
            "The file is truncated (e.g. an interrupted download) or corrupt."
        ) from exc
    return arrays, skipped


def read_npy(path: str | Path) -> np.ndarray:
    """A numeric ``.npy`` array (object arrays are refused, never unpickled)."""
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, EOFError, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise BodyModelFormatError(
            f"{path}: could not be read as a numeric .npy array ({type(exc).__name__}: {exc}). "
            "The file is truncated, corrupt, or holds pickled Python objects."
        ) from exc
    if not isinstance(array, np.ndarray):
        array.close()
        raise BodyModelFormatError(f"{path}: is an .npz archive; expected a single .npy array")
    return array


def read_model_arrays(path: str | Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """Numeric arrays of a model ``.pkl`` / ``.npz`` and the keys that were skipped.

    ``.pkl`` goes through the restricted unpickler (chumpy and sparse
    matrices become dense numpy arrays); non-array entries such as
    ``bs_style`` are skipped.
    """
    path = Path(path)
    if path.suffix == ".npz":
        return read_npz_numeric(path)
    content = load_pickle_restricted(path, expected="an SMPL-family body-model pickle (a dict of arrays)")
    if not isinstance(content, dict):
        raise BodyModelFormatError(f"{path}: expected a dict of arrays, found {type(content).__name__}")
    arrays = {k: v for k, v in content.items() if isinstance(v, np.ndarray) and v.dtype.kind in "biuf"}
    return arrays, sorted(str(k) for k in content if k not in arrays)
