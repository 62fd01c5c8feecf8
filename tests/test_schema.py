"""Sample schema: validation messages, deterministic encoding, round trip."""

from __future__ import annotations

import numpy as np
import pytest

from humanbench.schema import Camera, Sample, SchemaError, decode_sample, encode_sample, validate_sample


def make_sample(body_model: str = "smpl", people: int = 2) -> Sample:
    rng = np.random.default_rng(0)
    arrays = {
        "betas": rng.normal(size=(people, 10)),
        "global_orient": rng.normal(size=(people, 3)),
        "body_pose": rng.normal(size=(people, 69 if body_model == "smpl" else 63)),
        "transl": rng.normal(size=(people, 3)),
        "joints2d": rng.uniform(size=(people, 18, 3)).astype(np.float32),
        "valid": np.ones(people, bool),
        "kid": np.zeros(people, bool),
    }
    if body_model == "smplx":
        arrays.update(left_hand_pose=np.zeros((people, 45)), right_hand_pose=np.zeros((people, 45)), expression=np.zeros((people, 10)))
    return Sample(
        key="seq_a-000012", dataset="toy", split="test", image=b"\xff\xd8fakejpeg", image_format="jpg",
        width=64, height=48, camera=Camera(K=np.array([[50.0, 0, 32], [0, 50, 24], [0, 0, 1]])),
        body_model=body_model, coords="camera", people=arrays, genders=["male", "female"][:people],
        person_ids=[str(i) for i in range(people)], sequence="seq_a", frame=12,
        joints2d_format="coco18", flags={"campose_valid": np.array([True, False][:people])},
    )


@pytest.mark.parametrize("body_model", ["smpl", "smplx"])
def test_round_trip_is_exact(body_model: str) -> None:
    sample = make_sample(body_model)
    back = decode_sample(encode_sample(sample))
    assert back.key == sample.key and back.genders == sample.genders and back.image == sample.image
    for name, arr in sample.people.items():
        np.testing.assert_array_equal(back.people[name], arr)
        assert back.people[name].dtype == arr.dtype
    np.testing.assert_array_equal(back.flags["campose_valid"], sample.flags["campose_valid"])
    np.testing.assert_array_equal(back.camera.K, sample.camera.K)


def test_encoding_is_byte_deterministic() -> None:
    assert encode_sample(make_sample()) == encode_sample(make_sample())


@pytest.mark.parametrize(
    ("mutate", "field", "expected"),
    [
        (lambda s: s.people.__setitem__("body_pose", np.zeros((2, 63))), "body_pose", "shape (P, BP)"),
        (lambda s: s.people.__setitem__("betas", np.zeros((3, 10))), "betas", "P=2"),
        (lambda s: s.people.__setitem__("transl", np.full((2, 3), np.nan)), "transl", "finite"),
        (lambda s: s.people.__setitem__("valid", np.ones(2)), "valid", "bool array"),
        (lambda s: s.people.pop("global_orient"), "global_orient", "or none"),
        (lambda s: [s.people.pop(n) for n in ("betas", "global_orient", "body_pose", "transl")], "betas", "or GT 'vertices'"),
        (lambda s: s.people.pop("valid"), "valid", "required"),
        (lambda s: s.people.__setitem__("expression", np.zeros((2, 10))), "expression", "body_model 'smpl'"),
        (lambda s: setattr(s, "key", "bad.key"), "__key__", "no dots"),
        (lambda s: setattr(s, "camera", Camera(K=np.eye(3), dist=np.zeros(3))), "cam_dist", "length in"),
        (lambda s: setattr(s, "genders", ["m", "f"]), "genders", "values in"),
    ],
)
def test_validation_names_key_field_and_expectation(mutate, field: str, expected: str) -> None:
    sample = make_sample()
    mutate(sample)
    with pytest.raises(SchemaError) as err:
        validate_sample(sample)
    message = str(err.value)
    assert f"field {field!r}" in message and expected in message
    assert repr(sample.key) in message


def test_decode_rejects_other_schema_version() -> None:
    encoded = encode_sample(make_sample())
    encoded["json"] = encoded["json"].replace(b'"schema_version":"1.0"', b'"schema_version":"0.9"')
    with pytest.raises(SchemaError, match="schema_version '0.9'"):
        decode_sample(encoded)


def test_every_field_is_documented() -> None:
    from pathlib import Path

    from humanbench.schema import CAMERA_FIELDS, PERSON_FIELDS

    doc = (Path(__file__).parents[1] / "docs" / "schema.md").read_text()
    for name in [*PERSON_FIELDS, *CAMERA_FIELDS]:
        assert f"`{name}`" in doc, name
