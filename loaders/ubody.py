"""UBody (IDEA-Research, OSX, CVPR 2023) as downloaded -> schema samples.

Raw layout (see ``docs/datasets/ubody.md``)::

    ROOT/videos/<Scene>/<clip>/<clip>.mp4               the videos (per-clip folders)
    ROOT/annotations/<Scene>/keypoint_annotation.json   COCO-WholeBody style, per scene
    ROOT/annotations/<Scene>/smplx_annotation.json      {str(annotation id): {smplx_param, cam_param}}
    ROOT/splits/intra_scene_test_list.npy               video keys of the intra-scene test set
    ROOT/splits/inter_scene_test_list.npy               ... of the inter-scene test set
    ROOT/images/<Scene>/<file_name>                     optional: frames extracted by OSX's video2image.py

One sample per annotated image (``file_name`` relative to ``images/<Scene>/``), the people of the
image stacked in annotation-id order. Frames that were extracted already are taken byte for byte;
the others are decoded from the video with PyAV and stored as PNG, numbered like
``ffmpeg -i clip.mp4 -r 30 %06d.png`` (1-based). SMPL-X parameters are in the camera frame; the
hand poses are stored absolute (the annotation's are relative to the SMPL-X mean hand, which is
read from the user's SMPL-X model file). Each annotation has its own virtual camera, stored as the
per-person ``person_K``; the sample camera ``cam_K`` is the first annotated person's. Splits: ``intra-train``, ``intra-test``, ``inter-train``, ``inter-test``; all
annotations are kept (the every-100th test subsampling belongs to the evaluation protocol).
"""

from __future__ import annotations

import functools
import io
import json
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import av
import numpy as np
from PIL import Image

from humanbench.bodymodels import resolve_root, smplx_hand_means
from humanbench.loaders.base import ConversionError, Converter, Unit, UnitResult
from humanbench.schema import GENDERS, Camera, Sample

EXTRACT_FPS = 30  # video2image.py: ffmpeg -r 30
FRAMES_PER_UNIT = 32
JOINTS2D_FORMAT = "coco_wholebody133"
KEYPOINT_PARTS = (("keypoints", 17), ("foot_kpts", 6), ("face_kpts", 68), ("lefthand_kpts", 21),
                  ("righthand_kpts", 21))
"""Raw keypoint lists in COCO-WholeBody order: body, feet, face, left hand, right hand = 133."""

SMPLX_FIELDS = {"betas": ("shape", 10), "global_orient": ("root_pose", 3), "body_pose": ("body_pose", 63),
                "transl": ("trans", 3), "left_hand_pose": ("lhand_pose", 45), "right_hand_pose": ("rhand_pose", 45),
                "jaw_pose": ("jaw_pose", 3), "expression": ("expr", 10)}
"""Schema field -> (``smplx_param`` key, length)."""
_REQUIRED_SMPLX = ("shape", "root_pose", "body_pose", "trans")
PART_VALID = {"lhand_valid": "lefthand_valid", "rhand_valid": "righthand_valid", "face_valid": "face_valid"}
"""``smplx_param`` part flag -> the keypoint annotation's flag it defaults to (as OSX does)."""
SPLITS = ("intra-train", "intra-test", "inter-train", "inter-test")
NEEDS_BODY_MODELS = ("ubody: the annotation's hand poses are relative to the SMPL-X mean hand, which is read from the "
                     "SMPL-X model file; give the body-model folder with --body-models or $HUMANBENCH_BODY_MODELS "
                     "(see docs/body-models.md)")


def video_key(file_name: str) -> str:
    """Split-list key of an image: its folder name cut before ``_Trim``.

    ``Magic_show_S1_Trim1/Magic_show_S1_Trim1/000016.png`` -> ``Magic_show_S1``.
    """
    return file_name.split("/")[-2].split("_Trim")[0]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9_]", "_", text.lower())


def key_prefix(scene: str, clip: str) -> str:
    """Sample-key prefix of a clip folder: scene and folder names, repeated names once, lowercase."""
    names = [scene] + clip.split("/")
    return "-".join(_slug(n) for i, n in enumerate(names) if i == 0 or n != names[i - 1])


