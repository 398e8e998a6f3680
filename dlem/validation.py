"""Measured wave speeds of the lattice, for validation against the continuum."""

from __future__ import annotations

import numpy as np

from .lattice import build_lattice, stable_dt, wave_speeds
from .sensors import nearest_nodes
from .solver import Simulation
from .source import PointSource, source_forces


def correlation_lag(a: np.ndarray, b: np.ndarray, i1: float, i2: float, width: float) -> float:
    """Shift [samples] of trace ``b`` relative to ``a`` at the peak of their cross-correlation
    (parabolic sub-sample peak), each windowed by a Gaussian of ``width`` samples centred on
    its expected arrival index ``i1`` / ``i2``."""
    n = len(a)
    k = np.arange(n)
    wa = a * np.exp(-((k - i1) / width) ** 2)
    wb = b * np.exp(-((k - i2) / width) ** 2)
    cc = np.fft.irfft(np.conj(np.fft.rfft(wa, 4 * n)) * np.fft.rfft(wb, 4 * n), 4 * n)
    m = int(np.argmax(cc))
    y0, y1, y2 = cc[m - 1], cc[m], cc[(m + 1) % len(cc)]
    m = m + 0.5 * (y0 - y2) / (y0 - 2 * y1 + y2)
    return m - 4 * n if m > 2 * n else m


def measure_wave_speeds(kind: str = "triangular", nu: float = 0.25, nodes_x: int = 401,
                        size: float = 0.4, f0: float = 100e3, r=(0.06, 0.14),
                        E: float = 70e9, rho: float = 2700.0, randomness: float = 0.5,
                        calibration: str = "waves") -> dict:
    """P and S speeds [m/s] of a ``size`` x ``size`` plate, measured from a vertical point force
    at the centre: P along the force (y axis), S across it (x axis), each from the delay
    between receivers at distances ``r`` [m]. Returns measured and continuum speeds."""
    plate = dict(width=size, height=size, thickness=1e-3, youngs_modulus=E, poisson_ratio=nu,
                 density=rho, plane="stress")
    lat = build_lattice(plate, dict(nodes_x=nodes_x, kind=kind, randomness=randomness,
                                    calibration=calibration))
    c_p, c_s = wave_speeds(E, nu, rho)
    dt = 0.9 * stable_dt(lat)
    c = size / 2
    src = PointSource(c, c, f0, angle=90.0)
    n = int((src.onset + r[1] / c_s + 1.5 / f0) / dt)
    r = np.asarray(r)
    receivers = nearest_nodes(lat.points, np.r_[c + r, c, c], np.r_[c, c, c + r])
    dist = np.linalg.norm(lat.points[receivers] - c, axis=1)
    sim = Simulation(lat, np.zeros(len(lat.bonds), bool), np.zeros(lat.n_nodes), dt, np.float64,
                     nearest_nodes(lat.points, [c], [c]), source_forces([src], np.arange(n) * dt))
    rec = np.zeros((n, 4, 2))
    sim.advance(n, receivers, rec, 1)
    out = {"kind": kind, "nu": nu, "nodes": lat.n_nodes, "spacing": lat.spacing,
           "c_p": c_p, "c_s": c_s}
    for name, (i, j), speed in (("s", (0, 1), c_s), ("p", (2, 3), c_p)):
        arrivals = [(src.onset + dist[k] / speed) / dt for k in (i, j)]
        tau = correlation_lag(rec[:, i, 1], rec[:, j, 1], *arrivals, width=1 / f0 / dt) * dt
        out[f"measured_c_{name}"] = (dist[j] - dist[i]) / tau
        out[f"error_c_{name}"] = out[f"measured_c_{name}"] / speed - 1
    return out
