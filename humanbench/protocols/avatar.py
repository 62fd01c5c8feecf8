"""Avatar rendering protocols (PSNR, SSIM, LPIPS on rendered test views) as frozen, versioned data.

An :class:`AvatarProtocol` names the dataset split whose GT images it scores, the evaluation-time
3D-box mask and which images it blanks, the background, 8-bit quantisation, and each metric with
its variant (:class:`ImageMetric`: PSNR pooled or per channel, SSIM scikit-image or 3DGS, LPIPS
backbone and input range) and region (whole image, box pixels, box or mask bounding rectangle).
``humanbench.render_evaluation`` interprets these fields; nothing else decides a number.

GT preparation (undistortion, ×0.5 resampling, background from the dataset mask) happens before
evaluation in every source; the protocol states it in words (``gt_preparation``) and as data
(:class:`GtPreparation`), which ``humanbench.metrics.avatar_gt`` replays on the stored samples.
Sources and traps: ``reference/protocols.md`` §7 and §9 items 7–10; see ``docs/protocols.md``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from humanbench.protocols.base import MetricSpec, Trap


@dataclass(frozen=True)
class ImageMetric(MetricSpec):
    """One image metric: how it is computed (kind, variant, region) and how tables print it.

    ``kind``/``variant``: ``psnr``/``pooled`` | ``psnr``/``per_channel`` | ``ssim``/``skimage`` (with
    ``data_range``) | ``ssim``/``gaussian`` | ``lpips``/``alex`` | ``lpips``/``vgg`` (with ``lpips_feed``
    ``rescale`` = [0,1]→[−1,1] or ``raw``). ``region``: ``image``; ``box_pixels`` (only the box-mask
    pixels); ``box_bbox`` (the box mask's bounding rectangle, ``cv2.boundingRect``); ``mask_bbox`` (the
    GT mask's rectangle without its last row/column, as HUGS slices it). Records store the plain
    value; tables show ``value × table_scale`` under ``table_name`` (``LPIPS*`` = LPIPS × 1000).
    """

    kind: str = "psnr"
    variant: str = "pooled"
    region: str = "image"
    data_range: float | None = None
    lpips_feed: str = ""
    table_name: str = ""
    table_scale: float = 1.0
    table_decimals: int | None = None


@dataclass(frozen=True)
class BoxMask:
    """The evaluation-time mask from the person's 3D box (``humanbench.metrics.masking``).

    ``points``: ``vertices`` (the sample's stored ``vertices``, e.g. Neural Body's ``vertices/<i>.npy``),
    ``model_vertices`` (the body model's vertices from the sample's parameters) or
    ``model_joints_body_frame`` (the model's 24 SMPL joints taken back through EasyMocap ``rh``/``th``
    into the body frame, as HumanNeRF's ``mesh_infos`` hold them). ``padding``: metres per axis on both sides. ``test``: ``ray_slab``
    (Neural Body ``mask_at_box``), ``ray_two_hits`` (HumanNeRF/MonoHuman) or ``projected_faces``
    (GauHuman ``bound_mask``). ``fill``: ``both`` images or only the ``render`` get the background
    outside the mask.
    """

    points: str
    padding: tuple[float, float, float]
    test: str
    fill: str


@dataclass(frozen=True)
class GtPreparation:
    """How a source turns a stored ZJU-MoCap sample (distorted image, mask bits) into the GT image it scores,
    replayed by :func:`humanbench.metrics.avatar_gt.prepare_gt` in the source's order.

    ``mask_bits``: stored mask bits forming the person mask (1 = ``mask/``, 2 = ``mask_cihp/``, 3 = union).
    ``mask_level``: the 8-bit value of person pixels in the mask the source undistorts (1 for a 0/1 mask, 255
    for a 0/255 alpha); ``mask_band``: side of Neural Body's erode/dilate kernel whose band gets 100 (0: none).
    ``principal_point``: ``K``, or ``image_centre`` (3DGS-Avatar undistorts with cx, cy moved to W/2, H/2).
    ``fill``: ``mask`` (pixels whose mask is 0 get the background) or ``alpha`` (composited over it);
    ``fill_at``: ``full`` (before resizing) or ``resized`` (with the mask resized by nearest neighbour).
    ``scale`` and ``resize``: output size / stored size and OpenCV's interpolation (``area``, ``linear``,
    ``lanczos4``). ``uint8_steps``: steps the source runs on 8-bit images (``undistort``, ``resize``), rounded
    after them; ``truncate``: the result truncated to 8 bits.
    """

    mask_bits: int
    mask_level: int = 1
    mask_band: int = 0
    principal_point: str = "K"
    fill: str = "mask"
    fill_at: str = "resized"
    scale: float = 0.5
    resize: str = "area"
    uint8_steps: tuple[str, ...] = ()
    truncate: bool = False


@dataclass(frozen=True)
class AvatarProtocol:
    """A named, versioned avatar-rendering protocol, scored from rendered image files by sample key."""

    id: str
    version: int
    title: str
    dataset: str
    split: str
    metrics: tuple[ImageMetric, ...]
    gt_preparation: str
    box: BoxMask | None = None
    background: float = 0.0
    quantize: bool = False  # truncate render and GT to 8 bits before the metrics (MonoHuman's to_8b_image)
    preparation: GtPreparation | None = None  # None: the stored GT image is scored as it is (undistorted only)
    traps: tuple[Trap, ...] = ()
    sources: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable definition for result records (``"scores": "renders"`` marks the kind)."""
        body = dataclasses.asdict(self)
        body["scores"] = "renders"
        return _lists(body)


def _lists(value: Any) -> Any:
    """Tuples -> lists, recursively, so a described protocol compares equal to its JSON round trip."""
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_lists(v) for v in value]
    return value