# ----------------------------------------------------------------------------- raw files


def _load_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise ConversionError(f"{path}: {what} is missing")
    try:
        return json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConversionError(f"{path}: {what} is not valid JSON ({err}); the file may be truncated") from None


def read_split_list(path: Path) -> frozenset[str]:
    """The video keys of a ``splits/*_scene_test_list.npy`` file (a 1-D string array)."""
    if not path.is_file():
        raise ConversionError(f"{path}: UBody split file is missing (UBody ships splits/intra_scene_test_list.npy "
                              "and splits/inter_scene_test_list.npy)")
    try:
        keys = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise ConversionError(f"{path}: not a string .npy array ({err}); object arrays are never unpickled") from None
    if keys.dtype.kind not in "US":
        raise ConversionError(f"{path}: holds {keys.dtype} values; expected video-key strings")
    return frozenset(str(k) for k in keys.reshape(-1))


@dataclass(frozen=True)
class Annotation:
    """One person annotation of ``keypoint_annotation.json``, parsed.

    ``keypoints`` (133,3) COCO-WholeBody (x, y, v); ``bbox`` (4,) x1, y1, x2, y2; ``part_valid`` the
    keypoint annotation's ``lefthand_valid`` / ``righthand_valid`` / ``face_valid``.
    """

    id: int
    person_id: int
    keypoints: np.ndarray
    bbox: np.ndarray
    iscrowd: bool
    num_keypoints: int
    valid_label: int
    part_valid: dict[str, bool]


@dataclass(frozen=True)
class Frame:
    """One annotated image: ``file_name`` relative to ``images/<Scene>/``, its 1-based frame number."""

    file_name: str
    number: int
    width: int
    height: int
    image_ids: tuple[int, ...]
    annotations: tuple[Annotation, ...]


def _field(mapping: Any, key: str, where: str) -> Any:
    if not isinstance(mapping, dict) or key not in mapping:
        raise ConversionError(f"{where}: expected an object with key {key!r}")
    return mapping[key]


def _numbers(values: Any, size: int, where: str) -> np.ndarray:
    """A flat list of ``size`` numbers as a float64 array."""
    try:
        array = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        array = np.zeros(0)
    if array.size != size:
        raise ConversionError(f"{where}: expected {size} numbers, got {np.shape(values)}")
    return array


def _annotation(raw: dict, where: str) -> Annotation:
    where = f"{where}, annotation {raw.get('id')}"
    parts = [_numbers(_field(raw, key, where), 3 * n, f"{where}, {key!r} ({n} x (x, y, v))").reshape(n, 3)
             for key, n in KEYPOINT_PARTS]
    x, y, w, h = _numbers(_field(raw, "bbox", where), 4, f"{where}, 'bbox'")
    return Annotation(
        id=int(raw["id"]), person_id=int(raw.get("person_id", -1)), keypoints=np.concatenate(parts),
        bbox=np.array([x, y, x + w, y + h]), iscrowd=bool(_field(raw, "iscrowd", where)),
        num_keypoints=int(_field(raw, "num_keypoints", where)), valid_label=int(_field(raw, "valid_label", where)),
        part_valid={key: bool(raw.get(key, False)) for key in PART_VALID.values()},
    )


