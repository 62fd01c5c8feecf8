"""Load SMPL / SMPL+H / SMPL-X / MANO as torch modules, safely and without chumpy.

Arrays come from the restricted unpickler (``.pkl``) or from the numeric
entries of an ``.npz``; they are shape-checked, then handed to the ``smplx``
package (which does the skinning; we never reimplement it).  ``smplx.SMPLX``
only reads from a file, so it gets a sanitized ``.npz`` of numeric arrays we
wrote to a temporary folder, never the user's original file.

Without a body-model folder the embedded synthetic models are used (same
topology sizes, random content; ``BodyModel.synthetic`` is True).
"""

from __future__ import annotations

import contextlib
import functools
import io
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
import smplx
import torch
from smplx.utils import Struct

from humanbench.bodymodels.files import (
    GENDERS,
    KINDS,
    SIDES,
    BodyModelFormatError,
    BodyModelNotFoundError,
    BodyModelRoot,
    locate_kid_template,
    locate_model,
    read_model_arrays,
    read_npy,
    resolve_root,
)

__all__ = [
    "NUM_VERTICES",
    "BodyOutput",
    "BodyModel",
    "load_body_model",
    "validate_model_arrays",
    "model_from_arrays",
    "read_kid_template",
    "smplx_hand_means",
]

NUM_VERTICES = {"smpl": 6890, "smplh": 6890, "smplx": 10475, "mano": 778}
_NUM_FACES = {"smpl": 13776, "smplh": 13776, "smplx": 20908, "mano": 1538}
_NUM_SKELETON_JOINTS = {"smpl": 24, "smplh": 52, "smplx": 55, "mano": 16}
_KID_KINDS = ("smpl", "smplx")

# Forward inputs each kind accepts.
_INPUTS: dict[str, tuple[str, ...]] = {
    "smpl": ("betas", "global_orient", "body_pose", "transl"),
    "smplh": ("betas", "global_orient", "body_pose", "transl", "left_hand_pose", "right_hand_pose"),
    "smplx": ("betas", "global_orient", "body_pose", "transl", "left_hand_pose", "right_hand_pose",
              "jaw_pose", "leye_pose", "reye_pose", "expression"),
    "mano": ("betas", "global_orient", "hand_pose", "transl"),
}
# smplx's ``create_<name>`` switches: all off (no stored default parameters), every input is passed.
_SMPLX_SWITCHES = ("betas", "global_orient", "body_pose", "transl", "left_hand_pose", "right_hand_pose",
                   "hand_pose", "expression", "jaw_pose", "leye_pose", "reye_pose")


def _array_spec(kind: str) -> dict[str, tuple[int | str, ...]]:
    """Expected shapes; strings are free sizes that must agree across keys."""
    v, j = NUM_VERTICES[kind], _NUM_SKELETON_JOINTS[kind]
    spec: dict[str, tuple[int | str, ...]] = {
        "v_template": (v, 3),
        "f": (_NUM_FACES[kind], 3),
        "J_regressor": (j, v),
        "weights": (v, j),
        "kintree_table": (2, j),
        "shapedirs": (v, 3, "S"),
        "posedirs": (v, 3, 9 * (j - 1)),
    }
    if kind in ("smplh", "smplx"):
        spec.update(hands_componentsl=("P", 45), hands_componentsr=("P", 45), hands_meanl=(45,), hands_meanr=(45,))
    if kind == "smplx":
        spec.update(lmk_faces_idx=("L",), lmk_bary_coords=("L", 3))
    if kind == "mano":
        spec.update(hands_components=("P", 45), hands_mean=(45,))
    return spec


_INDEX_KEYS = ("f", "kintree_table", "lmk_faces_idx")


