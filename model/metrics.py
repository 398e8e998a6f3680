"""Box metrics (paper §3.6): IoU, Purity, Integrity, MAE/MSE/Huber, the Table-1 layout, and
the pixel IoU of segmentation masks (the 1D-DenseNet paper's way, §3.6.2).

Boxes are `(N, 4)` float arrays `(xmin, ymin, xmax, ymax)` in plate fractions. A box's area
is `max(xmax - xmin, 0) * max(ymax - ymin, 0)`: a degenerate or inverted box (`xmax < xmin`)
has zero area. Every ratio whose denominator is zero is defined as 0 (IoU with an empty
union, Purity of a zero-area prediction, Integrity against a zero-area truth), so a
degenerate prediction is never rewarded and no metric is NaN for finite input.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DEFAULT_SIZE_THRESHOLDS = (0.0, 0.004, 0.008, 0.012, 0.016)  # m, total crack length
TABLE_COLUMNS = ("count", "IoU", "Purity", "Integrity")
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0


def _as_boxes(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must have shape (N, 4), got {boxes.shape}")
    return boxes


def box_area(boxes: np.ndarray) -> np.ndarray:
    """Areas `(N,)` of `(N, 4)` boxes; zero for degenerate or inverted boxes."""
    boxes = _as_boxes(boxes)
    width = np.clip(boxes[:, 2] - boxes[:, 0], 0.0, None)
    height = np.clip(boxes[:, 3] - boxes[:, 1], 0.0, None)
    return width * height


def intersection_area(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Areas `(N,)` shared by row-paired boxes."""
    pred, true = _as_boxes(pred), _as_boxes(true)
    overlap = np.concatenate([np.maximum(pred[:, :2], true[:, :2]),
                              np.minimum(pred[:, 2:], true[:, 2:])], axis=1)
    return box_area(overlap)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0."""
    out = np.zeros_like(numerator)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def box_iou(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Intersection over union `(N,)` of row-paired boxes; 0 where the union is empty."""
    inter = intersection_area(pred, true)
    union = box_area(pred) + box_area(true) - inter
    return _ratio(inter, union)


def purity(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Overlap / predicted area `(N,)`; 0 for a zero-area prediction."""
    return _ratio(intersection_area(pred, true), box_area(pred))


def integrity(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Overlap / true area `(N,)`; 0 for a zero-area truth."""
    return _ratio(intersection_area(pred, true), box_area(true))


def mae(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean absolute error over all coordinates (plate fractions)."""
    return float(np.mean(np.abs(_as_boxes(pred) - _as_boxes(true))))


def mse(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean squared error over all coordinates (plate fractions squared)."""
    return float(np.mean((_as_boxes(pred) - _as_boxes(true)) ** 2))


def huber(pred: np.ndarray, true: np.ndarray, delta: float = 1.0) -> float:
    """Mean Huber loss over all coordinates: x^2/2 for |x| <= delta, delta(|x| - delta/2) beyond."""
    err = np.abs(_as_boxes(pred) - _as_boxes(true))
    return float(np.mean(np.where(err <= delta, 0.5 * err**2, delta * (err - 0.5 * delta))))


def size_table(pred: np.ndarray, true: np.ndarray, crack_size: np.ndarray,
               thresholds: Sequence[float] = DEFAULT_SIZE_THRESHOLDS) -> list[dict]:
    """The paper's Table 1: one row per threshold `t` over the samples with crack_size > t.

    `crack_size` `(N,)` in metres. Each row holds `threshold` (m), `count`, and the mean
    `IoU`, `Purity`, `Integrity` of those samples (NaN when the row is empty).
    """
    crack_size = np.asarray(crack_size, dtype=np.float64)
    scores = {"IoU": box_iou(pred, true), "Purity": purity(pred, true),
              "Integrity": integrity(pred, true)}
    rows = []
    for threshold in thresholds:
        keep = crack_size > threshold
        row = {"threshold": float(threshold), "count": int(keep.sum())}
        for name, values in scores.items():
            row[name] = float(values[keep].mean()) if keep.any() else float("nan")
        rows.append(row)
    return rows


def bootstrap_ci(values: np.ndarray, level: float = 0.95,
                 resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
                 ) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval `(lo, hi)` of the mean of `values` `(N,)`.

    Draws `resamples` samples of size N with replacement (indices
    `numpy.random.default_rng(seed).integers(0, N, size=(resamples, N))`, one call), takes
    each one's mean, and returns the `(1 - level)/2` and `(1 + level)/2` percentiles of
    those means (`numpy.percentile`, linear interpolation). Deterministic for a given seed;
    arrays of the same N get the same resampling, so the intervals of metrics scored on the
    same samples come from the same draws. Memory: `resamples * N` int64 indices. The
    interval says how well N samples pin down the mean score, not how a retrained model
    would vary. `(nan, nan)` for an empty array.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"values must have shape (N,), got {values.shape}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    if values.size == 0:
        return float("nan"), float("nan")
    index = np.random.default_rng(seed).integers(0, values.size, size=(resamples, values.size))
    means = values[index].mean(axis=1)
    lo, hi = np.percentile(means, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


# --- masks (segmentation models, paper §3.6.2) -------------------------------------------------

def _as_masks(masks: np.ndarray) -> np.ndarray:
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"masks must have shape (N, H, W), got {masks.shape}")
    return masks.astype(bool)


def pixel_iou(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Crack-class IoU `(N,)` of row-paired `(N, H, W)` 0/1 masks: TP / (TP + FP + FN) per
    sample; 0 where both masks are empty (the 0/0 convention of the box metrics)."""
    pred, true = _as_masks(pred), _as_masks(true)
    inter = (pred & true).sum(axis=(1, 2)).astype(np.float64)
    union = (pred | true).sum(axis=(1, 2)).astype(np.float64)
    return _ratio(inter, union)


def pixel_mean_iou(pred: np.ndarray, true: np.ndarray) -> float:
    """Two-class mean IoU over the pooled confusion matrix of all samples: the mean of the
    crack-class IoU TP / (TP + FP + FN) and the background-class IoU TN / (TN + FN + FP)
    (Keras `MeanIoU(num_classes=2)`). The background term is near 1 whenever cracks are
    small, which is how true negatives lift this number (paper §3.6.2)."""
    pred, true = _as_masks(pred), _as_masks(true)
    tp, fp = float((pred & true).sum()), float((pred & ~true).sum())
    fn, tn = float((~pred & true).sum()), float((~pred & ~true).sum())
    crack = tp / (tp + fp + fn) if tp + fp + fn > 0 else 0.0
    background = tn / (tn + fp + fn) if tn + fp + fn > 0 else 0.0
    return 0.5 * (crack + background)