@functools.lru_cache(maxsize=2)
def _scene_frames(path: str, stamp: tuple[int, int]) -> dict[str, tuple[Frame, ...]]:
    """Annotated frames of one ``keypoint_annotation.json`` by clip folder, by frame number."""
    content = _load_json(Path(path), "keypoint annotation")
    where = str(path)
    try:
        images = {int(img["id"]): img for img in content["images"]}
        raw_annotations = sorted(content["annotations"], key=lambda a: int(a["id"]))
    except (KeyError, TypeError, ValueError) as err:
        raise ConversionError(f"{path}: expected COCO 'images' and 'annotations' lists with ids ({err!r})") from None
    grouped: dict[str, list[tuple[dict, dict]]] = {}
    for raw in raw_annotations:
        image = images.get(int(_field(raw, "image_id", f"{where}, annotation {raw['id']}")))
        if image is None:
            raise ConversionError(f"{path}: annotation {raw['id']} refers to image {raw['image_id']}, "
                                  "which is not listed")
        file_name = str(_field(image, "file_name", f"{where}, image {image['id']}"))
        grouped.setdefault(file_name.lstrip("/"), []).append((image, raw))
    clips: dict[str, list[Frame]] = {}
    for file_name, pairs in grouped.items():
        frame = _frame(file_name, pairs, where)
        clips.setdefault(posixpath.dirname(file_name), []).append(frame)
    return {clip: tuple(sorted(frames, key=lambda f: f.number)) for clip, frames in clips.items()}


def _frame(file_name: str, pairs: list[tuple[dict, dict]], where: str) -> Frame:
    stem = posixpath.splitext(posixpath.basename(file_name))[0]
    if not stem.isdigit() or "/" not in file_name:
        raise ConversionError(f"{where}: image file_name {file_name!r} is not '<clip folder>/<frame>.png' "
                              "with a 6-digit 1-based frame number")
    image = pairs[0][0]
    size = [int(_field(image, key, f"{where}, image {file_name!r}")) for key in ("width", "height")]
    return Frame(file_name=file_name, number=int(stem), width=size[0], height=size[1],
                 image_ids=tuple(sorted({int(img["id"]) for img, _ in pairs})),
                 annotations=tuple(_annotation(raw, f"{where}, image {file_name!r}") for _, raw in pairs))


@dataclass(frozen=True)
class SmplxEntry:
    """One ``smplx_annotation.json`` value: parameters (schema names, hands still mean-relative), camera, flags."""

    params: dict[str, np.ndarray]
    focal: np.ndarray  # (2,)
    princpt: np.ndarray  # (2,)
    part_valid: dict[str, bool | None]  # None: not in the file, take the keypoint annotation's
    gender: str


def _smplx_entry(raw: Any, where: str) -> SmplxEntry:
    param, cam = _field(raw, "smplx_param", where), _field(raw, "cam_param", where)
    for key in _REQUIRED_SMPLX:
        _field(param, key, f"{where}, smplx_param")
    params = {name: (_numbers(param[key], size, f"{where}, smplx_param {key!r}") if key in param else np.zeros(size))
              for name, (key, size) in SMPLX_FIELDS.items()}
    gender = str(param.get("gender", "neutral")).lower()
    if gender not in GENDERS:
        raise ConversionError(f"{where}: smplx_param gender {gender!r} is not one of {list(GENDERS)}")
    return SmplxEntry(params=params, focal=_numbers(_field(cam, "focal", where), 2, f"{where}, cam_param 'focal'"),
                      princpt=_numbers(_field(cam, "princpt", where), 2, f"{where}, cam_param 'princpt'"),
                      part_valid={k: (bool(param[k]) if k in param else None) for k in PART_VALID}, gender=gender)


@functools.lru_cache(maxsize=2)
def _scene_smplx(path: str, stamp: tuple[int, int]) -> dict[str, SmplxEntry]:
    """``smplx_annotation.json`` of one scene, parsed, keyed by annotation id string."""
    content = _load_json(Path(path), "SMPL-X annotation")
    if not isinstance(content, dict):
        raise ConversionError(f"{path}: expected a JSON object keyed by annotation id")
    return {key: _smplx_entry(value, f"{path}, annotation {key}") for key, value in content.items()}


def _stamp(path: Path) -> tuple[int, int]:
    """Cache key part that changes when the file does (missing files give (0, 0))."""
    stat = path.stat() if path.is_file() else None
    return (stat.st_mtime_ns, stat.st_size) if stat else (0, 0)


def hand_means(body_models: str | None, gender: str) -> np.ndarray:
    """(2,45) mean hand poses of the user's SMPL-X model; the synthetic one is never used silently here."""
    if resolve_root(body_models) is None:
        raise ConversionError(NEEDS_BODY_MODELS)
    return smplx_hand_means(gender, root=body_models)


