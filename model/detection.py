"""Detection metrics for several cracks per sample (issue 10): matching predicted boxes to true
boxes, matched IoU, precision, recall and average precision (AP), count accuracy, false
alarms on uncracked plates, outline errors in metres, and tables by crack count and size.

Layout (that of the per-crack labels, docs/data-format.md "Per-crack labels"):

- `pred_box` `(N, K, 4)` predicted boxes `(xmin, ymin, xmax, ymax)` in plate fractions and
  `score` `(N, K)` their confidences; slot `k` of sample `s` is a prediction when its score
  and box are finite (NaN pads the rest).
- `true_box` `(N, C, 4)`: row `c` is a true crack when its box is finite (`crack_box`).
- Outlines `(N, K or C, P, 2)` in metres, NaN after each outline's last point
  (`crack_outline`); their first and last points are the crack's ends.

IoU, areas and the 0/0 convention are those of `model.metrics` (a degenerate box has zero
area; IoU with an empty union is 0). Two matchings, each one-to-one within a sample:

- **greedy** (COCO's, used for AP, precision and recall at an IoU threshold `t`): predictions
  in decreasing score, ties in slot order; each takes the still unmatched true crack of
  highest IoU (first one on a tie) if that IoU is `>= t`;
- **Hungarian** (`scipy.optimize.linear_sum_assignment`, used for the matched IoU and the
  outline errors): the pairs that maximise the summed IoU over pairs of positive IoU.

AP at `t`: all predictions of all samples (whatever their score) sorted by decreasing score
(stable: sample order, then slot order), each a true positive when greedy-matched at `t`;
precision made non-increasing from the right (its envelope), AP = sum over ranks of the
recall gained times that precision (the all-point interpolation, without COCO's 101-point
sampling); NaN with no true crack. AP 0.5:0.95 is the mean over `IOU_THRESHOLDS`.

Every matching is within a sample, so a data set is matched once (`plate_matches`) and
every score, table and interval reads those matches: a subset of the samples (a row of
`count_table`) or a bootstrap resample (`detection_intervals`: percentile bootstrap over
samples, each resample scored as `detection_scores` would score it) takes their rows and
needs no new matching.

Decisions at `score_threshold` (predictions with `score >= score_threshold` are kept):
precision and recall at IoU 0.5, the count accuracy (kept count = true count; over all
samples, and over the cracked ones only: issue 10's count target is on 1-3 cracks, and the
uncracked plates, scored by the false alarm rate, would raise it), the false alarm rate
(uncracked samples with a kept prediction), the matched IoU and the outline errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np

from model.metrics import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, DEFAULT_SIZE_THRESHOLDS, box_iou

IOU_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))  # COCO's 0.50:0.05:0.95
DEFAULT_SCORE_THRESHOLD = 0.5
OUTLINE_SAMPLES = 32  # points per outline for the Chamfer distance (`resample_outline`)


# --- one sample --------------------------------------------------------------------------------

def pairwise_iou(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """IoU `(P, T)` of every predicted box `(P, 4)` with every true box `(T, 4)`."""
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 4)
    true = np.asarray(true, dtype=np.float64).reshape(-1, 4)
    n_pred, n_true = len(pred), len(true)
    return box_iou(np.repeat(pred, n_true, axis=0), np.tile(true, (n_pred, 1))
                   ).reshape(n_pred, n_true)


def match_greedy(iou: np.ndarray, score: np.ndarray, threshold: float) -> np.ndarray:
    """COCO's matching (module docstring) of `iou` `(P, T)` with prediction scores `(P,)` at
    IoU `threshold` (> 0): int `(M, 2)` pairs `(prediction, true crack)`."""
    if not threshold > 0:
        raise ValueError(f"threshold must be positive, got {threshold}")
    iou = np.asarray(iou, dtype=np.float64)
    free = np.ones(iou.shape[1], dtype=bool)
    pairs = []
    for p in np.argsort(-np.asarray(score, dtype=np.float64), kind="stable"):
        candidates = np.where(free, iou[p], -1.0)
        if candidates.size and candidates.max() >= threshold:
            t = int(candidates.argmax())
            pairs.append((int(p), t))
            free[t] = False
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def match_hungarian(iou: np.ndarray, threshold: float = 0.0) -> np.ndarray:
    """The one-to-one pairs `(M, 2)` `(prediction, true crack)` of `iou` `(P, T)` that maximise
    the summed IoU over pairs with IoU `>= threshold` and `> 0` (the only pairs returned)."""
    from scipy.optimize import linear_sum_assignment  # here: 0.7 s to import, box models never match

    iou = np.asarray(iou, dtype=np.float64)
    weight = np.where((iou >= threshold) & (iou > 0), iou, 0.0)
    rows, cols = linear_sum_assignment(weight, maximize=True)
    keep = weight[rows, cols] > 0
    return np.stack([rows[keep], cols[keep]], axis=1).astype(np.int64)


def average_precision(score: np.ndarray, is_tp: np.ndarray, n_true: int) -> float:
    """All-point interpolated AP of detections `score` `(D,)` flagged true positive `is_tp`
    `(D,)` against `n_true` true objects (module docstring); NaN when `n_true` is 0."""
    if n_true == 0:
        return float("nan")
    order = np.argsort(-np.asarray(score, dtype=np.float64), kind="stable")
    tp = np.asarray(is_tp, dtype=bool)[order]
    hits = np.cumsum(tp)
    recall = hits / n_true
    precision = hits / np.arange(1, len(tp) + 1)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    gained = np.diff(np.concatenate([[0.0], recall]))
    return float(np.sum(gained * envelope))


def outline_ends(points: np.ndarray) -> np.ndarray:
    """First and last finite points `(2, 2)` of an outline `(P, 2)` (NaN-padded)."""
    points = _finite_points(points)
    return points[[0, -1]]


def endpoint_error(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean distance [m] between the end points of two outlines `(P, 2)`, `(Q, 2)`, under the
    better of the two pairings (first-first, last-last or first-last, last-first)."""
    a, b = outline_ends(pred), outline_ends(true)
    same = np.linalg.norm(a - b, axis=1).mean()
    swapped = np.linalg.norm(a - b[::-1], axis=1).mean()
    return float(min(same, swapped))


