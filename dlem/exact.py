"""Exact solutions the lattice is checked against: the 2D elastodynamic point-force response
and the Rayleigh-wave speed.

Point force in an unbounded plate. In-plane motion of a thin plate (plane stress) and plane
strain obey the same 2D Navier equation

    rho u'' = mu lap u + (lam + mu) grad div u + f,

with the in-plane Lame constant ``lam`` of each case (``lattice.lame_constants``) and
``c_p^2 = (lam + 2 mu) / rho``, ``c_s^2 = mu / rho``. For an impulsive line force
``f = delta(x) delta(t) e_j`` [N s / m] the displacement is the 2D Green's tensor
(Eringen & Suhubi, *Elastodynamics* II (1975) §7.9; Kausel, *Fundamental Solutions in
Elastodynamics* (2006) §2.2)

    G_ij(x, t) = 1 / (2 pi rho) [ g_i g_j H_p / (c_p^2 S_p)
                                  + (delta_ij - g_i g_j) H_s / (c_s^2 S_s)
                                  - (2 g_i g_j - delta_ij) (S_s H_s - S_p H_p) / r^2 ],

``g = x / r``, ``S_c = sqrt(t^2 - r^2 / c^2)``, ``H_c = H(t - r / c)`` (Heaviside). It follows
from ``G = g_s / mu delta_ij - (1 / rho) d_i d_j (I g_s - I g_p)`` with the scalar 2D wave
Green's function ``g_c = H_c / (2 pi S_c)`` and ``I`` the double time integral. Each part has
an inverse-square-root singularity at its arrival ``r / c``; the P part dominates along the
force and the S part across it, both decaying as ``r^-1/2`` in the far field.

The response to a force ``F(t)`` [N] at a point of a plate of thickness ``t_plate`` is the
convolution with the line force ``F / t_plate``. It is computed from the *step response*
``K = int_0^t G dt`` (closed form below: continuous, with square-root cusps at the arrivals)
as ``u(t) = int K(t - s) F'(s) ds / t_plate``, by quadrature on a fine grid (``oversample``
points per period of ``f0``; the error falls as the grid step to the power 1.5, below 1e-4
of the peak at the default).

Rayleigh waves. ``rayleigh_speed`` solves the Rayleigh equation
``(2 - xi^2)^2 = 4 sqrt(1 - xi^2) sqrt(1 - xi^2 c_s^2 / c_p^2)``, ``xi = c_R / c_s``, for its
root in (0, 1) (the speed of a surface wave along a traction-free straight edge).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq
from scipy.signal import fftconvolve


def _parts(r: np.ndarray, t: np.ndarray, c: float):
    """``H arccosh(t / tau)`` and ``H (t S - tau^2 arccosh(t / tau)) / 2`` for ``tau = r / c``:
    the time integrals of ``H / S`` and ``H S``."""
    tau = r / c
    arrived = t > tau
    ratio = np.where(arrived, t / tau, 1.0)
    a = np.arccosh(ratio)
    s = np.sqrt(np.maximum(t**2 - tau**2, 0.0))
    return np.where(arrived, a, 0.0), np.where(arrived, 0.5 * (t * s - tau**2 * a), 0.0)


def step_response(x: np.ndarray, y: np.ndarray, t: np.ndarray, lam: float, mu: float,
                  rho: float) -> np.ndarray:
    """Displacement [m] per unit line force [N/m] switched on at ``t = 0`` (Heaviside in time),
    the time integral of the 2D Green's tensor ``G_ij`` (module docstring):

        K_ij = 1 / (2 pi rho) [ g_i g_j A_p / c_p^2 + (delta_ij - g_i g_j) A_s / c_s^2
                                - (2 g_i g_j - delta_ij) (J_s - J_p) / r^2 ],

    ``A_c = H arccosh(t c / r)``, ``J_c = H (t S_c - (r / c)^2 A_c) / 2``.

    Args:
        x, y: receiver position relative to the force [m], broadcastable with ``t``; r > 0.
        t: time since the force was switched on [s].
        lam, mu: in-plane Lame constants [Pa]; rho: density [kg/m^3].

    Returns: array of shape ``broadcast(x, y, t).shape + (2, 2)``, ``[..., i, j]`` = component
    ``i`` of the displacement for a force along ``j``. Symmetric in ``i, j``.
    """
    x, y, t = np.broadcast_arrays(*(np.asarray(v, float) for v in (x, y, t)))
    r = np.hypot(x, y)
    if np.any(r <= 0):
        raise ValueError("the point-force response is singular at the force (r = 0)")
    c_p, c_s = np.sqrt((lam + 2 * mu) / rho), np.sqrt(mu / rho)
    a_p, j_p = _parts(r, t, c_p)
    a_s, j_s = _parts(r, t, c_s)
    g = np.stack([x / r, y / r], axis=-1)
    gg = g[..., :, None] * g[..., None, :]
    eye = np.eye(2)
    return (gg * (a_p / c_p**2)[..., None, None]
            + (eye - gg) * (a_s / c_s**2)[..., None, None]
            - (2 * gg - eye) * ((j_s - j_p) / r**2)[..., None, None]) / (2 * np.pi * rho)


def ricker_derivative(t: np.ndarray, f0: float, delay: float) -> np.ndarray:
    """Time derivative [1/s] of ``source.ricker``: ``(2 a - 3) exp(-a) 2 pi^2 f0^2 tau``,
    ``a = (pi f0 tau)^2``, ``tau = t - delay``."""
    tau = np.asarray(t) - delay
    a = (np.pi * f0 * tau) ** 2
    return (2 * a - 3) * np.exp(-a) * 2 * np.pi**2 * f0**2 * tau


def point_force_response(x: np.ndarray, y: np.ndarray, times: np.ndarray, *, lam: float,
                         mu: float, rho: float, thickness: float, f0: float, delay: float,
                         amplitude: float = 1.0, angle: float = 90.0,
                         oversample: int = 400) -> np.ndarray:
    """Displacement (len(times), R, 2) [m] at receivers ``(x, y)`` (R,) [m, relative to the
    force] of an unbounded plate of ``thickness`` [m] under the point force
    ``amplitude * ricker(t; f0, delay) * (cos angle, sin angle)`` [N] (as ``source.PointSource``).

    ``u(t) = int_0^t K(t - s) F'(s) ds / thickness`` with ``K`` the ``step_response``, by
    quadrature on a grid of ``1 / (oversample f0)`` [s], linearly interpolated to ``times``
    (>= 0) [s]. The force must be negligible at ``t = 0`` (a Ricker delay >= 1.2 / f0).
    """
    x, y = np.atleast_1d(np.asarray(x, float)), np.atleast_1d(np.asarray(y, float))
    times = np.asarray(times, float)
    ds = 1.0 / (oversample * f0)
    fine = np.arange(int(np.ceil(times.max() / ds)) + 2) * ds
    direction = np.array([np.cos(np.radians(angle)), np.sin(np.radians(angle))])
    k = step_response(x[None, :], y[None, :], fine[:, None], lam, mu, rho) @ direction
    dforce = amplitude * ricker_derivative(fine, f0, delay) * ds / thickness
    fine_u = fftconvolve(k, dforce[:, None, None], axes=0)[: len(fine)]   # (fine, R, 2)
    out = np.empty((len(times), len(x), 2))
    for r in range(len(x)):
        for c in range(2):
            out[:, r, c] = np.interp(times, fine, fine_u[:, r, c])
    return out


def rayleigh_speed(c_p: float, c_s: float) -> float:
    """Speed [m/s] of Rayleigh waves along a free straight edge, the root ``xi = c_R / c_s`` in
    (0, 1) of ``(2 - xi^2)^2 - 4 sqrt(1 - xi^2) sqrt(1 - xi^2 (c_s / c_p)^2) = 0``."""
    k2 = (c_s / c_p) ** 2

    def rayleigh(xi: float) -> float:
        return (2 - xi**2) ** 2 - 4 * np.sqrt(1 - xi**2) * np.sqrt(1 - xi**2 * k2)

    return float(brentq(rayleigh, 1e-3, 1 - 1e-12, xtol=1e-14) * c_s)
