"""Explicit time integration of the lattice: numba kernels and the driver that runs them.

Equation of motion of node ``i`` (mass ``m_i`` [kg], displacement ``u_i`` [m]):

    m_i u_i'' = sum_j B_ij (u_j - u_i) + F_i(t) - m_i c_i u_i',

with the element stiffness ``B_ij = k_n n n^T + k_s (I - n n^T)`` [N/m] (normal force for the
elongation, shear force for the relative transverse displacement), the source force ``F_i``
[N] and the absorbing-layer damping rate ``c_i`` [1/s].

Integrator: velocity-Verlet written in its leapfrog (kick-drift) form, which gives the same
displacements: with ``a1 = (1 - c dt/2) / (1 + c dt/2)`` and ``a2 = dt / (m (1 + c dt/2))``,

    v^{n+1/2} = a1 v^{n-1/2} + a2 (f(u^n) + F^n),     u^{n+1} = u^n + dt v^{n+1/2}

(damping is centred, so it stays second order). Stable for ``dt <= 2 / omega_max``; see
``lattice.stable_dt``. Undamped and unforced, ``v^{n+1/2} M v^{n-1/2} / 2 + u^n K u^n / 2`` is
conserved exactly.

Three force kernels compute the same thing:

* ``advance_triangular``: the regular triangular lattice as a padded 2D stencil, gathering the
  six neighbours of each node; unit-stride inner loops that LLVM vectorises. The default.
* ``advance_csr``: any lattice (the random one), gathering neighbours through a CSR list.
* ``advance_bondlist``: the straightforward loop over an element list scattering forces to
  both ends; the reference the benchmark compares with, and an independent check in tests.
"""

from __future__ import annotations

import numpy as np
from numba import njit, uint64

from .lattice import Lattice, stiffness_blocks


# --------------------------------------------------------------------------- kernels

@njit(cache=True, inline="always")
def record(u, n, rec_at, rec, every):
    """Store ``u[:, rec_at]`` ((2, P) state) in ``rec[n // every]`` when ``n % every == 0``."""
    if n % every == 0 and n // every < rec.shape[0]:
        r = n // every
        for k in range(rec_at.shape[0]):
            rec[r, k, 0] = u[0, rec_at[k]]
            rec[r, k, 1] = u[1, rec_at[k]]


@njit(cache=True, inline="always")
def apply_sources(src_at, force, a2, dt, vx, vy, tx, ty):
    """Add the point forces ``force`` (S, 2) [N] of this step at the flat indices ``src_at``
    to the new velocity ``v^{n+1/2}`` and displacement ``u^{n+1}``."""
    for k in range(src_at.shape[0]):
        p = src_at[k]
        gx = a2[p] * force[k, 0]
        gy = a2[p] * force[k, 1]
        vx[p] += gx
        vy[p] += gy
        tx[p] += dt * gx
        ty[p] += dt * gy


