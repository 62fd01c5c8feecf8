"""Embedded procedural SMPL / SMPL-X stand-ins.

The official SMPL and SMPL-X files are licence-gated, so humanbench ships
procedurally generated humanoids whose arrays have exactly the keys, shapes,
dtypes and kinematic trees of the official files; ``smplx`` loads them
unchanged::

    arrays = synthetic_model_arrays("smpl", "neutral")
    smpl = smplx.SMPL("unused", data_struct=smplx.utils.Struct(**arrays))
    np.savez(folder / "SMPLX_NEUTRAL.npz", **synthetic_model_arrays("smplx", "neutral"))
    smplx.SMPLX(str(folder), gender="neutral", ext="npz")

Geometry (see :mod:`._humanoid`): a T-posed person, y up, facing +z, left = +x,
pelvis joint at (0, -0.225, 0.02), soles near y = -1.17, about 1.70 m tall
(male 1.78 m, female 1.62 m, kid template 1.13 m).

Topology
    SMPL: 6890 vertices, 13776 faces; one closed, oriented, genus-0 surface
    (F = 2V - 4), every vertex referenced.
    SMPL-X: 10475 vertices, 20908 faces, every vertex referenced; a genus-0
    body with three openings (a mouth slit with 16 boundary edges, two eye
    openings with 10) plus two closed eyeballs skinned to the eye joints:
    F = 2V - 4 - 2 * 4 - (14 + 8 + 8).
    The vertex ids that ``smplx.vertex_ids`` uses for extra joints (nose, eyes,
    ears, finger tips, toes, heels) are placed on the matching body parts.

Model content
    weights: rigid part labels diffused over the surface (<= 4 per vertex);
    J_regressor: non-negative weights on a cluster of nearby vertices whose
    weighted mean is the designed joint; shapedirs: finite differences of the
    generator's proportions (stature, girth, shoulder, hip, leg, arm, belly,
    chest, head, limb), orthogonalised, then for SMPL-X 290 small smooth
    columns, 10 expressions (jaw open, smile, frown, brow raise, brow furrow,
    pucker, cheek puff, stretch, upper-lip raise, eye close) and 90 small face
    columns; posedirs: normal bulges in each joint's blend zone.

Index sets
    H36M order: 0 pelvis, 1-3 left hip/knee/ankle, 4-6 right, 7 spine,
    8 thorax, 9 neck/nose, 10 head top, 11-13 left shoulder/elbow/wrist,
    14-16 right: the order SPIN's ``H36M_TO_J14 = [6,5,4,1,2,3,16,15,14,...]``
    implies for its LSP-14 output (r_ankle, r_knee, r_hip, l_hip, ...).
    ``smplx_to_j14`` is ``J_regressor_h36m_smplx[H36M_TO_J14]``, exactly as
    SPIN derives its 14 joints.  MANO sets are
    the 778 vertices furthest along each forearm, FLAME the 5023 highest head
    vertices (incl. eyeballs), body_verts the 4010 vertices furthest from the
    head and hand regions (SMPL-X has only 3896 vertices outside FLAME and MANO,
    so the remainder comes from those sets' edges).

Everything is deterministic and cached; returned arrays are read-only.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Callable, Literal

import numpy as np
from scipy.sparse import coo_matrix, identity
from scipy.sparse.linalg import splu
from scipy.spatial import cKDTree

from humanbench.bodymodels import _humanoid as hm
from humanbench.bodymodels._humanoid import BodySpec, Humanoid, Resolution

Kind = Literal["smpl", "smplx"]
Gender = Literal["neutral", "male", "female"]

SMPL_JOINT_NAMES = hm.SMPLX_JOINTS[:22] + ("left_hand", "right_hand")
SMPLX_JOINT_NAMES = hm.SMPLX_JOINTS
SMPL_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
SMPLX_PARENTS = SMPL_PARENTS[:22] + (15, 15, 15) + tuple(
    wrist if k == 0 else base + 3 * f + k - 1
    for wrist, base in ((20, 25), (21, 40)) for f in range(5) for k in range(3))
NUM_VERTS = {"smpl": 6890, "smplx": 10475}
NUM_FACES = {"smpl": 13776, "smplx": 20908}
H36M_TO_J14 = (6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10)

_RESOLUTION = {
    "smpl": Resolution(trunk=(56,) * 14, neck=(4, 5, 52), head=(26, 48), arm=(20, 24), palm=28,
                       finger=(7, 8), leg=(22, 30), foot=(6, 9), chord=(5, 5)),
    "smplx": Resolution(trunk=(48,) * 12, neck=(3, 4, 48), head=(46, 108), arm=(18, 24), palm=28,
                        finger=(13, 10), leg=(20, 26), foot=(5, 7), chord=(5, 5),
                        face_holes=True, eyeballs=(8, 10)),
}
_GENDER = {
    "neutral": BodySpec(chest=0.008),
    "male": BodySpec(stature=1.035, shoulder=1.06, hip=0.96, waist=1.02, girth=1.02, limb=1.05,
                     hand=1.05, foot=1.05, head=1.02, neck=1.03),
    "female": BodySpec(stature=0.955, shoulder=0.92, hip=1.07, waist=0.90, girth=0.97, limb=0.92,
                       chest=0.022, hand=0.92, foot=0.92, head=0.97, neck=0.95),
}
_KID = BodySpec(stature=0.68, head=1.35, leg=0.88, arm=0.93, shoulder=0.92, hip=0.92,
                girth=1.02, limb=0.95, hand=0.95, foot=0.95, neck=0.8)
# Meaningful shape directions, in beta order: (BodySpec field, change for +1 std).
_SHAPE_DIRS = (("stature", 0.045), ("girth", 0.12), ("shoulder", 0.05), ("hip", 0.06),
               ("leg", 0.04), ("arm", 0.04), ("belly", 0.03), ("chest", 0.02),
               ("head", 0.05), ("limb", 0.12))
# Blend width (m) of the skinning weights around each rigid part.
_BLEND = {"pelvis": 0.05, "spine": 0.05, "hip": 0.035, "knee": 0.03, "ankle": 0.02, "foot": 0.015,
          "neck": 0.025, "head": 0.02, "collar": 0.04, "shoulder": 0.035, "elbow": 0.03,
          "wrist": 0.015, "hand": 0.012, "jaw": 0.006, "eye": 0.001, "finger": 0.006}


# --------------------------------------------------------------------------- public API
def synthetic_model_arrays(kind: Kind, gender: Gender) -> dict[str, np.ndarray]:
    """Arrays with the keys, shapes and dtypes of the official SMPL .pkl / SMPLX_*.npz.

    SMPL: v_template (6890,3), f (13776,3) uint32, J_regressor (24,6890), J (24,3),
    weights (6890,24), kintree_table (2,24), shapedirs (6890,3,10), posedirs (6890,3,207).
    SMPL-X additionally: hands_components{l,r} (45,45), hands_mean{l,r} (45,),
    lmk_faces_idx (51,), lmk_bary_coords (51,3), dynamic_lmk_faces_idx (79,17),
    dynamic_lmk_bary_coords (79,17,3); shapedirs (10475,3,400) = 300 shape + 100
    expression columns, posedirs (10475,3,486).
    """
    return dict(_model_arrays(kind, gender))


def synthetic_kid_template(kind: Kind) -> np.ndarray:
    """(V, 3) float64 child-proportioned template (about 1.1 m) in the mesh's topology.

    Save it as .npy for ``smplx``'s ``age="kid", kid_template_path=...`` (smplx centres it).
    """
    return _kid_template(kind)


def synthetic_index_sets() -> dict[str, np.ndarray]:
    """Evaluation index sets with the shapes of the real files.

    J_regressor_h36m (17,6890), J_regressor_h36m_smplx (17,10475), smplx_to_j14 (14,10475),
    mano_left_vertex_ids / mano_right_vertex_ids (778,), flame_vertex_ids (5023,),
    body_verts_smpl / body_verts_smplx (4010,) uint32.
    """
    return dict(_index_sets())


# --------------------------------------------------------------------------- topology
@lru_cache(maxsize=None)
def _resolution(kind: Kind) -> Resolution:
    return hm.with_counts(_RESOLUTION[kind], NUM_VERTS[kind])


@lru_cache(maxsize=None)
def _reference(kind: Kind) -> tuple[np.ndarray, Humanoid]:
    """(perm, neutral humanoid in final vertex order); perm maps new id -> built id."""
    human = hm.build_humanoid(BodySpec(), _resolution(kind))
    if len(human.faces) != NUM_FACES[kind]:
        raise RuntimeError(f"synthetic {kind} mesh has {len(human.faces)} faces, expected {NUM_FACES[kind]}")
    perm = _landmark_permutation(kind, human)
    return perm, _permute(human, perm)


def _landmark_permutation(kind: Kind, human: Humanoid) -> np.ndarray:
    """Vertex order that puts smplx's extra-joint vertex ids on the matching body parts."""
    targets = _smplx_vertex_ids(kind)
    tree = cKDTree(human.verts)
    order = np.arange(len(human.verts))
    sources = {name: _landmark_source(kind, human, tree, name) for name in targets}
    if len(set(sources.values())) != len(sources):
        raise RuntimeError(f"two smplx landmark vertices coincide on the synthetic {kind} mesh")
    for name, target in targets.items():
        source = sources[name]
        pos = int(np.flatnonzero(order == source)[0])
        order[[pos, target]] = order[[target, pos]]
    return order


