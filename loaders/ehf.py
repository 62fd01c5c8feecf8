"""EHF (Expressive Hands and Faces, SMPL-X paper) as downloaded -> schema samples.

Raw layout (one flat folder, see ``docs/datasets/ehf.md``)::

    ROOT/XX_img.jpg      1600 x 1200 RGB image (ids 01..99 zero-padded to 2 digits, then 100)
    ROOT/XX_align.ply    SMPL-X mesh registered to the scan (pseudo-GT), 10475 vertices, metres, world frame
    ROOT/XX_2Djnt.json   OpenPose output for the image (BODY_25, hands, face 70)
    ROOT/EHF_camera.txt  camera intrinsics and extrinsics (optional here: the values are hard-coded)

One sample per frame, one person, split ``test``. The ground truth is a mesh, not parameters: the
sample carries ``vertices`` in the camera frame (``R @ X_ply + t``) and no body-model parameters
(the schema takes a mesh instead of parameters). ``joints2d`` is OpenPose
``people[0]`` in the ``openpose137`` order (BODY_25, left hand 21, right hand 21, face 70).
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.spatial.transform import Rotation

from humanbench.loaders.base import ConversionError, Converter, Unit, UnitResult
from humanbench.schema import Camera, Sample

NUM_VERTICES = 10475
IMAGE_SIZE = (1600, 1200)  # width, height of the images the camera constants belong to

# EHF_camera.txt as quoted by every public reader (mmhuman3d, OSX/Hand4Whole, ExPose-based scripts).
FOCAL = (1498.22426237, 1498.22426237)
PRINCIPAL_POINT = (790.263706, 578.90334)
ROTATION_VECTOR = (-2.9874789618512025, 0.011724572107320893, -0.05704686818955933)  # mmhuman3d's digits
TRANSLATION = (-0.03609917, 0.43416458, 2.37101226)  # metres
CAMERA_FILE = "EHF_camera.txt"

JOINTS2D_FORMAT = "openpose137"
OPENPOSE_PARTS = (("pose_keypoints_2d", 25), ("hand_left_keypoints_2d", 21), ("hand_right_keypoints_2d", 21),
                  ("face_keypoints_2d", 70))
_FRAME_FILE = re.compile(r"^(\d+)_(img\.jpg|align\.ply|2Djnt\.json)$")


def camera_matrix() -> np.ndarray:
    """(3,3) intrinsics of the EHF images."""
    return np.array([[FOCAL[0], 0.0, PRINCIPAL_POINT[0]], [0.0, FOCAL[1], PRINCIPAL_POINT[1]], [0.0, 0.0, 1.0]])


def camera_rotation() -> np.ndarray:
    """(3,3) world (scan) -> camera rotation."""
    return Rotation.from_rotvec(ROTATION_VECTOR).as_matrix()


def world_to_camera(points: np.ndarray) -> np.ndarray:
    """(...,3) world-frame points (the ``_align.ply`` frame) -> (...,3) camera frame, ``R @ X + t``."""
    return points @ camera_rotation().T + np.asarray(TRANSLATION)


# ----------------------------------------------------------------------------- PLY

_PLY_TYPES = {"char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
              "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
              "float": "f4", "float32": "f4", "double": "f8", "float64": "f8"}
_PLY_FORMATS = {"ascii": "", "binary_little_endian": "<", "binary_big_endian": ">"}


@dataclass(frozen=True)
class PlyElement:
    """One ``element`` of a PLY header: name, count and ``(property, type)`` pairs (lists: ``list``)."""

    name: str
    count: int
    properties: tuple[tuple[str, str], ...]


def _ply_header(data: bytes, path: Path) -> tuple[str, list[PlyElement], int]:
    """The format (``ascii`` / ``binary_*``), the elements and the offset of the body."""
    end = data.find(b"end_header")
    newline = data.find(b"\n", end)
    if not data.startswith(b"ply") or end < 0 or newline < 0:
        raise ConversionError(f"{path}: not a PLY file (expected 'ply' ... 'end_header')")
    fmt, elements = "", []
    for line in data[:end].decode("latin1").splitlines()[1:]:
        words = line.split()
        if words[:1] == ["format"] and len(words) >= 2:
            fmt = words[1]
        elif words[:1] == ["element"] and len(words) == 3:
            elements.append(PlyElement(words[1], int(words[2]), ()))
        elif words[:1] == ["property"] and elements:
            kind = "list" if words[1] == "list" else words[1]
            last = elements[-1]
            elements[-1] = PlyElement(last.name, last.count, last.properties + ((words[-1], kind),))
    if fmt not in _PLY_FORMATS:
        raise ConversionError(f"{path}: unsupported PLY format {fmt!r}; expected one of {sorted(_PLY_FORMATS)}")
    return fmt, elements, newline + 1


def _scalar_dtype(element: PlyElement, order: str, path: Path) -> np.dtype:
    """Structured dtype of a binary element made of scalar properties only."""
    for name, kind in element.properties:
        if kind not in _PLY_TYPES:
            raise ConversionError(f"{path}: element {element.name!r} property {name!r} has type {kind!r}; "
                                  "only scalar properties can precede or hold the vertices")
    return np.dtype([(name, order + _PLY_TYPES[kind]) for name, kind in element.properties])


def read_ply_vertices(path: str | Path) -> np.ndarray:
    """(N,3) float64 vertex positions of an ascii or binary PLY file (properties ``x``, ``y``, ``z``)."""
    path = Path(path)
    data = path.read_bytes()
    fmt, elements, offset = _ply_header(data, path)
    names = [e.name for e in elements]
    if "vertex" not in names:
        raise ConversionError(f"{path}: PLY header has no 'vertex' element (elements: {names})")
    before, vertex = elements[: names.index("vertex")], elements[names.index("vertex")]
    if not {"x", "y", "z"} <= {name for name, _ in vertex.properties}:
        raise ConversionError(f"{path}: PLY vertices lack x, y, z properties ({vertex.properties})")
    if fmt == "ascii":
        return _ascii_vertices(data[offset:], before, vertex, path)
    order = _PLY_FORMATS[fmt]
    offset += sum(e.count * _scalar_dtype(e, order, path).itemsize for e in before)
    dtype = _scalar_dtype(vertex, order, path)
    if len(data) < offset + vertex.count * dtype.itemsize:
        raise ConversionError(f"{path}: PLY file is truncated ({len(data)} bytes; the header announces "
                              f"{vertex.count} vertices of {dtype.itemsize} bytes after byte {offset})")
    table = np.frombuffer(data, dtype, count=vertex.count, offset=offset)
    return np.stack([table["x"], table["y"], table["z"]], axis=1).astype(np.float64)


def _ascii_vertices(body: bytes, before: list[PlyElement], vertex: PlyElement, path: Path) -> np.ndarray:
    lines = body.decode("latin1").splitlines()
    skip = sum(e.count for e in before)
    rows = lines[skip: skip + vertex.count]
    width = len(vertex.properties)
    try:
        table = np.array(" ".join(rows).split(), dtype=np.float64).reshape(vertex.count, width)
    except ValueError:
        raise ConversionError(f"{path}: ascii PLY vertex block is not {vertex.count} rows of {width} numbers "
                              "(truncated file?)") from None
    columns = [name for name, _ in vertex.properties]
    return table[:, [columns.index("x"), columns.index("y"), columns.index("z")]]


# ----------------------------------------------------------------------------- OpenPose, camera file


def read_openpose(path: str | Path) -> tuple[np.ndarray, int]:
    """OpenPose JSON -> ((137,3) ``people[0]`` in ``openpose137`` order, number of people).

    No detected person gives zeros (confidence 0 = missing).
    """
    path = Path(path)
    people = _load_json(path).get("people")
    if not isinstance(people, list):
        raise ConversionError(f"{path}: expected an OpenPose JSON object with a 'people' list")
    if not people:
        return np.zeros((sum(n for _, n in OPENPOSE_PARTS), 3)), 0
    parts = []
    for key, count in OPENPOSE_PARTS:
        values = np.asarray(people[0].get(key, []), dtype=np.float64).reshape(-1)
        if values.size != 3 * count:
            raise ConversionError(f"{path}: people[0].{key} has {values.size} values; expected {3 * count} "
                                  f"({count} x (x, y, confidence))")
        parts.append(values.reshape(count, 3))
    return np.concatenate(parts), len(people)


def _load_json(path: Path) -> dict:
    if not path.is_file():
        raise ConversionError(f"{path}: file is missing")
    try:
        content = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConversionError(f"{path}: not valid JSON ({err}); the file may be truncated") from None
    if not isinstance(content, dict):
        raise ConversionError(f"{path}: expected a JSON object, found {type(content).__name__}")
    return content


_CAMERA_LABELS = {"focal length": "focal", "principal point": "principal_point", "rotation": "rotation",
                  "translation": "translation"}
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def parse_camera_file(path: str | Path) -> dict[str, np.ndarray]:
    """Numbers following each label of ``EHF_camera.txt`` (layout UNCONFIRMED: labels then values).

    Returns the labels found (``focal``, ``principal_point``, ``rotation``, ``translation``) with
    the numbers up to the next label.
    """
    text = Path(path).read_text(errors="replace").lower()
    marks = sorted((m.start(), m.end(), key) for label, key in _CAMERA_LABELS.items()
                   for m in re.finditer(label, text))
    found = {}
    for index, (_, end, key) in enumerate(marks):
        stop = marks[index + 1][0] if index + 1 < len(marks) else len(text)
        found[key] = np.array([float(v) for v in _NUMBER.findall(text[end:stop])])
    return found


def check_camera_file(path: Path) -> str:
    """Cross-check ``EHF_camera.txt`` against the constants: ``absent``, ``unparsed`` or ``matches``.

    Raises :class:`ConversionError` when the file parses and contradicts them.
    """
    if not path.is_file():
        return "absent"
    found = parse_camera_file(path)
    expected = {"focal": (np.array(FOCAL), np.array(FOCAL[:1])), "principal_point": (np.array(PRINCIPAL_POINT),),
                "rotation": (np.array(ROTATION_VECTOR), camera_rotation().reshape(-1)),
                "translation": (np.array(TRANSLATION),)}
    if set(found) != set(expected) or any(all(v.shape != found[k].shape for v in options)
                                          for k, options in expected.items()):
        return "unparsed"
    for key, options in expected.items():
        if not any(v.shape == found[key].shape and np.allclose(v, found[key], rtol=1e-7, atol=1e-6) for v in options):
            raise ConversionError(f"{path}: {key} is {found[key].tolist()}, but humanbench's EHF camera has "
                                  f"{options[0].tolist()} (the values every public EHF reader uses); this copy of "
                                  "EHF differs from the known release, please report it")
    return "matches"


# ----------------------------------------------------------------------------- converter


def _image_size(data: bytes, path: Path) -> tuple[int, int]:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except OSError as err:
        raise ConversionError(f"{path}: not a readable image ({err})") from None


def _bbox(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """(N,2) pixels -> (4,) x1, y1, x2, y2 clipped to the image."""
    limit = [width - 1, height - 1]
    return np.concatenate([np.clip(points.min(0), 0, limit), np.clip(points.max(0), 0, limit)])


class EHFConverter(Converter):
    """EHF: 100 frames, one person, pseudo-GT mesh in the camera frame; one unit per frame."""

    name = "ehf"
    splits = ("test",)

    def _frame_ids(self) -> list[str]:
        """The frame ids (as spelled in file names) of every image, mesh or keypoint file, by number."""
        ids = {m.group(1) for m in map(_FRAME_FILE.match, (p.name for p in self.root.iterdir())) if m}
        if not ids:
            raise ConversionError(f"ehf: no XX_img.jpg / XX_align.ply / XX_2Djnt.json files in {self.root} "
                                  "(expected the flat EHF folder as downloaded; see docs/datasets/ehf.md)")
        return sorted(ids, key=int)

    def units(self) -> list[Unit]:
        check_camera_file(self.root / CAMERA_FILE)
        return [Unit(frame_id) for frame_id in self._frame_ids()]

    def convert_unit(self, unit: Unit) -> UnitResult:
        return UnitResult([self._sample(unit.item)])

    def _sample(self, frame_id: str) -> Sample:
        image_path = self.root / f"{frame_id}_img.jpg"
        if not image_path.is_file():
            raise ConversionError(f"{image_path}: image of EHF frame {frame_id} is missing")
        image = image_path.read_bytes()
        width, height = _image_size(image, image_path)
        if (width, height) != IMAGE_SIZE:
            raise ConversionError(f"{image_path}: image is {width}x{height}; the EHF camera belongs to "
                                  f"{IMAGE_SIZE[0]}x{IMAGE_SIZE[1]} images (resized copy?)")
        vertices = self._vertices(frame_id)
        keypoints, detected = read_openpose(self.root / f"{frame_id}_2Djnt.json")
        K = camera_matrix()
        pixels = vertices[:, :2] / vertices[:, 2:] * np.diag(K)[:2] + K[:2, 2]
        people = {"vertices": vertices[None], "joints2d": keypoints[None],
                  "bbox": _bbox(pixels, width, height)[None], "valid": np.ones(1, bool), "kid": np.zeros(1, bool)}
        number = int(frame_id)
        return Sample(
            key=f"ehf-{number:03d}", dataset="ehf", split=self.split, image=image, image_format="jpg",
            width=width, height=height, camera=Camera(K=K), body_model="smplx", coords="camera", people=people,
            genders=["neutral"], person_ids=["0"], sequence="ehf", frame=number, camera_name="ehf",
            joints2d_format=JOINTS2D_FORMAT,
            extra={"ground_truth": "mesh", "file_id": frame_id, "openpose_people": detected,
                   "camera_file": check_camera_file(self.root / CAMERA_FILE),
                   "world_to_camera": {"rotation_vector": list(ROTATION_VECTOR), "translation": list(TRANSLATION)}},
        )

    def _vertices(self, frame_id: str) -> np.ndarray:
        """(10475,3) camera-frame GT mesh of one frame."""
        path = self.root / f"{frame_id}_align.ply"
        if not path.is_file():
            raise ConversionError(f"{path}: ground-truth mesh of EHF frame {frame_id} is missing")
        vertices = read_ply_vertices(path)
        if vertices.shape != (NUM_VERTICES, 3):
            raise ConversionError(f"{path}: mesh has {len(vertices)} vertices; expected {NUM_VERTICES} (SMPL-X)")
        return world_to_camera(vertices)

    def source_files(self) -> list[Path]:
        names = [f"{i}_{kind}" for i in self._frame_ids() for kind in ("align.ply", "2Djnt.json")] + [CAMERA_FILE]
        return [self.root / n for n in names if (self.root / n).is_file()]
