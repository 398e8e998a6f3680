"""Delay-and-sum imaging of the scattered field.

The scattered field is the current wavefield minus the pristine reference. A scatterer at
``x`` sends back energy that reaches sensor ``k`` at
``t_k(x) = onset + (|x - source| + |x - sensor_k|) / c``; summing each sensor's envelope at
that time over all sensors focuses the image on the scatterer (synthetic focusing, as in
Michaels & Michaels 2007 for guided waves):

    I(x) = sum_k env_k(t_k(x)),   env_k = |analytic signal of the scattered trace| (both
    components, root of the summed squares).

``c`` is the P or S speed of the plate, and only the scattered field before ``t_max`` is
used (later it is dominated by reverberation between the plate edges); both are chosen on
the validation split.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import hilbert


def envelopes(scattered: np.ndarray) -> np.ndarray:
    """Envelope (N, time, S) of scattered traces (N, time, S, 2) [m]."""
    analytic = hilbert(np.asarray(scattered, np.float64), axis=1)
    return np.sqrt((np.abs(analytic) ** 2).sum(-1))


def das_images(current: np.ndarray, reference: np.ndarray, times: np.ndarray, grid: np.ndarray,
               source: np.ndarray, sensors: np.ndarray, speed: float, onset: float,
               t_max: float = np.inf) -> np.ndarray:
    """Delay-and-sum images (N, G) on grid points (G, 2) [m] for wave speed ``speed`` [m/s]
    and source onset ``onset`` [s], from the scattered field at ``times <= t_max`` [s];
    ``times`` (time,) [s] uniform; ``current`` (N, time, S, 2), ``reference`` (time, S, 2)."""
    scattered = np.asarray(current) - np.asarray(reference)[None]
    scattered = np.where((times <= t_max)[None, :, None, None], scattered, 0.0)
    env = envelopes(scattered)                                                 # (N, T, S)
    dt = times[1] - times[0]
    tof = onset + (np.linalg.norm(grid - source, axis=1)[None]
                   + np.linalg.norm(grid[None] - sensors[:, None], axis=2)) / speed  # (S, G)
    pos = (tof - times[0]) / dt
    i0 = np.clip(np.floor(pos).astype(int), 0, len(times) - 2)
    frac = np.clip(pos - i0, 0.0, 1.0)
    inside = pos <= len(times) - 1
    s_idx = np.arange(len(sensors))[:, None]
    images = np.empty((len(env), len(grid)))
    for n, e in enumerate(env):                                               # e: (T, S)
        val = (1 - frac) * e[i0, s_idx] + frac * e[i0 + 1, s_idx]              # (S, G)
        images[n] = np.where(inside, val, 0.0).sum(0)
    return images
