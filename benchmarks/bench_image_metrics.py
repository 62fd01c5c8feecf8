"""Images per second of PSNR, SSIM (scikit-image and 3DGS variants) and LPIPS at 512x512: batched vs one image at a time.

Run: ``python benchmarks/bench_image_metrics.py [--device cuda] [--images 16] [--batch 8]``. LPIPS uses
seeded random AlexNet/VGG16 trunks written to a temporary TORCH_HOME (speed does not depend on the
weights, and nothing is downloaded). Prints figures and ratios; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from typing import Callable

import torch
import torchvision

from humanbench.metrics.image import LEGACY_FLOAT_DATA_RANGE, psnr, ssim_gaussian, ssim_skimage
from humanbench.metrics.lpips_offline import backbone_path, load_lpips, lpips_distance


def write_random_backbones() -> None:
    """Seeded random torchvision trunks under $TORCH_HOME/hub/checkpoints with torchvision's file names."""
    for seed, net in enumerate(("alex", "vgg")):
        torch.manual_seed(seed)
        features = (torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"]) if net == "vgg"
                    else torchvision.models.alexnet(weights=None).features)
        backbone_path(net).parent.mkdir(parents=True, exist_ok=True)
        torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, backbone_path(net))


def rate(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], pred: torch.Tensor, gt: torch.Tensor,
         batch: int, device: torch.device) -> float:
    """Images per second of ``fn`` over all images in chunks of ``batch`` (after one warm-up call)."""
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    with torch.no_grad():
        fn(pred[:batch], gt[:batch])
        sync()
        start = time.perf_counter()
        for i in range(0, len(pred), batch):
            fn(pred[i:i + batch], gt[i:i + batch])
        sync()
    return len(pred) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    device = torch.device(args.device)
    os.environ["TORCH_HOME"] = tempfile.mkdtemp(prefix="bench-torch-home-")
    write_random_backbones()
    nets = {net: load_lpips(net, device)[0] for net in ("alex", "vgg")}
    g = torch.Generator().manual_seed(0)
    gt = torch.rand(args.images, 3, args.size, args.size, generator=g, dtype=torch.float64)
    pred = (gt + 0.05 * torch.randn(gt.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    gt, pred = gt.to(device), pred.to(device)
    metrics = {
        "PSNR pooled (float64)": lambda x, y: psnr(x, y, reduction="pooled"),
        "SSIM scikit-image 7x7, R=2 (float64)": lambda x, y: ssim_skimage(x, y, data_range=LEGACY_FLOAT_DATA_RANGE),
        "SSIM 3DGS gaussian (float32)": lambda x, y: ssim_gaussian(x.float(), y.float()),
        "LPIPS-alex (float32)": lambda x, y: lpips_distance(nets["alex"], x, y, feed="rescale"),
        "LPIPS-vgg (float32)": lambda x, y: lpips_distance(nets["vgg"], x, y, feed="rescale"),
    }
    print(f"{args.images} images of {args.size}x{args.size} on {device} ({torch.get_num_threads()} CPU threads)")
    print(f"{'metric':38s} {'batched img/s':>14s} {'per-image img/s':>16s} {'ratio':>7s}")
    for name, fn in metrics.items():
        batched, single = rate(fn, pred, gt, args.batch, device), rate(fn, pred, gt, 1, device)
        print(f"{name:38s} {batched:14.1f} {single:16.1f} {batched / single:7.2f}")


if __name__ == "__main__":
    main()
