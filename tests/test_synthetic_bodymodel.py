"""Tests for the embedded procedural SMPL / SMPL-X stand-ins."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import smplx
import torch
from smplx.vertex_ids import vertex_ids as SMPLX_VERTEX_IDS

from humanbench.bodymodels.synthetic import (
    SMPL_PARENTS,
    SMPLX_PARENTS,
    synthetic_index_sets,
    synthetic_kid_template,
    synthetic_model_arrays,
)

GENDERS = ("neutral", "male", "female")
N_VERTS = {"smpl": 6890, "smplx": 10475}
N_FACES = {"smpl": 13776, "smplx": 20908}
N_JOINTS = {"smpl": 24, "smplx": 55}
SMPL_KEYS = {"v_template", "f", "J_regressor", "J", "weights", "kintree_table", "shapedirs", "posedirs"}
SMPLX_KEYS = SMPL_KEYS | {"hands_componentsl", "hands_componentsr", "hands_meanl", "hands_meanr",
                          "lmk_faces_idx", "lmk_bary_coords", "dynamic_lmk_faces_idx", "dynamic_lmk_bary_coords"}


def _shapes(kind: str) -> dict[str, tuple[tuple[int, ...], type]]:
    v, j = N_VERTS[kind], N_JOINTS[kind]
    out = {
        "v_template": ((v, 3), np.float64), "f": ((N_FACES[kind], 3), np.uint32),
        "J_regressor": ((j, v), np.float64), "J": ((j, 3), np.float64), "weights": ((v, j), np.float64),
        "kintree_table": ((2, j), np.int64), "posedirs": ((v, 3, 9 * (j - 1)), np.float64),
        "shapedirs": ((v, 3, 10 if kind == "smpl" else 400), np.float64),
    }
    if kind == "smplx":
        out.update({
            "hands_componentsl": ((45, 45), np.float64), "hands_componentsr": ((45, 45), np.float64),
            "hands_meanl": ((45,), np.float64), "hands_meanr": ((45,), np.float64),
            "lmk_faces_idx": ((51,), np.int64), "lmk_bary_coords": ((51, 3), np.float64),
            "dynamic_lmk_faces_idx": ((79, 17), np.int64), "dynamic_lmk_bary_coords": ((79, 17, 3), np.float64),
        })
    return out


def _directed_edges(f: np.ndarray) -> np.ndarray:
    f = f.astype(np.int64)
    return np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])


@pytest.fixture(scope="module")
def smplx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder with SMPLX_NEUTRAL.npz and both kid templates."""
    d = tmp_path_factory.mktemp("synthetic_smplx")
    np.savez(d / "SMPLX_NEUTRAL.npz", **synthetic_model_arrays("smplx", "neutral"))
    np.save(d / "smplx_kid_template.npy", synthetic_kid_template("smplx"))
    np.save(d / "smpl_kid_template.npy", synthetic_kid_template("smpl"))
    return d


def _smpl(**kwargs) -> smplx.SMPL:
    arrays = synthetic_model_arrays("smpl", "neutral")
    return smplx.SMPL(model_path="unused", data_struct=smplx.utils.Struct(**arrays), num_betas=10, **kwargs)


@pytest.mark.parametrize("kind", ["smpl", "smplx"])
@pytest.mark.parametrize("gender", GENDERS)
def test_keys_shapes_dtypes(kind: str, gender: str) -> None:
    arrays = synthetic_model_arrays(kind, gender)
    assert set(arrays) == (SMPL_KEYS if kind == "smpl" else SMPLX_KEYS)
    for key, (shape, dtype) in _shapes(kind).items():
        assert arrays[key].shape == shape, key
        assert arrays[key].dtype == dtype, key
        assert np.all(np.isfinite(arrays[key])), key


@pytest.mark.parametrize("kind", ["smpl", "smplx"])
def test_topology(kind: str) -> None:
    f = synthetic_model_arrays(kind, "neutral")["f"]
    assert np.array_equal(np.unique(f), np.arange(N_VERTS[kind]))
    edges = _directed_edges(f)
    assert len(np.unique(edges, axis=0)) == len(edges), "an edge is used twice in one direction"
    reverse = set(map(tuple, edges[:, ::-1]))
    boundary = [e for e in map(tuple, edges) if e not in reverse]
    # SMPL is closed; SMPL-X has a mouth slit (16 edges) and two eye openings (10 each)
    assert len(boundary) == (0 if kind == "smpl" else 36)
    assert all(np.any(f == i, axis=1).sum() > 0 for i in (0, N_VERTS[kind] - 1))