@njit(cache=True, fastmath=True, boundscheck=False)
def advance_triangular(u, v, scale, coef, blocks, dt, width, step0, n_steps, src_at, src_force,
                       rec_at, rec, every):
    """Advance the structured triangular lattice by ``n_steps`` steps.

    The (ny, nx) node layout is padded by one ghost node on each side and flattened row-major
    with row stride ``width = nx + 2``: node (row r, col c) lives at ``(r + 1) * width + c + 1``.
    ``u``: (2, 2, P) displacement [m], (buffer, component, node); step n reads buffer ``n % 2``
    and writes the other. ``v``: (2, P) velocity [m/s]. ``scale``: (3, P) stiffness scale of the
    element from a node to its east / north-east / north-west neighbour (0 = no element).
    ``coef``: (2, P) the update coefficients ``a1, a2``. ``blocks``: (3, 3), rows = directions
    0, 60, 120 degrees, columns = Bxx, Bxy, Byy [N/m]. ``src_at``: (S,) flat node index of each
    source; ``src_force``: (steps, S, 2) [N] indexed by the global step number. Before every
    step ``n`` with ``n % every == 0`` the displacement at the flat indices ``rec_at`` (R,) is
    stored in ``rec[n // every]`` ((records, R, 2)). Indices are unsigned so that numba emits no wrap-around checks and LLVM vectorises.
    """
    exx, exy, eyy = blocks[0, 0], blocks[0, 1], blocks[0, 2]
    pxx, pxy, pyy = blocks[1, 0], blocks[1, 1], blocks[1, 2]
    qxx, qxy, qyy = blocks[2, 0], blocks[2, 1], blocks[2, 2]
    ny = u.shape[2] // width - 2
    nx = width - 2
    one = uint64(1)
    vx, vy = v[0], v[1]
    s_e, s_ne, s_nw = scale[0], scale[1], scale[2]
    a1, a2 = coef[0], coef[1]
    for n in range(step0, step0 + n_steps):
        cx, cy = u[n % 2, 0], u[n % 2, 1]
        tx, ty = u[(n + 1) % 2, 0], u[(n + 1) % 2, 1]
        record(u[n % 2], n, rec_at, rec, every)
        for j in range(1, ny + 1):
            o = uint64((j - 1) % 2)             # odd rows are shifted by +h/2
            row = uint64(j * width)
            up = uint64((j + 1) * width) + o    # up + i: north-east, up + i - 1: north-west
            down = uint64((j - 1) * width) + o  # down + i: south-east, down + i - 1: south-west
            for ii in range(nx):
                i = uint64(ii) + one
                p = row + i
                x0 = cx[p]
                y0 = cy[p]
                # 0 degrees: east, west
                se = s_e[p]
                sw = s_e[p - one]
                ax = se * (cx[p + one] - x0) + sw * (cx[p - one] - x0)
                ay = se * (cy[p + one] - y0) + sw * (cy[p - one] - y0)
                fx = exx * ax + exy * ay
                fy = exy * ax + eyy * ay
                # 60 degrees: north-east, south-west
                qa = up + i
                qb = down + i - one
                sa = s_ne[p]
                sb = s_ne[qb]
                ax = sa * (cx[qa] - x0) + sb * (cx[qb] - x0)
                ay = sa * (cy[qa] - y0) + sb * (cy[qb] - y0)
                fx += pxx * ax + pxy * ay
                fy += pxy * ax + pyy * ay
                # 120 degrees: north-west, south-east
                qa = up + i - one
                qb = down + i
                sa = s_nw[p]
                sb = s_nw[qb]
                ax = sa * (cx[qa] - x0) + sb * (cx[qb] - x0)
                ay = sa * (cy[qa] - y0) + sb * (cy[qb] - y0)
                fx += qxx * ax + qxy * ay
                fy += qxy * ax + qyy * ay
                wx = a1[p] * vx[p] + a2[p] * fx
                wy = a1[p] * vy[p] + a2[p] * fy
                vx[p] = wx
                vy[p] = wy
                tx[p] = x0 + dt * wx
                ty[p] = y0 + dt * wy
        apply_sources(src_at, src_force[n], a2, dt, vx, vy, tx, ty)


