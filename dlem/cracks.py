"""Crack geometries: a registry of shapes that cut lattice elements and rasterise to labels.

A crack is a path: an open polyline (``segment``, ``polyline``: a line crack of zero width)
or a closed polygon (``rectangle``, ``ellipse``: a notch or void). Every element whose
segment crosses the path, or (closed shapes) has an end inside it, is cut: its stiffness is
set to zero, so the crack faces are traction free.

Adding a geometry is one class here with ``@register``: it builds its path from parameters
(``from_params``), draws random parameters from a config family (``sample``) and states its
length measure; cutting, rasterising and clearance checks come from the path.

Length measure (``Crack.length``, metres; the sample's ``crack_size`` is their sum):
segment: its length; polyline: its path length; rectangle: its long side; ellipse: its
major axis.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

GEOMETRIES: dict[str, type["Crack"]] = {}
PARAMS = ("family", "x", "y", "length", "width", "angle")   # the crack_params coordinate
PARAM_UNITS = ("1", "m", "m", "m", "m", "degree")          # units of each of PARAMS


def register(name: str) -> Callable[[type], type]:
    """Class decorator adding a geometry to the registry under ``name``."""
    def wrap(cls):
        cls.geometry = name
        GEOMETRIES[name] = cls
        return cls
    return wrap


def _cross(ax, ay, bx, by):
    return ax * by - ay * bx


def segments_intersect(p1: np.ndarray, p2: np.ndarray, q1: np.ndarray, q2: np.ndarray) -> np.ndarray:
    """Whether segments ``p1-p2`` and ``q1-q2`` (arrays (..., 2), broadcast) intersect,
    touching included."""
    d = p2 - p1
    e = q2 - q1
    f = q1 - p1
    den = _cross(d[..., 0], d[..., 1], e[..., 0], e[..., 1])
    t_num = _cross(f[..., 0], f[..., 1], e[..., 0], e[..., 1])
    s_num = _cross(f[..., 0], f[..., 1], d[..., 0], d[..., 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        t = t_num / den
        s = s_num / den
    proper = (den != 0) & (t >= 0) & (t <= 1) & (s >= 0) & (s <= 1)
    # parallel segments: intersect when collinear and overlapping
    collinear = (den == 0) & (t_num == 0)
    dd = (d * d).sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t0 = (f * d).sum(-1) / dd
        t1 = ((q2 - p1) * d).sum(-1) / dd
    overlap = collinear & (np.maximum(t0, t1) >= 0) & (np.minimum(t0, t1) <= 1)
    return proper | overlap


def point_segment_distance(pts: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance (P, K) from points (P, 2) to segments ``a-b`` (K, 2) [m]."""
    d = b - a
    dd = np.maximum((d * d).sum(-1), 1e-300)
    rel = pts[:, None, :] - a[None]
    t = np.clip((rel * d[None]).sum(-1) / dd, 0, 1)
    return np.linalg.norm(rel - t[..., None] * d[None], axis=-1)