def chamfer_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Symmetric Chamfer distance [m] of point sets `a` `(P, 2)`, `b` `(Q, 2)`: the mean over
    `a` of the distance to the nearest point of `b`, and the same from `b`, averaged."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    distance = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=-1)     # (P, Q)
    return float(0.5 * (distance.min(axis=1).mean() + distance.min(axis=0).mean()))


def resample_outline(points: np.ndarray, n: int = OUTLINE_SAMPLES) -> np.ndarray:
    """`n` points `(n, 2)` at equal arc length along an outline's polyline `(P, 2)` (its
    finite points, in order), both ends included; a zero-length outline repeats its point."""
    points = _finite_points(points)
    steps = np.linalg.norm(np.diff(points, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(steps)])
    at = np.linspace(0.0, arc[-1], n)
    return np.stack([np.interp(at, arc, points[:, 0]), np.interp(at, arc, points[:, 1])], axis=1)


def outline_chamfer(pred: np.ndarray, true: np.ndarray, n: int = OUTLINE_SAMPLES) -> float:
    """Chamfer distance [m] of two outlines `(P, 2)`, `(Q, 2)`, each resampled to `n` points
    along its path, so a polyline and a segment compare as curves, not as vertex sets."""
    return chamfer_distance(resample_outline(pred, n), resample_outline(true, n))


