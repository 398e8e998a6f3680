"""Segmentation masks -> bounding key points (paper §3.5, docs/data-format.md).

A crack mask is a `(H, W)` array over the plate (16x16 by default): row `r` is `label_y`
(0 at the bottom, `y = 0`), column `c` is `label_x` (0 on the left, `x = 0`); a cell is 1 when
a crack touches it. Its box is `(xmin, ymin, xmax, ymax)` as fractions of the plate width and
height: the crack cells' min/max column and row in cell-edge coordinates
`[cmin, cmax + 1] x [rmin, rmax + 1]`, widened by one cell on every side,
`[cmin - 1, cmax + 2] x [rmin - 1, rmax + 2]`, clipped to `[0, W] x [0, H]`, divided by
`W` (x) and `H` (y). A mask without a crack cell has no box (`None`, or a NaN row).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import xarray as xr

from model.io import (SETUP_HASH_ATTR, SHARD_LABEL_VARIABLES, check_finite, open_checked,
                      reading, setup_of, write_netcdf_atomic)

BOX_COORDS = ("xmin", "ymin", "xmax", "ymax")
MARGIN_CELLS = 1


def mask_to_box(mask: np.ndarray) -> np.ndarray | None:
    """Box of one `(H, W)` mask as float64 `[xmin, ymin, xmax, ymax]` in [0, 1], or None.

    None when no cell equals 1 (the paper's "no object" case).
    """
    box = masks_to_boxes(np.asarray(mask)[None])[0]
    return None if np.isnan(box[0]) else box


def masks_to_boxes(masks: np.ndarray) -> np.ndarray:
    """Boxes of `(N, H, W)` masks, vectorised: float64 `(N, 4)`, NaN rows for empty masks."""
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"masks must have shape (N, H, W), got {masks.shape}")
    _, height, width = masks.shape
    crack = masks == 1
    cols = crack.any(axis=1)  # (N, W): column c holds a crack cell
    rows = crack.any(axis=2)  # (N, H): row r holds a crack cell
    cmin = cols.argmax(axis=1)
    cmax = width - 1 - cols[:, ::-1].argmax(axis=1)
    rmin = rows.argmax(axis=1)
    rmax = height - 1 - rows[:, ::-1].argmax(axis=1)
    boxes = np.stack(
        [
            np.clip(cmin - MARGIN_CELLS, 0, width) / width,
            np.clip(rmin - MARGIN_CELLS, 0, height) / height,
            np.clip(cmax + 1 + MARGIN_CELLS, 0, width) / width,
            np.clip(rmax + 1 + MARGIN_CELLS, 0, height) / height,
        ],
        axis=1,
    ).astype(np.float64)
    boxes[~cols.any(axis=1)] = np.nan
    return boxes


def predicted_mask_boxes(masks: np.ndarray) -> np.ndarray:
    """Boxes `(N, 4)` of predicted `(N, H, W)` masks (bool or 0/1) by the label rule; an empty
    mask predicts the zero-area box `(0, 0, 0, 0)`, which every box metric scores 0."""
    boxes = masks_to_boxes(np.asarray(masks).astype(np.uint8))
    return np.where(np.isnan(boxes), 0.0, boxes)


def box_to_mask(box: np.ndarray, shape: tuple[int, int] = (16, 16)) -> np.ndarray:
    """uint8 `(H, W)` mask of the cells whose area overlaps `box` (for plots).

    Overlap means a positive shared area: a box edge lying on a cell edge does not mark the
    neighbouring cell. A box with NaN, or with `xmax <= xmin` or `ymax <= ymin`, marks nothing.
    """
    height, width = shape
    xmin, ymin, xmax, ymax = np.asarray(box, dtype=np.float64)
    cols = np.arange(width)
    rows = np.arange(height)
    in_x = (cols < xmax * width) & (cols + 1 > xmin * width)
    in_y = (rows < ymax * height) & (rows + 1 > ymin * height)
    return (in_y[:, None] & in_x[None, :]).astype(np.uint8)


def labels_dataset(shard: xr.Dataset, source: str) -> xr.Dataset:
    """Key-point labels of an opened shard (`crack_mask`, `crack_size`, `n_cracks`, `sample`);
    the shard's `setup_hash` (DataError if it has none) and file name go with them."""
    digest, _ = setup_of(shard.attrs, source, "shard")
    boxes = masks_to_boxes(shard["crack_mask"].values)
    has_crack = ~np.isnan(boxes[:, 0])
    labels = xr.Dataset(
        {
            "box": (("sample", "coord"), boxes, {
                "units": "1",
                "long_name": "crack bounding key points (xmin, ymin, xmax, ymax)",
                "comment": "fractions of plate width (x) and height (y); one-cell margin "
                           "around the crack cells, clipped to the plate; NaN: no crack",
            }),
            "has_crack": (("sample",), has_crack, {
                "units": "1", "long_name": "the crack mask has at least one crack cell"}),
            "crack_size": (("sample",), shard["crack_size"].values.astype(np.float64), {
                "units": "m", "long_name": "total crack length (copied from the shard)"}),
            "n_cracks": (("sample",), shard["n_cracks"].values.astype(np.int32), {
                "units": "1", "long_name": "number of cracks (copied from the shard)"}),
        },
        coords={
            "sample": ("sample", shard["sample"].values.astype(np.int64),
                       {"units": "1", "long_name": "global sample index"}),
            "coord": ("coord", list(BOX_COORDS)),
        },
        attrs={
            "Conventions": "CF-1.10",
            "title": "crackpoint key-point labels",
            "source": "crackpoint model.keypoints (paper section 3.5)",
            "history": f"python -m model labels {source}",
            "source_shard": source,
            "shard_name": Path(source).name,
            SETUP_HASH_ATTR: digest,
        },
    )
    return labels


def write_labels(shard_path: str | os.PathLike, out_path: str | os.PathLike) -> Path:
    """Write the labels NetCDF of one shard to `out_path` atomically; return the path.

    The file is written to a temporary name in the same folder, then renamed, so a reader
    never sees a half-written file. A non-finite `crack_size` is refused, naming the sample.
    """
    shard_path, out_path = Path(shard_path), Path(out_path)
    with open_checked(shard_path, SHARD_LABEL_VARIABLES, "shard") as shard, \
            reading(shard_path, "the crack labels"):
        check_finite(shard["crack_size"].values, shard_path, "crack_size", shard["sample"].values)
        labels = labels_dataset(shard, str(shard_path))
    write_netcdf_atomic(labels, out_path)
    return out_path