class Crack:
    """A crack path. ``vertices`` (K, 2) [m]; ``closed`` polygons also cut what they contain."""

    geometry = "crack"
    closed = False

    def __init__(self, vertices: np.ndarray, x: float, y: float, length: float,
                 width: float = 0.0, angle: float = 0.0):
        self.vertices = np.asarray(vertices, float)
        self.x, self.y, self.length, self.width, self.angle = x, y, length, width, angle

    # -- construction
    @classmethod
    def from_params(cls, **p) -> "Crack":  # pragma: no cover - every geometry overrides
        raise NotImplementedError

    @classmethod
    def sample(cls, family: dict, rng: np.random.Generator, x: float, y: float) -> "Crack":
        """A random crack of this geometry centred at ``(x, y)`` from a config ``family``."""
        return cls.from_params(x=x, y=y, length=draw(family["length"], rng),
                               width=draw(family.get("width", 0.0), rng),
                               angle=draw(family.get("angle", [0.0, 180.0]), rng))

    # -- geometry
    def edges(self) -> tuple[np.ndarray, np.ndarray]:
        """Start and end points (K, 2) of the path's straight pieces."""
        v = self.vertices
        if self.closed:
            return v, np.roll(v, -1, axis=0)
        return v[:-1], v[1:]

    def contains(self, pts: np.ndarray) -> np.ndarray:
        """Whether points (P, 2) lie inside the closed path (even-odd rule); False if open."""
        if not self.closed:
            return np.zeros(len(pts), bool)
        a, b = self.edges()
        px, py = pts[:, 0:1], pts[:, 1:2]
        straddle = (a[:, 1] > py) != (b[:, 1] > py)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_cross = a[:, 0] + (py - a[:, 1]) * (b[:, 0] - a[:, 0]) / (b[:, 1] - a[:, 1])
        return (straddle & (px < x_cross)).sum(1) % 2 == 1

    def cuts(self, p: np.ndarray, q: np.ndarray) -> np.ndarray:
        """Whether each element ``p-q`` (arrays (M, 2) [m]) is cut by this crack."""
        lo, hi = self.vertices.min(0), self.vertices.max(0)
        near = np.all((np.maximum(p, q) >= lo) & (np.minimum(p, q) <= hi), axis=1)
        out = np.zeros(len(p), bool)
        idx = np.flatnonzero(near)
        if len(idx):
            a, b = self.edges()
            hit = segments_intersect(p[idx, None], q[idx, None], a[None], b[None]).any(1)
            hit |= self.contains(p[idx]) | self.contains(q[idx])
            out[idx] = hit
        return out

    def touches_boxes(self, x0, y0, x1, y1) -> np.ndarray:
        """Whether the crack touches each axis-aligned box ``[x0, x1] x [y0, y1]`` (arrays)."""
        corners = [np.stack([x0, y0], -1), np.stack([x1, y0], -1),
                   np.stack([x1, y1], -1), np.stack([x0, y1], -1)]
        a, b = self.edges()
        hit = np.zeros(np.shape(x0), bool)
        for k in range(4):
            c, d = corners[k], corners[(k + 1) % 4]
            hit |= segments_intersect(c[..., None, :], d[..., None, :], a, b).any(-1)
        v = self.vertices
        inside = ((v[:, 0] >= np.asarray(x0)[..., None]) & (v[:, 0] <= np.asarray(x1)[..., None])
                  & (v[:, 1] >= np.asarray(y0)[..., None]) & (v[:, 1] <= np.asarray(y1)[..., None]))
        hit |= inside.any(-1)
        centre = np.stack([(x0 + x1) / 2, (y0 + y1) / 2], -1).reshape(-1, 2)
        return hit | self.contains(centre).reshape(np.shape(x0))

    def distance(self, pts: np.ndarray) -> np.ndarray:
        """Distance [m] from points (P, 2) to the crack (0 inside a closed one)."""
        a, b = self.edges()
        dist = point_segment_distance(np.asarray(pts, float), a, b).min(1)
        return np.where(self.contains(np.asarray(pts, float)), 0.0, dist)

    def params(self, family: int) -> np.ndarray:
        """The ``crack_params`` row: family index, x, y [m], length [m], width [m], angle [deg]."""
        return np.array([family, self.x, self.y, self.length, self.width, self.angle], float)

    def describe(self) -> str:
        return (f"{self.geometry} crack at ({self.x:.4g}, {self.y:.4g}) m, length "
                f"{self.length:.4g} m")


def _rotate(local: np.ndarray, x: float, y: float, angle: float) -> np.ndarray:
    c, s = np.cos(np.radians(angle)), np.sin(np.radians(angle))
    return local @ np.array([[c, s], [-s, c]]) + [x, y]


def _positive(name: str, value: float, geometry: str, allow_zero: bool = False) -> float:
    if value < 0 or (value == 0 and not allow_zero) or not np.isfinite(value):
        raise ValueError(f"{geometry} crack: {name}={value} must be "
                         f"{'non-negative' if allow_zero else 'positive'}")
    return float(value)


@register("segment")
class Segment(Crack):
    """A straight line crack: centre ``(x, y)``, ``length`` [m], ``angle`` [deg]."""

    @classmethod
    def from_params(cls, x, y, length, angle=0.0, width=0.0, **_):
        length = _positive("length", length, "segment")
        v = _rotate(np.array([[-length / 2, 0.0], [length / 2, 0.0]]), x, y, angle)
        return cls(v, x, y, length, 0.0, angle)


