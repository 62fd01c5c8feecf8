"""The mesh-recovery protocols humanbench implements, as frozen data (see ``docs/protocols.md``)."""

from __future__ import annotations

from humanbench.metrics.hmr import (
    LSP14_NAMES,
    SMPL_KINEMATIC_14_NAMES,
    evaluate_3dpw_cliff,
    evaluate_3dpw_smplerx,
    evaluate_3dpw_spin,
)
from humanbench.protocols.base import MeshProtocol, MetricSpec, Trap

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
