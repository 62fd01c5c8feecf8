"""The mesh-recovery protocols humanbench implements, as frozen data (see ``docs/protocols.md``)."""

from __future__ import annotations

from humanbench.metrics.hmr import (
    LSP14_NAMES,
    SMPL_KINEMATIC_14_NAMES,
    evaluate_3dpw_cliff,
    evaluate_3dpw_smplerx,
    evaluate_3dpw_spin,
)
from humanbench.metrics.hmr_smplx import evaluate_ehf_expose, evaluate_ubody_osx
from humanbench.protocols.base import MeshProtocol, MetricSpec, Trap
from humanbench.schema import Sample

MPJPE = MetricSpec("mpjpe", description="mean per-joint position error after root alignment")
PA_MPJPE = MetricSpec("pa_mpjpe", description="MPJPE after similarity Procrustes (rotation, translation, scale)")
PVE = MetricSpec("pve", description="mean per-vertex error")

PW3D_SPIN = MeshProtocol(
    id="3dpw/spin", version=1, title="3DPW test, SPIN protocol (14 H36M-regressed joints, gendered GT)",
    dataset="3dpw", split="test", gt_body_model="smpl", pred_body_model="smpl", gt_gender="gendered",
    evaluate=evaluate_3dpw_spin, metrics=(MPJPE, PA_MPJPE), joint_names=LSP14_NAMES,
    person_flag="campose_valid",
    traps=(
        Trap(1, "H36M regressor (J_regressor_h36m) on both meshes, 14 LSP joints, each side's own H36M pelvis"),
        Trap(2, "no PVE: SPIN's eval.py declares it but never computes it; use 3dpw/cliff for PVE"),
    ),
    sources=("nkolot/SPIN:eval.py", "nkolot/SPIN:datasets/preprocess/pw3d.py", "protocols.md §1.1"),
    notes=("people with campose_valid, as SPIN's preprocessing keeps them (35,515 on the real test split)",
           "GT: male/female SMPL with 10 betas; pred: neutral SMPL; both without translation"),
)

PW3D_CLIFF = MeshProtocol(
    id="3dpw/cliff", version=1, title="3DPW test, CLIFF / Meta-HMR protocol (SPIN joints + unaligned PVE)",
    dataset="3dpw", split="test", gt_body_model="smpl", pred_body_model="smpl", gt_gender="gendered",
    evaluate=evaluate_3dpw_cliff, metrics=(MPJPE, PA_MPJPE, PVE), joint_names=LSP14_NAMES,
    person_flag="campose_valid",
    traps=(
        Trap(1, "same joints as 3dpw/spin"),
        Trap(2, "PVE definition 1: all 6890 vertices of untranslated SMPL meshes, no pelvis alignment "
                "(the root rest position depends on betas and gender)"),
        Trap(6, "scores whatever predictions it is given: test-time optimisation with GT 2D is the method's "
                "business and must be stated with the result"),
    ),
    sources=("fmx789/Meta-HMR:eval_cliff.py", "mkocabas/PARE:pare/utils/eval_utils.py", "protocols.md §1.2, §1.4"),
)

PW3D_SMPLERX = MeshProtocol(
    id="3dpw/smplerx", version=1, title="3DPW test, SMPLer-X protocol (14 kinematic joints, SMPL-X predictions)",
    dataset="3dpw", split="test", gt_body_model="smpl", pred_body_model="smplx", gt_gender="gendered",
    evaluate=evaluate_3dpw_smplerx, metrics=(MPJPE, PA_MPJPE), joint_names=SMPL_KINEMATIC_14_NAMES,
    person_flag="valid",
    traps=(
        Trap(1, "GT: SMPL J_regressor (24) on the gendered mesh; pred: SMPL-X J_regressor (55) on the SMPL-X mesh; "
                "14 kinematic joints [1,2,4,5,7,8,12,15,16,17,18,19,20,21], NOT the H36M regressor"),
        Trap(2, "MPJPE after translating the pred SMPL-X pelvis (row 0) onto the GT SMPL pelvis"),
    ),
    sources=("caizhongang/SMPLer-X:data/PW3D/PW3D.py", "protocols.md §1.5"),
    notes=("SMPLer-X drops samples whose bbox fails process_bbox; humanbench keeps every valid person "
           "(the exact crop filter needs the detector-free bbox rule of that code: UNCONFIRMED count)",),
)


