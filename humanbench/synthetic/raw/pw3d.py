"""Miniature 3DPW in the layout of the official download, with people from the synthetic world.

Written layout (formats.md §1.1)::

    ROOT/imageFiles/<sequence>/image_00000.jpg ...                 5-digit, 0-based, portrait JPEGs
    ROOT/sequenceFiles/{train,validation,test}/<sequence>.pkl      Python-2 pickles (need latin1)

Each pickle holds every key of formats.md §1.3 with the fixture recipe of §1.6: keys ``genders``
and ``poses2d`` (not the readme's ``gender``/``poses2D``), ``poses2d`` as (N,3,18) COCO-18
detections with some all-zero frames, ``campose_valid`` with zeros, betas (10,) and (300,)
zero-padded in alternation, 60 Hz arrays of length 2N with ``img_frame_ids = 2 * arange(N)``,
placeholder ``texture_maps`` and ``v_template_clothed``.

The people are posed and rendered by :class:`~humanbench.synthetic.world.SyntheticWorld` in the
camera frame; the pickles hold them in a WORLD frame, as 3DPW does, through a random world->camera
pose per frame (``cam_poses``): ``R_world = R_cam^T R_g`` and, because SMPL rotates about the rest
pelvis ``J0(betas)`` of the gendered model, ``trans_world = R^T (trans_cam + J0 - t) - J0``. A
converter has to undo exactly this to reproduce the returned camera-frame :class:`GroundTruth`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from humanbench.bodymodels import BodyModel
from humanbench.schema import Sample
from humanbench.synthetic.official_files import py2_pickle_bytes
from humanbench.synthetic.world import SyntheticWorld, WorldConfig

SPLIT_SEQUENCES: dict[str, tuple[str, ...]] = {
    "train": tuple(f"courtyard_{s}" for s in (
        "arguing_00", "backpack_00", "basketball_00", "bodyScannerMotions_00", "box_00", "capoeira_00",
        "captureSelfies_00", "dancing_01", "giveDirections_00", "golf_00", "goodNews_00", "jacket_00", "laceShoe_00",
        "rangeOfMotions_00", "relaxOnBench_00", "relaxOnBench_01", "shakeHands_00", "warmWelcome_00"))
    + tuple(f"outdoors_{s}" for s in ("climbing_00", "climbing_01", "climbing_02", "freestyle_00", "slalom_00",
                                      "slalom_01")),
    "validation": tuple(f"courtyard_{s}" for s in ("basketball_01", "dancing_00", "drinking_00", "hug_00",
                                                   "jumpBench_01", "rangeOfMotions_01"))
    + ("downtown_walkDownhill_00",)
    + tuple(f"outdoors_{s}" for s in ("crosscountry_00", "freestyle_01", "golf_00", "parcours_00", "parcours_01")),
    "test": tuple(f"downtown_{s}" for s in (
        "arguing_00", "bar_00", "bus_00", "cafe_00", "car_00", "crossStreets_00", "downstairs_00", "enterShop_00",
        "rampAndStairs_00", "runForBus_00", "runForBus_01", "sitOnStairs_00", "stairs_00", "upstairs_00",
        "walkBridge_01", "walkUphill_00", "walking_00", "warmWelcome_00", "weeklyMarket_00", "windowShopping_00"))
    + ("flat_guitar_01", "flat_packBags_00", "office_phoneCall_00", "outdoors_fencing_01"),
}
"""The official sequence names of each split (formats.md §1.2)."""

DEFAULT_SEQUENCES: dict[str, int] = {"courtyard_dancing_01": 2, "outdoors_freestyle_01": 1,
                                     "downtown_walkUphill_00": 1, "downtown_walking_00": 2}
"""Sequence name -> number of actors: every split, both actor counts, and two test names whose
case-sensitive order (``walkU`` < ``walki``) differs from the order of their lowercased keys."""

SMPL_TO_COCO18 = np.array([24, 12, 17, 19, 21, 16, 18, 20, 2, 5, 8, 1, 4, 7, 25, 26, 27, 28])
"""Rows of the smplx SMPL output (24 joints, then nose, r/l eye, r/l ear...) in 3DPW's COCO-18 order."""

_NUM_JOINTS = 24
_LONG_BETAS = 300
_DETECTION_NOISE_PX = 0.7
_SEARCH_STRIDE = 1000  # world sequence indices tried for sequence position s start at s * stride


