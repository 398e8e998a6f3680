"""Shared pieces of the classical damage-imaging baselines (RAPID, delay-and-sum).

Images are computed on a pixel grid that refines the 16x16 label grid by an integer factor,
so a thresholded image maps onto label cells exactly; the box then comes from
`model.keypoints.predicted_mask_boxes`, the same rule as the training labels.
"""

from __future__ import annotations

import os

import numpy as np
import xarray as xr

from model.io import SHARD_VARIABLES, DataError, check_finite, open_checked
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


GEOMETRY_ATTRS = ("plate_width", "plate_height", "wave_speed_p", "wave_speed_s")
SOURCE_VARIABLES = ("source_x", "source_y", "source_onset")


def plate_geometry(shard: xr.Dataset, path: str | os.PathLike = "shard") -> dict:
    """Plate size [m], the first source's position [m] and onset [s], and the P and S wave
    speeds [m/s] for the plate's plane condition, from the documented attributes and
    variables of an opened shard (docs/data-format.md); nothing is derived from the
    solver's config. DataError naming `path` and what is missing (an older shard)."""
    missing = ([a for a in GEOMETRY_ATTRS if a not in shard.attrs]
               + [v for v in SOURCE_VARIABLES if v not in shard.variables])
    if missing:
        raise DataError(f"shard {path} lacks {missing} (docs/data-format.md), which imaging "
                        "needs (the imaging baselines, crackset's delay-and-sum branch); "
                        "regenerate it with `python -m dlem simulate`")
    if shard.sizes.get("source", 0) < 1:
        raise DataError(f"shard {path} has no source")
    values = {a: float(shard.attrs[a]) for a in GEOMETRY_ATTRS}
    values.update({v: float(shard[v].values[0]) for v in SOURCE_VARIABLES})
    bad = [k for k, v in values.items() if not np.isfinite(v)]
    if bad:
        raise DataError(f"shard {path}: {bad} not finite")
    return {
        "width": values["plate_width"], "height": values["plate_height"],
        "source": np.array([values["source_x"], values["source_y"]]),
        "onset": values["source_onset"],
        "c_p": values["wave_speed_p"], "c_s": values["wave_speed_s"],
        "plane": str(shard.attrs.get("plane", "")),
    }


def sensors_and_times(shard: xr.Dataset, path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Sensor positions `(S, 2)` [m] in the data contract's order and the time axis `(T,)`
    [s] of an opened shard; DataError naming `path` and a non-finite variable."""
    sensors = np.column_stack([check_finite(shard[name].values, path, name)
                               for name in ("sensor_x", "sensor_y")])
    return sensors, check_finite(shard["time"].values.astype(np.float64), path, "time")


def imaging_geometry(path: str | os.PathLike) -> dict:
    """What delay-and-sum focusing needs of a shard's set-up, JSON-able, SI units
    (`model.nets.delay_and_sum.GEOMETRY_KEYS`): `plate` (width, height) [m], the first source's
    `source` (x, y) [m] and `onset` [s], `speeds` (P, S) [m/s], `sensors` (S, 2) [m] in the
    data contract's order, `t_first` [s] and `dt` [s] of the time axis. DataError as
    `plate_geometry`, or naming a non-finite sensor position or time."""
    with open_checked(path, SHARD_VARIABLES, "shard") as ds:
        plate = plate_geometry(ds, path)
        sensors, times = sensors_and_times(ds, path)
    return {"plate": [plate["width"], plate["height"]], "source": plate["source"].tolist(),
            "onset": plate["onset"], "speeds": [plate["c_p"], plate["c_s"]],
            "sensors": sensors.tolist(), "t_first": float(times[0]),
            "dt": float(times[1] - times[0])}
