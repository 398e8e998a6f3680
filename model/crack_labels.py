"""Reader of the per-crack labels (`crack_box`, `crack_outline`, `crack_length`) that
`python -m model labels` writes beside the single union box (docs/data-format.md,
"Per-crack labels").

The single-box part is read by `model.data.load_labels`, with all its checks (set-up, box
rule, repeated samples); this module adds the per-crack arrays in the same sample order,
padded across files to the widest `crack` and `point` dimensions with NaN, and checks them at
the edge: a crack row below the sample's `n_cracks` must have a finite box and length and an
outline of at least two finite points (then NaN), and every row at or beyond `n_cracks` must
be NaN; otherwise a DataError names the file, the variable and the sample.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from model.cracks import MIN_OUTLINE_POINTS
from model.data import Labels, load_labels
from model.io import DataError, open_checked

CRACK_VARIABLES = ("crack_box", "crack_outline", "crack_length")


@dataclass
class CrackLabels:
    """Per-crack labels of many label files, rows in `labels.sample` order (N samples, padded
    to C cracks and P outline points)."""

    labels: Labels          # the single-box labels; `labels.n_cracks` (N,) counts the rows
    box: np.ndarray         # (N, C, 4) float64 (xmin, ymin, xmax, ymax), plate fractions
    outline: np.ndarray     # (N, C, P, 2) float64, m
    length: np.ndarray      # (N, C) float64, m (each crack's length measure)

    def exists(self) -> np.ndarray:
        """(N, C) bool: the crack row holds a crack (row < n_cracks)."""
        return np.arange(self.box.shape[1]) < self.labels.n_cracks[:, None]


def _pad(values: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    out = np.full(shape, np.nan)
    out[tuple(slice(0, n) for n in values.shape)] = values
    return out


def check_crack_rows(path: str | os.PathLike, sample: np.ndarray, n_cracks: np.ndarray,
                     box: np.ndarray, outline: np.ndarray, length: np.ndarray) -> None:
    """DataError naming `path`, the variable and the first samples where the per-crack arrays
    of one file (`box` (N, C, 4), `outline` (N, C, P, 2), `length` (N, C)) break the layout
    (module docstring) for the counts `n_cracks` (N,)."""
    n_rows = box.shape[1]
    bad = (n_cracks < 0) | (n_cracks > n_rows)
    if bad.any():
        raise DataError(f"{path}: n_cracks of sample(s) {sample[bad][:5].tolist()} is outside "
                        f"[0, {n_rows}] (the crack dimension)")
    exists = np.arange(n_rows) < n_cracks[:, None]                            # (N, C)
    points = np.isfinite(outline).all(axis=-1)                                # (N, C, P)
    holes = (np.diff(points.astype(np.int8), axis=-1) > 0).any(axis=-1)       # NaN, then finite
    partial = (~points & ~np.isnan(outline).all(axis=-1)).any(axis=-1)        # e.g. (x, NaN)
    broken = {  # (N, C) per variable: wrong in a row that holds a crack
        "crack_box": ~np.isfinite(box).all(axis=-1),
        "crack_length": ~np.isfinite(length),
        "crack_outline": holes | partial | (points.sum(axis=-1) < MIN_OUTLINE_POINTS),
    }
    filled = {  # (N, C) per variable: not NaN in a padding row
        "crack_box": ~np.isnan(box).all(axis=-1),
        "crack_length": ~np.isnan(length),
        "crack_outline": ~np.isnan(outline).all(axis=(-2, -1)),
    }
    for name in broken:
        for wrong, what in ((broken[name] & exists, "is not finite where a crack exists "
                             f"(outline: at least {MIN_OUTLINE_POINTS} finite points, then NaN)"),
                            (filled[name] & ~exists, "is not NaN beyond n_cracks")):
            rows = wrong.any(axis=1)
            if rows.any():
                raise DataError(f"{path}: {name} of sample(s) {sample[rows][:5].tolist()} {what}")


def load_crack_labels(paths: Sequence[str | os.PathLike]) -> CrackLabels:
    """Read the per-crack labels of label files written by `python -m model labels`, with
    their single-box labels (`load_labels`: same checks, same sorted sample order).

    DataError when a file has no per-crack variables (written before they existed:
    regenerate it with `python -m model labels`) or breaks the layout (module docstring).
    """
    labels = load_labels(paths)
    parts = []
    for path in paths:
        with open_checked(path, ("sample", "n_cracks"), "labels") as ds:
            missing = [name for name in CRACK_VARIABLES if name not in ds.variables]
            if missing:
                raise DataError(f"labels file {path} lacks the per-crack variable(s) {missing} "
                                "(written before they existed); regenerate it with "
                                "`python -m model labels`")
            part = {"sample": ds["sample"].values.astype(np.int64),
                    "n_cracks": ds["n_cracks"].values.astype(np.int64),
                    "box": ds["crack_box"].transpose("sample", "crack", "coord").values,
                    "outline": ds["crack_outline"].transpose("sample", "crack", "point",
                                                             "xy").values,
                    "length": ds["crack_length"].transpose("sample", "crack").values}
        check_crack_rows(path, **part)
        parts.append(part)
    n_rows = max(p["box"].shape[1] for p in parts)
    n_points = max(p["outline"].shape[2] for p in parts)
    merged = {
        "sample": np.concatenate([p["sample"] for p in parts]),
        "box": np.concatenate([_pad(p["box"], (len(p["box"]), n_rows, 4)) for p in parts]),
        "outline": np.concatenate([_pad(p["outline"], (len(p["outline"]), n_rows, n_points, 2))
                                   for p in parts]),
        "length": np.concatenate([_pad(p["length"], (len(p["length"]), n_rows)) for p in parts]),
    }
    order = np.argsort(merged["sample"], kind="stable")  # load_labels' order (no repeats)
    return CrackLabels(labels=labels, box=merged["box"][order],
                       outline=merged["outline"][order], length=merged["length"][order])


def plate_size(shard: str | os.PathLike) -> tuple[float, float]:
    """`(plate_width, plate_height)` [m] from a shard's documented attributes; DataError
    naming the shard when they are missing or not positive."""
    with open_checked(shard, ("sample",), "shard") as ds:
        try:
            size = float(ds.attrs["plate_width"]), float(ds.attrs["plate_height"])
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(f"shard {shard} lacks a numeric plate_width and plate_height "
                            "(docs/data-format.md); regenerate it with "
                            "`python -m dlem simulate`") from err
    if not all(np.isfinite(size)) or min(size) <= 0:
        raise DataError(f"shard {shard}: plate_width and plate_height must be > 0, got {size}")
    return size


def crack_targets(cracks: CrackLabels, sample_ids: np.ndarray,
                  plate: tuple[float, float]) -> np.ndarray:
    """The set-prediction targets `(N, C, 8)` float32 of `sample_ids`: per crack row its box
    `xmin, ymin, xmax, ymax` and its outline's two ends `x1, y1, x2, y2` (first and last
    finite points), all as plate fractions (`plate` = width, height [m]); NaN rows beyond
    each sample's `n_cracks` (an uncracked plate is all NaN)."""
    rows = cracks.labels.rows(sample_ids)
    box, outline = cracks.box[rows], cracks.outline[rows]              # (N, C, 4), (N, C, P, 2)
    finite = np.isfinite(outline).all(axis=-1)                         # (N, C, P)
    last = np.maximum(finite.sum(axis=-1) - 1, 0)                      # finite points, then NaN
    first_pt = outline[:, :, 0]
    last_pt = np.take_along_axis(outline, last[..., None, None].repeat(2, -1), axis=2)[:, :, 0]
    ends = np.concatenate([first_pt, last_pt], axis=-1) / np.tile(np.asarray(plate), 2)
    targets = np.concatenate([box, ends], axis=-1)
    targets[~cracks.exists()[rows]] = np.nan
    return targets.astype(np.float32)