@pytest.mark.parametrize("kind", ["smpl", "smplx"])
@pytest.mark.parametrize("gender", GENDERS)
def test_weights_regressor_tree(kind: str, gender: str) -> None:
    a = synthetic_model_arrays(kind, gender)
    for key in ("weights", "J_regressor"):
        assert np.all(a[key] >= 0)
    np.testing.assert_allclose(a["weights"].sum(1), 1.0, atol=1e-9)
    np.testing.assert_allclose(a["J_regressor"].sum(1), 1.0, atol=1e-9)
    assert (a["weights"] > 0).sum(1).max() <= 4
    assert (a["J_regressor"] > 0).sum(1).max() < 500, "joints come from local vertex clusters"
    np.testing.assert_allclose(a["J"], a["J_regressor"] @ a["v_template"], atol=1e-12)
    parents = SMPL_PARENTS if kind == "smpl" else SMPLX_PARENTS
    assert a["kintree_table"][0, 0] == 4294967295
    assert a["kintree_table"][0, 1:].tolist() == list(parents[1:])
    assert a["kintree_table"][1].tolist() == list(range(N_JOINTS[kind]))


def test_smplx_parent_list() -> None:
    assert SMPLX_PARENTS[:22] == SMPL_PARENTS[:22]
    assert SMPLX_PARENTS[22:25] == (15, 15, 15)
    for base, wrist in ((25, 20), (40, 21)):
        for finger in range(5):
            j = base + 3 * finger
            assert SMPLX_PARENTS[j:j + 3] == (wrist, j, j + 1)


def test_body_proportions_and_genders() -> None:
    heights = {}
    for gender in GENDERS:
        a = synthetic_model_arrays("smpl", gender)
        v, j = a["v_template"], a["J"]
        heights[gender] = np.ptp(v[:, 1])
        assert 1.55 < heights[gender] < 1.85
        assert abs(j[0, 1] + 0.22) < 0.03 and abs(v[:, 1].min() + 1.17) < 0.08
        assert j[1, 0] > 0 > j[2, 0], "left is +x"
        assert v[:, 2].max() > 0.1 and j[10, 2] > j[7, 2], "faces and toes point to +z"
    assert heights["female"] < heights["neutral"] < heights["male"]
    kid = synthetic_kid_template("smpl")
    assert kid.shape == (6890, 3) and kid.dtype == np.float64
    assert 0.95 < np.ptp(kid[:, 1]) < 1.3


def test_shape_space() -> None:
    a = synthetic_model_arrays("smpl", "neutral")
    dirs, v = a["shapedirs"], a["v_template"]
    flat = dirs.reshape(-1, 10)
    gram = flat.T @ flat
    assert np.abs(gram - np.diag(np.diag(gram))).max() < 1e-9 * np.diag(gram).max()
    tall = v + 2 * dirs[:, :, 0]
    assert 0.1 < np.ptp(tall[:, 1]) - np.ptp(v[:, 1]) < 0.25, "beta0 is stature"
    for k in range(10):
        change = np.linalg.norm(2 * dirs[:, :, k], axis=1).max()
        assert 0.003 < change < 0.25, k
    x = synthetic_model_arrays("smplx", "neutral")["shapedirs"]
    assert np.linalg.norm(x[:, :, 10:300], axis=1).max() < 0.005, "minor shape columns are small"
    expr = np.linalg.norm(x[:, :, 300:310], axis=1).max(0)
    assert np.all(expr > 0.002), "first expressions are meaningful"


def test_smpl_forward_and_kid(smplx_dir: Path) -> None:
    model = _smpl()
    out = model(betas=torch.zeros(1, 10))
    template = synthetic_model_arrays("smpl", "neutral")["v_template"]
    np.testing.assert_allclose(out.vertices[0].detach().numpy(), template, atol=1e-5)
    kid = _smpl(age="kid", kid_template_path=str(smplx_dir / "smpl_kid_template.npy"))
    betas = torch.zeros(1, 11)
    betas[0, 10] = 1.0
    verts = kid(betas=betas).vertices[0].detach().numpy()
    assert 0.95 < np.ptp(verts[:, 1]) < 1.3


def test_smplx_forward_contour_and_kid(smplx_dir: Path) -> None:
    model = smplx.SMPLX(str(smplx_dir), gender="neutral", ext="npz", use_pca=True, num_pca_comps=12,
                        num_betas=10, num_expression_coeffs=10, use_face_contour=True)
    out = model(betas=torch.randn(1, 10, generator=torch.Generator().manual_seed(0)),
                expression=torch.ones(1, 10), jaw_pose=torch.tensor([[0.3, 0.0, 0.0]]),
                left_hand_pose=torch.ones(1, 12) * 0.5)
    assert out.vertices.shape == (1, 10475, 3)
    assert out.joints.shape == (1, 55 + 21 + 51 + 17, 3)
    assert torch.isfinite(out.joints).all()
    landmarks = out.joints[0, -68:].detach().numpy()
    head = out.joints[0, 15].detach().numpy()
    assert np.all(np.linalg.norm(landmarks - head, axis=1) < 0.2)
    kid = smplx.SMPLX(str(smplx_dir), gender="neutral", ext="npz", age="kid",
                      kid_template_path=str(smplx_dir / "smplx_kid_template.npy"), num_betas=10)
    betas = torch.zeros(1, 11)
    betas[0, 10] = 1.0
    assert 0.95 < np.ptp(kid(betas=betas).vertices[0, :, 1].detach().numpy()) < 1.3


