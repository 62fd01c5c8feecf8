"""The HMR regressor: image backbone + iterative error feedback over SMPL parameters and a camera.

The parameter vector is 24 6D rotations (root first, SPIN convention), 10 betas and a
weak-perspective camera (scale, tx, ty). It starts from an upright, facing-the-camera rest pose
and is refined ``iterations`` times by an MLP that sees the image feature and the current
estimate (Kanazawa et al.'s IEF). Backbones are built with random weights; a local weights file
can be loaded, nothing is ever downloaded.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from humanbench.training.config import TrainingError

from .geometry import rot6d_to_rotmat, rotmat_to_rot6d

NUM_JOINTS = 24
NUM_BETAS = 10
PARAMS = NUM_JOINTS * 6 + NUM_BETAS + 3
INIT_CAM_SCALE = 0.9


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with a residual connection (1x1 projection when the shape changes)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.skip = (nn.Identity() if stride == 1 and cin == cout
                     else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))

    def forward(self, x: Tensor) -> Tensor:
        """(B, cin, H, W) -> (B, cout, H / stride, W / stride)."""
        return torch.relu(self.body(x) + self.skip(x))


class TinyResNet(nn.Module):
    """A four-stage ResNet with one basic block per stage and widths ``width`` x (1, 2, 4, 8).

    The last feature map is pooled to a ``GRID`` x ``GRID`` grid and flattened rather than averaged
    globally: a network this small keeps where the limbs are only in the layout of its features.
    """

    GRID = 4

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        widths = [width, 2 * width, 4 * width, 8 * width]
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        self.stages = nn.Sequential(*(BasicBlock(cin, cout, 1 if i == 0 else 2)
                                      for i, (cin, cout) in enumerate(zip([width, *widths[:-1]], widths))))
        self.num_features = widths[-1] * self.GRID**2

    def forward(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) -> (B, num_features)."""
        return nn.functional.adaptive_avg_pool2d(self.stages(self.stem(x)), self.GRID).flatten(1)


def _load_weights(module: nn.Module, path: str, name: str) -> None:
    file = Path(path)
    if not file.is_file():
        raise TrainingError(f"backbone weights not found at {file}: place a state dict of the {name!r} backbone there "
                            f"(torch.save(model.state_dict(), path) or a .safetensors file), or drop the "
                            f"backbone_weights option to start from random weights; nothing is downloaded")
    if file.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(file))
    else:
        state = torch.load(file, map_location="cpu", weights_only=True)
    missing, _ = module.load_state_dict(state, strict=False)  # unexpected keys: a classifier head, not used
    if missing:
        raise TrainingError(f"{file}: not weights of the {name!r} backbone; missing {len(missing)} key(s), "
                            f"first: {missing[:5]}")


def build_backbone(name: str, width: int, weights: str | None = None) -> nn.Module:
    """``"tiny"`` (:class:`TinyResNet`) or ``"timm:<model>"`` (e.g. ``timm:resnet18``), random init unless ``weights``.

    The module maps (B, 3, H, W) images to (B, module.num_features) features.
    """
    if name == "tiny":
        module: nn.Module = TinyResNet(width)
    elif name.startswith("timm:"):
        import timm

        module = timm.create_model(name[5:], pretrained=False, num_classes=0)
    else:
        raise TrainingError(f"unknown backbone {name!r}: use 'tiny' or 'timm:<model name>' (e.g. timm:resnet18)")
    if weights:
        _load_weights(module, weights, name)
    return module


def initial_params() -> Tensor:
    """(PARAMS,) start of the feedback loop: upright root (x rotated by pi), zero body pose and betas, centred camera."""
    rotmats = torch.eye(3).repeat(NUM_JOINTS, 1, 1)
    rotmats[0] = torch.diag(torch.tensor([1.0, -1.0, -1.0]))
    return torch.cat([rotmat_to_rot6d(rotmats).reshape(-1), torch.zeros(NUM_BETAS), torch.tensor([INIT_CAM_SCALE, 0.0, 0.0])])


class HMRRegressor(nn.Module):
    """Images (B, 3, S, S) -> ``rotmat`` (B, 24, 3, 3), ``betas`` (B, 10), ``cam`` (B, 3)."""

    def __init__(self, backbone: nn.Module, hidden: int = 256, iterations: int = 3, dropout: float = 0.0) -> None:
        super().__init__()
        self.backbone = backbone
        self.iterations = iterations
        self.register_buffer("init", initial_params())
        self.refine = nn.Sequential(
            nn.Linear(backbone.num_features + PARAMS, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, PARAMS))
        nn.init.xavier_uniform_(self.refine[-1].weight, gain=0.01)
        nn.init.zeros_(self.refine[-1].bias)

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """Regress SMPL rotations, betas and the camera (see the class docstring)."""
        feature = self.backbone(images)
        params = self.init.expand(len(images), -1)
        for _ in range(self.iterations):
            params = params + self.refine(torch.cat([feature, params], dim=1))
        pose6d, betas, cam = params.split([NUM_JOINTS * 6, NUM_BETAS, 3], dim=1)
        return {"rotmat": rot6d_to_rotmat(pose6d.reshape(-1, NUM_JOINTS, 6)), "betas": betas, "cam": cam}
