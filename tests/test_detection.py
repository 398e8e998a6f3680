"""Detection metrics (model/detection.py) against hand-worked cases and brute force:
matching against exhaustive search over all assignments, AP computed by hand, Chamfer
against a double loop, pairwise IoU against the row-paired IoU one pair at a time, bootstrap
intervals against scoring every resample from scratch."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from model.detection import (INTERVAL_METRICS, IOU_THRESHOLDS, average_precision,
                             chamfer_distance, count_table, crack_matches, crack_size_table,
                             detection_intervals, detection_scores, endpoint_error,
                             match_greedy, match_hungarian, outline_chamfer, pairwise_iou,
                             plate_matches, resample_outline, resampled_scores)
from model.metrics import box_iou

NAN4 = [np.nan] * 4


def random_boxes(rng, n):
    lo = rng.uniform(0, 0.7, (n, 2))
    return np.concatenate([lo, lo + rng.uniform(0.05, 0.3, (n, 2))], axis=1)


# --- one sample --------------------------------------------------------------------------------

def test_pairwise_iou_is_the_paired_iou_of_every_pair():
    rng = np.random.default_rng(0)
    pred, true = random_boxes(rng, 4), random_boxes(rng, 3)
    got = pairwise_iou(pred, true)
    assert got.shape == (4, 3)
    for p in range(4):
        for t in range(3):
            assert got[p, t] == box_iou(pred[p:p + 1], true[t:t + 1])[0]
    assert pairwise_iou(np.zeros((0, 4)), true).shape == (0, 3)


def best_assignment_value(iou, threshold):
    """Exhaustive search: the largest summed IoU over all one-to-one partial assignments of
    predictions to true cracks, counting pairs with IoU >= threshold and > 0."""
    n_pred, n_true = iou.shape
    best = 0.0
    for choice in itertools.product(range(-1, n_true), repeat=n_pred):
        used = [t for t in choice if t >= 0]
        if len(used) != len(set(used)):
            continue
        value = sum(iou[p, t] for p, t in enumerate(choice)
                    if t >= 0 and iou[p, t] >= threshold and iou[p, t] > 0)
        best = max(best, value)
    return best


@pytest.mark.parametrize("seed", range(40))
def test_hungarian_matching_reaches_the_exhaustive_optimum(seed):
    rng = np.random.default_rng(seed)
    n_pred, n_true = rng.integers(0, 5), rng.integers(0, 5)
    iou = pairwise_iou(random_boxes(rng, n_pred), random_boxes(rng, n_true))
    threshold = [0.0, 0.1, 0.3][seed % 3]
    pairs = match_hungarian(iou, threshold)
    assert len(set(pairs[:, 0])) == len(pairs) == len(set(pairs[:, 1]))  # one-to-one
    assert all(iou[p, t] >= threshold and iou[p, t] > 0 for p, t in pairs)
    assert math.isclose(sum(iou[p, t] for p, t in pairs), best_assignment_value(iou, threshold),
                        rel_tol=0, abs_tol=1e-12)


def test_greedy_follows_scores_where_hungarian_maximises_the_sum():
    """Prediction 0 (score 0.9) overlaps crack 0 by 0.9 and crack 1 by 0.5; prediction 1
    (score 0.8) overlaps crack 0 by 0.6 only. Greedy: 0 takes crack 0, 1 finds nothing left
    at 0.5. Hungarian: 0-1 and 1-0, 1.1 in total."""
    iou = np.array([[0.9, 0.5], [0.6, 0.0]])
    assert match_greedy(iou, np.array([0.9, 0.8]), 0.5).tolist() == [[0, 0]]
    assert match_greedy(iou, np.array([0.7, 0.8]), 0.5).tolist() == [[1, 0], [0, 1]]
    assert sorted(match_hungarian(iou).tolist()) == [[0, 1], [1, 0]]
    assert match_greedy(iou, np.array([0.9, 0.8]), 0.95).tolist() == []


def test_greedy_takes_an_iou_equal_to_the_threshold_and_breaks_score_ties_by_slot():
    iou = np.array([[0.5], [0.5]])
    assert match_greedy(iou, np.array([0.7, 0.7]), 0.5).tolist() == [[0, 0]]


def test_average_precision_by_hand():
    """Ranks TP, FP, TP, FP, TP against 3 true cracks: precision 1, 1/2, 2/3, 1/2, 3/5 at
    recall 1/3, 1/3, 2/3, 2/3, 1; envelope 1, 2/3, 2/3, 3/5, 3/5;
    AP = 1/3 * 1 + 1/3 * 2/3 + 1/3 * 3/5 = 34/45."""
    score = np.array([0.6, 0.9, 0.5, 0.8, 0.7])   # given out of order
    is_tp = np.array([False, True, True, False, True])
    assert average_precision(score, is_tp, 3) == pytest.approx(34 / 45, abs=1e-15)
    assert average_precision(score[:0], is_tp[:0], 3) == 0.0


def test_average_precision_takes_the_precision_envelope():
    """Ranks TP, FP, FP, TP, TP against 3: precision at the recall steps 1, 2/4, 3/5; the
    envelope lifts the second to 3/5: AP = 1/3 + 1/3 * 3/5 + 1/3 * 3/5 = 11/15 (7/10
    without it)."""
    is_tp = np.array([True, False, False, True, True])
    assert average_precision(-np.arange(5.0), is_tp, 3) == pytest.approx(11 / 15, abs=1e-15)
    assert math.isnan(average_precision(-np.arange(5.0), is_tp, 0))


def two_samples():
    """Sample 0: cracks A, B; sample 1: crack C. Predictions by score: 0.9 = A, 0.8 on empty
    plate area, 0.7 = C, 0.6 = A again, 0.5 on B with IoU 0.62 (its upper edge low)."""
    a, b, c = [0.1, 0.1, 0.2, 0.2], [0.5, 0.5, 0.6, 0.6], [0.3, 0.3, 0.5, 0.4]
    b_low = [0.5, 0.5, 0.6, 0.5 + 0.062]
    pred = np.array([[a, [0.8, 0.8, 0.9, 0.9], a, b_low], [c, NAN4, NAN4, NAN4]])
    score = np.array([[0.9, 0.8, 0.6, 0.5], [0.7, np.nan, np.nan, np.nan]])
    true = np.array([[a, b], [c, NAN4]])
    return pred, score, true


def test_ap_of_the_hand_built_case():
    """At IoU <= 0.6 the ranks are TP, FP, TP, FP, TP (34/45, test above); above 0.62 the
    last is an FP: TP, FP, TP, FP, FP gives 1/3 + 1/3 * 2/3 = 5/9. Thresholds 0.5, 0.55, 0.6
    (3 of 10) and 0.65 .. 0.95 (7): AP 0.5:0.95 = (3 * 34/45 + 7 * 5/9) / 10 = 277/450."""
    pred, score, true = two_samples()
    assert box_iou(pred[0, 3:4], true[0, 1:2])[0] == pytest.approx(0.62)
    assert IOU_THRESHOLDS == (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
    scores = detection_scores(plate_matches(pred, score, true, score_threshold=0.55))
    assert scores["AP50"] == pytest.approx(34 / 45, abs=1e-12)
    assert scores["AP50_95"] == pytest.approx(277 / 450, abs=1e-12)


def test_decisions_at_the_score_threshold_by_hand():
    """Kept at 0.55: 0.9 (A), 0.8 (nothing), 0.7 (C), 0.6 (A again): precision 2/4, recall
    2/3 (B missed); counts 3 vs 2 and 1 vs 1: count accuracy 1/2. Matched IoU: A 1, C 1,
    B 0 (its only overlapping prediction, 0.5, is not kept): 2/3. At 0.45 B is found with
    IoU 0.62."""
    pred, score, true = two_samples()
    scores = detection_scores(plate_matches(pred, score, true, score_threshold=0.55))
    assert (scores["precision50"], scores["recall50"]) == (0.5, pytest.approx(2 / 3))
    assert scores["count_accuracy"] == 0.5 and scores["predictions"] == 4
    assert scores["matched_IoU"] == pytest.approx(2 / 3)
    assert math.isnan(scores["false_alarm_rate"])  # no uncracked sample
    low = detection_scores(plate_matches(pred, score, true, score_threshold=0.45))
    assert low["recall50"] == 1.0 and low["matched_IoU"] == pytest.approx((2 + 0.62) / 3)


def test_false_alarms_count_uncracked_plates_with_a_kept_prediction():
    box = [0.1, 0.1, 0.3, 0.3]
    pred = np.array([[box], [box], [NAN4], [box]])
    score = np.array([[0.9], [0.2], [np.nan], [0.9]])
    true = np.array([[NAN4], [NAN4], [NAN4], [box]])
    scores = detection_scores(plate_matches(pred, score, true))
    assert scores["false_alarm_rate"] == pytest.approx(1 / 3)
    assert scores["count_accuracy"] == 0.75   # sample 0 predicts 1 crack where there is none
    assert scores["count_accuracy_cracked"] == 1.0   # the one cracked plate is counted right


def test_count_accuracy_on_cracked_plates_leaves_the_uncracked_ones_out():
    """Two uncracked plates with nothing kept (counted right), one crack found, one of two
    cracks found: 3 of 4 counts right over all plates, 1 of 2 over the cracked ones."""
    a, b = [0.1, 0.1, 0.3, 0.3], [0.6, 0.6, 0.8, 0.8]
    pred = np.array([[NAN4, NAN4], [b, NAN4], [a, NAN4], [a, b]])
    score = np.array([[np.nan, np.nan], [0.1, np.nan], [0.9, np.nan], [0.9, 0.2]])
    true = np.array([[NAN4, NAN4], [NAN4, NAN4], [a, NAN4], [a, b]])
    scores = detection_scores(plate_matches(pred, score, true, score_threshold=0.5))
    assert scores["count_accuracy"] == 0.75 and scores["count_accuracy_cracked"] == 0.5
    uncracked = detection_scores(plate_matches(pred[:2], score[:2], true[:2]))
    assert math.isnan(uncracked["count_accuracy_cracked"])


def test_one_crack_one_prediction_matched_iou_is_the_box_iou():
    rng = np.random.default_rng(3)
    pred, true = random_boxes(rng, 50), random_boxes(rng, 50)
    _, iou = crack_matches(pred[:, None], np.ones((50, 1)), true[:, None], 0.5)
    np.testing.assert_allclose(iou[:, 0], box_iou(pred, true), rtol=0, atol=1e-15)


def test_crack_matches_mark_padding_nan_and_misses_zero():
    pred = np.array([[[0.1, 0.1, 0.2, 0.2], NAN4]])
    true = np.array([[[0.5, 0.5, 0.6, 0.6], NAN4]])
    slot, iou = crack_matches(pred, np.array([[0.9, np.nan]]), true)
    assert slot.tolist() == [[-1, -1]] and iou[0, 0] == 0 and math.isnan(iou[0, 1])


# --- outlines ----------------------------------------------------------------------------------

def test_endpoint_error_takes_the_better_point_order():
    """True ends (0, 0), (1, 0); predicted (1, 0.1), (0, 0): reversed, the errors are 0 and
    0.1, mean 0.05 (in order they would be ~1.005 and 1)."""
    true = np.array([[0.0, 0.0], [0.5, 0.2], [1.0, 0.0], [np.nan, np.nan]])
    pred = np.array([[1.0, 0.1], [0.0, 0.0]])
    assert endpoint_error(pred, true) == pytest.approx(0.05, abs=1e-15)


def test_chamfer_distance_matches_a_double_loop():
    rng = np.random.default_rng(7)
    for _ in range(20):
        a, b = rng.normal(size=(rng.integers(1, 6), 2)), rng.normal(size=(rng.integers(1, 6), 2))
        to_b = [min(math.dist(p, q) for q in b) for p in a]
        to_a = [min(math.dist(p, q) for p in a) for q in b]
        expected = 0.5 * (sum(to_b) / len(a) + sum(to_a) / len(b))
        assert chamfer_distance(a, b) == pytest.approx(expected, abs=1e-12)


def test_resample_outline_walks_the_path_at_equal_arc_length():
    path = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [np.nan, np.nan]])
    np.testing.assert_allclose(resample_outline(path, 5),
                               [[0, 0], [0.5, 0], [1, 0], [1, 0.5], [1, 1]], atol=1e-15)


def test_a_segment_against_its_own_resampled_copy_has_zero_outline_error():
    segment = np.array([[0.01, 0.02], [0.03, 0.05]])
    assert outline_chamfer(segment, resample_outline(segment, 7)) == pytest.approx(0, abs=1e-15)
    assert endpoint_error(segment[::-1], segment) == 0.0


def test_outline_errors_in_the_data_set_scores_are_over_matched_cracks():
    """Sample 0: crack (0,0)-(0.01,0) found by a prediction whose outline is shifted 1 mm in
    y (end-point error 1 mm, Chamfer 1 mm); sample 1: a missed crack (no outline error)."""
    box = [0.0, 0.0, 0.2, 0.2]
    pred = np.array([[box], [NAN4]])
    true = np.array([[box], [box]])
    true_outline = np.array([[[[0.0, 0.0], [0.01, 0.0]]], [[[0.0, 0.0], [0.01, 0.0]]]])
    pred_outline = true_outline + [0.0, 0.001]
    scores = detection_scores(plate_matches(pred, np.array([[0.9], [np.nan]]), true,
                                            pred_outline=pred_outline,
                                            true_outline=true_outline))
    assert scores["outline_matched"] == 1
    assert scores["endpoint_error_m"] == pytest.approx(0.001)
    assert scores["chamfer_m"] == pytest.approx(0.001)


# --- tables ------------------------------------------------------------------------------------

def test_count_table_splits_samples_by_their_true_crack_count():
    pred, score, true = two_samples()
    uncracked = np.array([[NAN4, NAN4]])
    rows = count_table(plate_matches(np.concatenate([pred, pred[1:2]]),
                                     np.concatenate([score, score[1:2]]),
                                     np.concatenate([true, uncracked]), score_threshold=0.55))
    assert [r["n_cracks"] for r in rows] == [0, 1, 2]
    assert [r["samples"] for r in rows] == [1, 1, 1]
    assert rows[0]["false_alarm_rate"] == 1.0 and math.isnan(rows[0]["AP50"])
    assert rows[1]["AP50"] == 1.0 and rows[1]["count_accuracy"] == 1.0
    # sample 0 alone: TP (0.9), FP, FP (duplicate), TP (0.5, IoU 0.62): 1/2 + 1/2 * 1/2
    assert rows[2]["AP50"] == pytest.approx(0.75) and rows[2]["recall50"] == 0.5


def test_crack_size_table_rows_hold_the_cracks_longer_than_each_threshold():
    pred, score, true = two_samples()
    length = np.array([[0.005, 0.015], [0.010, np.nan]])   # A, B, C [m]
    rows = crack_size_table(plate_matches(pred, score, true, score_threshold=0.55), length,
                            thresholds=[0.0, 0.008, 0.012, 0.02])
    assert [r["cracks"] for r in rows] == [3, 2, 1, 0]
    assert rows[0]["recall50"] == pytest.approx(2 / 3)
    assert rows[1]["recall50"] == 0.5 and rows[2]["recall50"] == 0.0   # B is missed
    assert rows[1]["matched_IoU"] == 0.5                                 # C 1, B 0
    assert math.isnan(rows[3]["recall50"]) and math.isnan(rows[3]["matched_IoU"])


# --- bootstrap intervals -----------------------------------------------------------------------

def random_detections(rng, n, k=4, c=3):
    """`n` samples with 0..c true cracks each (uncracked ones included) and up to k scored
    predictions near them (some missing, some spurious), with end-point outlines."""
    true = np.full((n, c, 4), np.nan)
    pred = np.full((n, k, 4), np.nan)
    score = np.full((n, k), np.nan)
    for s in range(n):
        m = rng.integers(0, c + 1)
        true[s, :m] = random_boxes(rng, m)
        p = rng.integers(0, k + 1)
        pred[s, :p] = random_boxes(rng, p)
        near = min(m, p)
        pred[s, :near] = true[s, :near] + rng.normal(0, 0.03, (near, 4))
        score[s, :p] = rng.uniform(0, 1, p)
    return pred, score, true, rng.uniform(0, 0.1, (n, k, 2, 2)), rng.uniform(0, 0.1, (n, c, 2, 2))


def test_resampled_scores_equal_scoring_each_resample_from_scratch():
    rng = np.random.default_rng(5)
    pred, score, true, pred_ends, true_ends = random_detections(rng, 12)
    draws = rng.integers(0, 12, size=(25, 12))
    draws[0] = np.flatnonzero(np.isnan(true[:, 0, 0]))[0]   # uncracked plates only
    got = resampled_scores(plate_matches(pred, score, true, 0.4, pred_ends, true_ends), draws)
    assert set(got) == set(INTERVAL_METRICS)
    for r, rows in enumerate(draws):
        brute = detection_scores(plate_matches(pred[rows], score[rows], true[rows], 0.4,
                                               pred_ends[rows], true_ends[rows]))
        for name in INTERVAL_METRICS:
            np.testing.assert_allclose(got[name][r], brute[name], rtol=1e-12, atol=1e-15,
                                       err_msg=f"{name}, resample {r}")
    assert np.isnan(got["AP50"][0]) and np.isnan(got["matched_IoU"][0])


def test_intervals_are_the_percentiles_of_the_resampled_scores_and_hold_the_estimate():
    rng = np.random.default_rng(6)
    pred, score, true, pred_ends, true_ends = random_detections(rng, 60)
    matches = plate_matches(pred, score, true, 0.5, pred_ends, true_ends)
    intervals = detection_intervals(matches, resamples=300, seed=3)
    draws = np.random.default_rng(3).integers(0, 60, size=(300, 60))
    values = resampled_scores(matches, draws)
    point = detection_scores(matches)
    for name in INTERVAL_METRICS:
        finite = values[name][np.isfinite(values[name])]
        np.testing.assert_allclose(intervals[name], np.percentile(finite, [2.5, 97.5]))
        lo, hi = intervals[name]
        assert lo < point[name] < hi, (name, lo, point[name], hi)


def test_identical_samples_give_an_interval_of_zero_width():
    rng = np.random.default_rng(7)
    pred, score, true, _, _ = random_detections(rng, 1)
    while np.isnan(true[0, 0, 0]) or np.isnan(score[0, 0]):
        pred, score, true, _, _ = random_detections(rng, 1)
    many = [np.repeat(a, 20, axis=0) for a in (pred, score, true)]
    matches = plate_matches(*many, 0.5)
    point = detection_scores(matches)
    intervals = detection_intervals(matches, resamples=50)
    assert set(intervals) == set(INTERVAL_METRICS) - {"endpoint_error_m"}   # no outlines
    assert np.isnan(intervals.pop("false_alarm_rate")).all()   # no uncracked plate to score
    for name, (lo, hi) in intervals.items():
        assert lo == pytest.approx(point[name]) and hi == pytest.approx(point[name]), name


def test_the_matches_of_a_subset_score_as_matching_that_subset_from_scratch():
    rng = np.random.default_rng(8)
    pred, score, true, pred_ends, true_ends = random_detections(rng, 15)
    matches = plate_matches(pred, score, true, 0.45, pred_ends, true_ends)
    for rows in (rng.integers(0, 15, 15), np.isnan(true[:, 1, 0]), np.array([3, 3, 3])):
        brute = detection_scores(plate_matches(pred[rows], score[rows], true[rows], 0.45,
                                               pred_ends[rows], true_ends[rows]))
        got = detection_scores(matches.take(rows))
        assert got.keys() == brute.keys()
        np.testing.assert_allclose([got[k] for k in got], [brute[k] for k in got], rtol=1e-12,
                                   atol=1e-15)