def _smplx_vertex_ids(kind: Kind) -> dict[str, int]:
    """smplx's extra-joint vertex ids for this mesh (imported lazily: smplx pulls in torch)."""
    from smplx.vertex_ids import vertex_ids

    return vertex_ids["smplh" if kind == "smpl" else "smplx"]


def _landmark_source(kind: Kind, human: Humanoid, tree: cKDTree, name: str) -> int:
    side = {"l": "left", "r": "right"}[name[0].lower()] if name != "nose" else ""
    if name[1:] in ("thumb", "index", "middle", "ring", "pinky"):
        return human.tips[f"{side}_{name[1:]}"]
    if name[1:] == "eye" and kind == "smplx":
        return human.tips[name]
    return int(tree.query(human.points[name])[1])


def _permute(human: Humanoid, perm: np.ndarray) -> Humanoid:
    inv = np.empty_like(perm)
    inv[perm] = np.arange(len(perm))
    return replace(human, verts=human.verts[perm], faces=inv[human.faces] if len(human.faces) else human.faces,
                   label=human.label[perm], region=human.region[perm],
                   tips={k: int(inv[v]) for k, v in human.tips.items()})


def _build(kind: Kind, spec: BodySpec) -> Humanoid:
    """Positions, joints and landmarks for ``spec`` in the final vertex order (no faces)."""
    perm, _ = _reference(kind)
    return _permute(hm.build_humanoid(spec, _resolution(kind), with_faces=False), perm)


