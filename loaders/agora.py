"""AGORA (https://agora.is.tue.mpg.de): camera dataframes + fit pickles + PNG renders -> samples.

One sample per image, all its people stacked, parameters in the **camera frame** (``coords ==
"camera"``). Split names say the image set and, for the SMPL variant, the body model:
``{train,validation}-{1280,3840}[-smpl]`` and ``test-{1280,3840}`` (images only: no ground truth is
released). See ``docs/datasets/agora.md`` for the layout and every convention.

How a person is converted (``agora_evaluation/projection.py`` conventions, formats.md §2.5):

1. the fit pickle is posed with the body model the evaluation kit uses (SMPL-X: gendered, female kids
   -> neutral kid model; SMPL: always neutral; kids: the kid template as 11th beta; hand poses relative
   to the hand mean, as ``smplx.create`` defaults), giving model-space joints;
2. the kit's chain, model -> Unreal world (flip y/z, rotate by ``Yaw - 90`` about y, add the
   person's location) -> camera (subtract the camera position, rotate by ``-camYaw`` about y and by
   the pitch about x), is one rigid motion ``X_cam = R X_model + t`` per person; it is folded into
   ``global_orient`` and, around the rest-pose pelvis ``J0``, into ``transl``;
3. the posed joints are checked against the dataframe's ``gt_joints_3d`` and their 4K projection
   against ``gt_joints_2d``, so wrong body-model files or a wrong camera rule stop the conversion
   instead of producing silently shifted ground truth.
"""

from __future__ import annotations

import io
import itertools
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy.spatial.transform import Rotation

from humanbench.bodymodels import BodyModel, BodyModelRoot, load_body_model, resolve_root
from humanbench.bodymodels.rigid import move_root
from humanbench.loaders.agora_pickles import read_dataframe, read_fit
from humanbench.loaders.base import ConversionError, Converter, Unit, UnitResult
from humanbench.schema import BODY_POSE_DIM, KEY_PATTERN, Camera, Sample

FULL_SIZE = (3840, 2160)  # gt_joints_2d are always in these pixels
SENSOR_MM = (36.0, 20.25)
IMAGE_SETS = {"1280": "1280x720", "3840": "3840x2160"}
LOW_RES_SUFFIX = "_1280x720"
IMAGES_PER_UNIT = 16
NUM_BETAS = 11  # every sample stores 11 betas: adults get a zero kid-template weight
DATAFRAME_DIRS = {"smplx": ("SMPLX", "camera_dataframe"), "smpl": ("SMPL", "camera_dataframe_smpl")}
FIT_DIRS = {"smplx": "smplx_gt", "smpl": "smpl_gt"}
FIT_PATH_COLUMNS = {"smplx": "gt_path_smplx", "smpl": "gt_path_smpl"}
JOINT_FORMATS = {"smplx": "smplx127", "smpl": "smpl45"}
MAX_JOINT_ERROR_M = 5e-3
MAX_PIXEL_ERROR_4K = 0.5
PERSON_COLUMNS = ("X", "Y", "Z", "Yaw", "gender", "kid", "occlusion", "isValid", "gt_path_smplx", "gt_path_smpl",
                  "gt_joints_2d", "gt_joints_3d")
IMAGE_COLUMNS = ("imgPath", "camX", "camY", "camZ", "camYaw")

# Fixed cameras by image-name token, in the kit's order: (token, focal mm, position cm (Unreal), yaw, pitch).
FIXED_CAMERAS = (
    ("hdri", 50.0, (0.0, 0.0, 170.0), 0.0, 0.0),
    ("cam00", 18.0, (400.0, -275.0, 265.0), 135.0, 30.0),
    ("cam01", 18.0, (400.0, 225.0, 265.0), -135.0, 30.0),
    ("cam02", 18.0, (-490.0, 170.0, 265.0), -45.0, 30.0),
    ("cam03", 18.0, (-490.0, -275.0, 265.0), 45.0, 30.0),
    ("ag2", 28.0, (0.0, 0.0, 170.0), 0.0, 15.0),
)
DATAFRAME_FOCAL_MM = 28.0
DATAFRAME_GROUND_OFFSET = np.array([0.0, -1.7, 0.0])  # metres, added to the camera of the other scenes