def validate_model_arrays(arrays: Mapping[str, np.ndarray], kind: str, source: str) -> dict[str, np.ndarray]:
    """Check keys, shapes, dtypes and index ranges; return just the arrays smplx needs.

    Raises :class:`BodyModelFormatError` naming ``source``, the key, the
    expected and the found shape.
    """
    sizes: dict[str, int] = {}
    checked: dict[str, np.ndarray] = {}
    for key, expected in _array_spec(kind).items():
        if key not in arrays:
            raise BodyModelFormatError(
                f"{source}: key '{key}' is missing; a {kind} model needs {sorted(_array_spec(kind))}"
            )
        array = np.asarray(arrays[key])
        wanted = tuple(sizes.setdefault(d, n) if isinstance(d, str) else d for d, n in zip(expected, array.shape))
        if array.ndim != len(expected) or wanted != array.shape:
            shown = tuple(sizes.get(d, d) if isinstance(d, str) else d for d in expected)
            raise BodyModelFormatError(
                f"{source}: key '{key}' has shape {array.shape}; expected {shown} for a {kind} model"
            )
        kinds = "iu" if key in _INDEX_KEYS else "biuf"
        if array.dtype.kind not in kinds:
            raise BodyModelFormatError(f"{source}: key '{key}' has dtype {array.dtype}; expected numeric")
        checked[key] = array
    _check_indices(checked, kind, source)
    return checked


def _check_indices(arrays: Mapping[str, np.ndarray], kind: str, source: str) -> None:
    faces = arrays["f"].astype(np.int64)
    if faces.min() < 0 or faces.max() >= NUM_VERTICES[kind]:
        raise BodyModelFormatError(f"{source}: key 'f' indexes vertices outside [0, {NUM_VERTICES[kind]})")
    parents = arrays["kintree_table"][0, 1:].astype(np.int64)
    if np.any((parents < 0) | (parents >= np.arange(1, len(parents) + 1))):
        raise BodyModelFormatError(f"{source}: key 'kintree_table' is not a parent-before-child joint tree")
    if kind == "smplx":
        lmk = arrays["lmk_faces_idx"].astype(np.int64)
        if lmk.size and (lmk.min() < 0 or lmk.max() >= len(faces)):
            raise BodyModelFormatError(f"{source}: key 'lmk_faces_idx' indexes faces outside [0, {len(faces)})")
    if kind == "smplx" and arrays["shapedirs"].shape[-1] < 20:
        raise BodyModelFormatError(
            f"{source}: key 'shapedirs' has {arrays['shapedirs'].shape[-1]} components; SMPL-X needs at least "
            "20 (shape + expression)"
        )


@dataclass
class BodyOutput:
    """Posed mesh: ``vertices`` (B, V, 3) and ``joints`` (B, J, 3), both in the model's units (m)."""

    vertices: torch.Tensor
    joints: torch.Tensor


