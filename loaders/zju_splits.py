"""ZJU-MoCap splits of the published avatar protocols, as frozen data.

A split names, per subject, the camera **views** (0-based positions in ``annots.npy``'s camera
lists, the index every codebase uses: Neural Body's ``training_view``, HumanNeRF's
``training_view``, GauHuman's camera index; 3DGS-Avatar's camera names ``'1'``..``'23'`` are that
index + 1) and the **frames** (0-based positions in ``annots['ims']``, i.e. the sample's
``frame``). Split names are ``<protocol>-<part>`` with parts ``train``, ``test-novel-view`` and
``test-novel-pose``; ``all`` and ``all-new-params`` take every view and frame of every subject
on disk. Sources are the shared reference notes (formats.md §5.5, protocols.md §7) and the
configuration files they cite; what no code confirms is listed in ``unconfirmed``
(docs/datasets/zju-mocap.md has the table).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

SUBJECTS = ("CoreView_313", "CoreView_315", "CoreView_377", "CoreView_386", "CoreView_387", "CoreView_390",
            "CoreView_392", "CoreView_393", "CoreView_394")
"""The nine subjects of the Neural Body release (formats.md §5.1)."""
MONOCULAR_SUBJECTS = ("CoreView_377", "CoreView_386", "CoreView_387", "CoreView_392", "CoreView_393", "CoreView_394")
"""The six subjects of HumanNeRF, MonoHuman, 3DGS-Avatar and GauHuman."""
TEST_EVERY = 30
"""Every codebase evaluates every 30th frame of a test range, counted from the range's start."""


@dataclass(frozen=True)
class Frames:
    """Frames ``range(start, stop, step)`` of a subject; ``stop=None`` runs to its last frame."""

    start: int = 0
    stop: int | None = None
    step: int = 1

    def select(self, count: int) -> range:
        """The frame indices of a subject with ``count`` frames (ranges past its end are cut there)."""
        stop = count if self.stop is None else min(self.stop, count)
        return range(min(self.start, count), stop, self.step)

    def describe(self) -> str:
        """``start-stop[/step]`` with ``end`` for an open range, e.g. ``0-300/30``."""
        text = f"{self.start}-{'end' if self.stop is None else self.stop}"
        return text if self.step == 1 else f"{text}/{self.step}"


@dataclass(frozen=True)
class Views:
    """The listed view indices, or (``others``) every view of the subject except them."""

    indices: tuple[int, ...] = ()
    others: bool = False

    def select(self, count: int) -> tuple[int, ...]:
        """The view indices of a subject with ``count`` cameras; raises ValueError if a listed one is missing."""
        missing = [i for i in self.indices if i >= count]
        if missing:
            raise ValueError(f"view index {missing[0]}, but annots.npy lists only {count} cameras")
        return tuple(i for i in range(count) if i not in self.indices) if self.others else self.indices

    def describe(self) -> str:
        """e.g. ``0,6,12,18`` or ``all but 0`` or ``all``."""
        listed = ",".join(map(str, self.indices))
        return ("all but " + listed if listed else "all") if self.others else listed


@dataclass(frozen=True)
class Selection:
    """The views and frames one split takes from one subject."""

    views: Views
    frames: Frames


EVERYTHING = Selection(Views(others=True), Frames())
"""Every view and every frame."""


@dataclass(frozen=True)
class Split:
    """One named split: what it selects per subject, which SMPL folder it reads, where the numbers come from.

    ``subjects`` is None for the ``all`` splits (every subject on disk, every view and frame).
    """

    name: str
    protocol: str
    params: str  # "params" | "new_params": the folder the protocol's code reads
    subjects: Mapping[str, Selection] | None
    source: str
    notes: str = ""
    unconfirmed: tuple[str, ...] = ()

    def selection(self, subject: str) -> Selection | None:
        """What the split takes from ``subject`` (None: the subject is not part of it)."""
        return EVERYTHING if self.subjects is None else self.subjects.get(subject)


def _per_subject(frames: Mapping[str, Frames], views: Views) -> Mapping[str, Selection]:
    return MappingProxyType({subject: Selection(views, f) for subject, f in frames.items()})


def _strided(frames: Mapping[str, Frames], step: int = TEST_EVERY) -> dict[str, Frames]:
    return {subject: Frames(f.start, f.stop, step) for subject, f in frames.items()}


# ----------------------------------------------------------------------------- Neural Body

