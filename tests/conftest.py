"""Fixtures shared by several test modules."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from humanbench.metrics.lpips_offline import backbone_path


def random_features(net: str, seed: int) -> torch.nn.Sequential:
    """A torchvision ``features`` trunk (AlexNet or VGG16 layout) with seeded random weights."""
    torch.manual_seed(seed)
    if net == "vgg":
        return torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"])
    return torchvision.models.alexnet(weights=None).features


@pytest.fixture(scope="session")
def torch_home(tmp_path_factory) -> Path:
    """A TORCH_HOME whose hub/checkpoints hold random AlexNet and VGG16 trunks under torchvision's file names
    (the lpips package ships its own linear layers), so the real LPIPS code path runs offline."""
    home = tmp_path_factory.mktemp("torch-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(home))
        for seed, net in enumerate(("alex", "vgg")):
            path = backbone_path(net)
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save({f"features.{k}": v for k, v in random_features(net, seed).state_dict().items()}, path)
    return home