@dataclass(frozen=True)
class FrameTruth:
    """Camera-frame truth of one image with P actors (the parameters before the world-frame round trip)."""

    split: str
    sequence: str
    frame: int
    genders: tuple[str, ...]  # P, "male" / "female"
    betas: np.ndarray  # (P,10)
    global_orient: np.ndarray  # (P,3) camera frame
    body_pose: np.ndarray  # (P,69)
    transl: np.ndarray  # (P,3) camera frame, smplx semantics
    joints3d: np.ndarray  # (P,24,3) body-model joints, camera frame, metres
    joints2d: np.ndarray  # (P,24,2) their projections with cam_K, pixels
    cam_K: np.ndarray  # (3,3)
    campose_valid: np.ndarray  # (P,) bool
    valid: np.ndarray  # (P,) bool: campose_valid and poses2d not all zero
    image: Path


@dataclass
class GroundTruth:
    """What :func:`write_miniature_3dpw` wrote, by sample key ``<sequence lowercased>-<frame:06d>``."""

    frames: dict[str, FrameTruth] = field(default_factory=dict)
    splits: dict[str, str] = field(default_factory=dict)  # sequence -> split
    betas_dims: dict[str, list[int]] = field(default_factory=dict)  # sequence -> length of each actor's betas

    def keys(self, split: str) -> list[str]:
        """Sorted sample keys of ``split``."""
        return sorted(k for k, f in self.frames.items() if f.split == split)


@dataclass
class _Actors:
    """Camera-frame people of one sequence over T frames."""

    genders: list[str]  # P
    betas: np.ndarray  # (P,10)
    global_orient: np.ndarray  # (P,T,3)
    body_pose: np.ndarray  # (P,T,69)
    transl: np.ndarray  # (P,T,3)

    def take(self, index: np.ndarray) -> _Actors:
        """The frames ``index`` (N,) of every actor."""
        return _Actors(self.genders, self.betas, self.global_orient[:, index], self.body_pose[:, index],
                       self.transl[:, index])


def split_of(sequence: str) -> str:
    """The official split of a 3DPW sequence name."""
    for split, names in SPLIT_SEQUENCES.items():
        if sequence in names:
            return split
    raise ValueError(f"{sequence!r} is not a 3DPW sequence name (see SPLIT_SEQUENCES)")


def _world_frames(world: SyntheticWorld, actors: int, position: int) -> list[Sample]:
    """The frames of the first world sequence at or after ``position * stride`` with exactly ``actors`` people."""
    index = position * _SEARCH_STRIDE
    while True:
        frames = world.sequence(index)
        first = next(frames)
        if first.num_people == actors:
            return [first, *frames]
        index += 1


def _actors_of(samples: list[Sample], rng: np.random.Generator) -> _Actors:
    """Stack the world's camera-frame parameters per actor; 3DPW has no neutral actors, so those become m/f."""
    genders = [g if g != "neutral" else str(rng.choice(["male", "female"])) for g in samples[0].genders]

    def stacked(name: str) -> np.ndarray:
        return np.stack([s.people[name] for s in samples], axis=1)

    return _Actors(genders, samples[0].people["betas"], stacked("global_orient"), stacked("body_pose"),
                   stacked("transl"))


