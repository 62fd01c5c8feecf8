"""Miniature AGORA in the layout of the real download (formats.md §2), with synthetic people.

Written by :func:`write_miniature_agora`::

    ROOT/SMPLX/{train_0,train_1,validation_0}_withjv.pkl   pandas DataFrames (``DataFrame.to_pickle``)
    ROOT/SMPL/{train_0,train_1,validation_0}_withjv.pkl    the same rows with SMPL joints
    ROOT/smplx_gt/<subset>/<scan>.pkl    SMPL-X fits: dict of float32 numpy arrays, pickle protocol 2
    ROOT/smpl_gt/<subset>/<scan>.pkl     SMPL fits: dict of torch tensors (root_pose, body_pose, betas,
                                         translation), plain pickle; all but the first scan's storages
                                         carry the device tag 'cuda:0' (as saved from a GPU)
    ROOT/images/{train,validation,test}/<stem>.png and <stem>_1280x720.png

The ground truth is made the way the AGORA kit makes it (``project_joints``): each fit is posed with the
kit's body model (gendered SMPL-X, female kids on the neutral kid model, neutral SMPL; hand poses
relative to the hand mean) and carried step by step through the kit's chain (flip y/z, rotate by
``Yaw - 90``, add the location, subtract the camera, un-yaw, pitch, project at 3840x2160). People are
placed so that they land in view. ``gt_joints_2d`` are 3840x2160 pixels, as in the real files.

Images are rendered with the synthetic world's rasterizer, the people's SMPL-X meshes over a
procedural background, at ``scale_3840`` x 3840x2160 (default 1/8: 480x270); the 1280x720 set is
that render resized to ``scale_1280`` x 1280x720 (default 1/4: 320x180). Occlusion values are
given, not measured. The ``.obj``/``.mtl`` meshes next to the fits are not written (no converter
reads them).
"""

from __future__ import annotations

import io
import pickle
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.serialization
from PIL import Image

from humanbench.loaders.agora import (
    FULL_SIZE,
    SceneCamera,
    kit_body_model,
    model_gender,
    rot_x,
    rot_y,
    scene_camera,
    unreal_to_cv,
)
from humanbench.synthetic.background import ground_and_sky
from humanbench.synthetic.motion import MOTIONS, sample_motion
from humanbench.synthetic.raster import rasterize, shade


@dataclass(frozen=True)
class Scan:
    """One scanned person of the miniature: fit file location, gender, kid."""

    subset: str
    name: str
    gender: str
    kid: bool


SCANS = (
    Scan("trainset_3dpeople_adults_bfh", "10004_w_Amaya_0_0", "female", False),
    Scan("trainset_renderpeople_adults_bfh", "rp_eric_rigged_005_0_0", "male", False),
    Scan("trainset_axyz_kids_bfh", "kid_m_Leo_0_0", "male", True),
    Scan("trainset_renderpeople_kids_bfh", "kid_f_Mia_0_0", "female", True),
    Scan("trainset_humanalloy_adults_body", "hm_w_Sara_0_0", "female", False),
    Scan("trainset_3dpeople_adults_bfh", "10012_m_Tom_0_0", "male", False),
)

# (split, dataframe part, image stem, scan indices, occlusion % per person). train_0 and train_1
# interleave in key order; archviz (fixed pitched cameras), hdri (50 mm) and dataframe-camera scenes.
IMAGES = (
    ("train", 0, "ag_trainset_3dpeople_bfh_archviz_5_10_cam00_00000", (0, 2, 1), (5.0, 40.0, 91.5)),
    ("train", 1, "ag_trainset_axyz_bfh_hdri_50mm_5_10_00001", (3, 5), (0.0, 12.0)),
    ("train", 0, "ag_trainset_renderpeople_bfh_brushifyforest_5_15_00002", (1, 4), (30.0, 99.0)),
    ("validation", 0, "ag_validationset_renderpeople_bfh_flowers_5_15_00000", (5, 3, 0), (95.0, 10.0, 90.0)),
    ("validation", 0, "ag_validationset_humanalloy_body_construction_5_15_00001", (4, 2), (0.0, 55.0)),
    ("validation", 0, "ag_validationset_3dpeople_bfh_archviz_5_10_cam02_00002", (1, 0), (20.0, 0.0)),
)
TEST_IMAGES = ("ag_testset_axyz_bfh_archviz_5_10_cam03_00001",
               "ag_testset_renderpeople_bfh_brushifygrasslands_5_15_00000")
