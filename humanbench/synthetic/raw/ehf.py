"""Miniature EHF: the flat folder of the real download, with synthetic frames.

Written like the real download (``docs/datasets/ehf.md``)::

    ROOT/XX_img.jpg       1600 x 1200 (rendered by the synthetic world at 160 x 120, upscaled 10x)
    ROOT/XX_align.ply     the posed neutral SMPL-X mesh in the EHF world frame, R^T (X_cam - t), float32
    ROOT/XX_2Djnt.json    OpenPose JSON (version 1.2 layout): projected SMPL-X joints as BODY_25, face 70, hands
    ROOT/EHF_camera.txt   the real camera constants, one label line then one value per line (layout UNCONFIRMED)

Ids are 2-digit zero-padded below 100 and ``100`` for frame 100. The mesh is moved in depth so that,
seen through the real EHF camera, it lands where the world rendered it. Scans (``XX_scan.obj``),
the PNG copies and the OpenPose visualisations are not written (converters do not read them).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from humanbench.loaders.ehf import (FOCAL, IMAGE_SIZE, OPENPOSE_PARTS, PRINCIPAL_POINT, ROTATION_VECTOR, TRANSLATION,
                                    camera_matrix, camera_rotation)
from humanbench.schema import Sample
from humanbench.synthetic.raw.ubody import SMPLX_FACE68, SMPLX_HAND21, NeutralWorld, project, shift_to_camera
from humanbench.synthetic.world import WorldConfig

FRAME_IDS = (1, 2, 100)
RENDER_SCALE = 10
OPENPOSE_FROM_SMPLX = np.array(
    (55, 12, 17, 19, 21, 16, 18, 20, 0, 2, 5, 8, 1, 4, 7, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65)  # BODY_25
    + SMPLX_HAND21["left"] + SMPLX_HAND21["right"] + SMPLX_FACE68 + (-1, -1))  # face 70 ends with the pupils
"""SMPL-X joint of each ``openpose137`` point (BODY_25, left hand, right hand, face 70); -1 = none."""


def frame_name(number: int) -> str:
    """File-name id of frame ``number``: ``01`` .. ``99``, ``100``."""
    return f"{number:02d}"


@dataclass
class EHFFrame:
    """Ground truth of one written frame.

    ``vertices_world`` (10475,3): the PLY's float32 values; ``pixels`` (10475,2): the float64 camera-frame
    mesh projected with the EHF intrinsics; ``keypoints`` (137,3): the OpenPose points written.
    """

    frame_id: str
    vertices_world: np.ndarray
    pixels: np.ndarray
    keypoints: np.ndarray


@dataclass
class EHFMiniature:
    """What :func:`write_miniature_ehf` wrote."""

    root: Path
    frames: list[EHFFrame] = field(default_factory=list)


def write_ply(path: Path, vertices: np.ndarray, faces: np.ndarray, fmt: str = "binary_little_endian") -> Path:
    """Write (V,3) float32 vertices and (F,3) triangles as a PLY mesh (``ascii`` or ``binary_little_endian``)."""
    header = (f"ply\nformat {fmt} 1.0\ncomment humanbench miniature EHF alignment\nelement vertex {len(vertices)}\n"
              "property float x\nproperty float y\nproperty float z\n"
              f"element face {len(faces)}\nproperty list uchar int vertex_indices\nend_header\n").encode()
    vertices = np.asarray(vertices, np.float32)
    if fmt == "ascii":
        rows = [" ".join(repr(float(v)) for v in row) for row in vertices]
        rows += ["3 " + " ".join(str(int(i)) for i in face) for face in faces]
        body = ("\n".join(rows) + "\n").encode()
    else:
        table = np.zeros(len(faces), dtype=[("n", "u1"), ("v", "<i4", (3,))])
        table["n"], table["v"] = 3, faces
        body = vertices.astype("<f4").tobytes() + table.tobytes()
    path.write_bytes(header + body)
    return path


def openpose_json(keypoints: np.ndarray) -> str:
    """(137,3) ``openpose137`` points -> OpenPose 1.2 JSON text with one person."""
    parts = np.split(keypoints, np.cumsum([n for _, n in OPENPOSE_PARTS])[:-1])
    person = {key: part.reshape(-1).tolist() for (key, _), part in zip(OPENPOSE_PARTS, parts)}
    person.update({key.replace("_2d", "_3d"): [] for key, _ in OPENPOSE_PARTS})
    return json.dumps({"version": 1.2, "people": [person]})


def camera_text() -> str:
    """``EHF_camera.txt`` content: a label line, then one value per line."""
    blocks = (("Focal length (fx, fy):", FOCAL), ("Principal Point (cx, cy):", PRINCIPAL_POINT),
              ("Rotation (Rodrigues vector):", ROTATION_VECTOR), ("Translation (meters):", TRANSLATION))
    return "".join(label + "\n" + "".join(f"{v!r}\n" for v in values) for label, values in blocks)


def _upscaled_camera(K: np.ndarray) -> np.ndarray:
    """Intrinsics of an image upscaled ``RENDER_SCALE`` times (pixel centres at integers)."""
    big = K * RENDER_SCALE
    big[:2, 2] = K[:2, 2] * RENDER_SCALE + (RENDER_SCALE - 1) / 2
    big[2, 2] = 1.0
    return big


def _image(sample: Sample) -> bytes:
    with Image.open(io.BytesIO(sample.image)) as small:
        big = small.convert("RGB").resize(IMAGE_SIZE, Image.BILINEAR)
    buffer = io.BytesIO()
    big.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _keypoints(joints: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(137,3) OpenPose points of camera-frame SMPL-X joints: confidence 1 inside the image, no counterpart: 0s."""
    mapped = OPENPOSE_FROM_SMPLX >= 0
    pixels = np.where(mapped[:, None], project(joints[np.clip(OPENPOSE_FROM_SMPLX, 0, None)], K), 0.0)
    inside = (pixels >= 0).all(1) & (pixels[:, 0] <= IMAGE_SIZE[0] - 1) & (pixels[:, 1] <= IMAGE_SIZE[1] - 1)
    return np.concatenate([pixels, (mapped & inside)[:, None].astype(np.float64)], axis=1)


