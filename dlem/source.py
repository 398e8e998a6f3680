"""Source wavelets and their placement on the lattice."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def ricker(t: np.ndarray, f0: float, delay: float) -> np.ndarray:
    """Ricker wavelet (Mexican hat), unit peak at ``t = delay``.

    ``r(t) = (1 - 2 (pi f0 tau)^2) exp(-(pi f0 tau)^2)`` with ``tau = t - delay`` [s] and the
    centre (peak-spectrum) frequency ``f0`` [Hz]. Its spectrum falls to 1 % of the peak near
    ``2.6 f0``, the highest frequency the lattice must resolve.
    """
    a = (np.pi * f0 * (np.asarray(t) - delay)) ** 2
    return (1.0 - 2.0 * a) * np.exp(-a)


@dataclass(frozen=True)
class PointSource:
    """A point force ``amplitude * ricker(t) * (cos angle, sin angle)`` [N] at ``(x, y)`` [m]."""

    x: float
    y: float
    f0: float
    delay: float | None = None
    amplitude: float = 1.0
    angle: float = 90.0

    @property
    def onset(self) -> float:
        """The time of the wavelet's peak [s] (default ``1.5 / f0``, so it starts near zero)."""
        return 1.5 / self.f0 if self.delay is None else self.delay

    def force(self, t: np.ndarray) -> np.ndarray:
        """Force vectors (len(t), 2) [N] at times ``t`` [s]."""
        direction = np.array([np.cos(np.radians(self.angle)), np.sin(np.radians(self.angle))])
        return self.amplitude * ricker(t, self.f0, self.onset)[:, None] * direction


def source_forces(sources: list[PointSource], times: np.ndarray) -> np.ndarray:
    """Forces (len(times), n_sources, 2) [N] of every source at every time step."""
    return np.stack([s.force(times) for s in sources], axis=1)
