"""Segmentation masks -> bounding key points (paper §3.5, docs/data-format.md).

A crack mask is a `(H, W)` array over the plate (16x16 by default): row `r` is `label_y`
(0 at the bottom, `y = 0`), column `c` is `label_x` (0 on the left, `x = 0`); a cell is 1 when
a crack touches it. Its box is `(xmin, ymin, xmax, ymax)` as fractions of the plate width and
height, from the crack cells' min/max column and row widened by one cell on every side. The
paper's "one-pixel margin ... normalized relative to the size of the segmentation label" is
read two ways (`BOX_RULES`, docs/model.md "Labels"):

- `edges` (the default): cell-edge coordinates `[cmin, cmax + 1] x [rmin, rmax + 1]` widened
  to `[cmin - 1, cmax + 2] x [rmin - 1, rmax + 2]`: a one-cell crack is a 3x3-cell box centred
  on it;
- `indices`: the cell indices themselves, `[cmin - 1, cmax + 1] x [rmin - 1, rmax + 1]`: a
  one-cell crack is a 2x2-cell box, shifted half a cell towards the origin.

Both are clipped to `[0, W] x [0, H]` and divided by `W` (x) and `H` (y). A mask without a
crack cell has no box (`None`, or a NaN row). A labels file records its rule in the global
attribute `box_rule` (read by `model.data.load_labels` into `Labels.box_rule`); a mask model's
predicted mask must be turned into a box by the same rule as the labels it is scored against.

The labels file also holds each crack's own box (the same rule applied to the cells that
crack alone touches, `model.cracks.cell_ranges`), outline and length (`crack_variables`;
docs/data-format.md, "Per-crack labels"; read by `model.crack_labels.load_crack_labels`).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import xarray as xr

from model.cracks import cell_ranges, crack_outlines
from model.io import (SETUP_HASH_ATTR, SHARD_LABEL_VARIABLES, DataError, check_finite,
                      open_checked, reading, setup_of, write_netcdf_atomic)

BOX_COORDS = ("xmin", "ymin", "xmax", "ymax")
MARGIN_CELLS = 1
BOX_RULES = ("edges", "indices")
DEFAULT_BOX_RULE = "edges"
BOX_RULE_ATTR = "box_rule"
# cells added above the crack's largest index: edges = its upper edge (+1) and the margin
_UPPER = {"edges": 1 + MARGIN_CELLS, "indices": MARGIN_CELLS}


def check_box_rule(rule: str) -> str:
    """`rule` if it is one of `BOX_RULES`, else a ValueError naming the choices."""
    if rule not in _UPPER:
        raise ValueError(f"unknown box rule {rule!r}; expected one of {', '.join(BOX_RULES)}")
    return rule


def mask_to_box(mask: np.ndarray, rule: str = DEFAULT_BOX_RULE) -> np.ndarray | None:
    """Box of one `(H, W)` mask as float64 `[xmin, ymin, xmax, ymax]` in [0, 1], or None.

    None when no cell equals 1 (the paper's "no object" case). `rule`: see `BOX_RULES`.
    """
    box = masks_to_boxes(np.asarray(mask)[None], rule)[0]
    return None if np.isnan(box[0]) else box


def masks_to_boxes(masks: np.ndarray, rule: str = DEFAULT_BOX_RULE) -> np.ndarray:
    """Boxes of `(N, H, W)` masks by `rule` (`edges` or `indices`, module docstring),
    vectorised: float64 `(N, 4)`, NaN rows for empty masks."""
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"masks must have shape (N, H, W), got {masks.shape}")
    _, height, width = masks.shape
    crack = masks == 1
    cols = crack.any(axis=1)  # (N, W): column c holds a crack cell
    rows = crack.any(axis=2)  # (N, H): row r holds a crack cell
    ranges = np.stack([cols.argmax(axis=1), rows.argmax(axis=1),
                       width - 1 - cols[:, ::-1].argmax(axis=1),
                       height - 1 - rows[:, ::-1].argmax(axis=1)], axis=1)
    boxes = cell_boxes(ranges, width, height, rule)
    boxes[~cols.any(axis=1)] = np.nan
    return boxes


def cell_boxes(ranges: np.ndarray, width: int, height: int,
               rule: str = DEFAULT_BOX_RULE) -> np.ndarray:
    """Boxes float64 `(..., 4)` in [0, 1] of crack cell spans `ranges` `(..., 4)` =
    `(cmin, rmin, cmax, rmax)` on a `height` x `width` grid, by `rule` (module docstring)."""
    upper = _UPPER[check_box_rule(rule)]
    cmin, rmin, cmax, rmax = np.moveaxis(np.asarray(ranges), -1, 0)
    return np.stack([np.clip(cmin - MARGIN_CELLS, 0, width) / width,
                     np.clip(rmin - MARGIN_CELLS, 0, height) / height,
                     np.clip(cmax + upper, 0, width) / width,
                     np.clip(rmax + upper, 0, height) / height], axis=-1).astype(np.float64)


def predicted_mask_boxes(masks: np.ndarray, rule: str = DEFAULT_BOX_RULE) -> np.ndarray:
    """Boxes `(N, 4)` of predicted `(N, H, W)` masks (bool or 0/1) by the label rule `rule`
    (that of the labels they are scored against, `Labels.box_rule`); an empty mask predicts
    the zero-area box `(0, 0, 0, 0)`, which every box metric scores 0."""
    boxes = masks_to_boxes(np.asarray(masks).astype(np.uint8), rule)
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


def labels_dataset(shard: xr.Dataset, source: str, box_rule: str = DEFAULT_BOX_RULE) -> xr.Dataset:
    """Key-point labels of an opened shard (`crack_mask`, `crack_size`, `n_cracks`, `sample`)
    by `box_rule`, which the file records; the shard's `setup_hash` (DataError if it has none)
    and file name go with them."""
    digest, _ = setup_of(shard.attrs, source, "shard")
    boxes = masks_to_boxes(shard["crack_mask"].values, box_rule)
    margin = {"edges": "one-cell margin around the crack cells' edges",
              "indices": "crack cells' min/max indices -1/+1"}[box_rule]
    has_crack = ~np.isnan(boxes[:, 0])
    labels = xr.Dataset(
        {
            "box": (("sample", "coord"), boxes, {
                "units": "1",
                "long_name": "crack bounding key points (xmin, ymin, xmax, ymax)",
                "comment": f"fractions of plate width (x) and height (y); {margin} "
                           f"(box_rule {box_rule}), clipped to the plate; NaN: no crack",
            }),
            "has_crack": (("sample",), has_crack, {
                "units": "1", "long_name": "the crack mask has at least one crack cell"}),
            "crack_size": (("sample",), shard["crack_size"].values.astype(np.float64), {
                "units": "m", "long_name": "total crack length (copied from the shard)"}),
            "n_cracks": (("sample",), shard["n_cracks"].values.astype(np.int32), {
                "units": "1", "long_name": "number of cracks (copied from the shard)"}),
            **crack_variables(shard, source, box_rule),
        },
        coords={
            "sample": ("sample", shard["sample"].values.astype(np.int64),
                       {"units": "1", "long_name": "global sample index"}),
            "coord": ("coord", list(BOX_COORDS)),
            "xy": ("xy", ["x", "y"]),
        },
        attrs={
            "Conventions": "CF-1.10",
            "title": "crackpoint key-point labels",
            "source": "crackpoint model.keypoints (paper section 3.5)",
            "history": f"python -m model labels {source}"
                       + ("" if box_rule == DEFAULT_BOX_RULE else f" --box-rule {box_rule}"),
            "source_shard": source,
            "shard_name": Path(source).name,
            BOX_RULE_ATTR: box_rule,
            SETUP_HASH_ATTR: digest,
        },
    )
    return labels


def crack_variables(shard: xr.Dataset, source: str, box_rule: str = DEFAULT_BOX_RULE) -> dict:
    """The per-crack label variables of an opened shard (docs/data-format.md, "Per-crack
    labels"), as `{name: (dims, values, attrs)}`: `crack_box` `(sample, crack, coord)` by
    `box_rule` from each crack's own cells (`model.cracks.cell_ranges`), `crack_outline`
    `(sample, crack, point, xy)` [m] (`model.cracks.crack_outlines`), `crack_length`
    `(sample, crack)` [m]; NaN in crack rows `>= n_cracks`. The `crack` dimension is the
    shard's. DataError naming `source` for a missing attribute or an impossible crack count.
    """
    missing = [a for a in ("plate_width", "plate_height", "crack_families") if a not in shard.attrs]
    if missing:
        raise DataError(f"shard file {source} lacks the global attribute(s) {missing} "
                        "required by docs/data-format.md")
    sample_ids = shard["sample"].values
    n_cracks = shard["n_cracks"].values.astype(np.int64)
    params = shard["crack_params"].transpose("sample", "crack", "param")
    vertices = shard["crack_vertices"].transpose("sample", "crack", "vertex", "xy").values
    bad = (n_cracks < 0) | (n_cracks > params.sizes["crack"])
    if bad.any():
        raise DataError(f"{source}: n_cracks of sample(s) {sample_ids[bad][:5].tolist()} is "
                        f"outside [0, {params.sizes['crack']}] (the crack dimension)")
    exists = np.arange(params.sizes["crack"]) < n_cracks[:, None]             # (N, C)
    height, width = shard["crack_mask"].shape[1:]
    ranges = cell_ranges(vertices, float(shard.attrs["plate_width"]),
                         float(shard.attrs["plate_height"]), width, height)
    boxes = np.where(exists[..., None], cell_boxes(ranges, width, height, box_rule), np.nan)
    outlines = crack_outlines(params.values, vertices, n_cracks,
                              list(json.loads(shard.attrs["crack_families"])), source, sample_ids)
    lengths = np.where(exists, params.sel(param="length").values.astype(np.float64), np.nan)
    return {
        "crack_box": (("sample", "crack", "coord"), boxes, {
            "units": "1", "long_name": "per-crack bounding key points (xmin, ymin, xmax, ymax)",
            "comment": f"fractions of plate width (x) and height (y); the cells the crack "
                       f"itself touches, boxed by box_rule {box_rule}; NaN beyond n_cracks"}),
        "crack_outline": (("sample", "crack", "point", "xy"), outlines, {
            "units": "m", "long_name": "per-crack outline points",
            "comment": "segment, polyline: path vertices; rectangle, ellipse: major-axis end "
                       "points; NaN-padded"}),
        "crack_length": (("sample", "crack"), lengths, {
            "units": "m", "long_name": "per-crack length measure (crack_params length)",
            "comment": "segment: length; polyline: path length; rectangle: long side; "
                       "ellipse: major axis; NaN beyond n_cracks"}),
    }


def write_labels(shard_path: str | os.PathLike, out_path: str | os.PathLike,
                 box_rule: str = DEFAULT_BOX_RULE) -> Path:
    """Write the labels NetCDF of one shard (boxes by `box_rule`) to `out_path` atomically;
    return the path.

    The file is written to a temporary name in the same folder, then renamed, so a reader
    never sees a half-written file. A non-finite `crack_size` is refused, naming the sample.
    """
    check_box_rule(box_rule)
    shard_path, out_path = Path(shard_path), Path(out_path)
    with open_checked(shard_path, SHARD_LABEL_VARIABLES, "shard") as shard, \
            reading(shard_path, "the crack labels"):
        check_finite(shard["crack_size"].values, shard_path, "crack_size", shard["sample"].values)
        labels = labels_dataset(shard, str(shard_path), box_rule)
    write_netcdf_atomic(labels, out_path)
    return out_path


def common_box_rule(rules: dict[str, str]) -> str:
    """The one box rule of label files, given `{path: its box_rule attribute or None}` (None:
    written before the option existed, by `edges`). DataError if the files disagree or one
    names an unknown rule: a predicted mask's box must follow the labels it is scored against.
    """
    rules = {path: DEFAULT_BOX_RULE if rule is None else str(rule) for path, rule in rules.items()}
    unknown = {p: r for p, r in rules.items() if r not in BOX_RULES}
    if unknown:
        raise DataError(f"label files name an unknown box_rule: {unknown}; expected one of "
                        f"{', '.join(BOX_RULES)}")
    if len(set(rules.values())) > 1:
        raise DataError(f"label files mix box rules ({rules}); relabel them with one "
                        f"`python -m model labels --box-rule`")
    return next(iter(rules.values()), DEFAULT_BOX_RULE)