@register("polyline")
class Polyline(Crack):
    """A kinked line crack through ``points`` [m]; random ones are walks of ``segments``
    equal pieces turning by up to ``kink`` degrees at each joint."""

    @classmethod
    def from_params(cls, points=None, x=None, y=None, length=None, angle=0.0, **_):
        if points is None:
            raise ValueError("polyline crack: give `points` (a list of [x, y])")
        v = np.asarray(points, float)
        if v.ndim != 2 or v.shape[1] != 2 or len(v) < 2:
            raise ValueError("polyline crack: `points` must be at least two [x, y] pairs")
        path = float(np.linalg.norm(np.diff(v, axis=0), axis=1).sum())
        _positive("length", path, "polyline")
        lo, hi = v.min(0), v.max(0)
        d = v[-1] - v[0]
        return cls(v, (lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, path, 0.0,
                   float(np.degrees(np.arctan2(d[1], d[0]))))

    @classmethod
    def sample(cls, family, rng, x, y):
        n = family.get("segments", 3)
        length = _positive("length", draw(family["length"], rng), "polyline")
        heading = draw(family.get("angle", [0.0, 180.0]), rng)
        kink = draw(family.get("kink", [0.0, 30.0]), rng)
        turns = np.concatenate([[0.0], rng.uniform(-kink, kink, n - 1)])
        headings = np.radians(heading + np.cumsum(turns))
        steps = length / n * np.column_stack([np.cos(headings), np.sin(headings)])
        v = np.vstack([[0.0, 0.0], np.cumsum(steps, axis=0)])
        v += np.array([x, y]) - (v.min(0) + v.max(0)) / 2
        return cls.from_params(points=v)


def _area_crack(cls, outline, x, y, length, width, angle) -> "Crack":
    """A closed crack from its local ``outline(a, b)`` (half-axes ``a, b`` [m]), centred and
    rotated; its length measure is the longer of ``length`` and ``width``."""
    length = _positive("length", length, cls.geometry)
    width = _positive("width", width, cls.geometry)
    v = _rotate(outline(length / 2, width / 2), x, y, angle)
    return cls(v, x, y, max(length, width), width, angle)


@register("rectangle")
class Rectangle(Crack):
    """A rectangular notch: centre, ``length`` x ``width`` [m], ``angle`` of the length side."""

    closed = True

    @classmethod
    def from_params(cls, x, y, length, width, angle=0.0, **_):
        return _area_crack(cls, lambda a, b: np.array([[-a, -b], [a, -b], [a, b], [-a, b]]),
                           x, y, length, width, angle)


@register("ellipse")
class Ellipse(Crack):
    """An elliptical void: centre, axes ``length`` x ``width`` [m] (a 48-gon), ``angle``."""

    closed = True

    @classmethod
    def from_params(cls, x, y, length, width, angle=0.0, **_):
        phi = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        return _area_crack(cls, lambda a, b: np.column_stack([a * np.cos(phi), b * np.sin(phi)]),
                           x, y, length, width, angle)


def geometry(name: str) -> type[Crack]:
    """The registered geometry class called ``name`` (a clear error otherwise)."""
    try:
        return GEOMETRIES[name]
    except KeyError:
        raise ValueError(f"unknown crack geometry {name!r}; registered: "
                         f"{', '.join(sorted(GEOMETRIES))}") from None


def draw(spec, rng: np.random.Generator) -> float:
    """A value from a config range: a number, or uniform on ``[low, high]``."""
    if isinstance(spec, (int, float)):
        return float(spec)
    low, high = spec
    return float(rng.uniform(low, high))


def check_placement(crack: Crack, width: float, height: float, sources: np.ndarray,
                    clearance: float) -> None:
    """Raise ValueError when the crack leaves the plate (closer than ``clearance`` [m] to an
    edge) or comes within ``clearance`` of a source position (rows of ``sources`` (S, 2))."""
    lo, hi = crack.vertices.min(0), crack.vertices.max(0)
    if lo[0] < clearance or lo[1] < clearance or hi[0] > width - clearance or hi[1] > height - clearance:
        raise ValueError(
            f"{crack.describe()} leaves the plate: it spans x [{lo[0]:.4g}, {hi[0]:.4g}], "
            f"y [{lo[1]:.4g}, {hi[1]:.4g}] m but must stay {clearance} m inside the "
            f"{width} x {height} m plate")
    if len(sources):
        d = crack.distance(np.asarray(sources, float))
        if d.min() < clearance:
            k = int(d.argmin())
            raise ValueError(f"{crack.describe()} overlaps source {k} at "
                             f"({sources[k][0]:.4g}, {sources[k][1]:.4g}) m: distance "
                             f"{d.min():.3g} m < clearance {clearance} m")


def sample_cracks(cfg: dict, rng: np.random.Generator, width: float, height: float,
                  sources: np.ndarray, max_tries: int = 200) -> list[tuple[int, Crack]]:
    """Draw a sample's cracks from the ``cracks`` config section.

    Returns ``(family index, crack)`` pairs. With ``fixed`` cracks every sample gets exactly
    those (family index = position in the list). Otherwise the count is uniform on
    ``[count.min, count.max]``, each crack's family is drawn by weight and its parameters from
    the family's ranges; a crack that does not fit is redrawn (``max_tries`` times at most).
    """
    clearance = cfg.get("clearance", 0.002)
    if cfg.get("fixed"):
        return [(i, crack_from_dict(c)) for i, c in enumerate(cfg["fixed"])]
    families = cfg.get("families", [])
    count = cfg.get("count", {})
    n = int(rng.integers(count.get("min", 1), count.get("max", 1) + 1))
    if n and not families:
        raise ValueError("cracks.count asks for cracks but cracks.families is empty")
    weights = np.array([f.get("weight", 1.0) for f in families], float)
    out = []
    for _ in range(n):
        k = int(rng.choice(len(families), p=weights / weights.sum()))
        fam = families[k]
        cls = geometry(fam["geometry"])
        for _ in range(max_tries):
            x = draw(fam.get("x", [clearance, width - clearance]), rng)
            y = draw(fam.get("y", [clearance, height - clearance]), rng)
            crack = cls.sample(fam, rng, x, y)
            try:
                check_placement(crack, width, height, sources, clearance)
            except ValueError:
                continue
            out.append((k, crack))
            break
        else:
            raise ValueError(f"crack family {fam.get('name', fam['geometry'])!r} could not be "
                             f"placed in {max_tries} draws: its size or position ranges do "
                             f"not fit the plate with clearance {clearance} m")
    return out


def crack_from_dict(spec: dict) -> Crack:
    """A crack from a ``fixed`` config entry, e.g. ``{geometry: segment, x, y, length, angle}``."""
    spec = dict(spec)
    spec.pop("name", None)
    cls = geometry(spec.pop("geometry"))
    try:
        return cls.from_params(**spec)
    except TypeError as err:
        raise ValueError(f"{cls.geometry} crack {spec}: {err}") from None


def cut_elements(cracks: list[Crack], points: np.ndarray, bonds: np.ndarray) -> np.ndarray:
    """(M,) bool: elements cut by any of the cracks."""
    cut = np.zeros(len(bonds), bool)
    p, q = points[bonds[:, 0]], points[bonds[:, 1]]
    for crack in cracks:
        cut |= crack.cuts(p, q)
    return cut


def rasterize(cracks: list[Crack], width: float, height: float, nx: int = 16,
              ny: int = 16) -> np.ndarray:
    """The (ny, nx) uint8 label: 1 where a crack touches the cell. Row 0 is ``y = 0``."""
    cx = np.arange(nx) * width / nx
    cy = np.arange(ny) * height / ny
    x0, y0 = np.meshgrid(cx, cy, indexing="xy")
    mask = np.zeros((ny, nx), bool)
    for crack in cracks:
        mask |= crack.touches_boxes(x0, y0, x0 + width / nx, y0 + height / ny)
    return mask.astype(np.uint8)