def _joint_names(kind: Kind) -> tuple[str, ...]:
    return SMPL_JOINT_NAMES if kind == "smpl" else SMPLX_JOINT_NAMES


def _parents(kind: Kind) -> tuple[int, ...]:
    return SMPL_PARENTS if kind == "smpl" else SMPLX_PARENTS


def _label_to_joint(kind: Kind) -> np.ndarray:
    """(len(hm.LABELS),) joint index of every rigid-part label for this model kind."""
    names = _joint_names(kind)
    out = []
    for label in hm.LABELS:
        if label in names:
            out.append(names.index(label))
        elif label.startswith(("jaw", "left_eye", "right_eye")):
            out.append(names.index("head"))
        elif label.startswith("left_"):
            out.append(names.index("left_hand" if kind == "smpl" else "left_wrist"))
        else:
            out.append(names.index("right_hand" if kind == "smpl" else "right_wrist"))
    return np.array(out)


# --------------------------------------------------------------------------- disk cache
def _cache_folder() -> Path:
    """``$HUMANBENCH_CACHE`` (default ``~/.cache/humanbench``)/synthetic-models/<hash of this generator's code>."""
    code = hashlib.sha256()
    for module in (__file__, hm.__file__):
        code.update(Path(module).read_bytes())
    root = Path(os.environ.get("HUMANBENCH_CACHE", Path.home() / ".cache" / "humanbench"))
    return root / "synthetic-models" / code.hexdigest()[:16]


def _disk_cached(name: str, generate: Callable[[], tuple[tuple[str, np.ndarray], ...]]) -> tuple[tuple[str, np.ndarray], ...]:
    """Arrays from ``<cache>/<name>.npz`` (numeric only, no pickles), generated and stored atomically when absent.

    Generation is deterministic, so the cache only saves time; a different generator version
    uses another folder. An unwritable cache is not an error.
    """
    path = _cache_folder() / f"{name}.npz"
    try:
        with np.load(path, allow_pickle=False) as stored:
            return tuple((key, _readonly(stored[key])) for key in stored.files)
    except (OSError, ValueError, zipfile.BadZipFile):
        pass
    arrays = generate()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.savez(f, **dict(arrays))
        os.replace(tmp, path)
    except OSError:
        pass
    return arrays


# --------------------------------------------------------------------------- model arrays
@lru_cache(maxsize=None)
def _model_arrays(kind: Kind, gender: Gender) -> tuple[tuple[str, np.ndarray], ...]:
    return _disk_cached(f"{kind}-{gender}", lambda: _generate_model_arrays(kind, gender))


