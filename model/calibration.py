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

from model.metrics import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED

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


def coverage_interval(error: np.ndarray, sigma: np.ndarray, plates: np.ndarray,
                      levels: Sequence[float] = NOMINAL_LEVELS, level: float = 0.95,
                      resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
                      ) -> np.ndarray:
    """Percentile-bootstrap interval `(L, 2)` of the pooled coverage (every coordinate of
    every row, `interval_coverage` of the flattened arrays) at each of `levels`, drawing whole
    plates: `plates` `(M,)` labels the plate of each row of `error`, `sigma` `(M, D)`, so the
    rows and coordinates of one plate stay together (they share its wavefield, and are not
    independent). The draws are `model.metrics.bootstrap_ci`'s over the P distinct plates;
    `(1 - level)/2` and `(1 + level)/2` percentiles; NaN with no row."""
    error, sigma = np.asarray(error, np.float64), np.asarray(sigma, np.float64)
    levels = list(levels)
    if len(error) == 0:
        return np.full((len(levels), 2), np.nan)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    _, plate = np.unique(np.asarray(plates), return_inverse=True)
    if plate.shape != (len(error),):
        raise ValueError(f"plates must be ({len(error)},), got {np.shape(plates)}")
    bounds = np.array([central_z(q) for q in levels])                           # (L,)
    covered = (np.abs(error) / sigma)[None] <= bounds[:, None, None]             # (L, M, D)
    n_plates = plate.max() + 1
    hits = np.stack([np.bincount(plate, c.sum(axis=1), n_plates) for c in covered])  # (L, P)
    total = np.bincount(plate, minlength=n_plates) * error.shape[1]                # (P,)
    draws = np.random.default_rng(seed).integers(0, n_plates, size=(resamples, n_plates))
    weight = np.zeros((resamples, n_plates))
    np.add.at(weight, (np.arange(resamples)[:, None], draws), 1.0)
    fractions = (weight @ hits.T) / (weight @ total)[:, None]                    # (R, L)
    return np.percentile(fractions, [50 * (1 - level), 50 * (1 + level)], axis=0).T


def coverage_report(error: np.ndarray, sigma: np.ndarray, names: Sequence[str],
                    levels: Sequence[float] = NOMINAL_LEVELS,
                    plates: np.ndarray | None = None) -> dict:
    """`interval_coverage` as a JSON-able dict: `pairs` (M), `levels`, `coverage`
    `{name: {level: fraction}}` per coordinate column named by `names` and `"all"` (every
    coordinate pooled); fractions are None with no row. With `plates` `(M,)` (the plate of
    each row), `interval_all` `{level: [lo, hi]}`: the 95 % plate-bootstrap interval of the
    pooled coverage (`coverage_interval`)."""
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
    report = {"pairs": int(len(error)), "levels": [float(q) for q in levels],
              "coverage": coverage}
    if plates is not None:
        interval = coverage_interval(error, sigma, plates, levels)
        report["interval_all"] = {f"{q:g}": (None if np.isnan(lo) else [float(lo), float(hi)])
                                  for q, (lo, hi) in zip(levels, interval)}
    return report