# ----------------------------------------------------------------------------- video frames


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _assign(slots: dict[int, np.ndarray], wanted: set[int], frame: av.VideoFrame, first: int, stop: int) -> None:
    """Give ``frame`` the output slots [first, stop) that are wanted."""
    for slot in wanted.intersection(range(first, stop)):
        slots[slot] = frame.to_ndarray(format="rgb24")


def _timed_frames(container: av.container.InputContainer, first_slot: int,
                  fps: int) -> Iterator[tuple[av.VideoFrame, int]]:
    """Decoded frames from the key frame before output slot ``first_slot`` on, each with its output slot."""
    stream = container.streams.video[0]
    start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
    container.seek(int((start + first_slot / fps) / stream.time_base), stream=stream, backward=True)
    for frame in container.decode(stream):
        yield frame, int(np.floor((frame.time - start) * fps + 0.5))


def decode_video_frames(path: Path, numbers: Sequence[int], fps: int = EXTRACT_FPS) -> dict[int, np.ndarray]:
    """Frames ``numbers`` (1-based, as ``ffmpeg -i video -r fps %06d.png`` numbers them) as (H,W,3) uint8 RGB.

    Output slot k (0-based) shows the last source frame whose time, rounded to the nearest 1/fps
    tick, is at or before k (the last frame lasts as long as the one before it): exact for constant
    ``fps`` videos, ffmpeg-like frame repetition and dropping otherwise.
    """
    wanted = {n - 1 for n in numbers}
    slots: dict[int, np.ndarray] = {}
    try:
        with av.open(str(path)) as container:
            previous, step = None, 1
            for frame, slot in _timed_frames(container, min(wanted), fps):
                if previous is not None:
                    step = max(slot - previous[1], 1)
                    _assign(slots, wanted, previous[0], previous[1], slot)
                previous = (frame, slot)
                if slot > max(wanted):
                    break
            else:
                if previous is not None:
                    _assign(slots, wanted, previous[0], previous[1], previous[1] + step)
    except (av.error.FFmpegError, IndexError) as err:
        raise ConversionError(f"{path}: video cannot be decoded ({err})") from None
    missing = sorted(wanted - set(slots))
    if missing:
        raise ConversionError(f"{path}: video has no frame {missing[0] + 1:06d} at {fps} fps (it is shorter than "
                              "the annotation says)")
    return {slot + 1: pixels for slot, pixels in slots.items()}


# ----------------------------------------------------------------------------- converter


@dataclass
class _Image:
    data: bytes
    format: str
    width: int
    height: int
    source: str  # "images" (extracted file) or "video"


def _image_info(data: bytes, path: Path) -> tuple[str, int, int]:
    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt, (width, height) = image.format, image.size
    except OSError as err:
        raise ConversionError(f"{path}: not a readable image ({err})") from None
    if fmt not in ("PNG", "JPEG"):
        raise ConversionError(f"{path}: image format {fmt}; expected PNG (or JPEG)")
    return ("png" if fmt == "PNG" else "jpg"), width, height