@pytest.mark.parametrize("joint,child,axis", [(18, 20, [0.0, 0.0, 1.0]), (4, 7, [1.0, 0.0, 0.0])])
def test_bend_90_degrees(joint: int, child: int, axis: list[float]) -> None:
    """A 90 degree elbow / knee bend keeps the mesh sane."""
    a = synthetic_model_arrays("smpl", "neutral")
    rest, f, w = a["v_template"], a["f"].astype(np.int64), a["weights"]
    pose = torch.zeros(1, 69)
    pose[0, 3 * (joint - 1):3 * joint] = torch.tensor(axis) * np.pi / 2
    out = _smpl()(body_pose=pose)
    posed = out.vertices[0].detach().numpy().astype(np.float64)
    pivot = a["J"][joint]
    rot = smplx.lbs.batch_rodrigues(torch.tensor([axis], dtype=torch.float64) * np.pi / 2)[0].numpy()
    rigid = w[:, joint] > 0.99
    expected = (rest[rigid] - pivot) @ rot.T + pivot
    assert np.abs(posed[rigid] - expected).max() < 0.01, "distal vertices rotate with the bone"
    move = np.linalg.norm(posed - rest, axis=1)
    reach = np.sqrt(2) * np.linalg.norm(rest - pivot, axis=1) + 0.01
    assert np.all(move <= reach), "no vertex moves further than a rigid 90 degree turn would"
    chain = [joint]
    for j, parent in enumerate(SMPL_PARENTS):
        if parent in chain:
            chain.append(j)
    assert move[w[:, chain].sum(1) == 0].max() < 1e-5, "vertices off the bent chain stay put"
    edges = _directed_edges(f)
    ratio = (np.linalg.norm(posed[edges[:, 0]] - posed[edges[:, 1]], axis=1)
             / np.linalg.norm(rest[edges[:, 0]] - rest[edges[:, 1]], axis=1))
    assert 0.2 < ratio.min() and ratio.max() < 3.0, "no collapsed or torn triangles"
    joints = out.joints[0].detach().numpy().astype(np.float64)
    np.testing.assert_allclose(joints[child], (a["J"][child] - pivot) @ rot.T + pivot, atol=1e-5)


def test_pose_blend_shapes_are_small_but_present() -> None:
    a = synthetic_model_arrays("smpl", "neutral")
    rot = smplx.lbs.batch_rodrigues(torch.tensor([[0.0, 0.0, np.pi / 2]], dtype=torch.float64))[0].numpy()
    feature = np.zeros((23, 3, 3))
    feature[17] = rot - np.eye(3)                     # left elbow (joint 18)
    offsets = a["posedirs"].reshape(-1, 207) @ feature.ravel()
    offsets = np.linalg.norm(offsets.reshape(-1, 3), axis=1)
    assert 0.001 < offsets.max() < 0.02
    near = np.linalg.norm(a["v_template"] - a["J"][18], axis=1) < 0.12
    assert offsets[~near].max() < 1e-6, "correctives stay at the joint"


def test_hand_pca_and_landmarks() -> None:
    a = synthetic_model_arrays("smplx", "neutral")
    for side in "lr":
        comps = a[f"hands_components{side}"]
        np.testing.assert_allclose(comps @ comps.T, np.eye(45), atol=1e-9)
        assert 0.0 < np.abs(a[f"hands_mean{side}"]).max() < 0.6
    for faces, bary in (("lmk_faces_idx", "lmk_bary_coords"), ("dynamic_lmk_faces_idx", "dynamic_lmk_bary_coords")):
        assert a[faces].min() >= 0 and a[faces].max() < N_FACES["smplx"]
        assert np.all(a[bary] >= 0)
        np.testing.assert_allclose(a[bary].sum(-1), 1.0, atol=1e-9)
    v, f = a["v_template"], a["f"].astype(np.int64)
    points = np.einsum("lk,lkc->lc", a["lmk_bary_coords"], v[f[a["lmk_faces_idx"]]])
    assert np.all(points[:, 1] > a["J"][12, 1]) and np.all(points[:, 2] > a["J"][15, 2])
    assert points[:5, 0].mean() < 0 < points[5:10, 0].mean(), "iBUG right brow is on the subject's right (-x)"