def _generate_model_arrays(kind: Kind, gender: Gender) -> tuple[tuple[str, np.ndarray], ...]:
    _, ref = _reference(kind)
    spec = _GENDER[gender]
    human = _build(kind, spec)
    v = human.verts
    names, parents = _joint_names(kind), _parents(kind)
    joint_of = _label_to_joint(kind)[ref.label]
    weights = _skinning_weights(v, ref.faces, joint_of, kind)
    targets = np.stack([human.joints[n] for n in names])
    regressor = _joint_regressor(v, targets, weights, parents)
    joints = regressor @ v
    kintree = np.stack([np.array(parents, dtype=np.int64) % (2 ** 32), np.arange(len(names))])
    shapedirs = _shape_dirs(kind, spec, v)
    arrays = {
        "v_template": v, "f": ref.faces.astype(np.uint32), "J_regressor": regressor, "J": joints,
        "weights": weights, "kintree_table": kintree.astype(np.int64),
        "posedirs": _pose_dirs(v, ref.faces, weights, joints, parents),
    }
    if kind == "smpl":
        arrays["shapedirs"] = shapedirs
    else:
        full = np.empty((len(v), 3, 400))
        full[:, :, :10] = shapedirs
        _minor_dirs(v, ref, 0.002, face=False, out=full[:, :, 10:300])
        full[:, :, 300:310] = _expression_dirs(v, ref, weights, human.joints)
        _minor_dirs(v, ref, 0.0005, face=True, out=full[:, :, 310:])
        arrays["shapedirs"] = full
        arrays.update(_hand_pca(joints))
        arrays.update(_face_landmarks(ref))
    return tuple((k, _readonly(a)) for k, a in arrays.items())


@lru_cache(maxsize=None)
def _kid_template(kind: Kind) -> np.ndarray:
    return _readonly(_build(kind, _KID).verts)


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