class UBodyConverter(Converter):
    """UBody: scenes of clips; a unit is up to ``FRAMES_PER_UNIT`` annotated images of one clip."""

    name = "ubody"
    splits = SPLITS

    def __init__(self, root: str | Path, split: str, *, body_models: str | Path | None = None) -> None:
        super().__init__(root, split, body_models=body_models)
        if resolve_root(body_models) is None:
            raise ConversionError(NEEDS_BODY_MODELS)

    # -- layout

    def _annotation_path(self, scene: str, name: str) -> Path:
        return self.root / "annotations" / scene / name

    def _scenes(self) -> list[str]:
        folder = self.root / "annotations"
        if not folder.is_dir():
            raise ConversionError(f"ubody: {folder} does not exist (expected annotations/<Scene>/"
                                  "keypoint_annotation.json; see docs/datasets/ubody.md)")
        scenes = sorted((p.name for p in folder.iterdir() if p.is_dir()), key=_slug)
        if not scenes:
            raise ConversionError(f"ubody: {folder} has no scene folders")
        return scenes

    def _test_keys(self) -> frozenset[str]:
        protocol = self.split.split("-")[0]
        return read_split_list(self.root / "splits" / f"{protocol}_scene_test_list.npy")

    def _clips(self, scene: str, tests: frozenset[str]) -> dict[str, tuple[Frame, ...]]:
        """Clip folder -> its annotated frames in this split, clips in key order."""
        path = self._annotation_path(scene, "keypoint_annotation.json")
        testing = self.split.endswith("-test")
        chosen = {clip: frames for clip, frames in _scene_frames(str(path), _stamp(path)).items()
                  if ((video_key(frames[0].file_name) in tests) or (scene in tests)) == testing}
        prefixes = {key_prefix(scene, clip): clip for clip in chosen}
        if len(prefixes) != len(chosen):
            raise ConversionError(f"{path}: two clip folders give the same sample-key prefix ({sorted(chosen)})")
        return {prefixes[p]: chosen[prefixes[p]] for p in sorted(prefixes)}

    def units(self) -> list[Unit]:
        tests = self._test_keys()
        units = []
        for scene in self._scenes():
            try:
                clips = self._clips(scene, tests)
            except ConversionError:  # reported by convert_unit, so --skip-bad skips just this scene
                units.append(Unit(scene))
                continue
            for clip, frames in clips.items():
                units += [Unit(f"{scene}/{clip}", start, min(start + FRAMES_PER_UNIT, len(frames)))
                          for start in range(0, len(frames), FRAMES_PER_UNIT)]
        return units

    def source_files(self) -> list[Path]:
        files = [self._annotation_path(scene, name) for scene in self._scenes()
                 for name in ("keypoint_annotation.json", "smplx_annotation.json")]
        split_file = self.root / "splits" / f"{self.split.split('-')[0]}_scene_test_list.npy"
        return [p for p in files if p.is_file()] + [split_file]

    # -- conversion

    def convert_unit(self, unit: Unit) -> UnitResult:
        scene, _, clip = unit.item.partition("/")
        frames = self._clips(scene, self._test_keys()).get(clip, ())[unit.start:unit.stop]
        if not frames:
            return UnitResult([])
        path = self._annotation_path(scene, "smplx_annotation.json")
        smplx = _scene_smplx(str(path), _stamp(path))
        images = self._images(scene, clip, frames)
        return UnitResult([self._sample(scene, clip, frame, images[frame.number], smplx) for frame in frames])

    def _images(self, scene: str, clip: str, frames: Sequence[Frame]) -> dict[int, _Image]:
        """Frame number -> image: the extracted file when there is one, else decoded from the clip's video."""
        images = {}
        for frame in frames:
            path = self.root / "images" / scene / frame.file_name
            if path.is_file():
                data = path.read_bytes()
                images[frame.number] = _Image(data, *_image_info(data, path), source="images")
        missing = [f.number for f in frames if f.number not in images]
        if missing:
            decoded = decode_video_frames(self._video(scene, clip, missing[0]), missing)
            images.update({n: _Image(_png(p), "png", p.shape[1], p.shape[0], "video") for n, p in decoded.items()})
        return images

    def _video(self, scene: str, clip: str, first_missing: int) -> Path:
        """The video that video2image.py extracts into ``images/<Scene>/<clip>/`` (any extension, .mp4 first)."""
        folder = self.root / "videos" / scene / posixpath.dirname(clip)
        stem = posixpath.basename(clip)
        found = sorted((p for p in folder.glob("*") if p.stem == stem and p.suffix and p.is_file()),
                       key=lambda p: (p.suffix.lower() != ".mp4", p.name)) if folder.is_dir() else []
        if not found:
            raise ConversionError(
                f"ubody: scene {scene!r}, frame {clip}/{first_missing:06d}.png: neither the extracted image under "
                f"{self.root / 'images' / scene / clip} nor the video {folder / stem}.mp4 exists")
        return found[0]

    def _sample(self, scene: str, clip: str, frame: Frame, image: _Image, smplx: dict[str, SmplxEntry]) -> Sample:
        if (image.width, image.height) != (frame.width, frame.height):
            raise ConversionError(f"ubody: scene {scene!r}, {frame.file_name}: image is {image.width}x{image.height}, "
                                  f"the annotation says {frame.width}x{frame.height}")
        entries = [smplx.get(str(a.id)) for a in frame.annotations]
        people, flags = self._people(frame.annotations, entries)
        people["person_K"] = np.stack([_camera_matrix(e, frame) for e in entries])
        with_camera = [(a.id, e) for a, e in zip(frame.annotations, entries) if e is not None]
        return Sample(
            key=f"{key_prefix(scene, clip)}-{frame.number:06d}", dataset="ubody", split=self.split, image=image.data,
            image_format=image.format, width=image.width, height=image.height,
            camera=Camera(K=_camera_matrix(with_camera[0][1] if with_camera else None, frame)),
            body_model="smplx", coords="camera", people=people, genders=[e.gender if e else "neutral" for e in entries],
            person_ids=[str(a.person_id) for a in frame.annotations], sequence=f"{scene}/{clip}", frame=frame.number,
            joints2d_format=JOINTS2D_FORMAT, flags=flags,
            extra={"scene": scene, "video_key": video_key(frame.file_name), "file_name": frame.file_name,
                   "image_ids": list(frame.image_ids), "annotation_ids": [a.id for a in frame.annotations],
                   "camera_annotation_id": with_camera[0][0] if with_camera else None, "frame_source": image.source},
        )

    def _people(self, annotations: Sequence[Annotation],
                entries: Sequence[SmplxEntry | None]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Stacked per-person arrays and validity flags of one image."""
        params = {name: np.stack([e.params[name] if e else np.zeros(size) for e in entries])
                  for name, (_, size) in SMPLX_FIELDS.items()}
        means = np.stack([hand_means(_optional_str(self.body_models), e.gender if e else "neutral")
                          for e in entries])  # (P,2,45)
        params["left_hand_pose"] = params["left_hand_pose"] + means[:, 0]
        params["right_hand_pose"] = params["right_hand_pose"] + means[:, 1]
        count = len(annotations)
        flags = {
            "iscrowd": np.array([a.iscrowd for a in annotations]),
            "num_keypoints": np.array([a.num_keypoints for a in annotations], dtype=np.int64),
            "valid_label": np.array([a.valid_label for a in annotations], dtype=np.int64),
            "has_smplx": np.array([e is not None for e in entries]),
            **{key: np.array([_part_valid(a, e, key) for a, e in zip(annotations, entries)]) for key in PART_VALID},
        }
        valid = ~flags["iscrowd"] & (flags["num_keypoints"] > 0) & (flags["valid_label"] != 0) & flags["has_smplx"]
        people = {**params, "leye_pose": np.zeros((count, 3)), "reye_pose": np.zeros((count, 3)),
                  "joints2d": np.stack([a.keypoints for a in annotations]),
                  "bbox": np.stack([a.bbox for a in annotations]), "valid": valid, "kid": np.zeros(count, bool)}
        return people, flags


def _optional_str(path: str | Path | None) -> str | None:
    return None if path is None else str(path)


def _part_valid(annotation: Annotation, entry: SmplxEntry | None, key: str) -> bool:
    """A part's SMPL-X validity: the smplx_param flag, else the keypoint annotation's; False without SMPL-X."""
    if entry is None:
        return False
    flag = entry.part_valid[key]
    return annotation.part_valid[PART_VALID[key]] if flag is None else flag


def _camera_matrix(entry: SmplxEntry | None, frame: Frame) -> np.ndarray:
    """(3,3) intrinsics from a person's virtual camera; without any, focal max(W,H) at the image centre."""
    size = np.array([frame.width, frame.height], dtype=np.float64)
    focal, centre = (np.full(2, size.max()), (size - 1) / 2) if entry is None else (entry.focal, entry.princpt)
    return np.array([[focal[0], 0.0, centre[0]], [0.0, focal[1], centre[1]], [0.0, 0.0, 1.0]])