def psnr_metric(variant: str, region: str = "image", name: str = "psnr") -> ImageMetric:
    """A PSNR metric (dB, higher is better, 2 decimals)."""
    return ImageMetric(name=name, unit="dB", higher_is_better=True, decimals=2, kind="psnr", variant=variant,
                       region=region, table_name="PSNR", description=f"PSNR, {variant.replace('_', '-')} MSE")


def ssim_metric(variant: str, region: str = "image", data_range: float | None = None, name: str = "ssim") -> ImageMetric:
    """An SSIM metric (unitless, higher is better, 4 decimals)."""
    what = f"scikit-image SSIM, data_range {data_range:g}" if variant == "skimage" else "3DGS gaussian SSIM"
    return ImageMetric(name=name, unit="", higher_is_better=True, decimals=4, kind="ssim", variant=variant,
                       region=region, data_range=data_range, table_name="SSIM", description=what)


def lpips_metric(net: str, feed: str, region: str = "image", name: str = "lpips", per_mille: bool = True) -> ImageMetric:
    """An LPIPS metric (lower is better); ``per_mille`` makes tables print LPIPS* = LPIPS × 1000."""
    return ImageMetric(name=name, unit="", higher_is_better=False, decimals=4, kind="lpips", variant=net,
                       region=region, lpips_feed=feed, table_name="LPIPS*" if per_mille else "LPIPS",
                       table_scale=1000.0 if per_mille else 1.0, table_decimals=2 if per_mille else 4,
                       description=f"LPIPS-{net} v0.1, inputs {'[0,1] mapped to [-1,1]' if feed == 'rescale' else 'fed as [0,1]'}")


_ZJU_SOURCES = ("reference/protocols.md §7 (ZJU-MoCap rendering protocols)",)

