"""The synthetic world: posed body models, rendered on the CPU, written as schema samples.

Each sequence places 1..``max_people`` people (random gender, shape, motion, heading) in front of
a fixed camera over a checkered ground, poses them with the body model, rasterizes the meshes
(:mod:`humanbench.synthetic.raster`) and emits one :class:`~humanbench.schema.Sample` per frame
with camera-frame SMPL(-X) parameters, 24 projected joints, 3D joints, boxes, an instance mask
(value k = person k-1) and the JPEG image. Everything is a pure function of the config and the
seed, so the same config always gives the same bytes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from PIL import Image
from scipy.spatial.transform import Rotation

from humanbench.bodymodels import BodyModel, load_body_model
from humanbench.schema import BODY_POSE_DIM, Camera, Sample
from humanbench.synthetic.background import ground_and_sky
from humanbench.synthetic.motion import MOTIONS, sample_motion
from humanbench.synthetic.raster import rasterize, shade

NUM_JOINTS = 24
JOINTS_FORMAT = "smpl24"
MIN_VISIBLE_PIXELS = 50

# Colour of each SMPL part (by joint index of the dominant skinning weight): skin, shirt, trousers, shoes.
_SKIN, _SHIRT, _TROUSERS, _SHOES = 0, 1, 2, 3
PART_MATERIAL = np.array([_TROUSERS, _TROUSERS, _TROUSERS, _SHIRT, _TROUSERS, _TROUSERS, _SHIRT, _SHOES, _SHOES,
                          _SHIRT, _SHOES, _SHOES, _SKIN, _SHIRT, _SHIRT, _SKIN, _SHIRT, _SHIRT, _SKIN, _SKIN,
                          _SKIN, _SKIN, _SKIN, _SKIN])


def _smpl_part_of_vertex(model: BodyModel) -> np.ndarray:
    """(V,) SMPL joint index (0..23) of each vertex's dominant skinning weight.

    SMPL-X joints beyond the SMPL body map to their SMPL counterpart: jaw and eyes to the head,
    fingers to the hand of their side.
    """
    dominant = model.smplx_model.lbs_weights.argmax(dim=1).cpu().numpy()
    to_smpl = np.concatenate([np.arange(22), [15, 15, 15], np.full(15, 22), np.full(15, 23)])
    return to_smpl[dominant] if model.kind == "smplx" else dominant


@dataclass(frozen=True)
class WorldConfig:
    """What to synthesize: ``sequences`` x ``frames`` images of ``width`` x ``height`` pixels."""

    sequences: int = 4
    frames: int = 12
    max_people: int = 2
    width: int = 256
    height: int = 256
    body_model: str = "smpl"
    dataset: str = "synthetic"
    split: str = "train"
    seed: int = 0
    jpeg_quality: int = 90
    body_models: Path | None = None  # user folder; None = $HUMANBENCH_BODY_MODELS or the embedded models

    @property
    def total(self) -> int:
        """Number of samples the config produces."""
        return self.sequences * self.frames


@dataclass
class _Person:
    gender: str
    motion: str
    betas: np.ndarray  # (10,)
    global_orient: np.ndarray  # (T,3) camera frame
    body_pose: np.ndarray  # (T,BP)
    pelvis: np.ndarray  # (T,3) target pelvis position, camera frame
    palette: np.ndarray  # (4,3) skin, shirt, trousers, shoes in [0,1]
    extra_pose: dict[str, np.ndarray] = field(default_factory=dict)  # SMPL-X hands/face, (T,k)


def _camera(config: WorldConfig) -> np.ndarray:
    focal = 1.35 * max(config.width, config.height)
    return np.array([[focal, 0.0, config.width / 2], [0.0, focal, config.height / 2], [0.0, 0.0, 1.0]])


def _plan_person(config: WorldConfig, rng: np.random.Generator, slot: int) -> _Person:
    """Random gender, shape, motion and placement for one person over ``config.frames`` frames."""
    frames = config.frames
    motion = str(rng.choice(sorted(MOTIONS)))
    yaw = rng.uniform(-np.pi, np.pi)
    upright = Rotation.from_euler("x", [np.pi])  # SMPL's y-up rest frame -> OpenCV camera (y down)
    orient = (upright * Rotation.from_euler("y", [yaw])).as_rotvec().reshape(3)
    start = np.array([(-0.55 if slot == 0 else 0.55) * (config.max_people > 1) + rng.uniform(-0.2, 0.2),
                      rng.uniform(0.1, 0.25), rng.uniform(4.2, 5.5) + 0.8 * slot])
    heading = Rotation.from_rotvec(orient).apply([0.0, 0.0, 1.0])
    speed = 0.03 if motion == "walk" else 0.0
    pelvis = start + np.outer(np.arange(frames) * speed, heading * np.array([1.0, 0.0, 1.0]))
    body = sample_motion(motion, frames, rng).reshape(frames, -1)[:, : BODY_POSE_DIM[config.body_model]]
    extra = {}
    if config.body_model == "smplx":
        curl = rng.uniform(0.1, 0.5)
        extra = {"left_hand_pose": np.tile(np.tile([0.0, 0.0, -curl], 15), (frames, 1)),
                 "right_hand_pose": np.tile(np.tile([0.0, 0.0, curl], 15), (frames, 1)),
                 "jaw_pose": np.tile([rng.uniform(0, 0.2), 0.0, 0.0], (frames, 1)),
                 "leye_pose": np.zeros((frames, 3)), "reye_pose": np.zeros((frames, 3)),
                 "expression": np.tile(rng.normal(scale=0.5, size=10), (frames, 1))}
    palette = np.stack([rng.uniform([0.55, 0.35, 0.25], [0.95, 0.75, 0.6]), rng.uniform(0.1, 0.9, 3),
                        rng.uniform(0.05, 0.5, 3), rng.uniform(0.0, 0.3, 3)])
    return _Person(str(rng.choice(["male", "female", "neutral"])), motion, rng.normal(scale=0.8, size=10),
                   np.tile(orient, (frames, 1)), body, pelvis, palette, extra)


def _pose_person(model: BodyModel, person: _Person) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run the body model: returns transl (T,3), vertices (T,V,3) and joints (T,24,3), camera frame."""
    frames = len(person.body_pose)

    def tensor(arr: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(arr, dtype=torch.float64)

    extra = {name: tensor(value) for name, value in person.extra_pose.items()}
    with torch.no_grad():
        out = model(betas=tensor(np.tile(person.betas, (frames, 1))), global_orient=tensor(person.global_orient),
                    body_pose=tensor(person.body_pose), transl=torch.zeros(frames, 3, dtype=torch.float64), **extra)
    joints = out.joints[:, :NUM_JOINTS].numpy()
    transl = person.pelvis - joints[:, 0]
    return transl, out.vertices.numpy() + transl[:, None], joints + transl[:, None]


def _encode_png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _encode_jpeg(array: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(...,3) camera-frame points -> (...,2) pixels."""
    return (points[..., :2] / points[..., 2:3]) * np.diag(K)[:2] + K[:2, 2]


class SyntheticWorld:
    """Generates the samples of a :class:`WorldConfig`; body models are loaded once per gender."""

    def __init__(self, config: WorldConfig) -> None:
        self.config = config
        self._models: dict[str, BodyModel] = {}

    def model(self, gender: str) -> BodyModel:
        """The body model of ``gender`` (float64, loaded on first use)."""
        if gender not in self._models:
            self._models[gender] = load_body_model(self.config.body_model, gender, root=self.config.body_models,
                                                   use_pca=False, flat_hand_mean=True, dtype=torch.float64)
        return self._models[gender]

    def samples(self, start: int = 0) -> Iterator[Sample]:
        """Yield samples in key order, skipping the first ``start`` (whole sequences are not generated)."""
        for index in range(start // self.config.frames, self.config.sequences):
            first = start - index * self.config.frames if index == start // self.config.frames else 0
            yield from self.sequence(index, first_frame=max(first, 0))

    def sequence(self, index: int, first_frame: int = 0) -> Iterator[Sample]:
        """Yield the frames of sequence ``index`` (a pure function of the config's seed and ``index``)."""
        cfg = self.config
        rng = np.random.default_rng([cfg.seed, index])
        K = _camera(cfg)
        people = [_plan_person(cfg, rng, slot) for slot in range(int(rng.integers(1, cfg.max_people + 1)))]
        posed = [_pose_person(self.model(p.gender), p) for p in people]
        floor_y = float(max(verts[0, :, 1].max() for _, verts, _ in posed))
        background = ground_and_sky(K, cfg.height, cfg.width, floor_y, rng.uniform(0.5, 1.0),
                                    rng.uniform(60, 200, (2, 3)), rng.uniform(120, 255, (2, 3)))
        colours = [p.palette[PART_MATERIAL[_smpl_part_of_vertex(self.model(p.gender))]] for p in people]
        faces = [self.model(p.gender).faces for p in people]
        for frame in range(first_frame, cfg.frames):
            yield self._frame(index, frame, people, posed, colours, faces, K, background)

    def _frame(self, index: int, frame: int, people: list[_Person], posed: list, colours: list[np.ndarray],
               faces: list[np.ndarray], K: np.ndarray, background: np.ndarray) -> Sample:
        cfg = self.config
        verts = [v[frame] for _, v, _ in posed]
        offsets = np.cumsum([0] + [len(v) for v in verts])
        all_faces = np.concatenate([f + o for f, o in zip(faces, offsets)])
        face_owner = np.concatenate([np.full(len(f), i) for i, f in enumerate(faces)])
        verts_t = torch.as_tensor(np.concatenate(verts), dtype=torch.float64)
        faces_t = torch.as_tensor(all_faces.astype(np.int64))
        frags = rasterize(verts_t, faces_t, torch.as_tensor(K), cfg.height, cfg.width)
        image = shade(frags, verts_t, faces_t, torch.as_tensor(np.concatenate(colours)),
                      background=torch.as_tensor(background)).numpy()
        face_index = frags.face_index.numpy()
        instance = np.where(face_index >= 0, face_owner[np.clip(face_index, 0, None)] + 1, 0).astype(np.uint8)
        joints3d = np.stack([j[frame] for _, _, j in posed])
        uv = _project(joints3d, K)
        inside = (uv[..., 0] >= 0) & (uv[..., 0] <= cfg.width - 1) & (uv[..., 1] >= 0) & (uv[..., 1] <= cfg.height - 1)
        boxes, visible = [], []
        for person, v in enumerate(verts):
            pix = _project(v, K)
            boxes.append([*np.clip(pix.min(0), 0, [cfg.width - 1, cfg.height - 1]),
                          *np.clip(pix.max(0), 0, [cfg.width - 1, cfg.height - 1])])
            visible.append(int((instance == person + 1).sum()))
        arrays = {
            "betas": np.stack([p.betas for p in people]),
            "global_orient": np.stack([p.global_orient[frame] for p in people]),
            "body_pose": np.stack([p.body_pose[frame] for p in people]),
            "transl": np.stack([t[frame] for t, _, _ in posed]),
            "joints2d": np.concatenate([uv, inside[..., None].astype(np.float64)], axis=-1),
            "joints3d": joints3d,
            "bbox": np.array(boxes, dtype=np.float64),
            "valid": np.array(visible) >= MIN_VISIBLE_PIXELS,
            "kid": np.zeros(len(people), bool),
        }
        for name in people[0].extra_pose:
            arrays[name] = np.stack([p.extra_pose[name][frame] for p in people])
        source = self.model(people[0].gender).source
        return Sample(
            key=f"seq{index:03d}-{frame:06d}", dataset=cfg.dataset, split=cfg.split,
            image=_encode_jpeg(image, cfg.jpeg_quality), image_format="jpg", width=cfg.width, height=cfg.height,
            camera=Camera(K=K), body_model=cfg.body_model, coords="camera", people=arrays,
            genders=[p.gender for p in people], person_ids=[str(i) for i in range(len(people))],
            sequence=f"seq{index:03d}", frame=frame, camera_name="cam0", mask=_encode_png(instance),
            joints2d_format=JOINTS_FORMAT, joints3d_format=JOINTS_FORMAT, synthetic=True,
            extra={"motions": [p.motion for p in people], "visible_pixels": visible, "body_model_source": str(source),
                   "world_seed": cfg.seed},
        )