WHOLE_BODY_METRICS = (
    MetricSpec("pa_pve_all", description="PA-MPVPE over all 10475 vertices (Procrustes on all)"),
    MetricSpec("pa_pve_hands", description="PA-MPVPE of the MANO hand vertices, per-hand Procrustes, mean of hands"),
    MetricSpec("pa_pve_face", description="PA-MPVPE of the FLAME face vertices, Procrustes on the face"),
    MetricSpec("pve_all", description="MPVPE after moving the pred SMPL-X pelvis (J_regressor row 0) onto GT's"),
    MetricSpec("pve_hands", description="MPVPE of each hand after wrist (rows 20/21) translation, mean of hands"),
    MetricSpec("pve_face", description="MPVPE of the face after neck (row 12) translation"),
    MetricSpec("pa_mpjpe_body", description="PA-MPJPE of the 14 SMPLX_to_J14 joints"),
    MetricSpec("pa_mpjpe_hands", description="PA-MPJPE of the 21-joint hand sets (wrist, fingers, tips), mean of hands"),
)

EHF_EXPOSE = MeshProtocol(
    id="ehf/expose", version=1, title="EHF, ExPose / Hand4Whole / OSX / SMPLer-X whole-body protocol",
    dataset="ehf", split="test", gt_body_model="smplx", pred_body_model="smplx", gt_gender="neutral",
    evaluate=evaluate_ehf_expose, metrics=WHOLE_BODY_METRICS, joint_names=(), person_flag="valid",
    traps=(Trap(2, "PVE is SMPL-X-pelvis aligned (J_regressor row 0); hands at the wrists, face at the neck; PA "
                   "variants fit Procrustes on each part's own vertices"),),
    sources=("caizhongang/SMPLer-X:data/EHF/EHF.py", "vchoutas/expose:expose/evaluation.py", "protocols.md §4"),
    notes=("GT: the 100 registered meshes (XX_align.ply) in the camera frame; pred: neutral SMPL-X",
           "'Hands' = mean of the left and right hand values per frame; dataset value = mean over frames"),
)


def osx_annotation_order(sample: Sample, person: int) -> tuple:
    """OSX's test iteration order: scene, then annotation id (its per-scene COCO annotations)."""
    return (sample.extra.get("scene", sample.sequence), sample.extra["annotation_ids"][person])


UBODY_OSX = MeshProtocol(
    id="ubody/osx", version=1, title="UBody intra-scene test, OSX / SMPLer-X protocol (1 in 100, in-image vertices)",
    dataset="ubody", split="intra-test", gt_body_model="smplx", pred_body_model="smplx", gt_gender="neutral",
    evaluate=evaluate_ubody_osx, metrics=WHOLE_BODY_METRICS, joint_names=(), person_flag="valid",
    subsample=100, person_order=osx_annotation_order,
    traps=(
        Trap(5, "every 100th valid annotation (test_sample_interval = 100) in OSX's order (scene, annotation id), "
                "counted over the whole split; errors only over GT vertices/joints that project strictly inside the "
                "image with the person's own virtual camera; a hand or the face with no in-image vertex is skipped "
                "for that person (the person still counts for the parts that have one)"),
        Trap(2, "PVE SMPL-X-pelvis aligned; Procrustes on whole parts, averaged over in-image points"),
    ),
    sources=("IDEA-Research/OSX:data/UBody/UBody.py", "caizhongang/SMPLer-X:data/UBody/UBody.py", "protocols.md §3"),
    notes=("valid annotation = not crowd, keypoints > 0, valid_label != 0, has SMPL-X (the converter's `valid`)",
           "UNCONFIRMED: OSX iterates scenes in its annotation-file listing order; humanbench sorts scene names",
           "GT: neutral SMPL-X with the annotation's camera translation; pred: neutral SMPL-X"),
)