ZJU_NEURALBODY = AvatarProtocol(
    id="zju-mocap/neuralbody", version=1, title="Neural Body, ZJU-MoCap novel view (box-crop protocol)",
    dataset="zju-mocap", split="neuralbody-test-novel-view",
    gt_preparation=("test cameras = all but 0, 6, 12, 18; the subject's training frames, every 30th; each image "
                    "undistorted at 1024x1024, resized x0.5 with INTER_AREA, pixels whose CIHP mask is 0 set to 0 "
                    "(the 5-px erode/dilate border band kept); vertices = vertices/<i>.npy (params/, world frame)"),
    box=BoxMask(points="vertices", padding=(0.0, 0.0, 0.05), test="ray_slab", fill="both"),
    preparation=GtPreparation(mask_bits=2, mask_band=5),
    metrics=(psnr_metric("pooled", region="box_pixels"), ssim_metric("skimage", region="box_bbox", data_range=2.0)),
    traps=(Trap(7, "SSIM = scikit-image compare_ssim defaults with the float data_range 2 of scikit-image <= 0.19, "
                   "on the bounding rectangle of mask_at_box, both images black outside the box"),
           Trap(8, "PSNR = one MSE pooled over the mask_at_box pixels and channels, float images (no quantisation)"),
           Trap(9, "no LPIPS: Neural Body's evaluator (zju3dv/neuralbody lib/evaluators/if_nerf.py) computes none"),
           Trap(10, "multi-view split: 4 training cameras, every 30th training frame; original (not refined) release")),
    sources=("zju3dv/neuralbody lib/evaluators/if_nerf.py, lib/utils/if_nerf/if_nerf_data_utils.py (get_near_far), "
             "lib/datasets/light_stage/multi_view_dataset.py (bounds: vertex box, z padded 5 cm)", *_ZJU_SOURCES),
    notes=("mask_at_box: rays through pixel centres against the world-frame vertex box; the render is blanked "
           "outside it as Neural Body only renders rays inside the box",
           "renders are read from 8-bit files while Neural Body scores float renders (<= 1/510 per pixel)",
           "published with this protocol: mean PSNR 28.10 / SSIM 0.944 (training frames), 23.49 / 0.885 (unseen poses)"),
)

ZJU_NEURALBODY_NOVEL_POSE = dataclasses.replace(
    ZJU_NEURALBODY, id="zju-mocap/neuralbody-novel-pose", split="neuralbody-test-novel-pose",
    title="Neural Body, ZJU-MoCap novel pose (box-crop protocol)",
    gt_preparation=ZJU_NEURALBODY.gt_preparation.replace(
        "the subject's training frames, every 30th",
        "the unseen-pose frames (313: 60-1060, 315: 400-1400, 390: 0-700, others: 300-end), every 30th"),
)

ZJU_HUMANNERF = AvatarProtocol(
    id="zju-mocap/humannerf", version=1, title="HumanNeRF/MonoHuman, ZJU-MoCap monocular novel view (MonoHuman run_eval)",
    dataset="zju-mocap", split="humannerf-test-novel-view",
    gt_preparation=("training camera 1 (index 0); test = the 22 other cameras on the training frames (HumanNeRF's "
                    "max_frames range) [::30]; HumanNeRF-prepared images: mask | mask_cihp, undistorted, "
                    "alpha-composited on black, resized x0.5 with INTER_LANCZOS4; the box comes from the 24 SMPL "
                    "joints of the sample's new_params parameters in the EasyMocap Rh/Th body frame"),
    box=BoxMask(points="model_joints_body_frame", padding=(0.3, 0.3, 0.3), test="ray_two_hits", fill="both"),
    quantize=True,
    preparation=GtPreparation(mask_bits=3, mask_level=255, fill="alpha", fill_at="full", resize="lanczos4",
                              uint8_steps=("undistort",)),
    metrics=(psnr_metric("pooled"), ssim_metric("skimage", data_range=2.0), lpips_metric("vgg", "rescale")),
    traps=(Trap(7, "SSIM = skimage structural_similarity(multichannel=True) under the pinned scikit-image 0.19.3: "
                   "data_range 2 for float images, whole image"),
           Trap(8, "PSNR pooled over the whole image after both images are truncated to 8 bits (to_8b_image)"),
           Trap(9, "LPIPS-VGG v0.1 with inputs mapped to [-1,1]; tables print LPIPS* = LPIPS x 1000"),
           Trap(10, "monocular split: training camera 1, 22 unseen cameras, every 30th frame; "
                    "HumanNeRF itself released no metric code (chungyiweng/humannerf#8), MonoHuman's run_eval is the convention")),
    sources=("Yzmblog/MonoHuman run.py (run_eval, unpack_to_image, psnr_metric, get_loss), core/utils/camera_util.py "
             "(rays_intersect_3d_bbox), core/data/monohuman/monodata.py (skeleton_to_bbox, bbox_offset 0.3)", *_ZJU_SOURCES),
    notes=("pixels whose ray misses the joint box (+0.3 m, +0.01 m inside the ray test, in the body frame) are set "
           "to the black background in render and GT before quantisation",
           "exact test views/frames of the papers are UNCONFIRMED in code (reference/protocols.md §7.2)"),
)

