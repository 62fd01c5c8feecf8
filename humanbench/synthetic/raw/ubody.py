"""Miniature UBody: scenes of short mp4 clips of synthetic people, per-scene annotations, split lists.

Written like the real download (``docs/datasets/ubody.md``; key names and value layout checked against
the mmpose UBody test fixture, which copies a raw annotation)::

    ROOT/videos/<Scene>/<clip>/<clip>.mp4
    ROOT/annotations/<Scene>/keypoint_annotation.json, smplx_annotation.json
    ROOT/splits/intra_scene_test_list.npy, inter_scene_test_list.npy
    ROOT/images/<Scene>/<clip>/<clip>/%06d.png     only for the clips in ``extracted``

Each clip is one sequence of the synthetic world (SMPL-X, neutral, up to two people), encoded with
libx264 through PyAV. Quirks reproduced: ``_Trim`` clip names and a clip without one; file names
with a leading ``/`` in one scene; frame 2 of every clip left unannotated (1-based numbering has
gaps); hand poses relative to the SMPL-X mean hand; a virtual camera per annotation (large focal
length, principal point at the person's box centre, the body moved far away so that it projects
where it was rendered); ``lhand_valid``/``rhand_valid``/``face_valid`` present in ``smplx_param`` in
one scene only; one crowd, one zero-keypoint, one ``valid_label == 0``, one SMPL-X-less and one
right-hand-invalid annotation. A 16x16 grey block in the top-left corner of every frame encodes its
1-based number n as ``stamp_value(n)``, so tests can check which frame a converter picked.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch
from PIL import Image

from humanbench.bodymodels import BodyModel, smplx_hand_means
from humanbench.schema import Sample, decode_image
from humanbench.synthetic.world import SyntheticWorld, WorldConfig

SCENE_CLIPS = {"Magic_show": ("Magic_show_S1_Trim1", "Magic_show_S1_Trim2", "Magic_show_S2_Trim1"),
               "TalkShow": ("TalkShow_S1_Trim1", "TalkShow_S2")}
TEST_VIDEOS = {"intra": ("Magic_show_S2", "TalkShow_S2"), "inter": ("TalkShow_S1", "TalkShow_S2")}
UNANNOTATED_FRAME = 2
LEADING_SLASH_SCENES = ("TalkShow",)
PART_FLAGS_IN_SMPLX_SCENES = ("Magic_show",)
QUIRKS = {1: "iscrowd", 2: "no_keypoints", 3: "valid_label_0", 4: "no_smplx", 5: "right_hand_invalid"}
"""Global annotation index -> injected quirk."""

# SMPL-X joint (smplx output order, 127 joints) of each COCO-WholeBody / OpenPose point; -1 = none.
SMPLX_HAND21 = {"left": (20, 37, 38, 39, 66, 25, 26, 27, 67, 28, 29, 30, 68, 34, 35, 36, 69, 31, 32, 33, 70),
                "right": (21, 52, 53, 54, 71, 40, 41, 42, 72, 43, 44, 45, 73, 49, 50, 51, 74, 46, 47, 48, 75)}
SMPLX_FACE68 = (-1,) * 17 + tuple(range(76, 127))  # no contour without use_face_contour
COCO_WHOLEBODY_FROM_SMPLX = np.array(
    (55, 57, 56, 59, 58, 16, 17, 18, 19, 20, 21, 1, 2, 4, 5, 7, 8)  # body
    + (60, 61, 62, 63, 64, 65) + SMPLX_FACE68 + SMPLX_HAND21["left"] + SMPLX_HAND21["right"])
STAMP_SIZE = 16


def stamp_value(number: int) -> int:
    """Grey level of the corner block of 1-based frame ``number`` (distinct for 6 consecutive frames)."""
    return 20 + 40 * (number % 6)


class NeutralWorld(SyntheticWorld):
    """The synthetic world with every person on the neutral body model (UBody and EHF fits are neutral)."""

    def model(self, gender: str) -> BodyModel:
        """The neutral model, whatever ``gender`` the world drew."""
        return super().model("neutral")


def shift_to_camera(point: np.ndarray, K_from: np.ndarray, K_to: np.ndarray) -> np.ndarray:
    """(3,) translation that makes camera ``K_to`` see ``point`` where ``K_from`` did, at the same scale.

    With focal lengths f, f' and principal points c, c': z' = z f'/f and x' = x + z (c - c')/f, so a
    body moved by the returned vector projects (exactly at ``point``, closely elsewhere) like before.
    """
    z = point[2]
    offset = z * (np.array([K_from[0, 2] - K_to[0, 2], K_from[1, 2] - K_to[1, 2]]) / np.diag(K_from)[:2])
    return np.array([offset[0], offset[1], z * (K_to[0, 0] / K_from[0, 0] - 1.0)])


def project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(...,3) camera-frame points -> (...,2) pixels."""
    return points[..., :2] / points[..., 2:3] * np.diag(K)[:2] + K[:2, 2]