AGES = {False: "31-50", True: "5-10"}
ETHNICITIES = ("white", "asian", "black", "hispanic")


@dataclass
class ImageTruth:
    """What the miniature wrote for one annotated image (P people)."""

    split: str
    dataframe: str  # file name, e.g. "train_0_withjv.pkl"
    genders: list[str]  # annotated
    kid: np.ndarray  # (P,) bool
    valid: np.ndarray  # (P,) bool
    occlusion: np.ndarray  # (P,)
    joints3d: dict[str, np.ndarray]  # "smplx": (P,127,3), "smpl": (P,45,3), camera frame, metres
    joints2d: dict[str, np.ndarray]  # same joints, (P,J,2) pixels at 3840x2160


@dataclass
class AgoraMiniature:
    """The written miniature: root, per-key truth, test keys and the stored image sizes."""

    root: Path
    images: dict[str, ImageTruth]
    test_keys: list[str]
    sizes: dict[str, tuple[int, int]]  # "1280" / "3840" -> stored (width, height)


# --------------------------------------------------------------------------- torch-style pickles


class _Storage:
    """Pickles like a torch storage: ``torch.storage._load_from_bytes(<legacy torch.save stream>)``."""

    def __init__(self, data: np.ndarray, key: str, device: str) -> None:
        self.data, self.key, self.device = data.astype("<f4").ravel(), key, device

    def __reduce__(self) -> tuple:
        return torch.storage._load_from_bytes, (self.stream(),)

    def stream(self) -> bytes:
        """The legacy stream: magic, protocol, system info, the storage's persistent id, keys, raw data."""
        sys_info = {"protocol_version": torch.serialization.PROTOCOL_VERSION, "little_endian": True,
                    "type_sizes": {"short": torch.serialization.SHORT_SIZE, "int": torch.serialization.INT_SIZE,
                                   "long": torch.serialization.LONG_SIZE}}
        cuda = self.device == "cuda"  # torch 1.x names CUDA storages torch.cuda.<Type>Storage
        storage_id = ("storage", torch.cuda.FloatStorage if cuda else torch.FloatStorage, self.key,
                      "cuda:0" if cuda else "cpu", self.data.size, None)
        out = io.BytesIO()
        for value in (torch.serialization.MAGIC_NUMBER, torch.serialization.PROTOCOL_VERSION, sys_info):
            pickle.dump(value, out, protocol=2)
        _PersistentPickler(out, storage_id).dump(storage_id)
        pickle.dump([self.key], out, protocol=2)
        out.write(np.int64(self.data.size).astype("<i8").tobytes() + self.data.tobytes())
        return out.getvalue()


class _PersistentPickler(pickle.Pickler):
    """Writes one storage reference as a persistent id, as torch's legacy pickler does."""

    def __init__(self, out: io.BytesIO, storage_id: tuple) -> None:
        super().__init__(out, protocol=2)
        self.storage_id = storage_id

    def persistent_id(self, obj: object) -> tuple | None:
        return self.storage_id if obj is self.storage_id else None