ZJU_MONOHUMAN = dataclasses.replace(
    ZJU_HUMANNERF, id="zju-mocap/monohuman", split="monohuman-test-novel-view",
    title="MonoHuman, ZJU-MoCap monocular novel view (run_eval)",
    gt_preparation=ZJU_HUMANNERF.gt_preparation.replace(
        "on the training frames (HumanNeRF's max_frames range) [::30]",
        "on MonoHuman's training frames (the first 4/5 of the prepared frames) [::30]"),
)

ZJU_MONOHUMAN_NOVEL_POSE = dataclasses.replace(
    ZJU_HUMANNERF, id="zju-mocap/monohuman-novel-pose", split="monohuman-test-novel-pose",
    title="MonoHuman, ZJU-MoCap monocular novel pose (run_eval)",
    gt_preparation=ZJU_HUMANNERF.gt_preparation.replace(
        "on the training frames (HumanNeRF's max_frames range) [::30]",
        "on the last 1/5 of the prepared frames [::30] (MonoHuman's novel poses)"),
)

ZJU_3DGS_AVATAR = AvatarProtocol(
    id="zju-mocap/3dgs-avatar", version=1, title="3DGS-Avatar, ZJU-MoCap monocular novel view (ARAH-style split)",
    dataset="zju-mocap", split="3dgs-avatar-test-novel-view",
    gt_preparation=("training camera 1, frames 0-569; test cameras 2-23, frames 0-540 step 30 (19 frames); 8-bit images "
                    "undistorted with the principal point moved to the image centre, resized to 512x512 with "
                    "INTER_LINEAR (not INTER_AREA; the same at exactly x0.5), pixels whose ARAH-copied mask_cihp "
                    "(undistorted, resized INTER_NEAREST) is 0 set to 0"),
    preparation=GtPreparation(mask_bits=2, principal_point="image_centre", resize="linear",
                              uint8_steps=("undistort", "resize")),
    metrics=(psnr_metric("pooled"), ssim_metric("skimage", data_range=2.0), lpips_metric("vgg", "rescale")),
    traps=(Trap(7, "SSIM = skimage structural_similarity(channel_axis=0) on float32 without data_range under the pinned "
                   "scikit-image 0.19.3, i.e. data_range 2 (mikeqzy/3dgs-avatar-release#20: 0.9698 vs 0.9774)"),
           Trap(8, "PSNR = -10 log10 of the MSE pooled over the whole image and channels, float"),
           Trap(9, "LPIPS-VGG v0.1 with normalize=True ([0,1] mapped to [-1,1]); tables print LPIPS* = LPIPS x 1000"),
           Trap(10, "ARAH-style monocular split with INTER_LINEAR downsampling; PeopleSnapshot uses torchmetrics "
                    "instead and is not this protocol")),
    sources=("mikeqzy/3dgs-avatar-release render.py, utils/general_utils.py (Evaluator: PSNR, SSIM, LPIPS), "
             "dataset/zjumocap.py, configs/dataset/zjumocap_*_mono.yaml", *_ZJU_SOURCES),
    notes=("whole image, no box mask at evaluation",
           "the mask_cihp PNG is read as grey levels (cv2.IMREAD_GRAYSCALE); its grey value on the person decides "
           "how far bilinear undistortion grows it and is UNCONFIRMED: taken as 1 (a 0/1 mask)"),
)

