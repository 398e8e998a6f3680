"""The lattice against exact solutions: point-force traces (P and S speeds, waveform
correlation) and the Rayleigh-wave speed along a free edge.

Both run a plate large enough that nothing reflected from an edge reaches a receiver within
the compared window, so the unbounded-plate solution of ``dlem.exact`` is the reference.
"""

from __future__ import annotations

import time

import numpy as np

from .exact import point_force_response, rayleigh_speed
from .lattice import build_lattice, lame_constants, stable_dt, wave_speeds
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


def zero_lag_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """``sum(a b) / sqrt(sum(a^2) sum(b^2))`` over all samples and components."""
    return float(np.sum(a * b) / np.sqrt(np.sum(a * a) * np.sum(b * b)))


def _plate(size_x, size_y, E, nu, rho, plane):
    return dict(width=size_x, height=size_y, thickness=1e-3, youngs_modulus=E, poisson_ratio=nu,
                density=rho, plane=plane)


def trace_errors(traces: np.ndarray, exact: np.ndarray, dist: np.ndarray, dt: float,
                 delay: float, f0: float, c_p: float, c_s: float) -> dict:
    """A solver's point-force traces against the exact ones at the same points and times.

    ``traces``, ``exact``: (time, receiver, component) [m], every ``dt`` [s]; the receivers are
    the P-axis, S-axis and diagonal ones at two or more distances each, in that order, of a
    force along y (``compare_with_exact``), ``dist`` [m] their distances from the force. Returns
    ``correlation``: zero-lag correlation of each receiver's (ux, uy) trace with the exact one;
    ``measured_c_p``, ``measured_c_s`` and relative ``error_c_p``, ``error_c_s``: from the
    delay of each trace's u_y behind the exact u_y (cross-correlation around the arrival) at
    the nearest and farthest receiver on the P and S axes, differenced between the two.
    """
    out = {"correlation": [zero_lag_correlation(traces[:, k], exact[:, k])
                           for k in range(traces.shape[1])]}
    m = traces.shape[1] // 3
    for name, first, speed in (("p", 0, c_p), ("s", m, c_s)):
        ks = [first, first + m - 1]
        lags = [correlation_lag(exact[:, k, 1], traces[:, k, 1],
                                *(2 * [(delay + dist[k] / speed) / dt]), width=1 / f0 / dt) * dt
                for k in ks]
        travel = (dist[ks[1]] - dist[ks[0]]) / speed
        out[f"measured_c_{name}"] = (dist[ks[1]] - dist[ks[0]]) / (travel + lags[1] - lags[0])
        out[f"error_c_{name}"] = out[f"measured_c_{name}"] / speed - 1
    return out


def point_force_domain(c_p: float, c_s: float, f0: float, r) -> tuple[float, float, float]:
    """``(delay, t_end, size)``: the Ricker delay ``1.5 / f0`` [s], the compared window
    [s] (until ``1.5 / f0`` after the S wave has passed the farthest receiver ``max(r)`` [m]),
    and the side [m] of a square plate with the force at its centre that no edge reflection
    crosses to a receiver within the window: the nearest image source is a plate width away."""
    delay = 1.5 / f0
    t_end = delay + max(r) / c_s + 1.5 / f0
    return delay, t_end, c_p * t_end + max(r)


def compare_with_exact(kind: str = "triangular", nu: float = 0.25, spacing: float = 0.1 / 95,
                       f0: float = 100e3, r=(0.025, 0.05), E: float = 70e9, rho: float = 2700.0,
                       plane: str = "stress", randomness: float = 0.5,
                       calibration: str = "waves", interaction: str = "springs",
                       dtype=np.float64) -> dict:
    """Lattice traces of a vertical Ricker point force at the centre of a square plate vs the
    exact unbounded-plate response (``exact.point_force_response``) at the same nodes.

    Receivers at distances ``r`` [m] along the force (y: P), across it (x: S) and at 45
    degrees; the plate is just large enough that no edge reflection reaches them before the
    S wave has passed the farthest one (``point_force_domain``). ``spacing`` [m] defaults to
    the default config's (100 mm / 95); ``dtype`` is the solver's.

    Returns the continuum speeds ``c_p, c_s``; the measured speeds, their errors and the
    correlations of ``trace_errors``; the lattice size, the number of ``steps`` of ``dt`` [s],
    and ``solve_s``, ``solve_cpu_s``: the wall and CPU (this process's) time [s] of the time
    loop alone (no set-up, no exact solution; with the kernel's compilation on the first call
    in a process).
    """
    c_p, c_s = wave_speeds(E, nu, rho, plane)
    lam, mu = lame_constants(E, nu, plane)
    r = np.asarray(r, float)
    delay, t_end, size = point_force_domain(c_p, c_s, f0, r)
    nodes_x = int(np.ceil((size + 4 * spacing) / spacing)) + 1
    size = (nodes_x - 1) * spacing
    lat = build_lattice(_plate(size, size, E, nu, rho, plane),
                        dict(nodes_x=nodes_x, kind=kind, randomness=randomness,
                             calibration=calibration, interaction=interaction))
    dt = 0.9 * stable_dt(lat)
    centre = size / 2
    src_node = nearest_nodes(lat.points, [centre], [centre])
    sx, sy = lat.points[src_node[0]]
    diag = r / np.sqrt(2)
    rx = np.concatenate([np.zeros_like(r), r, diag]) + sx
    ry = np.concatenate([r, np.zeros_like(r), diag]) + sy
    receivers = nearest_nodes(lat.points, rx, ry)
    n = int(np.ceil(t_end / dt)) + 1
    times = np.arange(n) * dt
    src = PointSource(sx, sy, f0, delay=delay, angle=90.0)
    sim = Simulation(lat, np.zeros(len(lat.bonds), bool), np.zeros(lat.n_nodes), dt, dtype,
                     src_node, source_forces([src], times))
    rec = np.zeros((n, len(receivers), 2))
    start, start_cpu = time.perf_counter(), time.process_time()
    sim.advance(n, receivers, rec, 1)
    solve_s, solve_cpu_s = time.perf_counter() - start, time.process_time() - start_cpu
    rel = lat.points[receivers] - [sx, sy]
    exact = point_force_response(rel[:, 0], rel[:, 1], times, lam=lam, mu=mu, rho=rho,
                                 thickness=1e-3, f0=f0, delay=delay)
    dist = np.hypot(rel[:, 0], rel[:, 1])
    return {"kind": kind, "interaction": interaction, "nu": nu, "plane": plane,
            "nodes": lat.n_nodes, "spacing": lat.spacing, "c_p": c_p, "c_s": c_s,
            "steps": n, "dt": dt, "solve_s": solve_s, "solve_cpu_s": solve_cpu_s,
            **trace_errors(rec, exact, dist, dt, delay, f0, c_p, c_s)}


