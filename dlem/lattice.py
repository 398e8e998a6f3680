"""Lattice geometry, masses and spring stiffnesses of the dLEM plate.

A plate of width ``Lx`` and height ``Ly`` [m] is discretised as point masses (nodes) joined by
two-node elements (springs) along the edges of a triangulation:

* ``triangular``: the regular triangular lattice of spacing ``h = Lx / (nodes_x - 1)``; rows
  are ``h * sqrt(3) / 2`` apart and every other row is shifted by ``h / 2`` (and holds one node
  fewer, so the lattice stays inside the plate). Fast structured kernel.
* ``random``: the same nodes jittered by up to ``randomness * h / 2`` (boundary nodes stay on
  the boundary), re-triangulated by Delaunay (the dual of the Voronoi tessellation), in the
  spirit of the vectorizable random lattice of Sattari et al. (2022).

Each element carries a *normal* spring ``k_n`` (force along the element for its elongation)
and a *shear* spring ``k_s`` (force across it for the relative transverse displacement).

Calibration (regular lattice, bond length ``h``, plate thickness ``t``). Writing the energy of
a node's three bonds under a uniform displacement gradient ``G`` and dividing by the node's
area ``sqrt(3) h^2 / 2`` gives, with ``eps = sym(G)`` and ``omega = skew(G)``,

    w = lam_L / 2 (tr eps)^2 + mu_L eps:eps + b omega:omega,
    lam_L = sqrt(3) (k_n - k_s) / (4 t),  mu_L = sqrt(3) (k_n + k_s) / (4 t),
    b = sqrt(3) k_s / (2 t).

* ``energy`` calibration matches ``lam_L, mu_L`` to the continuum (strain-energy
  equivalence; Griffiths & Mustoe, Int. J. Numer. Meth. Eng. 52 (2001) 1059, plane stress):
  ``k_n = E t / (sqrt(3) (1 - nu))``, ``k_s = E t (1 - 3 nu) / (sqrt(3) (1 - nu^2))``.
  The rotational term ``b`` (the shear spring is not rotation invariant) then stiffens shear
  waves: ``c_s`` comes out ``sqrt(1 + b / mu)`` too fast (+7 % at nu = 0.3).
* ``waves`` (default) matches the acoustic tensor instead, so that P and S plane waves travel
  at the continuum speeds ``c_p^2 = (lam + 2 mu) / rho``, ``c_s^2 = mu / rho``. For a plane wave
  ``G = u k^T`` the energy is ``2 a (u.k)^2 + (a + b) |u|^2 |k|^2`` with
  ``a = sqrt(3) (k_n - k_s) / (8 t)``; equating to the continuum gives ``a = (lam + mu) / 4``,
  ``a + b = mu / 2``:  ``k_n - k_s = E t / (sqrt(3) (1 - nu))`` (as above) and
  ``k_s = t (mu - lam) / (2 sqrt(3))``.
  This is what wave-based crack detection needs; the static moduli then differ from the
  material's by up to a few per cent in E (measured from the assembled stiffness,
  tests/test_dlem_calibration.py: E -0.19 %, nu 0.3325 at nu = 0.33; E -3.75 %, nu 0.3125 at
  nu = 0.25), growing as nu falls.

Here ``lam`` is the in-plane Lame constant: ``E nu / (1 - nu^2)`` in plane stress,
``E nu / ((1 + nu)(1 - 2 nu))`` in plane strain; ``mu = E / (2 (1 + nu))``. Both calibrations
need ``k_s >= 0``, i.e. ``mu >= lam``: ``nu <= 1/3`` (plane stress) or ``nu <= 1/4`` (strain).

Irregular lattices: each element gets the regular stiffness scaled by ``(A_ij / A_0) (h / l_ij)^2``
where ``A_ij`` is one third of the area of the triangles sharing the element and
``A_0 = sqrt(3) h^2 / 6`` its regular value (energy ``k l^2 eps^2 / 2`` proportional to the area
the element represents). Masses are ``rho t`` times one third of the adjacent triangles' area.
The same rule gives boundary elements of the regular lattice half stiffness.

Springs are not invariant to rigid rotation (the ``b`` term), so free edges and crack faces
are traction free only at ``k_s = 0``. ``interaction='cst'`` replaces them by a constant-strain
triangle (linear finite element) per lattice triangle: rotation invariant, Hooke's law
everywhere, any nu, consistent on irregular triangles (``cst_element_blocks``, ``cst_blocks``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sparse
from scipy.sparse.linalg import eigsh
from scipy.spatial import Delaunay

SQRT3 = np.sqrt(3.0)


@dataclass(frozen=True)
class Lattice:
    """A triangulated plate.

    Attributes:
        points: (N, 2) node positions [m].
        bonds: (M, 2) node indices of each element, ``bonds[:, 0] < bonds[:, 1]``.
        k_normal, k_shear: (M,) spring stiffnesses [N/m].
        mass: (N,) nodal masses [kg].
        spacing: nominal node spacing ``h`` [m].
        kind: "triangular" or "random".
        grid_shape: (ny, nx) of the regular row/column layout the nodes come from.
        grid_index: (N,) ``row * nx + col`` of each node in that layout.
        triangles: (T, 3) node indices of the triangles, counter-clockwise.
        triangle_bonds: (T, 3) element index of each triangle's edges (0-1, 1-2, 2-0).
        interaction: "springs" (normal + shear springs per element) or "cst" (a linear,
            constant-strain-triangle energy per triangle; ``k_normal``, ``k_shear`` are 0).
        lame: in-plane Lame constants ``(lam, mu)`` [Pa] of the plate.
        thickness: plate thickness [m].
    """

    points: np.ndarray
    bonds: np.ndarray
    k_normal: np.ndarray
    k_shear: np.ndarray
    mass: np.ndarray
    spacing: float
    kind: str
    grid_shape: tuple[int, int]
    grid_index: np.ndarray
    triangles: np.ndarray | None = None
    triangle_bonds: np.ndarray | None = None
    interaction: str = "springs"
    lame: tuple[float, float] = (0.0, 0.0)
    thickness: float = 0.0

    @property
    def n_nodes(self) -> int:
        return len(self.points)

    def bond_geometry(self) -> tuple[np.ndarray, np.ndarray]:
        """Unit vectors (M, 2) from the first to the second node, and lengths (M,) [m]."""
        d = self.points[self.bonds[:, 1]] - self.points[self.bonds[:, 0]]
        length = np.hypot(d[:, 0], d[:, 1])
        return d / length[:, None], length


def lame_constants(E: float, nu: float, plane: str = "stress") -> tuple[float, float]:
    """In-plane Lame constants ``(lam, mu)`` [Pa] for plane stress or plane strain."""
    mu = E / (2.0 * (1.0 + nu))
    lam = E * nu / (1.0 - nu**2) if plane == "stress" else E * nu / ((1.0 + nu) * (1.0 - 2.0 * nu))
    return lam, mu


def wave_speeds(E: float, nu: float, rho: float, plane: str = "stress") -> tuple[float, float]:
    """Continuum P- and S-wave speeds ``(c_p, c_s)`` [m/s] of the in-plane problem."""
    lam, mu = lame_constants(E, nu, plane)
    return float(np.sqrt((lam + 2 * mu) / rho)), float(np.sqrt(mu / rho))


def spring_constants(E: float, nu: float, thickness: float, plane: str = "stress",
                     calibration: str = "waves") -> tuple[float, float]:
    """Normal and shear stiffness ``(k_n, k_s)`` [N/m] of a regular-lattice element.

    See the module docstring for the derivation of both calibrations.
    """
    lam, mu = lame_constants(E, nu, plane)
    if mu < lam * (1 - 1e-12):
        limit = "1/3 in plane stress" if plane == "stress" else "1/4 in plane strain"
        raise ValueError(
            f"poisson_ratio={nu} cannot be represented by normal + shear springs on a "
            f"triangular lattice (needs a non-negative shear spring, nu <= {limit})")
    t = thickness
    if calibration == "energy":
        return 2 * t * (mu + lam) / SQRT3, 2 * t * (mu - lam) / SQRT3
    if calibration == "waves":
        k_s = t * (mu - lam) / (2 * SQRT3)
        return 2 * t * (lam + mu) / SQRT3 + k_s, k_s
    raise ValueError(f"unknown calibration {calibration!r}; expected 'waves' or 'energy'")


def triangular_grid(width: float, height: float, nodes_x: int):
    """Node positions of the regular triangular lattice filling the plate.

    Returns ``points (N, 2)``, ``grid_index (N,)``, ``(ny, nx)`` and the spacing ``h`` [m].
    Odd rows are shifted by ``h/2`` and lack their last node; the rows are centred in ``y``.
    """
    h = width / (nodes_x - 1)
    dy = h * SQRT3 / 2
    ny = int(np.floor(height / dy + 1e-9)) + 1
    if ny < 3:
        raise ValueError(f"lattice.nodes_x={nodes_x} gives fewer than 3 rows on a plate "
                         f"{height} m high; use more nodes")
    y0 = (height - (ny - 1) * dy) / 2
    rows, cols = np.meshgrid(np.arange(ny), np.arange(nodes_x), indexing="ij")
    keep = ~((rows % 2 == 1) & (cols == nodes_x - 1))
    rows, cols = rows[keep], cols[keep]
    points = np.column_stack([(cols + 0.5 * (rows % 2)) * h, y0 + rows * dy])
    return points, rows * nodes_x + cols, (ny, nodes_x), h


def _jitter(points: np.ndarray, width: float, height: float, h: float, randomness: float,
            rng: np.random.Generator) -> np.ndarray:
    """Move interior nodes uniformly within a disc of radius ``randomness * h / 2``."""
    tol = 1e-9 * h
    x, y = points[:, 0], points[:, 1]
    ymin, ymax = y.min(), y.max()
    interior = (y > ymin + tol) & (y < ymax - tol) & (x > h / 2 + tol) & (x < width - h / 2 - tol)
    r = randomness * h / 2 * np.sqrt(rng.random(len(points)))
    phi = rng.random(len(points)) * 2 * np.pi
    out = points.copy()
    out[interior, 0] += (r * np.cos(phi))[interior]
    out[interior, 1] += (r * np.sin(phi))[interior]
    return out


def _triangles(points: np.ndarray) -> np.ndarray:
    """Delaunay triangles (T, 3), without the obtuse slivers Delaunay adds along a zigzag hull.

    The left and right edges of the triangular lattice zigzag by ``h/2``; the convex hull
    closes each notch with a 120-degree triangle that is not part of the plate.
    """
    tri = Delaunay(points)
    simplices, neighbors = tri.simplices, tri.neighbors
    p = points[simplices]                                     # (T, 3, 2)
    keep = np.ones(len(simplices), bool)
    for k in range(3):
        a = p[:, k]
        b, c = p[:, (k + 1) % 3], p[:, (k + 2) % 3]
        u, v = b - a, c - a
        cos = (u * v).sum(1) / (np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1))
        on_hull = neighbors[:, k] == -1                       # the edge opposite vertex k
        keep &= ~(on_hull & (cos < np.cos(np.radians(119.0))))
    return simplices[keep]


def _assemble(points: np.ndarray, triangles: np.ndarray, h: float, k_n: float, k_s: float,
              rho_t: float):
    """Bonds, per-bond stiffness scaled by ``(A_ij / A_0) (h / l_ij)^2``, lumped masses, and the
    (T, 3) bond index of each triangle's edges 0-1, 1-2, 2-0."""
    p = points[triangles]
    area = 0.5 * np.abs((p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1])
                        - (p[:, 2, 0] - p[:, 0, 0]) * (p[:, 1, 1] - p[:, 0, 1]))
    edges = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    edges.sort(axis=1)
    bonds, inverse = np.unique(edges, axis=0, return_inverse=True)
    bond_area = np.bincount(inverse.ravel(), weights=np.tile(area / 3, 3), minlength=len(bonds))
    mass = rho_t * np.bincount(triangles.ravel(), weights=np.repeat(area / 3, 3),
                               minlength=len(points))
    length = np.linalg.norm(points[bonds[:, 1]] - points[bonds[:, 0]], axis=1)
    scale = bond_area / (SQRT3 * h**2 / 6) * (h / length) ** 2
    return bonds, k_n * scale, k_s * scale, mass, inverse.reshape(3, -1).T


