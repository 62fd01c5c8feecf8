"""LPIPS through the ``lpips`` package, with backbone weights read from the local torchvision cache only.

``lpips.LPIPS(net=...)`` normally asks torchvision for ImageNet weights, i.e. a download at first use
(``anchors.md`` §2.7). Here the network is built with a randomly initialised trunk (``pnet_rand=True``:
no download is ever attempted), the package's own linear-layer weights (``lpips/weights/v0.1/<net>.pth``,
shipped inside the wheel) are loaded by ``lpips`` itself, and the trunk's state dict is loaded by us
from ``$TORCH_HOME/hub/checkpoints/<file>`` — the file torchvision would have downloaded
(``alexnet-owt-7be5be79.pth``, ``vgg16-397923af.pth`` with torchvision 0.13+). Without that file a
:class:`LpipsWeightsError` names it and the folder; ``docs/lpips-weights.md`` says how to fetch it once.

Input range is an explicit choice (``protocols.md`` §9 item 9), never guessed from the data:
``feed="rescale"`` maps [0, 1] images to [−1, 1] (``normalize=True``, the documented lpips contract);
``feed="raw"`` hands the [0, 1] values to the network unchanged (GauHuman and HUGS do this).
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from humanbench.errors import HumanbenchError

LpipsNet = Literal["alex", "vgg"]
LpipsFeed = Literal["rescale", "raw"]


class LpipsWeightsError(HumanbenchError):
    """The torchvision backbone checkpoint LPIPS needs is missing or is not a torchvision checkpoint."""


@dataclass(frozen=True)
class BackboneFile:
    """The trunk checkpoint an LPIPS network was built from, for result records."""

    net: str
    path: Path
    sha256: str
    official: bool  # sha256 starts with the hash prefix in torchvision's file name


def backbone_url(net: LpipsNet) -> str:
    """The URL the installed torchvision downloads ``net``'s ImageNet weights from."""
    from torchvision.models import AlexNet_Weights, VGG16_Weights

    urls = {"alex": AlexNet_Weights.IMAGENET1K_V1.url, "vgg": VGG16_Weights.IMAGENET1K_V1.url}
    if net not in urls:
        raise ValueError(f"LPIPS backbone must be one of {sorted(urls)}, got {net!r}")
    return urls[net]


def backbone_path(net: LpipsNet) -> Path:
    """``$TORCH_HOME/hub/checkpoints/<file>`` (``torch.hub.get_dir()``), where torchvision caches the weights."""
    return Path(torch.hub.get_dir()) / "checkpoints" / backbone_url(net).rsplit("/", 1)[-1]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _trunk_state(model: torch.nn.Module, checkpoint: dict[str, Tensor], path: Path) -> dict[str, Tensor]:
    """Map torchvision ``features.<i>.*`` entries onto lpips' ``slice<k>.<i>.*`` trunk parameters."""
    state = {}
    for name in model.net.state_dict():
        slice_name, rest = name.split(".", 1)
        source = f"features.{rest}"
        if source not in checkpoint:
            raise LpipsWeightsError(f"{path}: not a torchvision {model.pnet_type} checkpoint (no {source!r})")
        state[name] = checkpoint[source]
    return state


def load_lpips(net: LpipsNet, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, BackboneFile]:
    """Build ``lpips.LPIPS(net=net, version="0.1")`` offline, in eval mode, on ``device``.

    Returns:
        The network and a description of the trunk checkpoint it was loaded from.

    Raises:
        LpipsWeightsError: the checkpoint is missing (the message names the file and the folder).
    """
    path = backbone_path(net)
    if not path.is_file():
        raise LpipsWeightsError(
            f"LPIPS-{net} needs the torchvision ImageNet weights {path.name!r} in {path.parent} "
            f"(nothing is downloaded at run time; fetch {backbone_url(net)} once, or set TORCH_HOME; "
            f"see docs/lpips-weights.md)")
    import lpips

    with warnings.catch_warnings():  # lpips passes torchvision's deprecated pretrained=False
        warnings.filterwarnings("ignore", message=".*(pretrained|weight enum).*", category=UserWarning)
        model = lpips.LPIPS(net=net, version="0.1", pretrained=True, pnet_rand=True, verbose=False)
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    model.net.load_state_dict(_trunk_state(model, checkpoint, path), strict=True)
    model = model.eval().requires_grad_(False).to(device)
    sha = _sha256(path)
    return model, BackboneFile(net, path, sha, official=sha.startswith(path.stem.rsplit("-", 1)[-1]))


def lpips_distance(model: torch.nn.Module, pred: Tensor, gt: Tensor, *, feed: LpipsFeed) -> Tensor:
    """LPIPS distance per image through the ``lpips`` package's forward.

    Args:
        model: from :func:`load_lpips` (built once per run).
        pred, gt: (N, 3, H, W) images in [0, 1].
        feed: ``"rescale"`` maps [0, 1] to [−1, 1] (``normalize=True``); ``"raw"`` feeds the values as they are.

    Returns:
        (N,) distances, float32.
    """
    if feed not in ("rescale", "raw"):
        raise ValueError(f"feed must be 'rescale' or 'raw', got {feed!r}")
    with torch.no_grad():
        return model(pred.float(), gt.float(), normalize=feed == "rescale").flatten()
