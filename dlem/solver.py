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

With ``lattice.interaction = "cst"`` the elements are constant-strain triangles instead:
``f_i = -sum_{e ni i} t A_e sigma_e grad N_i^e`` with ``sigma_e = D eps_e`` the triangle's
Hooke stress (a linear finite element with lumped mass), written element-wise as
``f_i = sum_j C_ij (u_j - u_i)`` with non-symmetric blocks ``C_ij = C_ji^T``
(``lattice.cst_blocks``). A crack removes every triangle one of whose edges it cuts.

Three force kernels compute the same thing:

* ``advance_triangular``: the regular triangular lattice as a padded 2D stencil, gathering the
  six neighbours of each node; unit-stride inner loops that LLVM vectorises. The default.
* ``advance_triangular_cst``: the same layout for constant-strain triangles, in two passes
  per step (each node's two triangles' stresses, then each node's six triangles' forces).
* ``advance_csr``: any lattice (the random one) and either interaction, gathering neighbours
  through a CSR list with a general 2x2 block per neighbour.
* ``advance_bondlist``: the straightforward loop over an element list scattering forces to
  both ends; the reference the benchmark compares with, and an independent check in tests.
"""

from __future__ import annotations

import numpy as np
from numba import njit, uint64

from .lattice import Lattice, cst_blocks, cst_gradients, cst_matrix, stiffness_blocks


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
def advance_triangular_cst(u, v, sig, tri, coef, grads, moduli, dt, width, step0, n_steps,
                           src_at, src_force, rec_at, rec, every):
    """Advance the structured triangular lattice of constant-strain triangles by ``n_steps``.

    Layout, ``u``, ``v``, ``coef``, sources and recording as in ``advance_triangular``. Every
    triangle belongs to one node ``p``: the up triangle ``U(p) = (p, E, NE)`` and the down
    triangle ``D(p) = (p, NE, NW)``, both counter-clockwise; ``tri``: (2, P) their weights
    (1 present, 0 absent or cut). ``grads``: (2, 3, 2) the shape-function gradients [1/m] of
    vertices 0, 1, 2 of U and D (the same for every triangle of the regular lattice);
    ``moduli``: (3,) ``t A (lam + 2 mu), t A lam, t A mu`` [N m].

    Pass 1 stores in ``sig`` ((6, P), zero on the ghost frame) ``t A sigma`` of U(p) and D(p)
    (xx, yy, xy each), from ``eps = sum_k grad N_k (u_k - u_0)``. Pass 2 gathers, for node
    ``p``, ``f_p = -sum t A sigma grad N_p`` over its six triangles: U(p), U(W), U(SW) (as
    vertex 0, 1, 2) and D(p), D(SW), D(SE) (as vertex 0, 1, 2), then updates ``v`` and ``u``.
    Unsigned indices, as in ``advance_triangular``, let LLVM vectorise both passes.
    """
    u1x, u1y, u2x, u2y = grads[0, 1, 0], grads[0, 1, 1], grads[0, 2, 0], grads[0, 2, 1]
    d1x, d1y, d2x, d2y = grads[1, 1, 0], grads[1, 1, 1], grads[1, 2, 0], grads[1, 2, 1]
    u0x, u0y, d0x, d0y = grads[0, 0, 0], grads[0, 0, 1], grads[1, 0, 0], grads[1, 0, 1]
    c11, c12, c33 = moduli[0], moduli[1], moduli[2]
    ny = u.shape[2] // width - 2
    nx = width - 2
    one = uint64(1)
    vx, vy = v[0], v[1]
    s_u, s_d = tri[0], tri[1]
    uxx, uyy, uxy, dxx, dyy, dxy = sig[0], sig[1], sig[2], sig[3], sig[4], sig[5]
    a1, a2 = coef[0], coef[1]
    for n in range(step0, step0 + n_steps):
        cx, cy = u[n % 2, 0], u[n % 2, 1]
        tx, ty = u[(n + 1) % 2, 0], u[(n + 1) % 2, 1]
        record(u[n % 2], n, rec_at, rec, every)
        for j in range(1, ny + 1):                    # pass 1: stresses of U(p) and D(p)
            o = uint64((j - 1) % 2)
            row = uint64(j * width)
            up = uint64((j + 1) * width) + o
            for ii in range(nx):
                i = uint64(ii) + one
                p = row + i
                x0 = cx[p]
                y0 = cy[p]
                ex = cx[p + one] - x0                 # east
                ey = cy[p + one] - y0
                nex = cx[up + i] - x0                 # north-east
                ney = cy[up + i] - y0
                nwx = cx[up + i - one] - x0           # north-west
                nwy = cy[up + i - one] - y0
                # U(p) = (p, E, NE)
                exx = u1x * ex + u2x * nex
                eyy = u1y * ey + u2y * ney
                gxy = u1y * ex + u2y * nex + u1x * ey + u2x * ney
                w = s_u[p]
                uxx[p] = w * (c11 * exx + c12 * eyy)
                uyy[p] = w * (c12 * exx + c11 * eyy)
                uxy[p] = w * (c33 * gxy)
                # D(p) = (p, NE, NW)
                exx = d1x * nex + d2x * nwx
                eyy = d1y * ney + d2y * nwy
                gxy = d1y * nex + d2y * nwx + d1x * ney + d2x * nwy
                w = s_d[p]
                dxx[p] = w * (c11 * exx + c12 * eyy)
                dyy[p] = w * (c12 * exx + c11 * eyy)
                dxy[p] = w * (c33 * gxy)
        for j in range(1, ny + 1):                    # pass 2: forces and update
            o = uint64((j - 1) % 2)
            row = uint64(j * width)
            down = uint64((j - 1) * width) + o        # down + i: south-east, down + i - 1: south-west
            for ii in range(nx):
                i = uint64(ii) + one
                p = row + i
                q = p - one                           # W
                sw = down + i - one
                se = down + i
                fx = -(uxx[p] * u0x + uxy[p] * u0y + uxx[q] * u1x + uxy[q] * u1y
                       + uxx[sw] * u2x + uxy[sw] * u2y + dxx[p] * d0x + dxy[p] * d0y
                       + dxx[sw] * d1x + dxy[sw] * d1y + dxx[se] * d2x + dxy[se] * d2y)
                fy = -(uxy[p] * u0x + uyy[p] * u0y + uxy[q] * u1x + uyy[q] * u1y
                       + uxy[sw] * u2x + uyy[sw] * u2y + dxy[p] * d0x + dyy[p] * d0y
                       + dxy[sw] * d1x + dyy[sw] * d1y + dxy[se] * d2x + dyy[se] * d2y)
                x0 = cx[p]
                y0 = cy[p]
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
    ``j`` of node ``i`` and ``block``: (4, nnz) the coupling ``Cxx, Cxy, Cyx, Cyy`` [N/m] in
    ``f_i += C (u_j - u_i)`` (springs: the symmetric ``B``, ``Cyx = Cxy``).
    Sources and recording as in ``advance_triangular``.
    """
    n_nodes = u.shape[2]
    vx, vy = v[0], v[1]
    bxx, bxy, byx, byy = block[0], block[1], block[2], block[3]
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
                fy += byx[p] * dx + byy[p] * dy
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
        self.interaction = lattice.interaction
        if self.interaction == "cst":
            # a triangle one of whose edges is cut is removed; its nodes keep their mass
            self.present = ~(~keep)[lattice.triangle_bonds].any(axis=1)
            blocks = cst_blocks(lattice, self.present)
        else:
            blocks = stiffness_blocks(lattice)
        self.blocks = tuple(np.ascontiguousarray(b[keep]) for b in blocks)
        self.a1 = (1 - damping * dt / 2) / (1 + damping * dt / 2)
        self.a2 = dt / (lattice.mass * (1 + damping * dt / 2))
        if kernel == "auto":
            kernel = "triangular" if lattice.kind == "triangular" else "csr"
        if kernel not in ("triangular", "csr", "bondlist"):
            raise ValueError(f"unknown kernel {kernel!r}")
        if kernel == "bondlist" and self.interaction == "cst":
            raise ValueError("the bond-list kernel is for springs; use 'triangular' or 'csr'")
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
        if self.interaction == "cst":
            self._init_structured_cst(r, c, size)
            return
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

    def _init_structured_cst(self, r: np.ndarray, c: np.ndarray, size: int) -> None:
        """Each triangle as the up (U) or down (D) triangle of its anchor node: U has its
        horizontal edge at the bottom and is anchored at the bottom-left vertex, D at the
        bottom vertex; vertices are rotated so that the anchor is vertex 0."""
        lat = self.lattice
        tri = lat.triangles
        tr = r[tri]                                          # (T, 3) rows of the vertices
        x = c[tri] + 0.5 * (tr % 2)                          # column positions in units of h
        up = (tr == tr.min(axis=1, keepdims=True)).sum(axis=1) == 2
        anchor = np.argmin(tr * (lat.grid_shape[1] + 2) + x, axis=1)   # lowest row, then leftmost
        rolled = np.take_along_axis(tri, (anchor[:, None] + np.arange(3)) % 3, axis=1)
        grad, area = cst_gradients(lat)
        grads = np.empty((2, 3, 2))
        self._tri = np.zeros((2, size), self.dtype)
        for o, sel in ((0, up), (1, ~up)):
            idx = np.flatnonzero(sel)
            shift = anchor[idx]
            g = np.take_along_axis(grad[idx], ((shift[:, None] + np.arange(3)) % 3)[:, :, None],
                                   axis=1)
            grads[o] = np.median(g, axis=0)                  # interior triangles: all equal
            self._tri[o, self._flat[rolled[idx, 0]]] = self.present[idx]
        lam, mu = lat.lame
        t_area = lat.thickness * np.median(area)
        self._grads = grads.astype(self.dtype)
        self._moduli = np.array([t_area * (lam + 2 * mu), t_area * lam, t_area * mu], self.dtype)
        self._sig = np.zeros((6, size), self.dtype)

    def _init_csr(self) -> None:
        n = self.lattice.n_nodes
        a, b = self.bonds[:, 0], self.bonds[:, 1]
        rows = np.concatenate([a, b])
        order = np.argsort(rows, kind="stable")
        self.indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))]).astype(np.uint64)
        self.indices = np.concatenate([b, a])[order].astype(np.uint64)
        if self.interaction == "cst":
            cxx, cxy, cyx, cyy = self.blocks           # node b sees C_ba = C_ab^T
            pairs = ((cxx, cxx), (cxy, cyx), (cyx, cxy), (cyy, cyy))
        else:
            bxx, bxy, byy = self.blocks
            pairs = ((bxx, bxx), (bxy, bxy), (bxy, bxy), (byy, byy))
        self._block = np.stack([np.concatenate(pair)[order] for pair in pairs]).astype(self.dtype)

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
        if self.kernel == "triangular" and self.interaction == "cst":
            advance_triangular_cst(self.u, self.v, self._sig, self._tri, self._coef, self._grads,
                                   self._moduli, dt, self._width, self.step, n_steps, src_at,
                                   force, rec_at, records, every)
        elif self.kernel == "triangular":
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
        if self.interaction == "cst":
            k = cst_matrix(self.lattice, self.present)
            return -(k @ np.asarray(u, np.float64).ravel()).reshape(-1, 2)
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