@dataclass
class UBodyPerson:
    """Ground truth of one written annotation.

    ``params``: schema names, camera frame, absolute hand poses; ``joints`` (127,3) smplx joints in the
    camera frame (flat hand mean); ``keypoints`` (133,3) what was written (x, y, v; points without an
    SMPL-X counterpart are zeros); ``K`` (3,3) the annotation's virtual camera; ``quirk`` the injected
    defect (see ``QUIRKS``), if any.
    """

    scene: str
    clip: str
    number: int
    annotation_id: int
    params: dict[str, np.ndarray]
    joints: np.ndarray
    keypoints: np.ndarray
    K: np.ndarray
    quirk: str = ""

    @property
    def valid(self) -> bool:
        """Whether the person survives the validity rules (crowd, no keypoints, valid_label, no SMPL-X)."""
        return self.quirk in ("", "right_hand_invalid")


@dataclass
class UBodyMiniature:
    """What :func:`write_miniature_ubody` wrote: the root and every annotation's ground truth."""

    root: Path
    people: list[UBodyPerson] = field(default_factory=list)


def write_video(path: Path, frames: list[np.ndarray], fps: int = 30) -> Path:
    """Encode (H,W,3) uint8 RGB frames (even H, W) as H.264 mp4, ``fps`` frames per second."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        stream.time_base = Fraction(1, fps)
        stream.options = {"crf": "12", "preset": "veryfast"}
        for index, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def _stamped(sample: Sample) -> np.ndarray:
    """(H,W,3) pixels of a world sample with its 1-based frame number stamped in the corner."""
    pixels = decode_image(sample.image).copy()
    pixels[:STAMP_SIZE, :STAMP_SIZE] = stamp_value(sample.frame + 1)
    return pixels


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _xywh(points: np.ndarray) -> list[float]:
    """(N,2) -> [x, y, w, h] box of the points."""
    low, high = points.min(0), points.max(0)
    return [*low.tolist(), *(high - low).tolist()]


def _center_scale(box: list[float], aspect: float = 0.75, padding: float = 1.25) -> tuple[list[float], list[float]]:
    """mmpose-style centre and scale (pixels / 200) of an [x, y, w, h] box."""
    x, y, w, h = box
    w, h = (w, w / aspect) if w > aspect * h else (h * aspect, h)
    return [x + box[2] / 2, y + box[3] / 2], [w * padding / 200, h * padding / 200]


def _keypoint_annotation(keypoints: np.ndarray, box: list[float], ids: tuple[int, int, int], quirk: str) -> dict:
    """One ``keypoint_annotation.json`` annotation (raw key names and order) from (133,3) keypoints."""
    ann_id, image_id, person_id = ids
    body, foot, face, left, right = np.split(keypoints, [17, 23, 91, 112])
    center, scale = _center_scale(box)
    part_box = {name: _xywh(part[:, :2]) for name, part in (("face", face[17:]), ("left", left), ("right", right))}
    return {
        "id": ann_id, "image_id": image_id, "bbox": box, "segmentation": [[]], "area": 0,
        "iscrowd": int(quirk == "iscrowd"), "category_id": 1, "score": 1, "person_id": person_id,
        "hand_box1": part_box["right"], "hand_box2": part_box["left"], "keypoints": body.reshape(-1).tolist(),
        "foot_kpts": foot.reshape(-1).tolist(), "face_kpts": face.reshape(-1).tolist(),
        "lefthand_kpts": left.reshape(-1).tolist(), "righthand_kpts": right.reshape(-1).tolist(),
        "center": center, "scale": scale, "keypoints_score": [0.9] * 13, "face_kpts_score": [0.8] * 68,
        "foot_kpts_score": [0.3] * 6, "lefthand_kpts_score": [0.85] * 21, "righthand_kpts_score": [0.85] * 21,
        "face_box": part_box["face"], "face_valid": True, "leftfoot_valid": False, "rightfoot_valid": False,
        "lefthand_valid": True, "righthand_valid": quirk != "right_hand_invalid", "lefthand_box": part_box["left"],
        "righthand_box": part_box["right"], "lefthand_update": True, "righthand_update": True,
        "lefthand_kpts_vitposehand": left.reshape(-1).tolist(),
        "righthand_kpts_vitposehand": right.reshape(-1).tolist(),
        "num_keypoints": 0 if quirk == "no_keypoints" else int((body[:, 2] > 0).sum()), "full_body": False,
        "valid_label": 0 if quirk == "valid_label_0" else 2,
    }


def _smplx_annotation(params: dict[str, np.ndarray], means: np.ndarray, K: np.ndarray, part_flags: bool,
                      quirk: str) -> dict:
    """One ``smplx_annotation.json`` value: mean-relative hands, virtual camera."""
    raw = {"root_pose": params["global_orient"], "body_pose": params["body_pose"],
           "lhand_pose": params["left_hand_pose"] - means[0], "rhand_pose": params["right_hand_pose"] - means[1],
           "jaw_pose": params["jaw_pose"], "shape": params["betas"], "expr": params["expression"],
           "trans": params["transl"]}
    param: dict[str, Any] = {key: value.tolist() for key, value in raw.items()}
    if part_flags:
        param.update(lhand_valid=True, rhand_valid=quirk != "right_hand_invalid", face_valid=True)
    return {"smplx_param": param, "cam_param": {"focal": [K[0, 0], K[1, 1]], "princpt": [K[0, 2], K[1, 2]]}}


class _Writer:
    """Accumulates the per-scene JSON content while clips are written."""

    def __init__(self, root: Path, model: BodyModel, means: np.ndarray, seed: int) -> None:
        self.root, self.model, self.means = root, model, means
        self.rng = np.random.default_rng([seed, 1])
        self.miniature = UBodyMiniature(root)
        self.scenes: dict[str, dict[str, Any]] = {}
        self.count = 0

    def clip(self, scene: str, clip: str, samples: list[Sample], extracted: bool) -> None:
        frames = [_stamped(s) for s in samples]
        write_video(self.root / "videos" / scene / clip / f"{clip}.mp4", frames)
        content = self.scenes.setdefault(scene, {"images": [], "annotations": [], "smplx": {}})
        for sample, pixels in zip(samples, frames):
            number = sample.frame + 1
            if number == UNANNOTATED_FRAME:
                continue
            file_name = ("/" if scene in LEADING_SLASH_SCENES else "") + f"{clip}/{clip}/{number:06d}.png"
            if extracted:
                (self.root / "images" / scene / clip / clip).mkdir(parents=True, exist_ok=True)
                (self.root / "images" / scene / file_name.lstrip("/")).write_bytes(_png(pixels))
            image_id = len(content["images"])
            content["images"].append({"id": image_id, "height": sample.height, "width": sample.width,
                                      "file_name": file_name})
            for person in range(sample.num_people):
                self._person(scene, clip, sample, person, image_id, content)

    def _person(self, scene: str, clip: str, sample: Sample, person: int, image_id: int, content: dict) -> None:
        self.count += 1
        quirk = QUIRKS.get(self.count, "")
        params = {name: value[person].astype(np.float64) for name, value in sample.people.items()
                  if name in ("betas", "global_orient", "body_pose", "transl", "left_hand_pose", "right_hand_pose",
                              "jaw_pose", "leye_pose", "reye_pose", "expression")}
        with torch.no_grad():
            joints = self.model(**{k: torch.as_tensor(v[None]) for k, v in params.items()}).joints[0].numpy()
        box = sample.people["bbox"][person]
        focal = sample.width * self.rng.uniform(20, 30)
        K = np.array([[focal, 0.0, (box[0] + box[2]) / 2], [0.0, focal, (box[1] + box[3]) / 2], [0.0, 0.0, 1.0]])
        shift = shift_to_camera(joints[0], sample.camera.K, K)
        params["transl"] = params["transl"] + shift
        joints = joints + shift
        keypoints = self._keypoints(joints, K, sample.width, sample.height, quirk)
        ann_id = len(content["annotations"])
        content["annotations"].append(_keypoint_annotation(
            keypoints, [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])],
            (ann_id, image_id, person), quirk))
        if quirk != "no_smplx":
            content["smplx"][str(ann_id)] = _smplx_annotation(params, self.means, K,
                                                              scene in PART_FLAGS_IN_SMPLX_SCENES, quirk)
        self.miniature.people.append(UBodyPerson(scene, clip, sample.frame + 1, ann_id, params, joints, keypoints, K,
                                                 quirk))

    @staticmethod
    def _keypoints(joints: np.ndarray, K: np.ndarray, width: int, height: int, quirk: str) -> np.ndarray:
        """(133,3) COCO-WholeBody (x, y, v): projected SMPL-X joints, v = 1 inside the image; no counterpart: 0s."""
        mapped = COCO_WHOLEBODY_FROM_SMPLX >= 0
        pixels = np.where(mapped[:, None], project(joints[np.clip(COCO_WHOLEBODY_FROM_SMPLX, 0, None)], K), 0.0)
        inside = (pixels >= 0).all(1) & (pixels[:, 0] <= width - 1) & (pixels[:, 1] <= height - 1)
        visible = mapped & inside & (quirk != "no_keypoints")
        return np.concatenate([pixels, visible[:, None].astype(np.float64)], axis=1)

    def finish(self) -> UBodyMiniature:
        for scene, content in self.scenes.items():
            folder = self.root / "annotations" / scene
            folder.mkdir(parents=True, exist_ok=True)
            keypoints = {"images": content["images"], "annotations": content["annotations"],
                         "categories": [{"supercategory": "person", "id": 1, "name": "person"}]}
            (folder / "keypoint_annotation.json").write_text(json.dumps(keypoints))
            (folder / "smplx_annotation.json").write_text(json.dumps(content["smplx"]))
        (self.root / "splits").mkdir(parents=True, exist_ok=True)
        for protocol, videos in TEST_VIDEOS.items():
            np.save(self.root / "splits" / f"{protocol}_scene_test_list.npy", np.array(videos))
        return self.miniature


def write_miniature_ubody(root: str | Path, *, body_models: str | Path | None = None, frames: int = 4,
                          width: int = 128, height: int = 96, seed: int = 0,
                          extracted: tuple[str, ...] = ("TalkShow_S1_Trim1",)) -> UBodyMiniature:
    """Write a miniature UBody under ``root``; returns every annotation's ground truth.

    ``frames`` per clip (frame 2 unannotated), ``width`` x ``height`` even; ``extracted`` clips also get
    their frames as PNG under ``images/`` (the rendered frames, as if extracted losslessly).
    ``body_models``: the SMPL-X folder (None: $HUMANBENCH_BODY_MODELS or the synthetic models).
    """
    root = Path(root)
    clips = [(scene, clip) for scene, names in SCENE_CLIPS.items() for clip in names]
    world = NeutralWorld(WorldConfig(sequences=len(clips), frames=frames, max_people=2, width=width, height=height,
                                     body_model="smplx", dataset="ubody", seed=seed, body_models=body_models))
    writer = _Writer(root, world.model("neutral"), smplx_hand_means(root=body_models), seed)
    for index, (scene, clip) in enumerate(clips):
        writer.clip(scene, clip, list(world.sequence(index)), clip in extracted)
    return writer.finish()