@njit(cache=True, fastmath=True, boundscheck=False)
def advance_csr(u, v, indptr, indices, block, coef, dt, step0, n_steps, src_at, src_force,
                rec_at, rec, every):
    """Advance a general lattice by ``n_steps``, gathering neighbours from a CSR list.

    ``u``: (2, 2, N) double-buffered displacement, ``v``: (2, N), ``coef``: (2, N) as in
    ``advance_triangular``; row ``i`` of the CSR (``indptr``, ``indices``) lists the neighbours
    ``j`` of node ``i`` and ``block``: (3, nnz) the element stiffness ``Bxx, Bxy, Byy`` [N/m].
    Sources and recording as in ``advance_triangular``.
    """
    n_nodes = u.shape[2]
    vx, vy = v[0], v[1]
    bxx, bxy, byy = block[0], block[1], block[2]
    a1, a2 = coef[0], coef[1]
    for n in range(step0, step0 + n_steps):
        cx, cy = u[n % 2, 0], u[n % 2, 1]
        tx, ty = u[(n + 1) % 2, 0], u[(n + 1) % 2, 1]
        record(u[n % 2], n, rec_at, rec, every)
        for ii in range(n_nodes):
            i = uint64(ii)
            x0 = cx[i]
            y0 = cy[i]
            fx = 0.0
            fy = 0.0
            for p in range(indptr[i], indptr[i + uint64(1)]):
                j = indices[p]
                dx = cx[j] - x0
                dy = cy[j] - y0
                fx += bxx[p] * dx + bxy[p] * dy
                fy += bxy[p] * dx + byy[p] * dy
            wx = a1[i] * vx[i] + a2[i] * fx
            wy = a1[i] * vy[i] + a2[i] * fy
            vx[i] = wx
            vy[i] = wy
            tx[i] = x0 + dt * wx
            ty[i] = y0 + dt * wy
        apply_sources(src_at, src_force[n], a2, dt, vx, vy, tx, ty)


@njit(cache=True)
def bond_forces(ux, uy, bonds, bxx, bxy, byy, fx, fy):
    """Element forces scattered to both end nodes: ``f_a += B (u_b - u_a)``, ``f_b -= ...`` [N]."""
    fx[:] = 0.0
    fy[:] = 0.0
    for e in range(bonds.shape[0]):
        a = bonds[e, 0]
        b = bonds[e, 1]
        dx = ux[b] - ux[a]
        dy = uy[b] - uy[a]
        gx = bxx[e] * dx + bxy[e] * dy
        gy = bxy[e] * dx + byy[e] * dy
        fx[a] += gx
        fy[a] += gy
        fx[b] -= gx
        fy[b] -= gy


@njit(cache=True)
def advance_bondlist(ux, uy, vx, vy, bonds, bxx, bxy, byy, a1, a2, dt, n_steps, fx, fy):
    """The naive integrator: a per-element force loop, then a per-node update (unforced)."""
    for _ in range(n_steps):
        bond_forces(ux, uy, bonds, bxx, bxy, byy, fx, fy)
        for i in range(ux.shape[0]):
            vx[i] = a1[i] * vx[i] + a2[i] * fx[i]
            vy[i] = a1[i] * vy[i] + a2[i] * fy[i]
            ux[i] += dt * vx[i]
            uy[i] += dt * vy[i]


# --------------------------------------------------------------------------- driver

def damping_profile(points: np.ndarray, width: float, height: float, layer: float,
                    peak: float) -> np.ndarray:
    """Absorbing-layer damping rate [1/s] per node: ``peak * s^3 (10 - 15 s + 6 s^2)`` where
    ``s`` in [0, 1] is the depth into a layer of width ``layer`` [m] at each edge (a smooth ramp,
    zero with zero slope and curvature where the layer starts, so it reflects little)."""
    if layer <= 0 or peak <= 0:
        return np.zeros(len(points))
    x, y = points[:, 0], points[:, 1]
    depth = np.maximum.reduce([layer - x, x - (width - layer), layer - y, y - (height - layer),
                               np.zeros_like(x)])
    s = np.clip(depth / layer, 0.0, 1.0)
    return peak * s**3 * (10 - 15 * s + 6 * s**2)


