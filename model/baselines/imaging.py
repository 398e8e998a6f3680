"""Shared pieces of the classical damage-imaging baselines (RAPID, delay-and-sum).

Images are computed on a pixel grid that refines the 16x16 label grid by an integer factor,
so a thresholded image maps onto label cells exactly; the box then comes from
`model.keypoints.predicted_mask_boxes`, the same rule as the training labels.
"""

from __future__ import annotations

import json

import numpy as np

from model.keypoints import predicted_mask_boxes


def pixel_grid(width: float, height: float, label_shape=(16, 16), oversample: int = 4) -> np.ndarray:
    """Pixel centres (ny * nx, 2) [m], row-major from the lower left, ``oversample`` pixels
    per label cell along each axis."""
    ny, nx = label_shape[0] * oversample, label_shape[1] * oversample
    xs = (np.arange(nx) + 0.5) * width / nx
    ys = (np.arange(ny) + 0.5) * height / ny
    gx, gy = np.meshgrid(xs, ys, indexing="xy")
    return np.column_stack([gx.ravel(), gy.ravel()])


def cell_scores(images: np.ndarray, label_shape=(16, 16), oversample: int = 4) -> np.ndarray:
    """Per label cell, its brightest pixel over the image's maximum: (N, H, W) in [0, 1]
    (all 0 for an all-zero image). ``images``: (N, H * oversample * W * oversample) on
    ``pixel_grid``. ``cell_scores >= alpha`` is ``image_to_mask(images, alpha)``."""
    h, w = label_shape
    cells = images.reshape(len(images), h, oversample, w, oversample).max(axis=(2, 4))
    peak = images.max(axis=1)[:, None, None]
    return np.divide(cells, peak, out=np.zeros_like(cells, dtype=np.float64), where=peak > 0)


def image_to_mask(images: np.ndarray, alpha: float, label_shape=(16, 16),
                  oversample: int = 4) -> np.ndarray:
    """Label masks (N, H, W) uint8: a cell is 1 when any of its pixels reaches ``alpha`` (> 0)
    times the image's maximum. ``images``: (N, H * oversample * W * oversample) on
    ``pixel_grid``."""
    return (cell_scores(images, label_shape, oversample) >= alpha).astype(np.uint8)


def image_to_box(images: np.ndarray, alpha: float, label_shape=(16, 16),
                 oversample: int = 4) -> np.ndarray:
    """Boxes (N, 4) ``xmin, ymin, xmax, ymax`` in [0, 1] of the thresholded images."""
    return predicted_mask_boxes(image_to_mask(images, alpha, label_shape, oversample))


def plate_geometry(shard_attrs: dict) -> dict:
    """Plate size [m], source position [m], its onset [s] and the plane-stress wave speeds
    [m/s] from a shard's attributes (the resolved simulation config is stored as JSON).

    ``c_p = sqrt(E / (rho (1 - nu^2)))``, ``c_s = sqrt(E / (2 rho (1 + nu)))``.
    """
    cfg = json.loads(shard_attrs["config"])
    plate, src = cfg["plate"], cfg["sources"][0]
    E, nu, rho = plate["youngs_modulus"], plate["poisson_ratio"], plate["density"]
    return {
        "width": float(shard_attrs["plate_width"]),
        "height": float(shard_attrs["plate_height"]),
        "source": np.array([src["x"], src["y"]], float),
        "onset": float(src["delay"] if src.get("delay") is not None else 1.5 / src["f0"]),
        "c_p": float(np.sqrt(E / (rho * (1 - nu**2)))),
        "c_s": float(np.sqrt(E / (2 * rho * (1 + nu)))),
    }