NEURALBODY_TRAIN_VIEWS = (0, 6, 12, 18)
NEURALBODY_TRAIN_FRAMES = {
    "CoreView_313": Frames(0, 60), "CoreView_315": Frames(0, 400),
    **{s: Frames(0, 300) for s in ("CoreView_377", "CoreView_386", "CoreView_387", "CoreView_392", "CoreView_393",
                                   "CoreView_394")},
    "CoreView_390": Frames(700, 1000),
}
"""``begin_ith_frame`` .. ``+ num_train_frame`` per subject (configs/zju_mocap_exp/latent_xyzc_*.yaml)."""
NEURALBODY_NOVEL_POSE_FRAMES = {
    "CoreView_313": Frames(60, 1060), "CoreView_315": Frames(400, 1400),
    **{s: Frames(300, None) for s in ("CoreView_377", "CoreView_386", "CoreView_387", "CoreView_392", "CoreView_393",
                                      "CoreView_394")},
    "CoreView_390": Frames(0, 700),
}
"""``num_train_frame`` .. ``+ num_novel_pose_frame`` (1000, cut at the last frame); 390 starts at 0 and takes 700."""
_NEURALBODY_SOURCE = ("zju3dv/neuralbody: configs/zju_mocap_exp/latent_xyzc_*.yaml, "
                      "lib/datasets/light_stage/multi_view_dataset.py, lib/datasets/samplers.py (FrameSampler); "
                      "protocols.md §7.1, formats.md §5.5")
_NEURALBODY_NOTES = ("Reads params/ (fits without pose blend shapes) and vertices/. 313 and 315 have 21 cameras, so "
                     "their test views are 17, the others' 19.")

# ----------------------------------------------------------------------------- HumanNeRF / MonoHuman / 3DGS-Avatar

MONOCULAR_FRAMES = {
    "CoreView_377": Frames(0, 570), "CoreView_386": Frames(0, 540), "CoreView_387": Frames(0, 540),
    "CoreView_392": Frames(0, None), "CoreView_393": Frames(0, None), "CoreView_394": Frames(0, 475),
}
"""HumanNeRF's ``max_frames`` (all frames for 392, 393); MonoHuman and 3DGS-Avatar use the same ranges."""
MONOHUMAN_TRAIN_FRAMES = {
    "CoreView_377": Frames(0, 456), "CoreView_386": Frames(0, 432), "CoreView_387": Frames(0, 432),
    "CoreView_392": Frames(0, 445), "CoreView_393": Frames(0, 527), "CoreView_394": Frames(0, 380),
}
"""MonoHuman trains on ``frames[:-(n // 5)]`` of the HumanNeRF ranges: n = 570, 540, 540, 556, 658, 475."""
MONOHUMAN_NOVEL_POSE_FRAMES = {
    "CoreView_377": Frames(456, 570), "CoreView_386": Frames(432, 540), "CoreView_387": Frames(432, 540),
    "CoreView_392": Frames(445, 556), "CoreView_393": Frames(527, 658), "CoreView_394": Frames(380, 475),
}
"""The last ``n // 5`` frames of the HumanNeRF ranges."""
_MONOCULAR_SOURCE = ("chungyiweng/humannerf and Yzmblog/MonoHuman: tools/prepare_zju_mocap/*.yaml, "
                     "tools/prepare_zju_mocap/prepare_dataset.py; formats.md §5.5, protocols.md §7.2")
_FRAME_COUNTS_392_393 = ("392 and 393 boundaries are computed from the documented frame counts 556 and 658 "
                         "(neuralbody supplementary_material.md)")
_3DGS_SOURCE = ("mikeqzy/3dgs-avatar-release: configs/dataset/zjumocap_*_mono.yaml (train_views ['1'], val_views "
                "'2'..'23', train_frames, test_frames.view), dataset/zjumocap.py; protocols.md §7.3")

# ----------------------------------------------------------------------------- GauHuman

GAUHUMAN_TRAIN_VIEW = 4
_GAUHUMAN_SOURCE = ("skhu101/GauHuman: scene/dataset_readers.py, render.py, train_zju_mocap_refine.sh (subjects "
                    "my_377 .. my_394); protocols.md §7.4")
_GAUHUMAN_RELEASE = ("GauHuman uses the refined ZJU-MoCap release (instant-nvr format) with its own cameras, masks "
                     "and SMPL fits; this converter reads the original release, so the same view and frame indices "
                     "select the original images, and whether they are the same instants is UNCONFIRMED")