def _forward(model: BodyModel, betas: np.ndarray, **pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Body model at ``betas`` (10,) and (T,k) pose inputs (none: rest pose): vertices (T,V,3), joints (T,J,3)."""
    tensors = {name: torch.as_tensor(value, dtype=torch.float64) for name, value in pose.items()}
    with torch.no_grad():
        out = model(betas=torch.as_tensor(betas[None], dtype=torch.float64), **tensors)
    return out.vertices.numpy(), out.joints.numpy()


def _posed_joints(models: list[BodyModel], actors: _Actors) -> np.ndarray:
    """(P,T,J,3) camera-frame joints of every actor (smplx SMPL output: 24 skeleton joints, then face/feet/hands)."""
    return np.stack([_forward(model, actors.betas[p], global_orient=actors.global_orient[p],
                              body_pose=actors.body_pose[p], transl=actors.transl[p])[1]
                     for p, model in enumerate(models)])


def _random_camera_poses(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Random world->camera rotations (N,3,3) and translations (N,3), one per frame."""
    return Rotation.from_rotvec(rng.normal(scale=1.5, size=(count, 3))).as_matrix(), rng.uniform(-3, 3, (count, 3))


def _to_world(orient: np.ndarray, transl: np.ndarray, points: np.ndarray, cam_R: np.ndarray, cam_t: np.ndarray,
              pelvis: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Camera-frame root (N,3)+(N,3) and points (N,K,3) -> world frame, inverting ``X_cam = R X_w + t`` per frame.

    ``pelvis`` (3,) is the rest pelvis J0 of the actor's gendered model: SMPL rotates about it, so
    ``trans_world = R^T (trans_cam + J0 - t) - J0``.
    """
    orient_w = (Rotation.from_matrix(cam_R).inv() * Rotation.from_rotvec(orient)).as_rotvec()
    transl_w = np.einsum("nji,nj->ni", cam_R, transl + pelvis - cam_t) - pelvis
    points_w = np.einsum("nji,nkj->nki", cam_R, points - cam_t[:, None])
    return orient_w, transl_w, points_w


def _project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(...,3) camera-frame points -> (...,2) pixels."""
    return points[..., :2] / points[..., 2:3] * np.diag(K)[:2] + K[:2, 2]


def _detections(joints: np.ndarray, K: np.ndarray, size: tuple[int, int], missing: np.ndarray,
                rng: np.random.Generator) -> np.ndarray:
    """Fake OpenPose output (N,3,18) from joints (N,J,3): projected COCO-18 joints + noise.

    Joints outside the image, and every joint of the ``missing`` (N,) frames, are zeros.
    """
    uv = _project(joints[:, SMPL_TO_COCO18], K) + rng.normal(scale=_DETECTION_NOISE_PX, size=(len(joints), 18, 2))
    conf = rng.uniform(0.35, 0.95, uv.shape[:2])
    inside = np.all((uv >= 0) & (uv <= np.array(size) - 1), axis=-1) & ~missing[:, None]
    poses = np.where(inside[..., None], np.concatenate([uv, conf[..., None]], axis=-1), 0.0)
    return poses.transpose(0, 2, 1)


def _frame_pattern(frames: int, actor: int) -> tuple[np.ndarray, np.ndarray]:
    """(N,) masks of frames with no detection and with an unaligned camera pose; both occur once N >= 4."""
    phase = (np.arange(frames) + actor) % 5
    return phase == 1, phase == 3


@dataclass
class _Sequence:
    """The raw pickle dict of one sequence and the camera-frame truth behind it."""

    raw: dict
    joints3d: np.ndarray  # (P,N,24,3) camera frame
    campose_valid: np.ndarray  # (P,N) bool
    valid: np.ndarray  # (P,N) bool


def _sequence(name: str, actors: _Actors, posed: np.ndarray, models: list[BodyModel], K: np.ndarray,
              size: tuple[int, int], long_betas: list[bool], rng: np.random.Generator) -> _Sequence:
    """Build the raw pickle dict of one sequence from camera-frame actors and their joints ``posed`` (P,N,J,3)."""
    frames = actors.global_orient.shape[1]
    cam_R, cam_t = _random_camera_poses(rng, frames)
    keys = ("betas", "betas_clothed", "v_template_clothed", "poses", "trans", "poses_60Hz", "trans_60Hz",
            "jointPositions", "poses2d", "campose_valid", "texture_maps")
    per_actor: dict[str, list] = {key: [] for key in keys}
    joints3d, campose_valid, valid = [], [], []
    for p, (model, joints) in enumerate(zip(models, posed)):
        betas = actors.betas[p]
        pelvis = _forward(model, betas)[1][0, 0]
        orient_w, trans_w, joints_w = _to_world(actors.global_orient[p], actors.transl[p], joints[:, :_NUM_JOINTS],
                                                cam_R, cam_t, pelvis)
        missing, unaligned = _frame_pattern(frames, p)
        poses = np.concatenate([orient_w, actors.body_pose[p]], axis=1)
        clothed = betas + rng.normal(scale=0.1, size=10)
        values = {
            "betas": np.pad(betas, (0, _LONG_BETAS - 10)) if long_betas[p] else betas.copy(),
            "betas_clothed": clothed, "v_template_clothed": _forward(model, clothed)[0][0],
            "poses": poses, "trans": trans_w, "poses_60Hz": np.repeat(poses, 2, axis=0),
            "trans_60Hz": np.repeat(trans_w, 2, axis=0), "jointPositions": joints_w.reshape(frames, -1),
            "poses2d": _detections(joints, K, size, missing, rng), "campose_valid": (~unaligned).astype(np.int64),
            "texture_maps": rng.integers(0, 256, (8, 8, 3), dtype=np.uint8),
        }
        for key in keys:
            per_actor[key].append(values[key])
        joints3d.append(joints[:, :_NUM_JOINTS])
        campose_valid.append(~unaligned)
        valid.append(~unaligned & ~missing)
    extrinsics = np.zeros((frames, 4, 4))
    extrinsics[:, :3, :3], extrinsics[:, :3, 3], extrinsics[:, 3, 3] = cam_R, cam_t, 1.0
    raw = {"sequence": name, "genders": [g[0] for g in actors.genders], **per_actor,
           "img_frame_ids": 2 * np.arange(frames), "cam_poses": extrinsics, "cam_intrinsics": K}
    return _Sequence(raw, np.stack(joints3d), np.stack(campose_valid), np.stack(valid))


def _write_sequence(root: Path, split: str, seq: _Sequence, images: list[bytes], truth: GroundTruth,
                    actors: _Actors, K: np.ndarray) -> None:
    """Write the pickle and the images of one sequence and record its truth."""
    name = seq.raw["sequence"]
    pkl = root / "sequenceFiles" / split / f"{name}.pkl"
    pkl.parent.mkdir(parents=True, exist_ok=True)
    pkl.write_bytes(py2_pickle_bytes(seq.raw))
    folder = root / "imageFiles" / name
    folder.mkdir(parents=True, exist_ok=True)
    joints2d = _project(seq.joints3d, K)
    for frame, image in enumerate(images):
        path = folder / f"image_{frame:05d}.jpg"
        path.write_bytes(image)
        truth.frames[f"{name.lower()}-{frame:06d}"] = FrameTruth(
            split=split, sequence=name, frame=frame, genders=tuple(actors.genders), betas=actors.betas,
            global_orient=actors.global_orient[:, frame], body_pose=actors.body_pose[:, frame],
            transl=actors.transl[:, frame], joints3d=seq.joints3d[:, frame], joints2d=joints2d[:, frame], cam_K=K,
            campose_valid=seq.campose_valid[:, frame], valid=seq.valid[:, frame], image=path)
    truth.splits[name] = split
    truth.betas_dims[name] = [len(b) for b in seq.raw["betas"]]


def write_miniature_3dpw(root: str | Path, *, sequences: Mapping[str, int] = DEFAULT_SEQUENCES, frames: int = 4,
                         seed: int = 0, body_models: str | Path | None = None, rendered_frames: int | None = None,
                         size: tuple[int, int] = (135, 240)) -> GroundTruth:
    """Write a miniature 3DPW under ``root``; returns the camera-frame ground truth by sample key.

    ``sequences`` maps official sequence names (their split follows from the name) to 1 or 2
    actors; every sequence has ``frames`` images of ``size`` = (width, height) pixels, portrait
    by default, with the principal point at the image centre. ``rendered_frames`` (default: all)
    renders only that many distinct frames per sequence and repeats them cyclically, each repeat
    with its own camera pose: cheap large datasets for benchmarks. Actor track k (counted over all
    sequences) stores 300 zero-padded betas when k is odd, 10 otherwise. ``body_models`` is the
    body-model folder (None: ``$HUMANBENCH_BODY_MODELS`` or the embedded synthetic models).
    """
    if frames < 1:
        raise ValueError(f"frames must be at least 1, got {frames}")
    root = Path(root)
    width, height = size
    worlds = {count: SyntheticWorld(WorldConfig(sequences=1, frames=min(frames, rendered_frames or frames),
                                                max_people=count, width=width, height=height, dataset="3dpw",
                                                seed=seed, body_models=body_models))
              for count in (1, 2)}
    truth, track = GroundTruth(), 0
    for position, (name, count) in enumerate(sequences.items()):
        split = split_of(name)
        if count not in worlds:
            raise ValueError(f"{name}: 3DPW sequences have 1 or 2 actors, not {count}")
        rng = np.random.default_rng([seed, position])
        samples = _world_frames(worlds[count], count, position)
        cycle = np.arange(frames) % len(samples)
        rendered = _actors_of(samples, rng)
        models = [worlds[count].model(g) for g in rendered.genders]
        posed = _posed_joints(models, rendered)[:, cycle]
        K = samples[0].camera.K
        long_betas = [(track + p) % 2 == 1 for p in range(count)]
        actors = rendered.take(cycle)
        seq = _sequence(name, actors, posed, models, K, size, long_betas, rng)
        _write_sequence(root, split, seq, [samples[i].image for i in cycle], truth, actors, K)
        track += count
    return truth