def measure_rayleigh_speed(nu: float = 0.25, interaction: str = "springs",
                           spacing: float = 0.1 / 95, f0: float = 100e3, r=(0.08, 0.16),
                           E: float = 70e9, rho: float = 2700.0, plane: str = "stress",
                           kind: str = "triangular", calibration: str = "waves") -> dict:
    """Speed [m/s] of the Rayleigh wave a vertical Ricker force at a free edge launches along it.

    The force acts at a node of the top edge; receivers on the same edge at distances ``r`` [m]
    record ``u_y``. The Rayleigh pulse of a line load keeps its shape along the edge (it does
    not spread in 2D), so the delay between the two receivers (cross-correlation of Gaussian
    windows of width ``1 / f0`` around the arrivals, re-centred once on the measured speed)
    gives its speed without the shape bias of spreading body waves; body waves grazing the
    edge decay as ``r^-3/2``. The plate is large enough that no reflection from the other edges
    reaches the receivers before the Rayleigh pulse has passed (``2 / f0`` after its arrival).

    Returns the continuum ``c_r`` (``exact.rayleigh_speed``), ``measured_c_r`` and
    ``error_c_r`` (relative), with the lattice size.
    """
    c_p, c_s = wave_speeds(E, nu, rho, plane)
    c_r = rayleigh_speed(c_p, c_s)
    r = np.asarray(r, float)
    delay = 1.5 / f0
    t_end = delay + r.max() / c_r + 2 / f0
    margin = (c_p * t_end - r.max()) / 2 + 2 * spacing        # P reflected by a side edge
    width = 2 * margin + r.max()
    height = np.sqrt((c_p * t_end) ** 2 - r.max() ** 2) / 2 + 2 * spacing
    nodes_x = int(np.ceil(width / spacing)) + 1
    width = (nodes_x - 1) * spacing
    lat = build_lattice(_plate(width, height, E, nu, rho, plane),
                        dict(nodes_x=nodes_x, kind=kind, calibration=calibration,
                             interaction=interaction))
    dt = 0.9 * stable_dt(lat)
    top = lat.points[:, 1].max()
    src_node = nearest_nodes(lat.points, [margin], [top])
    sx = lat.points[src_node[0], 0]
    receivers = nearest_nodes(lat.points, sx + r, np.full(len(r), top))
    dist = lat.points[receivers, 0] - sx
    n = int(np.ceil(t_end / dt)) + 1
    times = np.arange(n) * dt
    src = PointSource(sx, top, f0, delay=delay, angle=-90.0)
    sim = Simulation(lat, np.zeros(len(lat.bonds), bool), np.zeros(lat.n_nodes), dt, np.float64,
                     src_node, source_forces([src], times))
    rec = np.zeros((n, len(r), 2))
    sim.advance(n, receivers, rec, 1)
    speed = c_r
    for _ in range(2):
        arrivals = [(delay + d / speed) / dt for d in dist]
        lag = correlation_lag(rec[:, 0, 1], rec[:, -1, 1], *arrivals, width=1 / f0 / dt) * dt
        speed = (dist[-1] - dist[0]) / lag
    return {"nu": nu, "interaction": interaction, "kind": kind, "plane": plane,
            "nodes": lat.n_nodes, "spacing": lat.spacing, "c_p": c_p, "c_s": c_s, "c_r": c_r,
            "measured_c_r": speed, "error_c_r": speed / c_r - 1}