def _finite_points(points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    points = points[np.isfinite(points).all(axis=1)]
    if len(points) == 0:
        raise ValueError("an outline needs at least one finite point")
    return points


# --- a data set --------------------------------------------------------------------------------

def _check(pred_box: np.ndarray, score: np.ndarray, true_box: np.ndarray):
    pred_box = np.asarray(pred_box, dtype=np.float64)
    score = np.asarray(score, dtype=np.float64)
    true_box = np.asarray(true_box, dtype=np.float64)
    if pred_box.ndim != 3 or pred_box.shape[2] != 4 or score.shape != pred_box.shape[:2]:
        raise ValueError(f"pred_box must be (N, K, 4) and score (N, K), got {pred_box.shape} "
                         f"and {score.shape}")
    if true_box.ndim != 3 or true_box.shape[2] != 4 or len(true_box) != len(pred_box):
        raise ValueError(f"true_box must be (N, C, 4) with N = {len(pred_box)}, got "
                         f"{true_box.shape}")
    return pred_box, score, true_box


def _predicted(pred_box: np.ndarray, score: np.ndarray) -> np.ndarray:
    """(N, K) bool: the slot holds a prediction (finite score and box)."""
    return np.isfinite(score) & np.isfinite(pred_box).all(axis=-1)


def _true(true_box: np.ndarray) -> np.ndarray:
    """(N, C) bool: the row holds a true crack (finite box)."""
    return np.isfinite(true_box).all(axis=-1)


def greedy_flags(pred_box: np.ndarray, score: np.ndarray, true_box: np.ndarray,
                 threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Greedy matching at IoU `threshold`, sample by sample, as flags: `(pred_tp (N, K),
    true_found (N, C))` bool, a prediction matched / a true crack matched."""
    pred_box, score, true_box = _check(pred_box, score, true_box)
    predicted, true = _predicted(pred_box, score), _true(true_box)
    pred_tp = np.zeros(predicted.shape, dtype=bool)
    true_found = np.zeros(true.shape, dtype=bool)
    for s in range(len(pred_box)):
        slots, rows = np.flatnonzero(predicted[s]), np.flatnonzero(true[s])
        pairs = match_greedy(pairwise_iou(pred_box[s, slots], true_box[s, rows]),
                             score[s, slots], threshold)
        pred_tp[s, slots[pairs[:, 0]]] = True
        true_found[s, rows[pairs[:, 1]]] = True
    return pred_tp, true_found


def crack_matches(pred_box: np.ndarray, score: np.ndarray, true_box: np.ndarray,
                  score_threshold: float = DEFAULT_SCORE_THRESHOLD
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Hungarian matching of the kept predictions (`score >= score_threshold`) to the true
    cracks, sample by sample: `(slot (N, C) int, iou (N, C) float)`, the matched prediction's
    slot (-1 when unmatched) and its IoU (0 when unmatched, NaN for a row without a crack)."""
    pred_box, score, true_box = _check(pred_box, score, true_box)
    kept, true = _predicted(pred_box, score) & (score >= score_threshold), _true(true_box)
    slot = np.full(true.shape, -1, dtype=np.int64)
    iou = np.where(true, 0.0, np.nan)
    for s in range(len(pred_box)):
        slots, rows = np.flatnonzero(kept[s]), np.flatnonzero(true[s])
        pairwise = pairwise_iou(pred_box[s, slots], true_box[s, rows])
        pairs = match_hungarian(pairwise)
        slot[s, rows[pairs[:, 1]]] = slots[pairs[:, 0]]
        iou[s, rows[pairs[:, 1]]] = pairwise[pairs[:, 0], pairs[:, 1]]
    return slot, iou


def outline_errors(pred_outline: np.ndarray, true_outline: np.ndarray, slot: np.ndarray,
                   n: int = OUTLINE_SAMPLES) -> tuple[np.ndarray, np.ndarray]:
    """End-point error and Chamfer distance [m] `(N, C)` each of every true crack's outline
    `true_outline` `(N, C, Q, 2)` against that of its matched prediction `pred_outline`
    `(N, K, P, 2)` (`slot` `(N, C)` from `crack_matches`); NaN where unmatched."""
    endpoint = np.full(slot.shape, np.nan)
    chamfer = np.full(slot.shape, np.nan)
    for s, c in zip(*np.nonzero(slot >= 0)):
        pred, true = pred_outline[s, slot[s, c]], true_outline[s, c]
        endpoint[s, c] = endpoint_error(pred, true)
        chamfer[s, c] = outline_chamfer(pred, true, n)
    return endpoint, chamfer


@dataclass(frozen=True)
class PlateMatches:
    """Every matching of a data set of N plates, computed once by `plate_matches`. Each
    matching is within a plate, so the matches of any subset or resample of the plates are
    the rows of these (`take`): the scores, their intervals and the tables all read them.

    `score` `(N, K)`; `predicted`, `kept` `(N, K)` (a prediction; one with `score >=
    score_threshold`); `true` `(N, C)`; `tp` `(T, N, K)` greedy true positives of all
    predictions at each of `IOU_THRESHOLDS`; `tp50`, `found50` greedy flags of the kept
    predictions at IoU 0.5; `slot`, `iou` `(N, C)` their Hungarian matching
    (`crack_matches`); with outlines, `endpoint`, `chamfer` `(N, C)` [m] (`outline_errors`),
    else None.
    """

    score: np.ndarray
    predicted: np.ndarray
    kept: np.ndarray
    true: np.ndarray
    tp: np.ndarray
    tp50: np.ndarray
    found50: np.ndarray
    slot: np.ndarray
    iou: np.ndarray
    endpoint: np.ndarray | None = None
    chamfer: np.ndarray | None = None

    def take(self, rows: np.ndarray) -> "PlateMatches":
        """The matches of plates `rows` (indices with repeats, or a boolean mask)."""
        def pick(values):
            return None if values is None else values[rows]

        return PlateMatches(**{f.name: pick(getattr(self, f.name)) for f in fields(self)
                               if f.name != "tp"}, tp=self.tp[:, rows])


def plate_matches(pred_box: np.ndarray, score: np.ndarray, true_box: np.ndarray,
                  score_threshold: float = DEFAULT_SCORE_THRESHOLD,
                  pred_outline: np.ndarray | None = None,
                  true_outline: np.ndarray | None = None) -> PlateMatches:
    """All the matchings the detection metrics need (`PlateMatches`), decisions at
    `score_threshold`; the outline errors only with both outlines."""
    pred_box, score, true_box = _check(pred_box, score, true_box)
    predicted, true = _predicted(pred_box, score), _true(true_box)
    kept = predicted & (score >= score_threshold)
    tp = np.stack([greedy_flags(pred_box, score, true_box, t)[0] for t in IOU_THRESHOLDS])
    tp50, found50 = greedy_flags(pred_box, np.where(kept, score, np.nan), true_box, 0.5)
    slot, iou = crack_matches(pred_box, score, true_box, score_threshold)
    endpoint = chamfer = None
    if pred_outline is not None and true_outline is not None:
        endpoint, chamfer = outline_errors(np.asarray(pred_outline, dtype=np.float64),
                                           np.asarray(true_outline, dtype=np.float64), slot)
    return PlateMatches(score=score, predicted=predicted, kept=kept, true=true, tp=tp,
                        tp50=tp50, found50=found50, slot=slot, iou=iou, endpoint=endpoint,
                        chamfer=chamfer)


def detection_scores(matches: PlateMatches) -> dict:
    """Every detection metric of a data set (module docstring) from its `plate_matches`, as a
    dict of floats:

    `samples`, `cracks` (true), `predictions` (kept); `AP50`, `AP50_95`; `precision50`,
    `recall50` (kept predictions, greedy at IoU 0.5; NaN with none kept / no crack);
    `matched_IoU` (mean over true cracks, 0 for unmatched; NaN with no crack);
    `count_accuracy` (all samples), `count_accuracy_cracked` (samples with a crack, NaN if
    none); `false_alarm_rate` (over uncracked samples, NaN if none); with
    outlines, `endpoint_error_m` and `chamfer_m` (means over matched cracks) and
    `outline_matched` (their count).
    """
    m = matches
    n_true = int(m.true.sum())
    ap = [average_precision(m.score[m.predicted], tp[m.predicted], n_true) for tp in m.tp]
    uncracked = ~m.true.any(axis=1)
    counted = m.kept.sum(axis=1) == m.true.sum(axis=1)
    result = {
        "samples": int(len(m.score)), "cracks": n_true, "predictions": int(m.kept.sum()),
        "AP50": ap[0], "AP50_95": float(np.mean(ap)),
        "precision50": _mean_or_nan(m.tp50[m.kept]), "recall50": _mean_or_nan(m.found50[m.true]),
        "matched_IoU": _mean_or_nan(m.iou[m.true]),
        "count_accuracy": _mean_or_nan(counted),
        "count_accuracy_cracked": _mean_or_nan(counted[~uncracked]),
        "false_alarm_rate": _mean_or_nan(m.kept[uncracked].any(axis=1)),
    }
    if m.endpoint is not None:
        matched = m.slot >= 0
        result.update(endpoint_error_m=_mean_or_nan(m.endpoint[matched]),
                      chamfer_m=_mean_or_nan(m.chamfer[matched]),
                      outline_matched=int(matched.sum()))
    return result


INTERVAL_METRICS = ("AP50", "AP50_95", "matched_IoU", "count_accuracy",
                    "count_accuracy_cracked", "false_alarm_rate", "endpoint_error_m")


def resampled_scores(matches: PlateMatches, draws: np.ndarray) -> dict[str, np.ndarray]:
    """`INTERVAL_METRICS` of `detection_scores` on each resample of the plates: `draws`
    `(R, N')` plate indices (with repeats) -> `{metric: (R,)}` (NaN where a resample has
    nothing to score, e.g. no uncracked plate; `endpoint_error_m` only with outlines).
    Equal to `detection_scores(matches.take(d))` for each row `d`, without building them."""
    m = matches
    n_true = m.true.sum(axis=1)
    counted = m.kept.sum(axis=1) == n_true
    per_sample = {  # (numerator, denominator) of each ratio metric, per plate
        "matched_IoU": (np.nansum(m.iou, axis=1), n_true),
        "count_accuracy": (counted, np.ones(len(m.score))),
        "count_accuracy_cracked": (counted & (n_true > 0), n_true > 0),
        "false_alarm_rate": (m.kept.any(axis=1) & (n_true == 0), n_true == 0),
    }
    if m.endpoint is not None:
        per_sample["endpoint_error_m"] = (np.nansum(m.endpoint, axis=1), (m.slot >= 0).sum(axis=1))
    draws = np.asarray(draws)
    result = {}
    for name, (num, den) in per_sample.items():
        num_r, den_r = num.astype(float)[draws].sum(axis=1), den.astype(float)[draws].sum(axis=1)
        result[name] = np.divide(num_r, den_r, out=np.full(len(draws), np.nan),
                                 where=den_r > 0)
    ap = np.empty((len(IOU_THRESHOLDS), len(draws)))
    for r, rows in enumerate(draws):
        mask, drawn_score, n = m.predicted[rows], m.score[rows], int(n_true[rows].sum())
        for i, tp in enumerate(m.tp):
            ap[i, r] = average_precision(drawn_score[mask], tp[rows][mask], n)
    result["AP50"], result["AP50_95"] = ap[0], ap.mean(axis=0)
    return result


def detection_intervals(matches: PlateMatches, level: float = 0.95,
                        resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
                        ) -> dict[str, list[float]]:
    """Percentile-bootstrap intervals `{metric: [lo, hi]}` of `INTERVAL_METRICS` over the N
    plates of `matches`: the draws of `model.metrics.bootstrap_ci` (`default_rng(seed)
    .integers(0, N, (resamples, N))`), each resample scored by `resampled_scores`, the
    `(1 - level)/2` and `(1 + level)/2` percentiles of each metric over the resamples that
    define it (NaN ones left out; `[nan, nan]` if none does). Whole plates are drawn, so the
    cracks of a plate stay together (a cluster bootstrap for the per-crack metrics)."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    n = len(matches.score)
    draws = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    result = {}
    for name, values in resampled_scores(matches, draws).items():
        finite = values[np.isfinite(values)]
        result[name] = ([float(v) for v in np.percentile(finite, [50 * (1 - level),
                                                                   50 * (1 + level)])]
                        if finite.size else [float("nan"), float("nan")])
    return result


def paired_differences(baseline: PlateMatches, candidate: PlateMatches,
                       level: float = 0.95) -> list[dict]:
    """Two scorings of the same N plates compared: one row per `resampled_scores` metric,
    `metric`, `baseline`, `candidate` (`detection_scores` of each), `difference` (candidate
    minus baseline) and `interval95`, its percentile-bootstrap interval at `level` over
    resamples of whole plates, both scored on the same draws (those of `detection_intervals`)
    so that what the plates share cancels; None where a score is undefined."""
    n = len(baseline.score)
    if len(candidate.score) != n:
        raise ValueError(f"paired scorings need the same plates, got {n} and "
                         f"{len(candidate.score)}")
    draws = np.random.default_rng(BOOTSTRAP_SEED).integers(0, n, size=(BOOTSTRAP_RESAMPLES, n))
    base_draws, cand_draws = resampled_scores(baseline, draws), resampled_scores(candidate, draws)
    base_all, cand_all = detection_scores(baseline), detection_scores(candidate)
    rows = []
    for name in base_draws:
        diff = cand_draws[name] - base_draws[name]
        diff = diff[np.isfinite(diff)]
        interval = (np.percentile(diff, [50 * (1 - level), 50 * (1 + level)]).tolist()
                    if diff.size else [None, None])
        both = [None if not np.isfinite(v) else float(v) for v in (base_all[name], cand_all[name])]
        rows.append({"metric": name, "baseline": both[0], "candidate": both[1],
                     "difference": None if None in both else both[1] - both[0],
                     "interval95": interval})
    return rows

def _mean_or_nan(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()) if values.size else float("nan")


def count_table(matches: PlateMatches) -> list[dict]:
    """One row per true crack count `n` = 0 .. C (the `crack` dimension): `n_cracks` and
    `detection_scores` of the plates with exactly `n` cracks (`samples` 0 and NaN scores
    for a count no plate has)."""
    count = matches.true.sum(axis=1)
    return [{"n_cracks": n, **detection_scores(matches.take(count == n))}
            for n in range(matches.true.shape[1] + 1)]


def crack_size_table(matches: PlateMatches, crack_length: np.ndarray,
                     thresholds: Sequence[float] = DEFAULT_SIZE_THRESHOLDS) -> list[dict]:
    """Per-crack scores by crack size, Table-1 style: one row per threshold `t` [m] over the
    true cracks whose own length `crack_length` `(N, C)` [m] exceeds `t`: `threshold`,
    `cracks`, `recall50` (greedy at IoU 0.5 among kept predictions), `matched_IoU`, and with
    outlines `endpoint_error_m`, `chamfer_m` (over the matched ones). NaN for an empty row.
    (Precision has no crack size: a false positive belongs to no true crack.)"""
    m = matches
    length = np.asarray(crack_length, dtype=np.float64)
    rows = []
    for t in thresholds:
        keep = m.true & (length > t)
        row = {"threshold": float(t), "cracks": int(keep.sum()),
               "recall50": _mean_or_nan(m.found50[keep]), "matched_IoU": _mean_or_nan(m.iou[keep])}
        if m.endpoint is not None:
            matched = keep & (m.slot >= 0)
            row.update(endpoint_error_m=_mean_or_nan(m.endpoint[matched]),
                       chamfer_m=_mean_or_nan(m.chamfer[matched]))
        rows.append(row)
    return rows
