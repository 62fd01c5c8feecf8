"""Procedural backgrounds: a checkered ground plane under a graded sky, seen through the camera."""

from __future__ import annotations

import numpy as np


def ground_and_sky(K: np.ndarray, height: int, width: int, floor_y: float, tile: float,
                   colours: np.ndarray, sky: np.ndarray) -> np.ndarray:
    """Render the background of a camera at the origin (OpenCV axes, y down) as (H,W,3) uint8.

    The ground is the plane ``y = floor_y`` (metres, camera frame) tiled in ``tile``-metre squares
    of the two ``colours`` (2,3), fading with distance; above the horizon is a vertical gradient
    between the two ``sky`` colours (2,3).
    """
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], axis=-1)
    ground = rays[..., 1] > 1e-6
    depth = np.where(ground, floor_y / np.where(ground, rays[..., 1], 1.0), 0.0)  # 0 above the horizon (unused)
    x, z = rays[..., 0] * depth, depth
    checker = ((np.floor(x / tile) + np.floor(z / tile)) % 2).astype(int)
    fade = np.exp(-z / 40.0)[..., None]
    ground_rgb = colours[checker] * fade + sky[1] * (1 - fade)
    t = (v / max(height - 1, 1))[..., None]
    sky_rgb = sky[0] * (1 - t) + sky[1] * t
    image = np.where(ground[..., None], ground_rgb, sky_rgb)
    return np.clip(image, 0, 255).astype(np.uint8)