def build_lattice(plate: dict, lattice: dict) -> Lattice:
    """Build the lattice from the validated ``plate`` and ``lattice`` config sections.

    ``lattice.interaction`` (absent = ``springs``) selects the element energy: ``springs``
    (calibrated by ``lattice.calibration``, nu <= 1/3) or ``cst`` (any nu; see ``cst_blocks``).
    """
    points, grid_index, shape, h = triangular_grid(plate["width"], plate["height"],
                                                   lattice["nodes_x"])
    kind = lattice.get("kind", "triangular")
    if kind == "random":
        rng = np.random.default_rng(lattice.get("lattice_seed", 0))
        points = _jitter(points, plate["width"], plate["height"], h,
                         lattice.get("randomness", 0.0), rng)
    interaction = lattice.get("interaction", "springs")
    plane = plate.get("plane", "stress")
    if interaction == "springs":
        k_n, k_s = spring_constants(plate["youngs_modulus"], plate["poisson_ratio"],
                                    plate["thickness"], plane, lattice.get("calibration", "waves"))
    elif interaction == "cst":
        k_n = k_s = 0.0
    else:
        raise ValueError(f"unknown lattice.interaction {interaction!r}; expected 'springs' or 'cst'")
    triangles = _triangles(points)
    p = points[triangles]
    clockwise = ((p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1])
                 - (p[:, 2, 0] - p[:, 0, 0]) * (p[:, 1, 1] - p[:, 0, 1])) < 0
    triangles[clockwise] = triangles[clockwise][:, [0, 2, 1]]   # keeps vertex 0: same areas
    bonds, kn, ks, mass, tri_bonds = _assemble(points, triangles, h, k_n, k_s,
                                               plate["density"] * plate["thickness"])
    if np.any(mass <= 0):
        raise ValueError("lattice has nodes outside every element; refine lattice.nodes_x")
    return Lattice(points, bonds, kn, ks, mass, h, kind, shape, grid_index, triangles, tri_bonds,
                   interaction, lame_constants(plate["youngs_modulus"], plate["poisson_ratio"], plane),
                   float(plate["thickness"]))


