"""Calibration of predicted Gaussian uncertainties (issue 10, item 4): how often the true
value falls in the central interval a predicted mean and standard deviation give.

A prediction of coordinate `y` with mean `mu` and standard deviation `sigma` claims that
`y ~ N(mu, sigma^2)`; its central interval at nominal level `q` is
`mu +- z_q sigma` with `z_q = Phi^-1((1 + q) / 2)` (0.674 for 50 %, 1.645 for 90 %). The
interval covers the truth when `|y - mu| <= z_q sigma`; a calibrated predictor covers a
fraction `q` of the truths at every level. Coverage below the level: overconfident
(intervals too narrow); above: underconfident. The reliability diagram plots the observed
coverage against the nominal level over `RELIABILITY_LEVELS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import NormalDist

import numpy as np

NOMINAL_LEVELS = (0.5, 0.9)
RELIABILITY_LEVELS = tuple(np.round(np.arange(0.05, 0.951, 0.05), 2).tolist())


def central_z(level: float) -> float:
    """`z` of the central interval `mu +- z sigma` holding `level` of a Gaussian."""
    if not 0 < level < 1:
        raise ValueError(f"an interval level must be in (0, 1), got {level}")
    return NormalDist().inv_cdf(0.5 * (1.0 + level))  # stdlib: scipy.stats costs 0.8 s to import


def interval_coverage(error: np.ndarray, sigma: np.ndarray,
                      levels: Sequence[float] = NOMINAL_LEVELS) -> np.ndarray:
    """Observed coverage `(L, D)`: for each level `(L,)` and coordinate column, the fraction of
    the `M` rows whose `|error|` (prediction minus truth, `(M, D)`) is at most `z_level`
    times the predicted standard deviation `sigma` `(M, D)` (same units); NaN with no row.
    A `sigma` of +inf is an interval over everything (a withdrawn one, `model.novelty`)."""
    error, sigma = np.asarray(error, np.float64), np.asarray(sigma, np.float64)
    if error.shape != sigma.shape or error.ndim != 2:
        raise ValueError(f"error and sigma must both be (M, D), got {error.shape} and "
                         f"{sigma.shape}")
    if not (np.isfinite(error).all() and (sigma > 0).all()):   # NaN > 0 is False
        raise ValueError("error must be finite and sigma > 0 (+inf allowed)")
    z = np.abs(error) / sigma                                           # (M, D)
    bounds = np.array([central_z(q) for q in levels])                   # (L,)
    if len(z) == 0:
        return np.full((len(bounds), error.shape[1]), np.nan)
    return (z[None, :, :] <= bounds[:, None, None]).mean(axis=1)


def coverage_report(error: np.ndarray, sigma: np.ndarray, names: Sequence[str],
                    levels: Sequence[float] = NOMINAL_LEVELS) -> dict:
    """`interval_coverage` as a JSON-able dict: `pairs` (M), `levels`, `coverage`
    `{name: {level: fraction}}` per coordinate column named by `names` and `"all"` (every
    coordinate pooled); fractions are None with no row."""
    error, sigma = np.asarray(error, np.float64), np.asarray(sigma, np.float64)
    if error.ndim != 2 or error.shape[1] != len(names):
        raise ValueError(f"error must be (M, {len(names)}) for the names {list(names)}, "
                         f"got {error.shape}")
    per = interval_coverage(error, sigma, levels)                        # (L, D)
    pooled = interval_coverage(error.reshape(-1, 1), sigma.reshape(-1, 1), levels)[:, 0]

    def level_dict(values: np.ndarray) -> dict:
        return {f"{q:g}": (None if np.isnan(v) else float(v)) for q, v in zip(levels, values)}

    coverage = {name: level_dict(per[:, d]) for d, name in enumerate(names)}
    coverage["all"] = level_dict(pooled)
    return {"pairs": int(len(error)), "levels": [float(q) for q in levels],
            "coverage": coverage}
