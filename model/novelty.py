"""Distance to the training data: how a crack-set model says that a plate is unlike anything
it was trained on (issue 10, item 4: "a model that knows nothing must say so").

The predicted standard deviations of `model.nets.crackset` are learnt from the training
residuals, so they stay small wherever the network is confident, including on plates it has
never seen the like of (a material with faster waves, cracks longer than any trained on).
A model-agnostic check of that situation (Lee, Lee, Lee, Shin, "A simple unified framework
for detecting out-of-distribution samples and adversarial attacks", NeurIPS 2018): fit one
Gaussian to the training plates' embeddings (the encoder's features averaged over the label
grid, `CrackSet.forward_embedded`, `(N, D)`) and measure each new plate by its Mahalanobis
distance to it,

    d(e) = sqrt((e - mean)^T precision (e - mean)),  precision = (C + lambda tr(C)/D I)^-1,

with C the training covariance and a small ridge `lambda` (`SHRINKAGE`) that keeps the
inverse finite when D approaches the number of plates. A plate whose distance exceeds the
threshold is *novel*; the threshold is the `LEVEL` quantile of the validation plates'
distances (`choose_distance_threshold`), so about 1 % of in-distribution plates are flagged.

A novel plate's predictions keep their boxes and scores, but its intervals are withdrawn:
its standard deviations become infinite (`withdraw_intervals`), an interval over the whole
plate that covers any truth. The coverage reported with that rule (`calibration_novelty`
in metrics.json) is therefore honest on shifted data only in as much as the shift is
detected; the fraction flagged is reported beside it.
"""

from __future__ import annotations

import numpy as np

SHRINKAGE = 1e-3   # ridge on the covariance, as a fraction of its mean variance
LEVEL = 0.99       # validation quantile of the distance that becomes the threshold


def fit_distribution(embedding: np.ndarray, shrinkage: float = SHRINKAGE) -> dict:
    """Mean `(D,)` and precision `(D, D)` (float64) of the training embeddings `(N, D)`,
    N >= 2, and `plates` (N): the Gaussian `mahalanobis` measures distances to."""
    embedding = np.asarray(embedding, np.float64)
    if embedding.ndim != 2 or len(embedding) < 2:
        raise ValueError(f"need embeddings (N >= 2, D), got shape {embedding.shape}")
    if not np.isfinite(embedding).all():
        raise ValueError("the training embeddings hold NaN or inf")
    covariance = np.atleast_2d(np.cov(embedding, rowvar=False))
    dim = covariance.shape[0]
    ridge = shrinkage * max(np.trace(covariance) / dim, np.finfo(np.float64).tiny)
    precision = np.linalg.inv(covariance + ridge * np.eye(dim))
    return {"mean": embedding.mean(axis=0), "precision": 0.5 * (precision + precision.T),
            "plates": int(len(embedding))}


def mahalanobis(embedding: np.ndarray, distribution: dict) -> np.ndarray:
    """Distance `(N,)` of each embedding `(N, D)` to `distribution` (`fit_distribution`)."""
    centred = np.asarray(embedding, np.float64) - np.asarray(distribution["mean"], np.float64)
    precision = np.asarray(distribution["precision"], np.float64)
    squared = np.einsum("nd,de,ne->n", centred, precision, centred)
    return np.sqrt(np.maximum(squared, 0.0))


def choose_distance_threshold(val_distance: np.ndarray, level: float = LEVEL) -> dict:
    """The `level` quantile of the validation plates' distances, as metrics.json stores it:
    `value`, `level`, `chosen_on`, `plates`."""
    val_distance = np.asarray(val_distance, np.float64)
    if val_distance.size == 0:
        raise ValueError("no validation plate to choose the distance threshold on")
    if not 0 < level < 1:
        raise ValueError(f"the threshold level must be in (0, 1), got {level}")
    return {"value": float(np.quantile(val_distance, level)), "level": float(level),
            "chosen_on": "val", "plates": int(val_distance.size)}


def given_threshold(chosen: dict) -> dict | None:
    """The `novelty_threshold` of an evaluation's metrics.json (`chosen`) when it holds a
    number `value`, else None."""
    threshold = chosen.get("novelty_threshold")
    valid = isinstance(threshold, dict) and isinstance(threshold.get("value"), (int, float))
    return threshold if valid else None


def novel_plates(distance: np.ndarray, threshold: dict) -> np.ndarray:
    """`(N,)` bool: the plates whose distance exceeds the threshold's `value`."""
    return np.asarray(distance, np.float64) > threshold["value"]


def novelty_variables(distance: np.ndarray, novel: np.ndarray | None) -> dict:
    """The per-plate variables of a predictions file, `{name: ("sample", values (N,),
    attributes)}` for xarray: `distance`, and `novel` (int8) when flags are given."""
    variables = {"distance": ("sample", np.asarray(distance, np.float64), {
        "units": "1",
        "long_name": "Mahalanobis distance of the plate's embedding to the training plates' "
                     "(model.novelty)"})}
    if novel is not None:
        variables["novel"] = ("sample", np.asarray(novel, np.int8), {
            "long_name": "1: distance above the threshold chosen on validation, a plate unlike "
                         "every training plate; its prediction is not to be trusted"})
    return variables


def withdraw_intervals(decoded: dict, novel: np.ndarray) -> dict:
    """`decoded` (`model.nets.crackset.decode_cracks`) with the standard deviations of the
    plates flagged by `novel` `(N,)` set to +inf (filled slots only; empty ones stay NaN)."""
    novel = np.asarray(novel, bool)
    out = dict(decoded)
    for key in ("box_sigma", "end_sigma"):
        sigma = decoded[key]
        mask = novel.reshape((-1,) + (1,) * (sigma.ndim - 1)) & np.isfinite(sigma)
        out[key] = np.where(mask, np.inf, sigma)
    return out


def novelty_report(distance: np.ndarray, threshold: dict, has_crack: np.ndarray) -> dict:
    """What metrics.json says about the distances of N scored plates: the threshold, the
    fraction flagged novel (all, cracked, uncracked plates; None for an empty group) and
    the median distance."""
    distance, has_crack = np.asarray(distance, np.float64), np.asarray(has_crack, bool)
    novel = novel_plates(distance, threshold)

    def fraction(mask: np.ndarray):
        return float(novel[mask].mean()) if mask.any() else None

    return {"threshold": threshold, "plates": int(distance.size),
            "novel": int(novel.sum()), "novel_fraction": fraction(np.ones_like(novel)),
            "novel_fraction_cracked": fraction(has_crack),
            "novel_fraction_uncracked": fraction(~has_crack),
            "median_distance": float(np.median(distance)) if distance.size else None}