def cst_gradients(lattice: Lattice) -> tuple[np.ndarray, np.ndarray]:
    """Shape-function gradients ``dN_k/dx, dN_k/dy`` (T, 3, 2) [1/m] of each triangle's
    vertices and the triangle areas (T,) [m^2]: ``grad N_k = (y_{k+1} - y_{k+2},
    x_{k+2} - x_{k+1}) / (2 A)`` for counter-clockwise vertices."""
    p = lattice.points[lattice.triangles]                         # (T, 3, 2)
    nxt, prv = p[:, [1, 2, 0]], p[:, [2, 0, 1]]
    two_a = ((p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1])
             - (p[:, 2, 0] - p[:, 0, 0]) * (p[:, 1, 1] - p[:, 0, 1]))
    grad = np.stack([nxt[..., 1] - prv[..., 1], prv[..., 0] - nxt[..., 0]], axis=-1)
    return grad / two_a[:, None, None], two_a / 2


def cst_element_blocks(lattice: Lattice) -> np.ndarray:
    """Element stiffness blocks (T, 3, 3, 2, 2) [N/m] of the constant-strain triangles:
    ``K^e_kl,ij = t A [lam a_i b_j + mu (b_i a_j + delta_ij a.b)]`` with ``a = grad N_k``,
    ``b = grad N_l``: the derivative of the energy ``t A (lam/2 (tr eps)^2 + mu eps:eps)``
    (Hooke's law exactly, any nu) with respect to ``u_k`` and ``u_l``."""
    grad, area = cst_gradients(lattice)
    lam, mu = lattice.lame
    a = grad[:, :, None, :, None]                                 # (T, k, 1, i, 1)
    b = grad[:, None, :, None, :]                                 # (T, 1, l, 1, j)
    ab = np.einsum("tki,tli->tkl", grad, grad)[..., None, None]
    bt = np.swapaxes(b, -1, -2)
    at = np.swapaxes(a, -1, -2)
    k = lam * a * b + mu * (bt * at + ab * np.eye(2))
    return lattice.thickness * area[:, None, None, None, None] * k