# Fit keys and sizes as the kit feeds them to smplx (betas handled apart); SMPL fits name two differently.
FIT_SIZES = {
    "smplx": {"global_orient": 3, "body_pose": 63, "left_hand_pose": 45, "right_hand_pose": 45, "jaw_pose": 3,
              "leye_pose": 3, "reye_pose": 3, "expression": 10, "transl": 3},
    "smpl": {"global_orient": 3, "body_pose": 69, "transl": 3},
}
FIT_ALIASES = {"root_pose": "global_orient", "translation": "transl"}


# --------------------------------------------------------------------------- splits


@dataclass(frozen=True)
class SplitSpec:
    """What a split name selects: the AGORA split, the image set and the body model."""

    base: str  # train | validation | test
    image_set: str  # 1280 | 3840
    kind: str  # smplx | smpl


def split_names() -> tuple[str, ...]:
    """Every split name the converter accepts."""
    names = [f"{base}-{res}" for base in ("train", "validation", "test") for res in IMAGE_SETS]
    return tuple(names + [f"{base}-{res}-smpl" for base in ("train", "validation") for res in IMAGE_SETS])


def parse_split(name: str) -> SplitSpec:
    """``validation-1280-smpl`` -> SplitSpec('validation', '1280', 'smpl')."""
    base, image_set, *model = name.split("-")
    return SplitSpec(base, image_set, "smpl" if model else "smplx")


# --------------------------------------------------------------------------- camera


def _axis_rotation(axis: str, degrees: np.ndarray | float) -> np.ndarray:
    """(..., 3, 3) rotations about one axis by ``degrees`` of any shape (...)."""
    angles = np.asarray(degrees, dtype=np.float64)
    matrices = Rotation.from_euler(axis, angles.reshape(-1, 1), degrees=True).as_matrix()
    return matrices.reshape(angles.shape + (3, 3))


def rot_x(degrees: np.ndarray | float) -> np.ndarray:
    """(..., 3, 3) rotations about x by ``degrees`` (Rodrigues of [angle, 0, 0])."""
    return _axis_rotation("x", degrees)


def rot_y(degrees: np.ndarray | float) -> np.ndarray:
    """(..., 3, 3) rotations about y by ``degrees`` (Rodrigues of [0, angle, 0])."""
    return _axis_rotation("y", degrees)


def unreal_to_cv(points_cm: np.ndarray) -> np.ndarray:
    """(..., 3) Unreal positions in cm -> the kit's OpenCV-axis world in metres: [x, y, z] -> [y, -z, x] / 100."""
    points = np.asarray(points_cm, dtype=np.float64) / 100.0
    return np.stack([points[..., 1], -points[..., 2], points[..., 0]], axis=-1)


@dataclass(frozen=True)
class SceneCamera:
    """An AGORA camera as the kit derives it from the image name (and the dataframe for some scenes)."""

    rule: str  # the matched name token, or "dataframe"
    focal_mm: float
    position: np.ndarray  # (3,) metres, kit world (OpenCV axes), ground offset included
    yaw: float  # degrees
    pitch: float  # degrees

    def rotation(self) -> np.ndarray:
        """(3, 3) world -> camera: rotate by -yaw about y, then by the pitch about x."""
        return rot_x(self.pitch) @ rot_y(-self.yaw)

    def intrinsics(self, width: int, height: int) -> np.ndarray:
        """(3, 3) K for an image of ``width`` x ``height``: 36 x 20.25 mm sensor, principal point W/2, H/2."""
        fx, fy = self.focal_mm / SENSOR_MM[0] * width, self.focal_mm / SENSOR_MM[1] * height
        return np.array([[fx, 0.0, width / 2], [0.0, fy, height / 2], [0.0, 0.0, 1.0]])


def scene_camera(image_name: str, cam_cm: np.ndarray, cam_yaw: float) -> SceneCamera:
    """The kit's camera rule for ``image_name``; ``cam_cm`` (3,), ``cam_yaw``: the row's camX/Y/Z, camYaw."""
    for token, focal, position, yaw, pitch in FIXED_CAMERAS:
        if token in image_name:
            return SceneCamera(token, focal, unreal_to_cv(position), yaw, pitch)
    position = unreal_to_cv(cam_cm) + DATAFRAME_GROUND_OFFSET
    return SceneCamera("dataframe", DATAFRAME_FOCAL_MM, position, float(cam_yaw), 0.0)