def _splits() -> tuple[Split, ...]:
    neuralbody_test = Views(NEURALBODY_TRAIN_VIEWS, others=True)
    mono_test = Views((0,), others=True)
    return (
        Split("all", "all", "params", None, "formats.md §5", notes="SMPL from params/ (and vertices/)."),
        Split("all-new-params", "all", "new_params", None, "formats.md §5",
              notes="SMPL from new_params/ (refit with pose blend shapes); no vertices."),
        Split("neuralbody-train", "neuralbody", "params",
              _per_subject(NEURALBODY_TRAIN_FRAMES, Views(NEURALBODY_TRAIN_VIEWS)), _NEURALBODY_SOURCE,
              _NEURALBODY_NOTES),
        Split("neuralbody-test-novel-view", "neuralbody", "params",
              _per_subject(_strided(NEURALBODY_TRAIN_FRAMES), neuralbody_test), _NEURALBODY_SOURCE,
              _NEURALBODY_NOTES + " Training frames, every 30th, on the views not trained on."),
        Split("neuralbody-test-novel-pose", "neuralbody", "params",
              _per_subject(_strided(NEURALBODY_NOVEL_POSE_FRAMES), neuralbody_test), _NEURALBODY_SOURCE,
              _NEURALBODY_NOTES + " Frames after the training range (390: before it), every 30th, on the views "
                                  "not trained on."),
        Split("humannerf-train", "humannerf", "new_params", _per_subject(MONOCULAR_FRAMES, Views((0,))),
              _MONOCULAR_SOURCE, "Monocular: camera index 0 (Camera_B1). Reads new_params/."),
        Split("humannerf-test-novel-view", "humannerf", "new_params",
              _per_subject(_strided(MONOCULAR_FRAMES), mono_test), _MONOCULAR_SOURCE,
              "The 22 cameras not trained on, every 30th training frame (formats.md: 387 -> 0..510).",
              ("HumanNeRF releases no evaluation code: test views and frames are from the paper and formats.md "
               "§5.5, not from code",)),
        Split("monohuman-train", "monohuman", "new_params", _per_subject(MONOHUMAN_TRAIN_FRAMES, Views((0,))),
              _MONOCULAR_SOURCE, "Camera index 0, the first 4/5 of HumanNeRF's frame range.",
              (_FRAME_COUNTS_392_393,)),
        Split("monohuman-test-novel-view", "monohuman", "new_params",
              _per_subject(_strided(MONOHUMAN_TRAIN_FRAMES), mono_test), _MONOCULAR_SOURCE,
              "Training frames, every 30th, on the other cameras.",
              (_FRAME_COUNTS_392_393, "the evaluated camera list is from protocols.md §7.2, not from code")),
        Split("monohuman-test-novel-pose", "monohuman", "new_params",
              _per_subject(_strided(MONOHUMAN_NOVEL_POSE_FRAMES), mono_test), _MONOCULAR_SOURCE,
              "The last 1/5 of the frames, every 30th, on the other cameras.",
              (_FRAME_COUNTS_392_393, "which cameras the novel-pose evaluation uses is not stated in code or "
                                      "protocols.md; the cameras not trained on are assumed")),
        Split("3dgs-avatar-train", "3dgs-avatar", "new_params", _per_subject(MONOCULAR_FRAMES, Views((0,))),
              _3DGS_SOURCE, "Camera '1' (index 0), every frame of the range.",
              ("3DGS-Avatar reads ARAH-preprocessed SMPL fits; that they come from new_params/ is UNCONFIRMED",
               "frame i of its preprocessed models is assumed to be annots frame i")),
        Split("3dgs-avatar-test-novel-view", "3dgs-avatar", "new_params",
              _per_subject(_strided(MONOCULAR_FRAMES), mono_test), _3DGS_SOURCE,
              "Cameras '2'..'23' (indices 1..22), every 30th frame of the range (377: 0..540, 19 frames).",
              ("3DGS-Avatar reads ARAH-preprocessed SMPL fits; that they come from new_params/ is UNCONFIRMED",
               "frame i of its preprocessed models is assumed to be annots frame i")),
        Split("gauhuman-train", "gauhuman", "new_params",
              MappingProxyType({s: Selection(Views((GAUHUMAN_TRAIN_VIEW,)), Frames(0, 500, 5))
                                for s in MONOCULAR_SUBJECTS}),
              _GAUHUMAN_SOURCE, "Camera index 4, frames 0..495 every 5th (100 frames).", (_GAUHUMAN_RELEASE,)),
        Split("gauhuman-test-novel-view", "gauhuman", "new_params",
              MappingProxyType({s: Selection(Views((GAUHUMAN_TRAIN_VIEW,), others=True), Frames(0, 510, TEST_EVERY))
                                for s in MONOCULAR_SUBJECTS}),
              _GAUHUMAN_SOURCE, "The 22 other cameras, frames 0..480 every 30th (17 frames).", (_GAUHUMAN_RELEASE,)),
    )


SPLITS: Mapping[str, Split] = MappingProxyType({split.name: split for split in _splits()})
"""Every split by name, in the order ``humanbench convert`` lists them."""
