"""The synthetic world: its samples are self-consistent and reproduce through the body model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from humanbench.bodymodels import load_body_model
from humanbench.schema import decode_image, validate_sample
from humanbench.synthetic.world import SyntheticWorld, WorldConfig


@pytest.fixture(scope="module", params=["smpl", "smplx"])
def world_samples(request):
    world = SyntheticWorld(WorldConfig(sequences=2, frames=3, width=128, height=96, body_model=request.param, seed=3))
    return list(world.samples())


def test_samples_follow_the_schema_and_are_sorted(world_samples) -> None:
    keys = [s.key for s in world_samples]
    assert keys == sorted(keys) and len(set(keys)) == len(keys) == 6
    for sample in world_samples:
        validate_sample(sample)
        assert sample.synthetic
        image = decode_image(sample.image)
        assert image.shape == (sample.height, sample.width, 3)
        assert decode_image(sample.mask).shape == (sample.height, sample.width)


def test_stored_parameters_reproduce_the_stored_joints(world_samples) -> None:
    """GT parameters -> body model -> the 3D joints and their 2D projections stored in the sample."""
    for sample in world_samples[:3]:
        for person, gender in enumerate(sample.genders):
            model = load_body_model(sample.body_model, gender, use_pca=False, flat_hand_mean=True, dtype=torch.float64)
            params = {name: torch.as_tensor(sample.people[name][person : person + 1])
                      for name in ("betas", "global_orient", "body_pose", "transl", "left_hand_pose",
                                   "right_hand_pose", "jaw_pose", "leye_pose", "reye_pose", "expression")
                      if name in sample.people}
            with torch.no_grad():
                joints = model(**params).joints[0, :24].numpy()
            np.testing.assert_allclose(joints, sample.people["joints3d"][person], atol=1e-5)
            K = sample.camera.K
            uv = joints[:, :2] / joints[:, 2:] * np.diag(K)[:2] + K[:2, 2]
            np.testing.assert_allclose(uv, sample.people["joints2d"][person, :, :2], atol=1e-3)


def test_mask_covers_each_valid_person_around_its_pelvis(world_samples) -> None:
    for sample in world_samples:
        mask = decode_image(sample.mask)
        for person in np.flatnonzero(sample.people["valid"]):
            assert (mask == person + 1).sum() >= 50
            x1, y1, x2, y2 = sample.people["bbox"][person]
            u, v = sample.people["joints2d"][person, 0, :2]
            assert x1 <= u <= x2 and y1 <= v <= y2


def test_world_is_deterministic() -> None:
    config = WorldConfig(sequences=1, frames=2, width=64, height=64, seed=11)
    first = [s.image for s in SyntheticWorld(config).samples()]
    again = [s.image for s in SyntheticWorld(config).samples()]
    assert first == again


def test_resume_start_skips_exactly(world_samples) -> None:
    config = WorldConfig(sequences=2, frames=3, width=128, height=96, body_model=world_samples[0].body_model, seed=3)
    tail = list(SyntheticWorld(config).samples(start=4))
    assert [s.key for s in tail] == [s.key for s in world_samples[4:]]
    assert [s.image for s in tail] == [s.image for s in world_samples[4:]]


def test_move_root_keeps_the_mesh_where_the_rigid_motion_puts_it() -> None:
    """Posing with moved root parameters equals moving the posed mesh (the pelvis-offset rule)."""
    from scipy.spatial.transform import Rotation

    from humanbench.bodymodels.rigid import move_root

    model = load_body_model("smpl", "male", dtype=torch.float64)
    rng = np.random.default_rng(4)
    betas, orient, pose, transl = rng.normal(size=(1, 10)), rng.normal(size=(1, 3)), 0.3 * rng.normal(size=(1, 69)), rng.normal(size=(1, 3))
    R, t = Rotation.random(random_state=1).as_matrix(), rng.normal(size=3)
    with torch.no_grad():
        rest = model(betas=torch.tensor(betas)).joints[0, 0].numpy()
        before = model(betas=torch.tensor(betas), global_orient=torch.tensor(orient), body_pose=torch.tensor(pose),
                       transl=torch.tensor(transl)).vertices[0].numpy()
        orient2, transl2 = move_root(orient, transl, R, t, rest)
        after = model(betas=torch.tensor(betas), global_orient=torch.tensor(orient2), body_pose=torch.tensor(pose),
                      transl=torch.tensor(transl2)).vertices[0].numpy()
    # smplx's batch_rodrigues adds 1e-8 to rotation vectors, so orientations agree to ~1e-8 rad only.
    np.testing.assert_allclose(after, before @ R.T + t, rtol=0, atol=1e-7)