ZJU_GAUHUMAN = AvatarProtocol(
    id="zju-mocap/gauhuman", version=1, title="GauHuman, refined ZJU-MoCap monocular novel view",
    dataset="zju-mocap", split="gauhuman-test-novel-view",
    gt_preparation=("refined ZJU-MoCap release (instant-nvr format): training camera index 4, frames 0-495 step 5; "
                    "test = the other 22 cameras, frames 0-480 step 30 (17 frames); images undistorted, mask == 0 set "
                    "to 0 at full size, resized x0.5 with INTER_AREA, truncated to 8 bits; the box comes from the SMPL vertices of the sample's parameters (GauHuman "
                    "reads them from smpl_vertices/<i>.npy)"),
    box=BoxMask(points="model_vertices", padding=(0.05, 0.05, 0.05), test="projected_faces", fill="render"),
    preparation=GtPreparation(mask_bits=1, fill_at="full", truncate=True),
    metrics=(psnr_metric("per_channel"), ssim_metric("gaussian"), lpips_metric("vgg", "raw")),
    traps=(Trap(7, "SSIM = 3DGS gaussian SSIM (11x11, sigma 1.5, zero padding, data range 1), whole image"),
           Trap(8, "PSNR = mean of the three per-channel PSNRs (the 3DGS psnr on a (3,H,W) tensor), >= pooled PSNR"),
           Trap(9, "LPIPS-VGG v0.1 fed [0,1] images without normalize (not the documented [-1,1]); LPIPS* = x 1000"),
           Trap(10, "refined (instant-nvr) ZJU-MoCap, training camera index 4, 17 test frames")),
    sources=("skhu101/GauHuman render.py, scene/dataset_readers.py (get_bound_2d_mask, bounds padded 5 cm), "
             "utils/image_utils.py (psnr), utils/loss_utils.py (ssim)", *_ZJU_SOURCES),
    notes=("the render is set to the background outside the projected 3D box (bound_mask); the GT is not",
           "GauHuman reads the refined release's mask/; the original release's mask/ (bit 1) stands in for it "
           "(UNCONFIRMED equivalence)",
           "GauHuman clamps both images to [0,1], a no-op for 8-bit files",
           "cv2.fillPoly's fixed-point edge walk is emulated as a closed polygon over pixel centres; "
           "not bit-checked against OpenCV"),
)

NEUMAN_HUGS = AvatarProtocol(
    id="neuman/hugs", version=1, title="HUGS on NeuMan: full image and human crop",
    dataset="neuman", split="hugs-test",
    gt_preparation=("HUGS get_data_splits: num_val = N//5 frames every int(N/num_val) from step//2, the first half of "
                    "that list (what validate() scores); SAM person masks (4d_humans/sam_segmentations) as the sample "
                    "mask; images at the NeuMan release resolution (UNCONFIRMED which)"),
    metrics=(psnr_metric("per_channel"), ssim_metric("gaussian"), lpips_metric("alex", "raw", per_mille=False),
             psnr_metric("per_channel", region="mask_bbox", name="human_psnr"),
             ssim_metric("gaussian", region="mask_bbox", name="human_ssim"),
             lpips_metric("alex", "raw", region="mask_bbox", name="human_lpips", per_mille=False)),
    traps=(Trap(7, "SSIM = 3DGS gaussian SSIM (data range 1), on the full image and on the GT-mask crop (zero padding "
                   "at the crop border, as the cropped tensor is convolved)"),
           Trap(8, "PSNR = mean of per-channel PSNRs, float images"),
           Trap(9, "LPIPS-AlexNet v0.1 fed [0,1] images without normalize; reported as plain LPIPS"),
           Trap(10, "NeuMan held-out frames of HUGS's own split; the HUGS ZJU-MoCap protocol is UNCONFIRMED and not defined")),
    sources=("apple/ml-hugs hugs/trainer/gs_trainer.py (validate), hugs/datasets/neuman.py (get_data_splits, mask bbox), "
             "hugs/utils/image.py (psnr), hugs/losses/utils.py (ssim)", "reference/protocols.md §7.5, §7.6"),
    notes=("human_* metrics use the rectangle rows/cols min:max of the GT mask (the last row and column excluded)",),
)

AVATAR_PROTOCOLS: tuple[AvatarProtocol, ...] = (
    ZJU_NEURALBODY, ZJU_NEURALBODY_NOVEL_POSE, ZJU_HUMANNERF, ZJU_MONOHUMAN, ZJU_MONOHUMAN_NOVEL_POSE, ZJU_3DGS_AVATAR,
    ZJU_GAUHUMAN, NEUMAN_HUGS,
)