class _Tensor:
    """Pickles like a contiguous float32 torch tensor: ``torch._utils._rebuild_tensor_v2(storage, ...)``."""

    def __init__(self, array: np.ndarray, key: str, device: str) -> None:
        self.array, self.key, self.device = np.ascontiguousarray(array, dtype=np.float32), key, device

    def __reduce__(self) -> tuple:
        strides = tuple(s // self.array.itemsize for s in self.array.strides)
        return torch._utils._rebuild_tensor_v2, (_Storage(self.array, self.key, self.device), 0, self.array.shape,
                                                 strides, False, OrderedDict())


def tensor_pickle_bytes(arrays: dict[str, np.ndarray], device: str, first_key: int = 94_000_000_000_000) -> bytes:
    """A pickled dict of float32 torch tensors, in the layout ``pickle.dumps`` gives real tensors.

    ``device`` "cuda" tags the storages as saved from ``cuda:0`` (which torch refuses to load without a GPU).
    """
    tensors = {name: _Tensor(a, str(first_key + i), device) for i, (name, a) in enumerate(arrays.items())}
    return pickle.dumps(tensors, protocol=4)


# --------------------------------------------------------------------------- ground truth


def _fit(scan: Scan, rng: np.random.Generator) -> dict[str, dict[str, np.ndarray]]:
    """Random SMPL-X and SMPL fits of one scan (float32, shapes as in the real pickles)."""
    body = sample_motion(str(rng.choice(sorted(MOTIONS))), 1, rng).reshape(69)
    betas = np.concatenate([rng.normal(scale=0.8, size=10), [rng.uniform(0.3, 1.0)] if scan.kid else []])
    orient = np.array([rng.uniform(-0.15, 0.15), rng.uniform(-0.6, 0.6), rng.uniform(-0.1, 0.1)])
    transl = rng.uniform(-0.05, 0.05, 3)
    smplx = {"global_orient": orient, "body_pose": body[:63], "left_hand_pose": rng.normal(scale=0.15, size=45),
             "right_hand_pose": rng.normal(scale=0.15, size=45), "jaw_pose": [rng.uniform(0, 0.2), 0, 0],
             "leye_pose": rng.normal(scale=0.05, size=3), "reye_pose": rng.normal(scale=0.05, size=3),
             "expression": rng.normal(scale=0.5, size=10), "betas": betas, "transl": transl}
    smpl = {"root_pose": orient, "body_pose": np.concatenate([body[:63], rng.normal(scale=0.1, size=6)]),
            "betas": betas, "translation": transl + rng.uniform(-0.01, 0.01, 3)}
    return {"smplx": _as_rows(smplx), "smpl": _as_rows(smpl)}


def _as_rows(fit: dict[str, object]) -> dict[str, np.ndarray]:
    """Parameters stored as (1, D) float32 arrays, like the released fits."""
    return {key: np.asarray(value, dtype=np.float32).reshape(1, -1) for key, value in fit.items()}


def _kit_inputs(fit: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """A stored fit as the kit feeds it to smplx (SMPL keys renamed, float64)."""
    renamed = {"root_pose": "global_orient", "translation": "transl"}
    return {renamed.get(k, k): torch.from_numpy(v.astype(np.float64)) for k, v in fit.items()}


def _pose(kind: str, scan: Scan, fit: dict[str, np.ndarray],
          body_models: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """Model-space joints (J,3) and vertices (V,3) of a fit, posed with the kit's model."""
    model = kit_body_model(kind, model_gender(kind, scan.gender, scan.kid), scan.kid, body_models)
    with torch.no_grad():
        out = model(**_kit_inputs(fit))
    return out.joints[0].numpy(), out.vertices[0].numpy()


def kit_chain(points: np.ndarray, yaw: float, location_cm: np.ndarray, camera: SceneCamera) -> np.ndarray:
    """The kit's projection.py steps on model-space points (N,3) -> camera frame (N,3), metres."""
    points = points * np.array([1.0, -1.0, -1.0])
    points = points @ rot_y(yaw - 90.0).T + unreal_to_cv(location_cm)
    points = (points - camera.position) @ rot_y(-camera.yaw).T
    return points @ rot_x(camera.pitch).T


def _project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(N,3) -> (N,2) pixels, as the kit's ``project_point``: K [I | 0] X, then divide by depth."""
    homogeneous = points @ K.T
    return homogeneous[:, :2] / homogeneous[:, 2:3]


def _place(pelvis: np.ndarray, target: np.ndarray, yaw: float, camera: SceneCamera) -> np.ndarray:
    """Unreal location (cm) that puts model-space ``pelvis`` at camera-frame ``target`` after the kit chain."""
    world = camera.rotation().T @ target + camera.position - rot_y(yaw - 90.0) @ (pelvis * [1.0, -1.0, -1.0])
    return np.array([world[2], world[0], -world[1]]) * 100.0  # inverse of unreal_to_cv


# --------------------------------------------------------------------------- writing


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _write_fits(root: Path, fits: list[dict[str, dict[str, np.ndarray]]]) -> None:
    for index, (scan, fit) in enumerate(zip(SCANS, fits)):
        _write(root / "smplx_gt" / scan.subset / f"{scan.name}.pkl", pickle.dumps(fit["smplx"], protocol=2))
        smpl = tensor_pickle_bytes(fit["smpl"], "cpu" if index == 0 else "cuda", 94_000_000_000_000 + 16 * index)
        _write(root / "smpl_gt" / scan.subset / f"{scan.name}.pkl", smpl)


def _render(meshes: list[np.ndarray], faces: np.ndarray, camera: SceneCamera, size: tuple[int, int],
            rng: np.random.Generator) -> np.ndarray:
    """(H,W,3) uint8 render of camera-frame SMPL-X meshes over a procedural ground and sky."""
    width, height = size
    K = camera.intrinsics(width, height)
    verts = torch.from_numpy(np.concatenate(meshes))
    all_faces = torch.from_numpy(np.concatenate([faces + i * len(meshes[0]) for i in range(len(meshes))]))
    colours = torch.from_numpy(np.repeat(rng.uniform(0.2, 0.9, (len(meshes), 3)), len(meshes[0]), axis=0))
    floor = float(max(m[:, 1].max() for m in meshes))
    background = ground_and_sky(K, height, width, max(floor, 0.5), 1.0, rng.uniform(60, 200, (2, 3)),
                                rng.uniform(120, 255, (2, 3)))
    fragments = rasterize(verts, all_faces, torch.from_numpy(K), height, width)
    return shade(fragments, verts, all_faces, colours, background=torch.from_numpy(background)).numpy()


def _png(array: np.ndarray, size: tuple[int, int] | None = None) -> bytes:
    image = Image.fromarray(array)
    image = image.resize(size, Image.BILINEAR) if size and size != image.size else image
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _annotate(scans: tuple[int, ...], fits: list, camera: SceneCamera, rng: np.random.Generator,
              body_models: Path | None) -> tuple[dict[str, list], list[np.ndarray]]:
    """Dataframe person columns of one image (both body models) and the people's camera-frame SMPL-X meshes."""
    K = camera.intrinsics(*FULL_SIZE)
    columns: dict[str, list] = {}
    meshes = []
    for slot, index in enumerate(scans):
        scan, yaw = SCANS[index], float(rng.uniform(0.0, 360.0))
        target = np.array([1.1 * (slot - (len(scans) - 1) / 2), rng.uniform(0.1, 0.4), 5.5 + 0.8 * slot])
        posed = {kind: _pose(kind, scan, fits[index][kind], body_models) for kind in ("smplx", "smpl")}
        location = _place(posed["smplx"][0][0], target, yaw, camera)
        for name, value in zip("XYZ", location):
            columns.setdefault(name, []).append(float(value))
        columns.setdefault("Yaw", []).append(yaw)
        for kind, (joints, verts) in posed.items():
            cam_joints, cam_verts = kit_chain(joints, yaw, location, camera), kit_chain(verts, yaw, location, camera)
            columns.setdefault(f"{kind}:gt_joints_2d", []).append(_project(cam_joints, K))
            columns.setdefault(f"{kind}:gt_joints_3d", []).append(cam_joints)
            columns.setdefault(f"{kind}:gt_verts", []).append(cam_verts.astype(np.float32))
            columns.setdefault(f"gt_path_{kind}", []).append(f"{kind}_gt/{scan.subset}/{scan.name}.obj")
            meshes += [cam_verts] if kind == "smplx" else []
    return columns, meshes


def _row(stem: str, scans: tuple[int, ...], occlusion: tuple[float, ...], people: dict[str, list],
         camera_values: list[float], rng: np.random.Generator) -> dict[str, object]:
    """One dataframe row (columns of formats.md §2.3) for both dataframes; joint columns keyed by kind."""
    people_scans = [SCANS[i] for i in scans]
    row = {"imgPath": f"{stem}.png", **{name: people[name] for name in ("X", "Y", "Z", "Yaw")},
           **dict(zip(("camX", "camY", "camZ", "camYaw"), camera_values)),
           "gender": [s.gender for s in people_scans], "kid": [s.kid for s in people_scans],
           "age": [AGES[s.kid] for s in people_scans],
           "ethnicity": [str(rng.choice(ETHNICITIES)) for _ in people_scans],
           "occlusion": list(occlusion), "isValid": [0.0 <= o <= 90.0 for o in occlusion],
           "gt_path_smplx": people["gt_path_smplx"], "gt_path_smpl": people["gt_path_smpl"]}
    return row | {key: value for key, value in people.items() if ":" in key}


def _dataframe_bytes(rows: list[dict[str, object]], kind: str) -> bytes:
    """The rows as a pandas DataFrame pickle, written by pandas (object columns, like the released files)."""
    columns = {}
    for name in rows[0]:
        if ":" in name and not name.startswith(f"{kind}:"):
            continue
        values = [row[name] for row in rows]
        column = name.split(":")[-1]
        columns[column] = values if name.startswith("cam") else pd.Series(values, dtype=object)
    frame = pd.DataFrame(columns)
    frame.columns = pd.Index(list(frame.columns), dtype=object)
    buf = io.BytesIO()
    frame.to_pickle(buf)
    return buf.getvalue()


def write_miniature_agora(root: str | Path, *, seed: int = 0, body_models: str | Path | None = None,
                          scale_1280: float = 0.25, scale_3840: float = 0.125) -> AgoraMiniature:
    """Write the miniature under ``root`` (see the module doc) and return its ground truth."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    fits = [_fit(scan, rng) for scan in SCANS]
    _write_fits(root, fits)
    sizes = {"1280": (round(1280 * scale_1280), round(720 * scale_1280)),
             "3840": (round(FULL_SIZE[0] * scale_3840), round(FULL_SIZE[1] * scale_3840))}
    faces = kit_body_model("smplx", SCANS[0].gender, SCANS[0].kid, body_models).faces  # one topology for all
    frames: dict[tuple[str, int], list[dict[str, object]]] = {}
    truth = {}
    for split, part, stem, scans, occlusion in IMAGES:
        camera_values = [*rng.uniform(-200, 200, 2), rng.uniform(20, 120), rng.uniform(-180, 180)]
        camera = scene_camera(f"{stem}.png", np.array(camera_values[:3]), camera_values[3])
        people, meshes = _annotate(scans, fits, camera, rng, body_models)
        frames.setdefault((split, part), []).append(_row(stem, scans, occlusion, people, camera_values, rng))
        _write_images(root / "images" / split, stem, _render(meshes, faces, camera, sizes["3840"], rng), sizes)
        truth[stem] = _truth(split, f"{split}_{part}_withjv.pkl", scans, occlusion, people)
    for (split, part), rows in frames.items():
        for kind, folder in (("smplx", "SMPLX"), ("smpl", "SMPL")):
            _write(root / folder / f"{split}_{part}_withjv.pkl", _dataframe_bytes(rows, kind))
    for stem in TEST_IMAGES:
        camera = scene_camera(f"{stem}.png", np.array([0.0, 0.0, 50.0]), 0.0)
        people, meshes = _annotate((0, 1), fits, camera, rng, body_models)
        _write_images(root / "images" / "test", stem, _render(meshes, faces, camera, sizes["3840"], rng), sizes)
    return AgoraMiniature(root, truth, sorted(TEST_IMAGES), sizes)


def _write_images(folder: Path, stem: str, render: np.ndarray, sizes: dict[str, tuple[int, int]]) -> None:
    _write(folder / f"{stem}.png", _png(render))
    _write(folder / f"{stem}_1280x720.png", _png(render, sizes["1280"]))


def _truth(split: str, dataframe: str, scans: tuple[int, ...], occlusion: tuple[float, ...],
           people: dict[str, list]) -> ImageTruth:
    occ = np.array(occlusion)
    return ImageTruth(split, dataframe, [SCANS[i].gender for i in scans], np.array([SCANS[i].kid for i in scans]),
                      (occ >= 0) & (occ <= 90), occ,
                      {kind: np.stack(people[f"{kind}:gt_joints_3d"]) for kind in ("smplx", "smpl")},
                      {kind: np.stack(people[f"{kind}:gt_joints_2d"]) for kind in ("smplx", "smpl")})