class BodyModel(torch.nn.Module):
    """A loaded body model; ``forward`` takes explicit keywords only (misspellings raise).

    Attributes: ``kind``, ``gender``, ``age``, ``synthetic`` (no real file
    behind it), ``source`` (file path or "synthetic"), ``notes`` (loading
    remarks), ``faces`` (F, 3) int64, ``num_betas`` (incl. the kid beta),
    ``num_expression_coeffs``, ``num_vertices``, ``num_joints`` (rows of
    ``joints``, with smplx's extra vertex joints / landmarks), and the
    wrapped ``smplx_model``.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        kind: str,
        gender: str,
        age: str,
        synthetic: bool,
        source: str,
        notes: tuple[str, ...] = (),
    ):
        super().__init__()
        self.smplx_model = model
        self.kind = kind
        self.gender = gender
        self.age = age
        self.synthetic = synthetic
        self.source = source
        self.notes = notes
        self.faces = np.asarray(model.faces, dtype=np.int64)
        self.num_betas = int(model.num_betas)
        self.num_expression_coeffs = int(model.num_expression_coeffs)
        self.num_vertices = int(model.v_template.shape[0])
        with torch.no_grad():
            self.num_joints = int(self.forward().joints.shape[1])

    @property
    def hand_pose_dim(self) -> int:
        """Per-hand pose size: PCA coefficients or 45 axis-angle values."""
        return self.smplx_model.num_pca_comps if getattr(self.smplx_model, "use_pca", False) else 45

    def _input_size(self, name: str) -> int:
        if name == "betas":
            return self.num_betas
        if name == "expression":
            return self.num_expression_coeffs
        if name == "body_pose":
            return 3 * self.smplx_model.NUM_BODY_JOINTS
        if name.endswith("hand_pose"):
            return self.hand_pose_dim
        return 3

    def forward(
        self,
        *,
        betas: torch.Tensor | None = None,
        global_orient: torch.Tensor | None = None,
        body_pose: torch.Tensor | None = None,
        transl: torch.Tensor | None = None,
        left_hand_pose: torch.Tensor | None = None,
        right_hand_pose: torch.Tensor | None = None,
        hand_pose: torch.Tensor | None = None,
        jaw_pose: torch.Tensor | None = None,
        leye_pose: torch.Tensor | None = None,
        reye_pose: torch.Tensor | None = None,
        expression: torch.Tensor | None = None,
        pose2rot: bool = True,
    ) -> BodyOutput:
        """Pose the model; omitted inputs are zeros (identity rotations).

        Inputs are (B, D) axis-angle / coefficient tensors (``betas`` may have
        B = 1 and is then broadcast).  ``pose2rot=False`` (rotation matrices,
        ``global_orient`` (B, 1, 3, 3), ``body_pose`` (B, 23, 3, 3)) is
        supported for SMPL only.  ``hand_pose`` is the MANO input.
        """
        given = {
            name: value
            for name, value in dict(
                betas=betas, global_orient=global_orient, body_pose=body_pose, transl=transl,
                left_hand_pose=left_hand_pose, right_hand_pose=right_hand_pose, hand_pose=hand_pose,
                jaw_pose=jaw_pose, leye_pose=leye_pose, reye_pose=reye_pose, expression=expression,
            ).items()
            if value is not None
        }
        accepted = _INPUTS[self.kind]
        unsupported = sorted(set(given) - set(accepted))
        if unsupported:
            raise TypeError(f"a {self.kind} model does not take {unsupported}; it takes {list(accepted)}")
        if not pose2rot and self.kind != "smpl":
            raise ValueError("pose2rot=False (rotation-matrix input) is supported for SMPL only")
        tensors = {name: torch.as_tensor(v, dtype=self.smplx_model.dtype, device=self._device()) for name, v in given.items()}
        batch = max((t.shape[0] for t in tensors.values() if t.ndim > 0), default=1)
        inputs = {name: self._prepare(name, tensors.get(name), batch, pose2rot) for name in accepted}
        output = self.smplx_model(**inputs, pose2rot=pose2rot) if self.kind != "mano" else self.smplx_model(**inputs)
        return BodyOutput(vertices=output.vertices, joints=output.joints)

    def _device(self) -> torch.device:
        return self.smplx_model.v_template.device

    def _prepare(self, name: str, value: torch.Tensor | None, batch: int, pose2rot: bool) -> torch.Tensor:
        size = self._input_size(name)
        rotations = not pose2rot and name in ("global_orient", "body_pose")
        if value is None:
            if rotations:
                eye = torch.eye(3, dtype=self.smplx_model.dtype, device=self._device())
                return eye.expand(batch, size // 3, 3, 3).contiguous()
            return torch.zeros(batch, size, dtype=self.smplx_model.dtype, device=self._device())
        if name == "betas" and value.ndim == 2 and value.shape[0] == 1:
            value = value.expand(batch, -1)
        expected = (batch, size // 3, 3, 3) if rotations else (batch, size)
        per_sample = int(np.prod(expected[1:]))
        if value.ndim < 2 or value.shape[0] != batch or value[0].numel() != per_sample:
            raise ValueError(f"{name} has shape {tuple(value.shape)}; expected {expected} for this {self.kind} model")
        return value.reshape(expected)


def model_from_arrays(
    kind: str,
    arrays: Mapping[str, np.ndarray],
    *,
    gender: str = "neutral",
    age: str = "adult",
    kid_template: np.ndarray | None = None,
    num_betas: int = 10,
    num_expression_coeffs: int = 10,
    use_pca: bool = False,
    num_pca_comps: int = 12,
    flat_hand_mean: bool = True,
    hand: str = "right",
    dtype: torch.dtype = torch.float32,
) -> torch.nn.Module:
    """Build the ``smplx`` module from validated arrays (output of :func:`validate_model_arrays`).

    ``kid_template`` ((V, 3)) is required for ``age='kid'``; smplx then adds
    the template offset as an extra, last beta.
    """
    common = dict(num_betas=num_betas, dtype=dtype, batch_size=1, **{f"create_{n}": False for n in _SMPLX_SWITCHES})
    hands = dict(use_pca=use_pca, num_pca_comps=num_pca_comps, flat_hand_mean=flat_hand_mean)
    with tempfile.TemporaryDirectory(prefix="humanbench-bodymodel-") as tmp, contextlib.redirect_stdout(io.StringIO()):
        kid_path = ""
        if age == "kid":
            kid_path = str(Path(tmp) / "kid_template.npy")
            np.save(kid_path, np.asarray(kid_template, dtype=np.float64))
        body = dict(kid_template_path=kid_path, gender=gender, age=age, **common)
        if kind == "smpl":
            return smplx.SMPL("", data_struct=Struct(**arrays), **body)
        if kind == "smplh":
            return smplx.SMPLH("", data_struct=Struct(**arrays), **hands, **body)
        if kind == "smplx":
            sanitized = Path(tmp) / f"SMPLX_{gender.upper()}.npz"
            np.savez(sanitized, **{k: np.asarray(v) for k, v in arrays.items()})
            return smplx.SMPLX(str(sanitized), ext="npz", num_expression_coeffs=num_expression_coeffs, **hands, **body)
        return smplx.MANO("", is_rhand=hand == "right", data_struct=Struct(**arrays), **hands, **common)


def _synthetic_arrays(kind: str, gender: str, age: str) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    if kind not in ("smpl", "smplx"):
        raise BodyModelNotFoundError(
            f"there is no synthetic {kind} model; give a body-model folder (--body-models or "
            "HUMANBENCH_BODY_MODELS) holding the real files, see docs/body-models.md"
        )
    from humanbench.bodymodels.synthetic import synthetic_kid_template, synthetic_model_arrays

    kid = _validated_kid(synthetic_kid_template(kind), kind, "synthetic") if age == "kid" else None
    return dict(synthetic_model_arrays(kind, gender)), kid


def _user_arrays(
    root: BodyModelRoot, kind: str, gender: str, age: str, hand: str
) -> tuple[dict[str, np.ndarray], np.ndarray | None, str, list[str]]:
    located = locate_model(root, kind, hand if kind == "mano" else gender)
    arrays, skipped = read_model_arrays(located.path)
    notes = [located.note] if located.note else []
    if skipped and located.path.suffix == ".npz":
        notes.append(f"skipped non-numeric entries {skipped} (not unpickled)")
    kid = read_kid_template(locate_kid_template(root, kind).path, kind) if age == "kid" else None
    return arrays, kid, str(located.path), notes


@functools.lru_cache(maxsize=8)
def _hand_means(root: BodyModelRoot | None, gender: str) -> np.ndarray:
    arrays = _synthetic_arrays("smplx", gender, "adult")[0] if root is None else _user_arrays(
        root, "smplx", gender, "adult", "right")[0]
    return np.stack([np.asarray(arrays["hands_meanl"], np.float64).reshape(45),
                     np.asarray(arrays["hands_meanr"], np.float64).reshape(45)])


def smplx_hand_means(gender: str = "neutral", *, root: str | Path | BodyModelRoot | None = None) -> np.ndarray:
    """(2,45) left and right mean hand poses (``hands_meanl``/``hands_meanr``) of the SMPL-X model.

    This is what smplx adds to hand poses when ``flat_hand_mean=False``; converters from
    mean-relative data add it to reach the schema's absolute hand poses. Read from the file's
    arrays (no model is built); cached per folder and gender.
    """
    return _hand_means(resolve_root(root), gender).copy()


def _validated_kid(kid: np.ndarray, kind: str, source: str) -> np.ndarray:
    kid = np.asarray(kid)
    if kid.shape != (NUM_VERTICES[kind], 3) or kid.dtype.kind not in "iuf":
        raise BodyModelFormatError(
            f"{source}: kid template has shape {kid.shape} ({kid.dtype}); expected ({NUM_VERTICES[kind]}, 3) floats"
        )
    return kid


def read_kid_template(path: Path, kind: str) -> np.ndarray:
    """An AGORA kid template ``(V, 3)`` from ``.npy``, shape-checked."""
    return _validated_kid(read_npy(path), kind, str(path))


def _check_options(kind: str, gender: str, age: str, hand: str, use_pca: bool, num_pca_comps: int) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown body-model kind {kind!r}; expected one of {', '.join(KINDS)}")
    if gender not in GENDERS or (kind == "mano" and gender != "neutral"):
        raise ValueError(f"unknown gender {gender!r} for {kind}; expected one of {', '.join(GENDERS)} (MANO: neutral)")
    if hand not in SIDES:
        raise ValueError(f"unknown hand {hand!r}; expected 'left' or 'right'")
    if age not in ("adult", "kid") or (age == "kid" and kind not in _KID_KINDS):
        raise ValueError(f"age={age!r} is not available for {kind}; kid models exist for SMPL and SMPL-X")
    if use_pca and not 1 <= num_pca_comps <= 45:
        raise ValueError(f"num_pca_comps must be in [1, 45], got {num_pca_comps}")


def load_body_model(
    kind: str,
    gender: str = "neutral",
    *,
    root: str | Path | BodyModelRoot | None = None,
    age: str = "adult",
    num_betas: int = 10,
    num_expression_coeffs: int = 10,
    use_pca: bool = False,
    num_pca_comps: int = 12,
    flat_hand_mean: bool = True,
    hand: str = "right",
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> BodyModel:
    """Load ``kind`` ('smpl', 'smplh', 'smplx', 'mano') for ``gender`` from the user's folder.

    ``root``: explicit folder > ``$HUMANBENCH_BODY_MODELS`` > synthetic
    models.  ``age='kid'`` (SMPL / SMPL-X) adds the AGORA kid template as an
    extra beta.  ``hand`` picks the MANO side.  Hand options apply to
    SMPL+H / SMPL-X / MANO, expression options to SMPL-X. The hand defaults
    (full 45-value axis-angle, no hand mean added) are the sample schema's
    convention, so schema parameters can be fed in as they are.
    """
    _check_options(kind, gender, age, hand, use_pca, num_pca_comps)
    resolved = resolve_root(root)
    if resolved is None:
        arrays, kid = _synthetic_arrays(kind, gender, age)
        source, notes = "synthetic", []
    else:
        arrays, kid, source, notes = _user_arrays(resolved, kind, gender, age, hand)
    checked = validate_model_arrays(arrays, kind, source)
    if use_pca and kind in ("smplh", "smplx", "mano"):
        available = checked["hands_components" if kind == "mano" else "hands_componentsl"].shape[0]
        if num_pca_comps > available:
            raise BodyModelFormatError(f"{source}: only {available} hand PCA components, {num_pca_comps} requested")
    model = model_from_arrays(
        kind, checked, gender=gender, age=age, kid_template=kid, num_betas=num_betas,
        num_expression_coeffs=num_expression_coeffs, use_pca=use_pca, num_pca_comps=num_pca_comps,
        flat_hand_mean=flat_hand_mean, hand=hand, dtype=dtype,
    )
    usable_betas = model.num_betas - (1 if age == "kid" else 0)
    if usable_betas < num_betas:
        notes.append(f"num_betas reduced from {num_betas} to {usable_betas}: the model has no more shape components")
    body = BodyModel(model, kind=kind, gender=gender, age=age, synthetic=resolved is None or resolved.synthetic,
                     source=source, notes=tuple(notes))
    return body.to(device)
