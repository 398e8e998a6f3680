"""Crack superposition: training plates with the cracks of another training plate added.

The scattered field of a plate is its wavefield minus the pristine plate's. For two sets of
cracks A and B on the same plate, the scattered field of A and B together is, to first
order, the sum of the fields each scatters alone; what is missing is the interaction (waves
scattered by A and then by B), which grows with time as the reverberation of the plate
mixes them (measured on the multicrack config's solver with tests/test_superpose.py's
oracle and docs/model.md: a few per cent of the scattered field in the first 30 µs, about a
third over the whole 100 µs record). So

    wavefield(A) + wavefield(B) - pristine

is a plate with the cracks of both, exact in its first arrivals, with the labels of both
joined. Training a crack-set model on such plates shows it many more plates with a short
crack beside a longer one (the cracks it misses, docs/model.md) than the simulated set
holds, at no simulation cost.

For a cracked training plate i, in each epoch, a generator seeded by `(SUPERPOSE_STREAM,
seed, epoch, sample i)` decides with `probability` whether to add a partner, then draws the
partner uniformly among the training plates j != i with at least one crack and at most
`max_cracks - n_i` (so the joined set fits the labels' crack rows), keeping the first of up
to `tries` draws whose cracks keep `clearance` [plate fractions] from plate i's (measured
between the straight lines joining each crack's two ends); none fits -> the plate is left
as it is. Uncracked plates are never changed (the model must still see quiet plates).
Validation and test plates are never changed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SUPERPOSE_STREAM = 3  # first SeedSequence entry; model/augment.py uses 2, model/perturb.py 0 and 1


def segment_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Shortest distance between the segments `a` and `b`, each `(x1, y1, x2, y2)` (any length
    unit; 0 when they cross or touch)."""
    p = np.asarray(a, dtype=np.float64).reshape(2, 2)
    q = np.asarray(b, dtype=np.float64).reshape(2, 2)
    if _cross_sign(p, q[0]) * _cross_sign(p, q[1]) <= 0 and \
            _cross_sign(q, p[0]) * _cross_sign(q, p[1]) <= 0 and _boxes_touch(p, q):
        return 0.0
    return min(_point_distance(p, q[0]), _point_distance(p, q[1]),
               _point_distance(q, p[0]), _point_distance(q, p[1]))


def _cross_sign(seg: np.ndarray, point: np.ndarray) -> float:
    """Sign of the cross product (seg[1] - seg[0]) x (point - seg[0])."""
    d, r = seg[1] - seg[0], point - seg[0]
    return float(np.sign(d[0] * r[1] - d[1] * r[0]))


def _boxes_touch(p: np.ndarray, q: np.ndarray) -> bool:
    """Whether the bounding boxes of two segments overlap (collinear segments need it)."""
    return bool(np.all(p.min(0) <= q.max(0)) and np.all(q.min(0) <= p.max(0)))


def _point_distance(seg: np.ndarray, point: np.ndarray) -> float:
    """Distance from `point` to the segment `seg` (2, 2)."""
    d = seg[1] - seg[0]
    length2 = float(d @ d)
    t = 0.0 if length2 == 0 else min(max(float((point - seg[0]) @ d) / length2, 0.0), 1.0)
    return float(np.linalg.norm(point - (seg[0] + t * d)))


@dataclass(frozen=True)
class Superposition:
    """Adds another training plate's cracks to a cracked training plate with `probability`
    (module docstring); `clearance` [plate fractions] between the two plates' cracks, `seed`
    of the draws, `tries` partners drawn at most."""

    probability: float
    clearance: float = 0.04
    seed: int = 0
    tries: int = 20

    def check(self) -> None:
        """ValueError naming a bad value: probability outside [0, 1], clearance < 0."""
        p = self.probability
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0 \
                or not math.isfinite(p):
            raise ValueError(f"augment_superpose must be a probability in [0, 1], got {p!r}")
        if not self.clearance >= 0:
            raise ValueError(f"superposition clearance must be >= 0, got {self.clearance!r}")

    def partner(self, epoch: int, position: int, samples: np.ndarray,
                targets: np.ndarray) -> int | None:
        """The position of the plate whose cracks are added to plate `position` in `epoch`,
        or None. `samples` `(N,)` are the global sample indices of the training plates,
        `targets` `(N, C, 8)` their crack rows (box, then the two ends `x1, y1, x2, y2`;
        NaN rows beyond each plate's cracks, model.crack_labels.crack_targets)."""
        counts = np.isfinite(targets[:, :, 0]).sum(axis=1)
        own = counts[position]
        rng = np.random.default_rng([SUPERPOSE_STREAM, int(self.seed), int(epoch),
                                     int(samples[position])])
        if own == 0 or rng.random() >= self.probability:
            return None
        fits = np.flatnonzero((counts >= 1) & (counts + own <= targets.shape[1]))
        fits = fits[fits != position]
        if len(fits) == 0:
            return None
        mine = targets[position, :own, 4:]
        for j in rng.choice(fits, size=min(self.tries, len(fits)), replace=False):
            theirs = targets[j, :counts[j], 4:]
            if all(segment_distance(a, b) >= self.clearance for a in mine for b in theirs):
                return int(j)
        return None


def superposed(field: np.ndarray, other: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The raw wavefield `(time, sensor, component)` [m] of a plate holding the cracks of both:
    `field + (other - reference)`, `reference` the pristine plate's wavefield; float32."""
    return (np.asarray(field, np.float32) + (np.asarray(other, np.float32)
                                             - np.asarray(reference, np.float32)))


def joined(target: np.ndarray, other: np.ndarray) -> np.ndarray:
    """The crack rows `(C, 8)` of both plates: `target`'s cracks, then `other`'s, NaN after;
    ValueError when they do not fit in C rows."""
    rows = np.concatenate([target[np.isfinite(target[:, 0])], other[np.isfinite(other[:, 0])]])
    if len(rows) > len(target):
        raise ValueError(f"{len(rows)} cracks do not fit the labels' {len(target)} crack rows")
    out = np.full_like(target, np.nan)
    out[:len(rows)] = rows
    return out
