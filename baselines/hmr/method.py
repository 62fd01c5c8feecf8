"""The HMR regressor as a :class:`~humanbench.training.Method` (``humanbench train hmr``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar, Mapping

import numpy as np
import torch
from torch import Tensor, nn

from humanbench.bodymodels import BodyModel, load_body_model
from humanbench.predictions import Predictions
from humanbench.schema import Sample
from humanbench.shards import ShardDataset
from humanbench.training.config import TrainConfig
from humanbench.training.method import Method, StepContext

from .data import crop, open_image, person_square, training_item
from .geometry import rotmat_to_axis_angle
from .losses import TERMS, hmr_losses
from .model import HMRRegressor, build_backbone


def _person_crops(samples: Iterator[Sample], size: int) -> Iterator[tuple[str, int, np.ndarray]]:
    """(key, person, crop) for every person of every sample; people without a box get the whole image."""
    for sample in samples:
        image = open_image(sample)
        boxes = sample.people.get("bbox")
        for p in range(sample.num_people):
            box = boxes[p] if boxes is not None else np.array([0, 0, sample.width - 1, sample.height - 1])
            yield sample.key, p, crop(image, *person_square(box), size)


class HMRMethod(Method):
    """Reference HMR regressor; options (``--set KEY=VALUE``) are listed in :attr:`default_options`."""

    name: ClassVar[str] = "hmr"
    default_options: ClassVar[Mapping[str, Any]] = {
        "backbone": "tiny",  # or "timm:<model>", e.g. timm:resnet18
        "backbone_weights": None,  # local state dict / .safetensors of the backbone; None: random init
        "width": 16,  # channels of the tiny backbone's first stage
        "crop_size": 64,
        "hidden": 256,
        "iterations": 3,
        "dropout": 0.0,
        "scale_jitter": 0.15,
        "shift_jitter": 0.05,
        "flip": True,
        "predict_batch": 64,
        "w_kp2d": 5.0,  # loss weights, one per term of losses.TERMS
        "w_joints3d": 5.0,
        "w_orient": 1.0,
        "w_pose": 1.0,
        "w_betas": 0.1,
    }

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self._body: BodyModel | None = None

    def build_model(self, config: TrainConfig) -> nn.Module:
        """Backbone (random init unless ``backbone_weights``) + IEF regressor."""
        o = self.options
        backbone = build_backbone(o["backbone"], o["width"], o["backbone_weights"])
        return HMRRegressor(backbone, hidden=o["hidden"], iterations=o["iterations"], dropout=o["dropout"])

    def train_transform(self, sample: Sample, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """A jittered (and half of the time mirrored) crop of one valid person with SMPL, 3D and 2D targets."""
        o = self.options
        return training_item(sample, rng, o["crop_size"], o["scale_jitter"], o["shift_jitter"], o["flip"])

    def body_model(self, config: TrainConfig, device: torch.device) -> BodyModel:
        """The neutral SMPL model (float32) the losses pose, loaded once per process."""
        if self._body is None:
            self._body = load_body_model("smpl", "neutral", root=config.body_models, device=device)
        return self._body

    def training_step(self, model: nn.Module, batch: dict[str, Tensor], ctx: StepContext) -> dict[str, Tensor]:
        """Regress the crops; losses in float32 outside autocast."""
        pred = model(batch["image"])
        with torch.autocast(ctx.device.type, enabled=False):
            pred = {k: v.float() for k, v in pred.items()}
            weights = {name: self.options[f"w_{name}"] for name in TERMS}
            return hmr_losses(pred, batch, self.body_model(ctx.config, ctx.device), weights)

    def predict(self, model: nn.Module, dataset: ShardDataset) -> Predictions:
        """Neutral SMPL parameters for every person (crops around the GT boxes, no test-time augmentation)."""
        device = next(model.parameters()).device
        keys, person, rotmats, betas = [], [], [], []
        crops: list[np.ndarray] = []

        def flush() -> None:
            out = model(torch.from_numpy(np.stack(crops)).to(device))
            rotmats.append(out["rotmat"].float().cpu().numpy())
            betas.append(out["betas"].float().cpu().numpy())
            crops.clear()

        for key, p, image in _person_crops(iter(dataset), self.options["crop_size"]):
            keys.append(key)
            person.append(p)
            crops.append(image)
            if len(crops) == self.options["predict_batch"]:
                flush()
        if crops:
            flush()
        rot = rotmat_to_axis_angle(np.concatenate(rotmats)) if rotmats else np.zeros((0, 24, 3))
        return Predictions(keys=np.asarray(keys, dtype=str), person=np.asarray(person, dtype=np.int64), body_model="smpl",
                           betas=np.concatenate(betas) if betas else np.zeros((0, 10)),
                           global_orient=rot[:, 0], body_pose=rot[:, 1:].reshape(len(rot), 69))