def write_miniature_ehf(root: str | Path, *, frame_ids: tuple[int, ...] = FRAME_IDS,
                        body_models: str | Path | None = None, seed: int = 0,
                        ply_format: str = "binary_little_endian") -> EHFMiniature:
    """Write a miniature EHF folder under ``root``; returns each frame's ground truth."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    world = NeutralWorld(WorldConfig(sequences=1, frames=len(frame_ids), max_people=1,
                                     width=IMAGE_SIZE[0] // RENDER_SCALE, height=IMAGE_SIZE[1] // RENDER_SCALE,
                                     body_model="smplx", dataset="ehf", seed=seed, body_models=body_models))
    model, K, R, t = world.model("neutral"), camera_matrix(), camera_rotation(), np.asarray(TRANSLATION)
    miniature = EHFMiniature(root)
    for number, sample in zip(frame_ids, world.sequence(0)):
        params = {k: torch.as_tensor(v) for k, v in sample.people.items() if k not in ("joints2d", "joints3d", "bbox",
                                                                                       "valid", "kid")}
        with torch.no_grad():
            out = model(**params)
        vertices, joints = out.vertices[0].numpy(), out.joints[0].numpy()
        shift = shift_to_camera(joints[0], _upscaled_camera(sample.camera.K), K)
        world_vertices = ((vertices + shift - t) @ R).astype(np.float32)
        name = frame_name(number)
        write_ply(root / f"{name}_align.ply", world_vertices, model.faces, ply_format)
        keypoints = _keypoints(joints + shift, K)
        (root / f"{name}_2Djnt.json").write_text(openpose_json(keypoints))
        (root / f"{name}_img.jpg").write_bytes(_image(sample))
        miniature.frames.append(EHFFrame(name, world_vertices.astype(np.float64), project(vertices + shift, K),
                                         keypoints))
    (root / "EHF_camera.txt").write_text(camera_text())
    return miniature