# --------------------------------------------------------------------------- skinning
def _skinning_weights(v: np.ndarray, faces: np.ndarray, joint_of: np.ndarray, kind: Kind) -> np.ndarray:
    """(V, J) weights: rigid part labels diffused over the surface, at most 4 per vertex.

    Solves (I + T L) W = W0 with L the edge-length weighted graph Laplacian and T
    the per-vertex squared blend width, keeps the 4 largest weights and lowers all
    by 0.05 (continuous in W; cuts the long diffusion tails so parts stay rigid).
    """
    n_v, names = len(v), _joint_names(kind)
    blend = np.array([_blend_width(name) for name in names])[joint_of] ** 2
    e = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    key = np.unique(e[:, 0] * n_v + e[:, 1])
    e = np.stack([key // n_v, key % n_v], 1)
    w = 1.0 / np.maximum(np.sum((v[e[:, 0]] - v[e[:, 1]]) ** 2, axis=1), 1e-8)
    adj = coo_matrix((np.concatenate([w, w]), (np.concatenate([e[:, 0], e[:, 1]]), np.concatenate([e[:, 1], e[:, 0]]))),
                     shape=(n_v, n_v)).tocsr()
    lap = coo_matrix((np.asarray(adj.sum(1)).ravel(), (np.arange(n_v), np.arange(n_v))), shape=(n_v, n_v)) - adj
    system = (identity(n_v) + coo_matrix((blend, (np.arange(n_v), np.arange(n_v))), shape=(n_v, n_v)) @ lap).tocsc()
    onehot = np.zeros((n_v, len(names)))
    onehot[np.arange(n_v), joint_of] = 1.0
    smooth = splu(system, permc_spec="MMD_AT_PLUS_A").solve(np.asfortranarray(onehot))
    keep = np.argpartition(-smooth, 4, axis=1)[:, :4]
    out = np.zeros_like(smooth)
    rows = np.arange(n_v)[:, None]
    out[rows, keep] = np.clip(smooth[rows, keep] - 0.05, 0, None)
    return out / out.sum(1, keepdims=True)


def _blend_width(name: str) -> float:
    for key in ("index", "middle", "ring", "pinky", "thumb"):
        if key in name:
            return _BLEND["finger"]
    key = name.split("_")[-1].rstrip("123")
    return _BLEND["eye" if name.endswith("smplhf") else key]


# --------------------------------------------------------------------------- joint regressors
def _joint_regressor(v: np.ndarray, targets: np.ndarray, weights: np.ndarray, parents: tuple[int, ...]) -> np.ndarray:
    """(J, V) regressor: each joint from nearby vertices of its own and adjacent parts."""
    reg = np.zeros((len(targets), len(v)))
    for j, target in enumerate(targets):
        related = [j] + ([parents[j]] if parents[j] >= 0 else []) + [c for c, p in enumerate(parents) if p == j]
        reg[j] = _cluster_regressor(v, target, np.flatnonzero(weights[:, related].sum(1) > 0.5))
    return reg


def _cluster_regressor(v: np.ndarray, target: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """(V,) non-negative weights on the nearest candidates whose weighted mean is ``target``.

    Uses maximum-entropy weights w_i ~ exp(lam . v_i); the cluster grows until the
    target lies inside its convex hull.
    """
    dist = np.linalg.norm(v[candidates] - target, axis=1)
    order = candidates[np.argsort(dist)]
    for k in [48 * 2 ** i for i in range(int(np.log2(len(order) / 48)) + 1)] + [len(order)]:
        ids = order[:k]
        w, err = _maxent(v[ids] - target)
        if err < 1e-7:
            break
    out = np.zeros(len(v))
    out[ids] = w
    return out


def _maxent(d: np.ndarray) -> tuple[np.ndarray, float]:
    """Weights (k,) with sum 1 and sum w_i d_i = 0 by damped Newton; returns (w, residual norm)."""
    lam = np.zeros(3)

    def weights(l: np.ndarray) -> tuple[np.ndarray, float]:
        a = d @ l
        top = a.max()
        e = np.exp(a - top)
        return e / e.sum(), top + np.log(e.sum())

    w, f = weights(lam)
    for _ in range(100):
        g = w @ d
        if np.linalg.norm(g) < 1e-9:
            break
        hess = (d * w[:, None]).T @ d - np.outer(g, g) + 1e-12 * np.eye(3)
        step = np.linalg.solve(hess, g)
        t = 1.0
        while t > 1e-4:
            w_new, f_new = weights(lam - t * step)
            if f_new <= f - 1e-4 * t * (g @ step):
                break
            t *= 0.5
        lam, w, f = lam - t * step, w_new, f_new
    return w, float(np.linalg.norm(w @ d))


# --------------------------------------------------------------------------- blend shapes
def _shape_dirs(kind: Kind, spec: BodySpec, v: np.ndarray) -> np.ndarray:
    """(V, 3, 10) orthogonal shape directions; column k = +1 std of _SHAPE_DIRS[k]."""
    cols = []
    for name, std in _SHAPE_DIRS:
        moved = replace(spec, **{name: getattr(spec, name) + std})
        cols.append((_build(kind, moved).verts - v).ravel())
    basis = []
    for col in cols:
        res = col.copy()
        for b in basis:
            res -= (res @ b) / (b @ b) * b
        basis.append(res * np.linalg.norm(col) / np.linalg.norm(res))
    return np.stack(basis, 1).reshape(len(v), 3, -1)


def _vertex_normals(v: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) area-weighted unit vertex normals."""
    fn = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
    idx = faces.ravel()
    n = np.stack([np.bincount(idx, np.repeat(fn[:, c], 3), minlength=len(v)) for c in range(3)], 1)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def _pose_dirs(v: np.ndarray, faces: np.ndarray, weights: np.ndarray, joints: np.ndarray,
               parents: tuple[int, ...]) -> np.ndarray:
    """(V, 3, 9*(J-1)) pose correctives: bulge along the normal in each joint's blend zone.

    Feature (j, a, b) is (R_j - I)[a, b].  The diagonal entries push the blend zone
    outward by 0.1 * local radius per unit of (2 - 2 cos angle) (volume preservation);
    the antisymmetric entries bulge the inner side of the bend (linear in sin angle).
    """
    normals = _vertex_normals(v, faces)
    n_j = len(parents)
    out = np.zeros((len(v), 3, 9 * (n_j - 1)))
    for j in range(1, n_j):
        zone = 4.0 * weights[:, j] * weights[:, parents[j]]
        ids = np.flatnonzero(zone > 1e-3)
        if len(ids) == 0:
            continue
        children = [c for c, p in enumerate(parents) if p == j]
        bone = (joints[children].mean(0) if children else 2 * joints[j] - joints[parents[j]]) - joints[j]
        bone /= np.linalg.norm(bone)
        rel = v[ids] - joints[j]
        radial = rel - np.outer(rel @ bone, bone)
        radius = np.average(np.linalg.norm(radial, axis=1), weights=zone[ids])
        radial /= np.maximum(np.linalg.norm(radial, axis=1, keepdims=True), 1e-9)
        k = 0.1 * radius * zone[ids][:, None] * normals[ids]          # (n, 3)
        side = np.cross(bone, radial)                                  # (n, 3): (b x r) . omega
        base = 9 * (j - 1)
        for a in range(3):
            out[ids, :, base + 4 * a] = -0.5 * k
        for (r, c), axis in (((2, 1), 0), ((0, 2), 1), ((1, 0), 2)):
            out[ids, :, base + 3 * r + c] = 0.5 * k * side[:, axis:axis + 1]
            out[ids, :, base + 3 * c + r] = -0.5 * k * side[:, axis:axis + 1]
    return out


def _face_coords(v: np.ndarray, joints: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Azimuth (0 = front, + = left) and height above the head joint of every vertex."""
    hj = joints["head"]
    centre_z = hj[2] - 0.03
    return np.arctan2(v[:, 0], v[:, 2] - centre_z), v[:, 1] - hj[1]


# Expressions 1..9 (0 is jaw open, from the jaw weights): Gaussian patches
# (azimuth, height above head joint, sigma azimuth, sigma height, direction, amplitude m);
# direction is (lateral, up, forward) with lateral mirrored per side, or "radial".
_EXPRESSIONS = (
    [(0.28, 0.011, 0.12, 0.012, (0.5, 0.8, -0.3), 0.005), (0.55, 0.04, 0.2, 0.02, (0.0, 0.6, 0.4), 0.002)],  # smile
    [(0.28, 0.011, 0.12, 0.012, (0.1, -1.0, 0.0), 0.004)],                                                 # frown
    [(0.35, 0.10, 0.35, 0.02, (0.0, 1.0, 0.0), 0.005)],                                                    # brow raise
    [(0.15, 0.095, 0.15, 0.012, (-0.6, -0.8, 0.2), 0.004)],                                                # brow furrow
    [(0.0, 0.011, 0.3, 0.015, (0.0, 0.0, 1.0), 0.006), (0.28, 0.011, 0.1, 0.01, (-1.0, 0.0, 0.3), 0.004)],  # pucker
    [(0.6, 0.02, 0.25, 0.025, "radial", 0.005)],                                                           # cheek puff
    [(0.28, 0.011, 0.12, 0.012, (1.0, -0.2, -0.3), 0.005)],                                                # stretch
    [(0.0, 0.022, 0.25, 0.008, (0.0, 1.0, 0.2), 0.003), (0.16, 0.036, 0.1, 0.01, (0.0, 1.0, 0.0), 0.002)],  # lip raise
    [(0.40, 0.088, 0.15, 0.006, (0.0, -1.0, 0.2), 0.004), (0.40, 0.072, 0.15, 0.006, (0.0, 0.5, 0.0), 0.0015)],  # eyes
)


def _expression_dirs(v: np.ndarray, ref: Humanoid, weights: np.ndarray, joints: dict[str, np.ndarray]) -> np.ndarray:
    """(V, 3, 10) face deformations: jaw open, smile, frown, brow raise, brow furrow,
    pucker, cheek puff, mouth stretch, upper-lip raise, eye close."""
    az, h = _face_coords(v, joints)
    head = ref.region == hm.REGION_ID["head"]
    hs = float(np.ptp(v[head, 1]) / (hm.HEAD_TOP - hm.HEAD[0, 0]))
    out = np.zeros((len(v), 3, 1 + len(_EXPRESSIONS)))
    jaw = weights[:, SMPLX_JOINT_NAMES.index("jaw")]
    out[:, :, 0] = 0.008 * jaw[:, None] * np.array([0.0, -1.0, -0.3])
    radial = np.stack([np.sin(az), np.zeros_like(az), np.cos(az)], 1)
    for col, parts in enumerate(_EXPRESSIONS, start=1):
        for a0, h0, sa, sh, direction, amp in parts:
            for side in ((1.0, -1.0) if a0 > 0 else (1.0,)):
                g = amp * head * np.exp(-((az - side * a0) / sa) ** 2 - ((h / hs - h0) / sh) ** 2)
                d = radial if direction == "radial" else np.array(direction) * [side, 1.0, 1.0]
                out[:, :, col] += g[:, None] * d
    return out


def _minor_dirs(v: np.ndarray, ref: Humanoid, amp: float, face: bool, out: np.ndarray) -> None:
    """Fill ``out`` (V, 3, n) with small smooth normal displacements of decaying amplitude (seeded)."""
    n = out.shape[2]
    rng = np.random.default_rng(7 if face else 3)
    normals = _vertex_normals(v, ref.faces)
    pool = np.flatnonzero(ref.region == hm.REGION_ID["head"]) if face else np.arange(len(v))
    centres = v[rng.choice(pool, 48, replace=False)]
    sigma = 0.02 if face else 0.08
    d2 = (v ** 2).sum(1)[:, None] + (centres ** 2).sum(1)[None] - 2.0 * v @ centres.T
    basis = np.exp(-d2 / (2 * sigma ** 2))
    if face:
        basis *= (ref.region == hm.REGION_ID["head"])[:, None]
    field = basis @ rng.normal(size=(48, n))
    field *= amp * (1.0 + np.arange(n)) ** -0.6 / np.abs(field).max(0)
    np.multiply(normals[:, :, None], field[:, None, :], out=out)


# --------------------------------------------------------------------------- hands and face
def _hand_pca(joints: np.ndarray) -> dict[str, np.ndarray]:
    """Orthonormal (45, 45) hand-pose bases and relaxed mean poses for both hands.

    Left-hand components: 0 fist (all joints flex), 1 finger spread, 2 thumb
    opposition, 3 knuckle vs. finger-joint flexion, 4 point (index/middle vs.
    ring/pinky), 5 ring/pinky curl, 6 thumb abduction; the rest complete the
    basis (seeded).  The right hand is the mirror image (axis-angle (x, -y, -z)).
    """
    flex, spread = np.zeros((15, 3)), np.zeros((15, 3))
    for f in range(5):
        for k in range(3):
            j = 25 + 3 * f + k
            child = joints[j + 1] if k < 2 else 2 * joints[j] - joints[j - 1]
            bone = (child - joints[j]) / np.linalg.norm(child - joints[j])
            axis = np.cross(bone, [0.0, -1.0, 0.0])
            flex[3 * f + k] = axis / np.linalg.norm(axis)
            spread[3 * f + k] = [0.0, 1.0, 0.0]
    finger = np.repeat(np.arange(5), 3)           # 0 index, 1 middle, 2 pinky, 3 ring, 4 thumb
    level = np.tile(np.arange(3), 5)
    thumb = finger == 4
    comps = [
        flex * np.where(thumb, 0.5, 1.0)[:, None],
        spread * np.array([1.0, 0.0, -2.0, -1.0, 0.0])[finger][:, None] * (level == 0)[:, None],
        (flex + 0.6 * np.array([1.0, 0.0, 0.0])) * thumb[:, None],
        flex * np.where(level == 0, 1.0, -0.7)[:, None] * ~thumb[:, None],
        flex * np.array([-1.0, -1.0, 1.0, 1.0, 0.0])[finger][:, None],
        flex * np.array([0.0, 0.0, 1.0, 1.0, 0.0])[finger][:, None],
        spread * (thumb & (level == 0))[:, None],
    ]
    rng = np.random.default_rng(11)
    rows = [c.ravel() for c in comps] + list(rng.normal(size=(45, 45)))
    basis = []
    for r in rows:
        r = r - sum((r @ b) * b for b in basis) if basis else r.copy()
        if np.linalg.norm(r) > 1e-6 and len(basis) < 45:
            basis.append(r / np.linalg.norm(r))
    left = np.stack(basis)
    mean_left = (0.25 * flex * np.where(thumb, 0.4, 1.0)[:, None]).ravel()
    mirror = np.tile([1.0, -1.0, -1.0], 15)
    return {"hands_componentsl": left, "hands_componentsr": left * mirror,
            "hands_meanl": mean_left, "hands_meanr": mean_left * mirror}


def _face_landmarks(ref: Humanoid) -> dict[str, np.ndarray]:
    """Static (51) and dynamic contour (79 x 17) landmarks as head faces + barycentrics."""
    head_faces = np.flatnonzero(np.all(ref.region[ref.faces] == hm.REGION_ID["head"], axis=1))
    tri = ref.verts[ref.faces[head_faces]]
    tree = cKDTree(tri.mean(1))
    static = _embed(ref.points["lmk"], head_faces, tri, tree)
    dynamic = _embed(ref.points["contour"].reshape(-1, 3), head_faces, tri, tree)
    return {"lmk_faces_idx": static[0], "lmk_bary_coords": static[1],
            "dynamic_lmk_faces_idx": dynamic[0].reshape(79, 17),
            "dynamic_lmk_bary_coords": dynamic[1].reshape(79, 17, 3)}


def _embed(points: np.ndarray, face_ids: np.ndarray, tri: np.ndarray, tree: cKDTree) -> tuple[np.ndarray, np.ndarray]:
    """Closest face (among the 8 nearest centroids) and clamped barycentrics of each point."""
    _, cand = tree.query(points, k=8)                              # (P, 8)
    bary = _barycentric(tri[cand], points[:, None, :])             # (P, 8, 3)
    err = np.linalg.norm(np.einsum("pkc,pkcd->pkd", bary, tri[cand]) - points[:, None], axis=-1)
    best = np.argmin(err, axis=1)
    rows = np.arange(len(points))
    return face_ids[cand[rows, best]], bary[rows, best]


def _barycentric(t: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Barycentrics (..., 3) of p's projection onto triangles t (..., 3, 3), clamped into them."""
    e1, e2, d = t[..., 1, :] - t[..., 0, :], t[..., 2, :] - t[..., 0, :], p - t[..., 0, :]
    a, b, c = (e1 * e1).sum(-1), (e1 * e2).sum(-1), (e2 * e2).sum(-1)
    r1, r2 = (d * e1).sum(-1), (d * e2).sum(-1)
    det = a * c - b * b
    u, w = (c * r1 - b * r2) / det, (a * r2 - b * r1) / det
    out = np.clip(np.stack([1 - u - w, u, w], -1), 0, None)
    return out / out.sum(-1, keepdims=True)


# --------------------------------------------------------------------------- index sets
@lru_cache(maxsize=None)
def _index_sets() -> tuple[tuple[str, np.ndarray], ...]:
    out = {}
    for kind in ("smpl", "smplx"):
        arrays = dict(_model_arrays(kind, "neutral"))
        _, ref = _reference(kind)
        v, joints = arrays["v_template"], arrays["J"]
        regions = _regions(kind, v, ref, joints)
        suffix = "" if kind == "smpl" else "_smplx"
        out[f"J_regressor_h36m{suffix}"] = _h36m_regressor(kind, v, ref, joints)
        out[f"body_verts_{kind}"] = _body_verts(v, regions["body"]).astype(np.uint32)
        if kind == "smplx":
            out["smplx_to_j14"] = out["J_regressor_h36m_smplx"][list(H36M_TO_J14)]
            out["mano_left_vertex_ids"] = regions["left_hand"]
            out["mano_right_vertex_ids"] = regions["right_hand"]
            out["flame_vertex_ids"] = regions["head"]
    return tuple((k, _readonly(a)) for k, a in out.items())


def _regions(kind: Kind, v: np.ndarray, ref: Humanoid, joints: np.ndarray) -> dict[str, np.ndarray]:
    """Sorted ids: head (5023, FLAME-sized), hands (778 each, MANO-sized), body mask (V,) bool."""
    names = _joint_names(kind)
    out = {}
    for side in ("left", "right"):
        el, wr = joints[names.index(f"{side}_elbow")], joints[names.index(f"{side}_wrist")]
        axis = (wr - el) / np.linalg.norm(wr - el)
        out[f"{side}_hand"] = np.sort(np.argsort(-(v - wr) @ axis, kind="stable")[:778])
    head_like = np.isin(ref.region, [hm.REGION_ID[r] for r in ("head", "left_eye", "right_eye")])
    out["head"] = np.sort(np.argsort(-(v[:, 1] + 10.0 * head_like), kind="stable")[:5023])
    body = np.ones(len(v), dtype=bool)
    body[head_like] = False
    body[np.isin(ref.region, [hm.REGION_ID["left_hand"], hm.REGION_ID["right_hand"]])] = False
    if kind == "smplx":
        body[np.concatenate([out["head"], out["left_hand"], out["right_hand"]])] = False
    out["body"] = body
    return out


def _body_verts(v: np.ndarray, body: np.ndarray) -> np.ndarray:
    """4010 ids: body vertices farthest from head/hands first, then the closest others."""
    inside, outside = np.flatnonzero(body), np.flatnonzero(~body)
    score = np.empty(len(v))
    score[inside] = 1.0 + cKDTree(v[outside]).query(v[inside])[0]
    score[outside] = -cKDTree(v[inside]).query(v[outside])[0]
    return np.sort(np.argsort(-score, kind="stable")[:4010])


def _h36m_regressor(kind: Kind, v: np.ndarray, ref: Humanoid, joints: np.ndarray) -> np.ndarray:
    """(17, V) Human3.6M joints regressed from nearby vertices (head top from the crown)."""
    n = _joint_names(kind)
    j = {name: joints[i] for i, name in enumerate(n)}
    side = {s: np.array([1.0 if s == "l" else -1.0, 1.0, 1.0]) for s in "lr"}
    hip = {s: j[f"{full}_hip"] + side[s] * [0.012, -0.01, 0.0] for s, full in (("l", "left"), ("r", "right"))}
    nose = v[_smplx_vertex_ids(kind)["nose"]]
    targets = [
        0.5 * (hip["l"] + hip["r"]), hip["l"], j["left_knee"], j["left_ankle"],
        hip["r"], j["right_knee"], j["right_ankle"],
        0.5 * (j["spine1"] + j["spine2"]), 0.7 * j["neck"] + 0.3 * j["spine3"],
        0.5 * (j["head"] + nose), v[ref.tips["head_top"]] - [0.0, 0.01, 0.0],
        j["left_shoulder"], j["left_elbow"], j["left_wrist"],
        j["right_shoulder"], j["right_elbow"], j["right_wrist"],
    ]
    body = ~np.isin(ref.region, [hm.REGION_ID["left_eye"], hm.REGION_ID["right_eye"]])
    return np.stack([_cluster_regressor(v, t, np.flatnonzero(body)) for t in targets])