class Simulation:
    """One plate with its cut elements, ready to be advanced in time.

    Args:
        lattice: the plate.
        cut: (M,) bool, elements removed by cracks.
        damping: (N,) damping rate [1/s].
        dt: time step [s]; the caller checks it against ``lattice.stable_dt``.
        dtype: np.float32 or np.float64, the precision of the state.
        source_nodes: (S,) node indices of the point sources.
        source_force: (steps, S, 2) force of each source at each step [N].
        kernel: "auto" (structured for the triangular lattice, CSR otherwise), "csr" or "bondlist".
    """

    def __init__(self, lattice: Lattice, cut: np.ndarray, damping: np.ndarray, dt: float,
                 dtype=np.float32, source_nodes=None, source_force=None, kernel: str = "auto"):
        self.lattice, self.dt, self.dtype, self.step = lattice, float(dt), np.dtype(dtype), 0
        n = lattice.n_nodes
        self.source_nodes = np.zeros(0, np.int64) if source_nodes is None else np.asarray(source_nodes)
        self.source_force = (np.zeros((0, 0, 2), self.dtype) if source_force is None
                             else np.ascontiguousarray(source_force, self.dtype))
        keep = ~np.asarray(cut, bool)
        self.bonds = np.ascontiguousarray(lattice.bonds[keep])
        blocks = stiffness_blocks(lattice)
        self.blocks = tuple(np.ascontiguousarray(b[keep]) for b in blocks)
        self.a1 = (1 - damping * dt / 2) / (1 + damping * dt / 2)
        self.a2 = dt / (lattice.mass * (1 + damping * dt / 2))
        if kernel == "auto":
            kernel = "triangular" if lattice.kind == "triangular" else "csr"
        if kernel not in ("triangular", "csr", "bondlist"):
            raise ValueError(f"unknown kernel {kernel!r}")
        self.kernel = kernel
        if kernel == "triangular":
            self._init_structured(keep, blocks)
        else:
            self._flat = np.arange(n)
            self.u = np.zeros((2, 2, n), self.dtype)
            self.v = np.zeros((2, n), self.dtype)
            self._coef = np.stack([self.a1, self.a2]).astype(self.dtype)
            if kernel == "csr":
                self._init_csr()
            else:
                self._f = np.zeros((2, n), self.dtype)
                self._block = np.stack(self.blocks).astype(self.dtype)

    # -- set-up of the two fast layouts
    def _init_structured(self, keep: np.ndarray, blocks: tuple[np.ndarray, ...]) -> None:
        lat = self.lattice
        ny, nx = lat.grid_shape
        r, c = np.divmod(lat.grid_index, nx)
        self._width = nx + 2
        self._flat = (r + 1) * self._width + c + 1          # node -> padded flat index
        size = (ny + 2) * self._width
        self.u = np.zeros((2, 2, size), self.dtype)
        self.v = np.zeros((2, size), self.dtype)
        self._coef = np.zeros((2, size), self.dtype)
        self._coef[0] = 1.0
        self._coef[0, self._flat] = self.a1
        self._coef[1, self._flat] = self.a2
        # each element as the (flat) node it starts from and a direction 0, 60, 120 degrees
        ra, ca = r[lat.bonds[:, 0]], c[lat.bonds[:, 0]]
        rb, cb = r[lat.bonds[:, 1]], c[lat.bonds[:, 1]]
        east = (cb + 0.5 * (rb % 2)) > (ca + 0.5 * (ra % 2))
        direction = np.where(rb == ra, 0, np.where(east, 1, 2))
        self._scale = np.zeros((3, size), self.dtype)
        blocks3 = np.empty((3, 3))
        for d in range(3):
            sel = np.flatnonzero(direction == d)
            interior = sel[np.argmax(lat.k_normal[sel])]      # full stiffness, scale 1
            blocks3[d] = [b[interior] for b in blocks]
            self._scale[d, self._flat[lat.bonds[sel, 0]]] = np.where(
                keep[sel], lat.k_normal[sel] / lat.k_normal[interior], 0.0)
        self._blocks3 = blocks3.astype(self.dtype)

    def _init_csr(self) -> None:
        n = self.lattice.n_nodes
        a, b = self.bonds[:, 0], self.bonds[:, 1]
        rows = np.concatenate([a, b])
        order = np.argsort(rows, kind="stable")
        self.indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))]).astype(np.uint64)
        self.indices = np.concatenate([b, a])[order].astype(np.uint64)
        self._block = np.stack([np.concatenate([x, x])[order] for x in self.blocks]).astype(self.dtype)

    # -- state access
    def _current(self) -> int:
        return 0 if self.kernel == "bondlist" else self.step % 2

    def displacement(self) -> np.ndarray:
        """Current displacement ``u^n`` (N, 2) [m] in lattice node order."""
        return self.u[self._current()][:, self._flat].T.copy()

    def velocity(self) -> np.ndarray:
        """Last half-step velocity ``v^{n-1/2}`` (N, 2) [m/s] in lattice node order."""
        return self.v[:, self._flat].T.copy()

    def set_state(self, u: np.ndarray, v: np.ndarray) -> None:
        """Set displacement ``u^n`` and velocity ``v^{n-1/2}``, both (N, 2), at the current step."""
        self.u[self._current()][:, self._flat] = u.T
        self.v[:, self._flat] = v.T

    def advance(self, n_steps: int, record_nodes: np.ndarray | None = None,
                records: np.ndarray | None = None, every: int = 1) -> None:
        """Advance by ``n_steps`` time steps (the sources are indexed by the global step).

        With ``record_nodes`` (R,) and ``records`` (n_records, R, 2), the displacement at those
        nodes before every step ``n`` with ``n % every == 0`` goes to ``records[n // every]``.
        """
        if n_steps <= 0:
            return
        if self.source_force.shape[1] and self.step + n_steps > len(self.source_force):
            raise ValueError("the source time series is shorter than the simulation")
        force = self.source_force if self.source_force.shape[1] else np.zeros((0, 0, 2), self.dtype)
        dt = self.dtype.type(self.dt)
        src_at = self._flat[self.source_nodes].astype(np.uint64)
        if record_nodes is None:
            rec_at, records = np.zeros(0, np.uint64), np.zeros((0, 0, 2), self.dtype)
        else:
            rec_at = self._flat[record_nodes].astype(np.uint64)
        if self.kernel == "triangular":
            advance_triangular(self.u, self.v, self._scale, self._coef, self._blocks3, dt,
                               self._width, self.step, n_steps, src_at, force, rec_at,
                               records, every)
        elif self.kernel == "csr":
            advance_csr(self.u, self.v, self.indptr, self.indices, self._block, self._coef, dt,
                        self.step, n_steps, src_at, force, rec_at, records, every)
        else:
            if len(self.source_nodes) or record_nodes is not None:
                raise ValueError("the bond-list kernel is the unforced reference: no sources, "
                                 "no recording")
            advance_bondlist(self.u[0, 0], self.u[0, 1], self.v[0], self.v[1], self.bonds,
                             *self._block, *self._coef, dt, n_steps, self._f[0], self._f[1])
        self.step += n_steps

    def forces(self, u: np.ndarray) -> np.ndarray:
        """Elastic forces ``-K u`` (N, 2) [N] for a displacement (N, 2), in float64."""
        fx = np.zeros(len(u))
        fy = np.zeros(len(u))
        bond_forces(np.ascontiguousarray(u[:, 0], np.float64),
                    np.ascontiguousarray(u[:, 1], np.float64), self.bonds, *self.blocks, fx, fy)
        return np.column_stack([fx, fy])

    def energy(self, u: np.ndarray, v: np.ndarray) -> float:
        """Mechanical energy ``v M v / 2 + u K u / 2`` [J] of a state ``u, v`` (N, 2), in float64."""
        u, v = u.astype(np.float64), v.astype(np.float64)
        return float(0.5 * np.sum(self.lattice.mass[:, None] * v**2)
                     - 0.5 * np.sum(u * self.forces(u)))