@pytest.mark.parametrize("kind", ["smpl", "smplx"])
def test_smplx_extra_joint_vertices(kind: str) -> None:
    a = synthetic_model_arrays(kind, "neutral")
    v, j = a["v_template"], a["J"]
    ids = SMPLX_VERTEX_IDS["smplh" if kind == "smpl" else "smplx"]
    assert v[ids["nose"], 2] > v[ids["leye"], 2] and v[ids["nose"], 1] > j[15, 1]
    assert v[ids["leye"], 0] > 0 > v[ids["reye"], 0]
    for name in ("thumb", "index", "middle", "ring", "pinky"):
        assert v[ids["l" + name], 0] > j[20, 0] + 0.05 and v[ids["r" + name], 0] < j[21, 0] - 0.05
    for side, ankle in (("L", 7), ("R", 8)):
        assert v[ids[side + "BigToe"], 2] > j[ankle, 2] + 0.1
        assert v[ids[side + "Heel"], 2] < j[ankle, 2] and v[ids[side + "Heel"], 1] < j[ankle, 1]


def test_index_sets() -> None:
    sets = synthetic_index_sets()
    smpl, x = synthetic_model_arrays("smpl", "neutral"), synthetic_model_arrays("smplx", "neutral")
    expected = {
        "J_regressor_h36m": (17, 6890), "J_regressor_h36m_smplx": (17, 10475), "smplx_to_j14": (14, 10475),
        "mano_left_vertex_ids": (778,), "mano_right_vertex_ids": (778,), "flame_vertex_ids": (5023,),
        "body_verts_smpl": (4010,), "body_verts_smplx": (4010,),
    }
    assert {k: v.shape for k, v in sets.items()} == expected
    for key in ("J_regressor_h36m", "J_regressor_h36m_smplx", "smplx_to_j14"):
        assert np.all(sets[key] >= 0) and (sets[key] > 0).sum(1).max() < 2000, "local vertex clusters"
        np.testing.assert_allclose(sets[key].sum(1), 1.0, atol=1e-9)
    np.testing.assert_array_equal(sets["smplx_to_j14"], sets["J_regressor_h36m_smplx"][[6, 5, 4, 1, 2, 3, 16, 15, 14,
                                                                                        11, 12, 13, 8, 10]])
    for key in expected:
        if key.startswith(("mano", "flame", "body")):
            ids = sets[key]
            n = 6890 if key.endswith("smpl") else 10475
            assert np.all(np.diff(ids.astype(np.int64)) > 0) and ids.min() >= 0 and ids.max() < n, key
    assert sets["body_verts_smpl"].dtype == sets["body_verts_smplx"].dtype == np.uint32
    v, j = x["v_template"], x["J"]
    assert np.all(v[sets["mano_left_vertex_ids"], 0] > j[16, 0])
    assert np.all(v[sets["mano_right_vertex_ids"], 0] < j[17, 0])
    assert np.all(v[sets["flame_vertex_ids"], 1] > j[12, 1] - 0.02)
    assert not np.intersect1d(sets["flame_vertex_ids"], sets["mano_left_vertex_ids"]).size
    h36m = sets["J_regressor_h36m"] @ smpl["v_template"]
    assert h36m[4, 0] < 0 < h36m[1, 0] and h36m[14, 0] < 0 < h36m[11, 0], "H36M 1-3/11-13 left (+x), 4-6/14-16 right"
    lsp = (sets["J_regressor_h36m"] @ smpl["v_template"])[[6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13]]
    assert (lsp[[0, 1, 2, 6, 7, 8], 0] < 0).all() and (lsp[[3, 4, 5, 9, 10, 11], 0] > 0).all(), "LSP r_* then l_*"
    assert h36m[10, 1] > h36m[9, 1] > h36m[8, 1] > h36m[7, 1] > h36m[0, 1] > h36m[2, 1] > h36m[3, 1]
    lsp = sets["smplx_to_j14"] @ v
    assert lsp[13, 1] > lsp[12, 1] > lsp[8, 1] - 0.1 and lsp[6, 0] < 0 < lsp[11, 0]
    body = sets["body_verts_smpl"]
    assert np.all(np.abs(smpl["v_template"][body, 0]) < 0.6) and np.all(smpl["v_template"][body, 1] < 0.36)


def test_deterministic_and_read_only() -> None:
    a1, a2 = synthetic_model_arrays("smpl", "female"), synthetic_model_arrays("smpl", "female")
    for key in a1:
        np.testing.assert_array_equal(a1[key], a2[key])
        assert not a1[key].flags.writeable
    with pytest.raises(ValueError):
        a1["v_template"][0, 0] = 1.0
    assert not synthetic_kid_template("smplx").flags.writeable
    assert all(not v.flags.writeable for v in synthetic_index_sets().values())
    a1.pop("f")
    assert "f" in synthetic_model_arrays("smpl", "female"), "callers get their own dict"
