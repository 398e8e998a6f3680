"""The sensor grid and recording of displacement at the sensors."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree


def sensor_grid(width: float, height: float, nx: int = 9, ny: int = 9,
                margin: float = 0.005) -> tuple[np.ndarray, np.ndarray]:
    """Sensor positions ``(x, y)``, each (nx * ny,) [m], row-major from the lower-left corner
    (sensor ``k = iy * nx + ix``); the outer sensors sit ``margin`` [m] inside the edges."""
    if 2 * margin >= min(width, height):
        raise ValueError(f"sensors.margin={margin} m leaves no room on a {width} x {height} m plate")
    xs = np.linspace(margin, width - margin, nx) if nx > 1 else np.array([width / 2])
    ys = np.linspace(margin, height - margin, ny) if ny > 1 else np.array([height / 2])
    gx, gy = np.meshgrid(xs, ys, indexing="xy")
    return gx.ravel(), gy.ravel()


def nearest_nodes(points: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Index of the lattice node nearest to each position (x, y) [m]."""
    _, idx = cKDTree(points).query(np.column_stack([x, y]))
    return idx
