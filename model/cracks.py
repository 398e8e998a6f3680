"""Per-crack geometry from a shard's `crack_params` and `crack_vertices` (docs/data-format.md):
the label cells each crack touches and its outline as points.

Arrays follow the shard: `vertices` `(N, C, V, 2)` [m] (sample, crack, vertex, xy), NaN
beyond a crack's last vertex and for every crack row at or beyond the sample's `n_cracks`;
`params` `(N, C, 6)` whose column 0 is the crack's family index into the shard's
`crack_families` (geometry names).

**Cells.** A crack path is connected, so the label cells it touches (closed cells, as the
solver rasterises `crack_mask`: a path on a cell edge touches both neighbours) span exactly
the columns of its vertices' x extent and the rows of their y extent. `cell_ranges` gives
that span per crack, with the cell bounds computed as the solver computes them (a vertex
exactly on an edge falls as in `crack_mask`); `model.keypoints.cell_boxes` turns it into a box
by the labels' rule, so a one-crack sample's per-crack box equals its union-mask box.

**Outline** (`OUTLINE_RULES`): an open path (`segment`, `polyline`) is its vertices in the
shard's order (a segment: its two end points); a closed shape (`rectangle`, `ellipse`) is
its major axis, two points: the extreme projections of its outline vertices on their
principal axis (a rectangle's long centre line, an ellipse's major axis; a square's or a
circle's axis direction is arbitrary), ordered by x (then y). Every outline thus has at least
two points, its first and last being the crack's end points.
"""

from __future__ import annotations

import numpy as np

from model.io import DataError

PATH, MAJOR_AXIS = "path", "major_axis"
OUTLINE_RULES = {"segment": PATH, "polyline": PATH, "rectangle": MAJOR_AXIS, "ellipse": MAJOR_AXIS}
MIN_OUTLINE_POINTS = 2


def cell_ranges(vertices: np.ndarray, width: float, height: float, nx: int, ny: int) -> np.ndarray:
    """Label cells touched by each crack: int64 `(..., 4)` `(cmin, rmin, cmax, rmax)` (column =
    x, row = y, both from 0 at the lower left), -1 for a crack row without a finite vertex.

    `vertices` `(..., V, 2)` [m], NaN-padded; the plate is `width` x `height` [m] under an
    `nx` x `ny` grid. A coordinate on an inner cell edge touches both cells (closed cells); a
    vertex outside the plate counts as in the border cell.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    finite = np.isfinite(vertices).all(axis=-1)                                 # (..., V)
    lo = np.where(finite[..., None], vertices, np.inf).min(axis=-2)            # (..., 2)
    hi = np.where(finite[..., None], vertices, -np.inf).max(axis=-2)
    ranges = np.stack([_first_cell(lo[..., 0], width, nx), _first_cell(lo[..., 1], height, ny),
                       _last_cell(hi[..., 0], width, nx), _last_cell(hi[..., 1], height, ny)],
                      axis=-1)
    return np.where(finite.any(axis=-1)[..., None], ranges, -1).astype(np.int64)


def _first_cell(low: np.ndarray, size: float, n: int) -> np.ndarray:
    """Lowest cell index whose closed span `[c, c + 1] * size / n` reaches up to `low`; the
    cell bounds are computed as the solver's rasteriser computes them."""
    upper = np.arange(n) * size / n + size / n
    return np.minimum(np.searchsorted(upper, low, side="left"), n - 1)


def _last_cell(high: np.ndarray, size: float, n: int) -> np.ndarray:
    """Highest cell index whose closed span starts at or below `high`."""
    lower = np.arange(n) * size / n
    return np.maximum(np.searchsorted(lower, high, side="right") - 1, 0)


def outline_points(vertices: np.ndarray, geometry: str) -> np.ndarray:
    """Outline `(P, 2)` [m] of one crack from its finite `vertices` `(V, 2)` by its `geometry`'s
    rule (module docstring); ValueError for a geometry not in `OUTLINE_RULES`."""
    rule = OUTLINE_RULES.get(geometry)
    if rule is None:
        raise ValueError(f"no outline rule for crack geometry {geometry!r}; model.cracks."
                         f"OUTLINE_RULES knows {', '.join(OUTLINE_RULES)}")
    vertices = np.asarray(vertices, dtype=np.float64)
    if rule == PATH:
        return vertices
    centre = vertices.mean(axis=0)
    _, axes = np.linalg.eigh(np.cov((vertices - centre).T))
    axis = axes[:, -1]                                   # direction of the largest spread
    along = (vertices - centre) @ axis
    ends = centre + np.outer([along.min(), along.max()], axis)
    return ends[np.lexsort((ends[:, 1], ends[:, 0]))]


def crack_outlines(params: np.ndarray, vertices: np.ndarray, n_cracks: np.ndarray,
                   families: list[str], source: str = "shard",
                   sample_ids: np.ndarray | None = None) -> np.ndarray:
    """Outlines of every crack of every sample: float64 `(N, C, P, 2)` [m], NaN-padded to the
    longest outline (at least `MIN_OUTLINE_POINTS`) and for crack rows `>= n_cracks`.

    `params` `(N, C, 6)`, `vertices` `(N, C, V, 2)`, `n_cracks` `(N,)`, `families` the shard's
    `crack_families`. DataError naming `source` and the sample when a crack's family index is
    not in `families`, its geometry has no outline rule, or it has fewer than two finite
    vertices.
    """
    n, c = np.shape(params)[:2]
    sample_ids = np.arange(n) if sample_ids is None else np.asarray(sample_ids)
    found: dict[tuple[int, int], np.ndarray] = {}
    for s in range(n):
        for k in range(int(n_cracks[s])):
            family = params[s, k, 0]
            where = f"{source}: sample {sample_ids[s]}, crack {k}"
            if not (np.isfinite(family) and 0 <= family < len(families)):
                raise DataError(f"{where}: family index {family} is not in crack_families "
                                f"{families}")
            points = vertices[s, k][np.isfinite(vertices[s, k]).all(axis=1)]
            if len(points) < MIN_OUTLINE_POINTS:
                raise DataError(f"{where}: {len(points)} finite vertex(es), need at least "
                                f"{MIN_OUTLINE_POINTS}")
            try:
                found[s, k] = outline_points(points, families[int(family)])
            except ValueError as err:
                raise DataError(f"{where}: {err}") from None
    width = max([MIN_OUTLINE_POINTS, *(len(p) for p in found.values())])
    outlines = np.full((n, c, width, 2), np.nan)
    for (s, k), points in found.items():
        outlines[s, k, :len(points)] = points
    return outlines