def cst_matrix(lattice: Lattice, present: np.ndarray | None = None) -> sparse.csr_matrix:
    """The (2N, 2N) stiffness matrix [N/m] of the ``present`` (T,) triangles (default all),
    degrees of freedom ordered (x0, y0, x1, ...)."""
    ke = cst_element_blocks(lattice)
    tri = lattice.triangles
    if present is not None:
        ke, tri = ke[present], tri[present]
    dof = 2 * tri[:, :, None] + np.arange(2)                      # (T, 3, 2)
    rows = np.broadcast_to(dof[:, :, None, :, None], ke.shape)
    cols = np.broadcast_to(dof[:, None, :, None, :], ke.shape)
    n = 2 * lattice.n_nodes
    return sparse.csr_matrix((ke.ravel(), (rows.ravel(), cols.ravel())), shape=(n, n))


def cst_blocks(lattice: Lattice, present: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """Per-element 2x2 coupling ``C = -sum_e K^e_ab`` of the constant-strain triangles, over the
    ``present`` (T,) triangles (default all) that hold element ``(a, b)``, as
    ``(Cxx, Cxy, Cyx, Cyy)`` (M,) each [N/m].

    Each triangle's stiffness is translation invariant (its rows sum to zero), so the force on
    node ``a`` is a sum over its elements, ``f_a = sum_b C_ab (u_b - u_a)``, with
    ``C_ba = C_ab^T``: the same element-wise form as the springs, but ``C`` is not symmetric and
    depends on which of the element's (one or two) triangles are present. An element whose
    triangles are all removed carries nothing.
    """
    ke = cst_element_blocks(lattice)
    tri, tri_bonds = lattice.triangles, lattice.triangle_bonds
    if present is not None:
        ke, tri, tri_bonds = ke[present], tri[present], tri_bonds[present]
    c = np.zeros((len(lattice.bonds), 2, 2))
    for e, (k, l) in enumerate(((0, 1), (1, 2), (2, 0))):
        bond = tri_bonds[:, e]
        forward = tri[:, k] == lattice.bonds[bond, 0]             # vertex k is the element's a
        block = np.where(forward[:, None, None], ke[:, k, l], np.swapaxes(ke[:, k, l], -1, -2))
        np.add.at(c, bond, -block)
    return c[:, 0, 0], c[:, 0, 1], c[:, 1, 0], c[:, 1, 1]


def stiffness_blocks(lattice: Lattice, k_normal: np.ndarray | None = None,
                     k_shear: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """Per-element 2x2 stiffness ``B = k_n n n^T + k_s (I - n n^T)`` as ``(Bxx, Bxy, Byy)``.

    The force on node ``a`` of element ``(a, b)`` is ``B (u_b - u_a)`` [N].
    """
    kn = lattice.k_normal if k_normal is None else k_normal
    ks = lattice.k_shear if k_shear is None else k_shear
    n, _ = lattice.bond_geometry()
    d = kn - ks
    return ks + d * n[:, 0] ** 2, d * n[:, 0] * n[:, 1], ks + d * n[:, 1] ** 2


def stiffness_matrix(lattice: Lattice, blocks: tuple[np.ndarray, ...]) -> sparse.csr_matrix:
    """The (2N, 2N) stiffness matrix ``K`` [N/m], degrees of freedom ordered (x0, y0, x1, ...)."""
    a, b = lattice.bonds[:, 0], lattice.bonds[:, 1]
    rows, cols, vals = [], [], []
    for (p, q), v in (((0, 0), blocks[0]), ((0, 1), blocks[1]), ((1, 0), blocks[1]), ((1, 1), blocks[2])):
        for i, j, sign in ((a, a, 1.0), (b, b, 1.0), (a, b, -1.0), (b, a, -1.0)):
            rows.append(2 * i + p)
            cols.append(2 * j + q)
            vals.append(sign * v)
    n = 2 * lattice.n_nodes
    return sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                             shape=(n, n))


def operator(lattice: Lattice, blocks: tuple[np.ndarray, ...] | None = None) -> sparse.csr_matrix:
    """The stiffness matrix ``K`` (2N, 2N) [N/m] of the uncut lattice: assembled from the spring
    ``blocks`` (default ``stiffness_blocks``) or, for ``interaction='cst'``, from the triangles
    (``blocks`` is then ignored)."""
    if lattice.interaction == "cst":
        return cst_matrix(lattice)
    return stiffness_matrix(lattice, stiffness_blocks(lattice) if blocks is None else blocks)


def max_frequency(lattice: Lattice, blocks: tuple[np.ndarray, ...] | None = None,
                  method: str = "lanczos") -> float:
    """The highest angular eigenfrequency ``omega_max`` [rad/s] of ``M^-1 K`` (``operator``).

    ``lanczos``: the largest eigenvalue of ``M^-1/2 K M^-1/2`` by ARPACK (relative tolerance
    1e-6, deterministic start vector), the sharp value. ``gershgorin``: its largest absolute
    row sum, a guaranteed upper bound (about 1.35x the sharp value on these lattices). Cutting
    elements only removes stiffness, so the uncut value bounds every cracked plate.
    """
    k = operator(lattice, blocks)
    scale = sparse.diags(1.0 / np.sqrt(np.repeat(lattice.mass, 2)))
    a = (scale @ k @ scale).tocsr()
    if method == "gershgorin":
        return float(np.sqrt(abs(a).sum(axis=1).max()))
    if method == "lanczos":
        top = eigsh(a, k=1, which="LA", tol=1e-6, v0=np.ones(a.shape[0]),
                    return_eigenvectors=False)[0]
        return float(np.sqrt(top))
    raise ValueError(f"unknown method {method!r}; expected 'lanczos' or 'gershgorin'")


def stable_dt(lattice: Lattice, blocks: tuple[np.ndarray, ...] | None = None,
              method: str = "lanczos") -> float:
    """Stability limit ``2 / omega_max`` [s] of the explicit central-difference scheme
    (``blocks``: spring lattices only, see ``operator``)."""
    return 2.0 / max_frequency(lattice, blocks, method)