def model_to_world(yaw: np.ndarray, location_cm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-person rigid motion fit model space -> kit world: R (P,3,3) = R_y(Yaw - 90) diag(1,-1,-1), t (P,3)."""
    flip = np.diag([1.0, -1.0, -1.0])
    return rot_y(np.asarray(yaw, dtype=np.float64) - 90.0) @ flip, unreal_to_cv(location_cm)


def project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(..., 3) camera-frame points -> (..., 2) pixels."""
    return points[..., :2] / points[..., 2:3] * np.diag(K)[:2] + K[:2, 2]


# --------------------------------------------------------------------------- body models


def model_gender(kind: str, gender: str, kid: bool) -> str:
    """The body-model gender the kit poses a person with (SMPL: neutral; SMPL-X: female kids neutral)."""
    if kind == "smpl" or (kid and gender == "female"):
        return "neutral"
    return gender


@lru_cache(maxsize=None)
def _cached_model(kind: str, gender: str, kid: bool, root: BodyModelRoot | None) -> BodyModel:
    return load_body_model(kind, gender, root=root, age="kid" if kid else "adult", flat_hand_mean=False,
                           dtype=torch.float64)


def kit_body_model(kind: str, gender: str, kid: bool, body_models: str | Path | None = None) -> BodyModel:
    """The model the kit poses fits with (float64, hand poses relative to the hand mean); cached per process."""
    return _cached_model(kind, gender, kid, resolve_root(body_models))


def fit_params(fit: dict[str, np.ndarray], kind: str, kid: bool, source: Path) -> dict[str, np.ndarray]:
    """Flat parameter vectors of one fit, as the kit feeds them (betas: 10, or 11 for kids)."""
    fit = {FIT_ALIASES.get(key, key): value for key, value in fit.items()}
    wanted = {**FIT_SIZES[kind], "betas": 11 if kid else 10}
    missing = sorted(set(wanted) - set(fit))
    if missing:
        raise ConversionError(f"{source}: fit lacks {missing} (has {sorted(fit)})")
    params = {}
    for key, size in wanted.items():
        flat = fit[key].reshape(-1)
        if flat.size < size or (key != "betas" and flat.size != size):
            what = "a kid needs 11 betas" if key == "betas" else f"expected {size} values"
            raise ConversionError(f"{source}: '{key}' has shape {fit[key].shape}; {what}")
        params[key] = flat[:size]
    return params


def pose_fits(kind: str, genders: list[str], kids: np.ndarray, params: list[dict[str, np.ndarray]],
              body_models: str | Path | None) -> tuple[np.ndarray, np.ndarray]:
    """Pose P fits in model space with their kit models.

    Returns joints (P, J, 3) (fit ``transl`` included) and, for SMPL-X, the hand means (P, 2, 45) the
    kit's models add (zeros for SMPL).
    """
    groups: dict[tuple[str, bool], list[int]] = {}
    for person, group in enumerate(zip(genders, kids.tolist())):
        groups.setdefault(group, []).append(person)
    joints, means = [None] * len(params), np.zeros((len(params), 2, 45))
    for (gender, kid), members in groups.items():
        model = kit_body_model(kind, gender, kid, body_models)
        batch = {key: torch.from_numpy(np.stack([params[p][key] for p in members])) for key in params[members[0]]}
        with torch.no_grad():
            posed = model(**batch).joints.numpy()
        for index, person in enumerate(members):
            joints[person] = posed[index]
        if kind == "smplx":
            means[members] = [model.smplx_model.left_hand_mean.numpy(), model.smplx_model.right_hand_mean.numpy()]
    return np.stack(joints), means


# --------------------------------------------------------------------------- raw files


def image_key(image_name: str) -> str:
    """Sample key from an image name: the 3840x2160 stem (``_1280x720`` and ``.png`` removed)."""
    stem = Path(image_name).name.removesuffix(".png")
    return stem.removesuffix(LOW_RES_SUFFIX)


def image_file(key: str, image_set: str) -> str:
    """File name of image ``key`` in an image set."""
    return f"{key}{LOW_RES_SUFFIX}.png" if image_set == "1280" else f"{key}.png"


def read_png(path: Path, context: str) -> tuple[bytes, int, int]:
    """PNG bytes and size; the image must be 16:9 like both AGORA image sets."""
    if not path.is_file():
        raise ConversionError(f"{path}: image missing for {context}")
    data = path.read_bytes()
    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt, (width, height) = image.format, image.size
    except OSError as err:
        raise ConversionError(f"{path}: not a readable image ({err}) for {context}") from None
    if fmt != "PNG" or abs(width * 9 - height * 16) > 16:
        raise ConversionError(f"{path}: expected a 16:9 PNG for {context}, found a {width}x{height} {fmt}")
    return data, width, height


@lru_cache(maxsize=1)
def _cached_frame(path: str, mtime_ns: int, size: int) -> dict[str, list]:
    columns = read_dataframe(Path(path))
    columns.pop("gt_verts", None)  # not kept: the largest column by far, reproducible from the parameters
    missing = [c for c in IMAGE_COLUMNS + PERSON_COLUMNS if c not in columns]
    if missing:
        raise ConversionError(f"{path}: dataframe lacks the columns {missing}; expected a *_withjv.pkl camera "
                              "dataframe (with joints)")
    return columns


def load_frame(path: Path) -> dict[str, list]:
    """A camera dataframe as ``{column: rows}`` (the last one read is kept in memory)."""
    if not path.is_file():
        raise ConversionError(f"{path}: dataframe not found")
    stat = path.stat()
    return _cached_frame(str(path), stat.st_mtime_ns, stat.st_size)


def sorted_rows(frame: dict[str, list]) -> list[int]:
    """Row indices of a dataframe in sample-key order."""
    keys = [image_key(name) for name in frame["imgPath"]]
    return sorted(range(len(keys)), key=keys.__getitem__)


# --------------------------------------------------------------------------- the converter


class AgoraConverter(Converter):
    """AGORA camera dataframes + fits + images -> one sample per image (see the module doc)."""

    name = "agora"
    splits = split_names()

    @property
    def spec(self) -> SplitSpec:
        """What the split name selects."""
        return parse_split(self.split)

    def _image_dir(self) -> Path:
        return self.root / "images" / self.spec.base

    def _dataframe_dir(self) -> Path:
        candidates = [self.root / name for name in DATAFRAME_DIRS[self.spec.kind]]
        found = [path for path in candidates if path.is_dir()]
        if not found:
            raise ConversionError(f"agora: no dataframe folder for split {self.split!r}: expected "
                                  f"{' or '.join(map(str, candidates))} (see docs/datasets/agora.md)")
        return found[0]

    def dataframes(self) -> list[Path]:
        """The split's ``<split>_<i>_withjv.pkl`` files, in part order."""
        folder = self._dataframe_dir()
        paths = sorted(folder.glob(f"{self.spec.base}_*_withjv.pkl"),
                       key=lambda p: (len(p.name), p.name))
        if not paths:
            raise ConversionError(f"{folder}: no {self.spec.base}_<i>_withjv.pkl dataframe found")
        return paths

    def _test_keys(self) -> list[str]:
        folder = self._image_dir()
        if not folder.is_dir():
            raise ConversionError(f"{folder}: test image folder not found (see docs/datasets/agora.md)")
        low = {p.name for p in folder.glob(f"*{LOW_RES_SUFFIX}.png")}
        names = low if self.spec.image_set == "1280" else {p.name for p in folder.glob("*.png")} - low
        return sorted(image_key(name) for name in names)

    def _index(self) -> tuple[list[tuple[str, str, int]], list[str]]:
        """(key, dataframe name, position in its key order) of every image, and unreadable dataframes."""
        entries, broken = [], []
        for path in self.dataframes():
            try:
                frame = load_frame(path)
            except ConversionError:  # reported by convert_unit, so --skip-bad can skip just this file
                broken.append(path.name)
                continue
            keys = [image_key(frame["imgPath"][row]) for row in sorted_rows(frame)]
            entries += [(key, path.name, position) for position, key in enumerate(keys)]
        entries.sort()
        for (key, first, _), (other, second, _) in zip(entries, entries[1:]):
            if key == other:
                raise ConversionError(f"agora: image {key!r} is listed in both {first} and {second}")
        return entries, broken

    def units(self) -> list[Unit]:
        """Runs of at most IMAGES_PER_UNIT key-sorted images of one dataframe (test: of the image folder)."""
        if self.spec.base == "test":
            count = len(self._test_keys())
            return [Unit("test", s, min(s + IMAGES_PER_UNIT, count)) for s in range(0, count, IMAGES_PER_UNIT)]
        entries, broken = self._index()
        units = [Unit(name) for name in broken]
        for name, run in itertools.groupby(entries, key=lambda entry: entry[1]):
            positions = [position for _, _, position in run]
            units += [Unit(name, positions[i], positions[min(i + IMAGES_PER_UNIT, len(positions)) - 1] + 1)
                      for i in range(0, len(positions), IMAGES_PER_UNIT)]
        return units

    def convert_unit(self, unit: Unit) -> UnitResult:
        """The samples of one run of images."""
        if self.spec.base == "test":
            return UnitResult([self._test_sample(key) for key in self._test_keys()[unit.start:unit.stop]])
        path = self._dataframe_dir() / unit.item
        frame = load_frame(path)
        if unit.stop == 0:
            raise ConversionError(f"{path}: was unreadable when the units were listed; run the conversion again")
        return UnitResult([self._sample(frame, path, row) for row in sorted_rows(frame)[unit.start:unit.stop]])

    def source_files(self) -> list[Path]:
        """The split's dataframes and every fit pickle they reference (test: nothing; images count by name)."""
        if self.spec.base == "test":
            return []
        paths = self.dataframes()
        column = FIT_PATH_COLUMNS[self.spec.kind]
        fits = set()
        for path in paths:
            try:
                fits.update(self.fit_path(entry) for entries in load_frame(path)[column] for entry in entries)
            except ConversionError:  # an unreadable dataframe is reported by its unit
                continue
        return paths + sorted(fit for fit in fits if fit.is_file())

    def fit_path(self, obj_path: str) -> Path:
        """The fit pickle for a ``gt_path_*`` entry: ``.obj`` -> ``.pkl``, with or without the ``smplx_gt/`` prefix."""
        relative = Path(obj_path).with_suffix(".pkl")
        direct = self.root / relative
        return direct if direct.is_file() else self.root / FIT_DIRS[self.spec.kind] / relative

    # ------------------------------------------------------------------ one image

    def _image(self, key: str, context: str) -> tuple[bytes, int, int]:
        if not KEY_PATTERN.match(key):
            raise ConversionError(f"agora: image name {key!r} ({context}) is not a valid sample key")
        return read_png(self._image_dir() / image_file(key, self.spec.image_set), context)

    def _test_sample(self, key: str) -> Sample:
        image, width, height = self._image(key, "a test image")
        camera = scene_camera(key, np.zeros(3), 0.0)
        return self._make_sample(key, image, width, height, Camera(K=camera.intrinsics(width, height)),
                                 _no_people(self.spec.kind), [], extra={"camera_rule": camera.rule})

    def _sample(self, frame: dict[str, list], path: Path, row: int) -> Sample:
        key = image_key(frame["imgPath"][row])
        context = f"{path.name} row {row} ({frame['imgPath'][row]})"
        image, width, height = self._image(key, context)
        camera = scene_camera(key, np.array([frame[c][row] for c in ("camX", "camY", "camZ")]), frame["camYaw"][row])
        cam = Camera(K=camera.intrinsics(width, height), R=camera.rotation(),
                     t=-camera.rotation() @ camera.position)
        people = _person_columns(frame, row, context)
        if not people["gender"]:
            return self._make_sample(key, image, width, height, cam, _no_people(self.spec.kind), [],
                                     extra={"camera_rule": camera.rule, "dataframe": path.name, "row": row})
        arrays, genders, fits = self._people(people, camera, width, height, context)
        extra = {"camera_rule": camera.rule, "dataframe": path.name, "row": row, "fits": fits,
                 "annotated_genders": [str(g) for g in people["gender"]],
                 **{name: [str(v) for v in frame[name][row]] for name in ("age", "ethnicity") if name in frame}}
        sample = self._make_sample(key, image, width, height, cam, arrays, genders, extra)
        sample.synthetic = resolve_root(self.body_models) is None  # J0 came from the embedded synthetic models
        return sample

    def _make_sample(self, key: str, image: bytes, width: int, height: int, camera: Camera,
                     people: dict[str, np.ndarray], genders: list[str], extra: dict) -> Sample:
        spec = self.spec
        match = re.fullmatch(r"(.+)_(\d+)", key)
        token = re.search(r"cam\d\d", key)
        return Sample(
            key=key, dataset="agora", split=spec.base, image=image, image_format="png", width=width,
            height=height, camera=camera, body_model=spec.kind, coords="camera", people=people, genders=genders,
            person_ids=[str(p) for p in range(len(genders))], sequence=match.group(1) if match else key,
            frame=int(match.group(2)) if match else 0, camera_name=token.group(0) if token else "",
            joints2d_format=JOINT_FORMATS[spec.kind] if genders else "",
            joints3d_format=JOINT_FORMATS[spec.kind] if genders else "",
            flags={"is_valid": people["valid"].copy()},
            extra={"image_set": IMAGE_SETS[spec.image_set], **extra},
        )

    def _people(self, people: dict[str, list], camera: SceneCamera, width: int, height: int,
                context: str) -> tuple[dict[str, np.ndarray], list[str], list[str]]:
        """Camera-frame schema arrays, model genders and fit paths of the people of one image."""
        kind = self.spec.kind
        kids = np.array(people["kid"], dtype=bool)
        genders = _model_genders(kind, people["gender"], kids, context)
        fit_files = [self.fit_path(p) for p in people[FIT_PATH_COLUMNS[kind]]]
        params = [fit_params(read_fit(f), kind, k, f) for f, k in zip(fit_files, kids)]
        joints, means = pose_fits(kind, genders, kids, params, self.body_models)
        rotation, shift = _model_to_camera(people, camera)
        gt3d, gt2d = _gt_joints(people, len(genders), joints.shape[1], context)
        _check(np.einsum("pij,pkj->pki", rotation, joints) + shift[:, None], gt3d, gt2d, camera, context)
        pelvis = joints[:, 0] - np.stack([p["transl"] for p in params])  # rest-pose J0(betas)
        arrays = _camera_params(params, rotation, shift, pelvis, means, kind)
        arrays.update(_annotations(people, gt3d, gt2d, width, height))
        return arrays, genders, [str(f.relative_to(self.root)) for f in fit_files]


def _model_genders(kind: str, annotated: list, kids: np.ndarray, context: str) -> list[str]:
    """Body-model gender per person (see :func:`model_gender`); refuses unknown values."""
    unknown = sorted({str(g) for g in annotated} - {"male", "female", "neutral"})
    if unknown:
        raise ConversionError(f"agora: {context}: unknown gender values {unknown}")
    return [model_gender(kind, str(g), bool(k)) for g, k in zip(annotated, kids)]


def _model_to_camera(people: dict[str, list], camera: SceneCamera) -> tuple[np.ndarray, np.ndarray]:
    """Per-person rigid motion fit model space -> camera: R (P,3,3), t (P,3) with X_cam = R X_model + t."""
    to_world, location = model_to_world(np.array(people["Yaw"]), np.stack([people[c] for c in "XYZ"], -1))
    return camera.rotation() @ to_world, (location - camera.position) @ camera.rotation().T


def _annotations(people: dict[str, list], gt3d: np.ndarray, gt2d: np.ndarray, width: int,
                 height: int) -> dict[str, np.ndarray]:
    """Joints (2D scaled from 3840x2160 to the stored image, confidence 1), joint boxes, validity, kid, occlusion."""
    scale = np.array([width / FULL_SIZE[0], height / FULL_SIZE[1]])
    joints2d = np.concatenate([gt2d * scale, np.ones(gt2d.shape[:2] + (1,))], axis=-1)
    return {"joints2d": joints2d, "joints3d": gt3d,
            "bbox": np.concatenate([joints2d[..., :2].min(1), joints2d[..., :2].max(1)], axis=-1),
            "valid": np.array(people["isValid"], dtype=bool), "kid": np.array(people["kid"], dtype=bool),
            "occlusion": np.array(people["occlusion"], dtype=np.float64)}


def _person_columns(frame: dict[str, list], row: int, context: str) -> dict[str, list]:
    """The per-person lists of one row (all of equal length P)."""
    people = {name: list(frame[name][row]) for name in PERSON_COLUMNS}
    lengths = {name: len(values) for name, values in people.items()}
    if len(set(lengths.values())) > 1:
        raise ConversionError(f"agora: {context}: per-person columns differ in length {lengths}")
    return people


def _gt_joints(people: dict[str, list], count: int, joints: int, context: str) -> tuple[np.ndarray, np.ndarray]:
    """gt_joints_3d (P,J,3) metres and gt_joints_2d (P,J,2) 4K pixels, shape-checked."""
    gt3d = np.asarray(people["gt_joints_3d"], dtype=np.float64).reshape(count, -1, 3)
    gt2d = np.asarray(people["gt_joints_2d"], dtype=np.float64).reshape(count, -1, 2)
    if gt3d.shape[1] != joints or gt2d.shape[1] != joints:
        raise ConversionError(f"agora: {context}: gt_joints_3d/2d have {gt3d.shape[1]}/{gt2d.shape[1]} joints, the "
                              f"body model gives {joints}; SMPL dataframes belong in SMPL/, SMPL-X ones in SMPLX/")
    return gt3d, gt2d


def _check(joints_cam: np.ndarray, gt3d: np.ndarray, gt2d: np.ndarray, camera: SceneCamera, context: str) -> None:
    """Refuse a conversion whose posed fits or camera rule do not reproduce the dataframe's joints."""
    error = float(np.abs(joints_cam - gt3d).max())
    if error > MAX_JOINT_ERROR_M:
        raise ConversionError(
            f"agora: {context}: the fits posed with the body models miss gt_joints_3d by {error:.3g} m (tolerance "
            f"{MAX_JOINT_ERROR_M} m); point --body-models at the official SMPL/SMPL-X files and kid templates")
    front = gt3d[..., 2] > 0.1
    pixels = np.abs(project(gt3d, camera.intrinsics(*FULL_SIZE)) - gt2d)[front]
    if pixels.size and pixels.max() > MAX_PIXEL_ERROR_4K:
        raise ConversionError(f"agora: {context}: the '{camera.rule}' camera ({camera.focal_mm} mm) misses "
                              f"gt_joints_2d by {pixels.max():.3g} px at 3840x2160")


def _camera_params(params: list[dict[str, np.ndarray]], rotation: np.ndarray, shift: np.ndarray,
                   pelvis: np.ndarray, means: np.ndarray, kind: str) -> dict[str, np.ndarray]:
    """Schema parameters (P, ·) in the camera frame.

    ``rotation`` (P,3,3) and ``shift`` (P,3) map model space to the camera; ``pelvis`` (P,3) is J0(betas).
    The orientation is rotated; ``transl' = R (J0 + transl) + t - J0`` keeps the mesh where the kit puts it;
    hand poses get the kit model's hand means (P,2,45) added (the schema's hand poses are absolute).
    """
    stacked = {key: np.stack([p[key] for p in params]) for key in params[0] if key != "betas"}
    orient, transl = move_root(stacked.pop("global_orient"), stacked.pop("transl"), rotation, shift, pelvis)
    arrays = {**stacked, "betas": _pad_betas([p["betas"] for p in params]), "global_orient": orient,
              "transl": transl}
    if kind == "smplx":
        arrays["left_hand_pose"] = arrays["left_hand_pose"] + means[:, 0]
        arrays["right_hand_pose"] = arrays["right_hand_pose"] + means[:, 1]
    return arrays


def _pad_betas(betas: list[np.ndarray]) -> np.ndarray:
    """(P, 11): adults' 10 betas get a zero kid-template weight (identical body with the kid model)."""
    return np.stack([np.pad(b, (0, NUM_BETAS - b.size)) for b in betas])


def _no_people(kind: str) -> dict[str, np.ndarray]:
    """Zero-person arrays (test images, rows without people)."""
    sizes = {"betas": NUM_BETAS, "global_orient": 3, "body_pose": BODY_POSE_DIM[kind], "transl": 3}
    if kind == "smplx":
        sizes.update(left_hand_pose=45, right_hand_pose=45, jaw_pose=3, leye_pose=3, reye_pose=3, expression=10)
    return {**{name: np.zeros((0, size)) for name, size in sizes.items()},
            "valid": np.zeros(0, bool), "kid": np.zeros(0, bool)}
