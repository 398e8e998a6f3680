"""Box metrics and losses: hand-worked cases and a brute-force raster cross-check."""

import numpy as np
import pytest
import torch

from model import metrics
from model.losses import giou_loss, make_loss

UNIT = np.array([[0.0, 0.0, 1.0, 1.0]])
INNER = np.array([[0.25, 0.25, 0.75, 0.75]])  # area 1/4, inside UNIT


def test_identical_boxes_score_one():
    box = np.array([[0.1, 0.2, 0.4, 0.7]])
    for fn in (metrics.box_iou, metrics.purity, metrics.integrity):
        np.testing.assert_allclose(fn(box, box), [1.0])


def test_disjoint_boxes_score_zero():
    a, b = np.array([[0, 0, 0.3, 0.3]]), np.array([[0.5, 0.5, 0.9, 0.9]])
    for fn in (metrics.box_iou, metrics.purity, metrics.integrity):
        np.testing.assert_allclose(fn(a, b), [0.0])


def test_boxes_touching_along_an_edge_score_zero():
    np.testing.assert_allclose(metrics.box_iou(np.array([[0, 0, 0.5, 1]]),
                                               np.array([[0.5, 0, 1, 1]])), [0.0])


def test_nested_prediction_iou_is_the_area_ratio_and_purity_is_one():
    np.testing.assert_allclose(metrics.box_iou(INNER, UNIT), [0.25])
    np.testing.assert_allclose(metrics.purity(INNER, UNIT), [1.0])
    np.testing.assert_allclose(metrics.integrity(INNER, UNIT), [0.25])


def test_enclosing_prediction_has_full_integrity():
    np.testing.assert_allclose(metrics.purity(UNIT, INNER), [0.25])
    np.testing.assert_allclose(metrics.integrity(UNIT, INNER), [1.0])


def test_partial_overlap_by_hand():
    # overlap [0.5,1]x[0,1] = 0.5; areas 1 and 1 -> IoU 0.5/1.5
    a, b = np.array([[0, 0, 1, 1]]), np.array([[0.5, 0, 1.5, 1]])
    np.testing.assert_allclose(metrics.box_iou(a, b), [1 / 3])


def test_inverted_prediction_has_zero_area_and_scores_zero():
    inverted = np.array([[0.75, 0.25, 0.25, 0.75]])  # xmax < xmin
    assert metrics.box_area(inverted)[0] == 0
    for fn in (metrics.box_iou, metrics.purity, metrics.integrity):
        np.testing.assert_allclose(fn(inverted, UNIT), [0.0])


def test_zero_denominators_give_zero_not_nan():
    point = np.array([[0.5, 0.5, 0.5, 0.5]])
    with np.errstate(all="raise"):
        for fn in (metrics.box_iou, metrics.purity, metrics.integrity):
            np.testing.assert_array_equal(fn(point, point), [0.0])


def _raster(boxes, n=400):
    """Boolean (N, n, n) rasters of boxes sampled at cell centres of an n x n grid on [0,1]^2."""
    centres = (np.arange(n) + 0.5) / n
    x = (centres >= boxes[:, 0, None]) & (centres < boxes[:, 2, None])
    y = (centres >= boxes[:, 1, None]) & (centres < boxes[:, 3, None])
    return y[:, :, None] & x[:, None, :]


def test_metrics_match_a_brute_force_raster_on_random_boxes():
    rng = np.random.default_rng(7)
    n = 400
    # corners on the raster grid so the raster areas are exact
    corners = rng.integers(0, n + 1, size=(2, 50, 4)) / n
    pred, true = (np.concatenate([np.minimum(c[:, :2], c[:, 2:]), np.maximum(c[:, :2], c[:, 2:])],
                                 axis=1) for c in corners)
    rp, rt = _raster(pred, n), _raster(true, n)
    inter = (rp & rt).sum(axis=(1, 2))
    union = (rp | rt).sum(axis=(1, 2))
    area_p, area_t = rp.sum(axis=(1, 2)), rt.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = [np.nan_to_num(inter / union), np.nan_to_num(inter / area_p),
                    np.nan_to_num(inter / area_t)]
    for fn, want in zip((metrics.box_iou, metrics.purity, metrics.integrity), expected):
        np.testing.assert_allclose(fn(pred, true), want, atol=1e-12)


def test_regression_errors_by_hand():
    pred, true = np.array([[0.0, 0.0, 0.0, 2.0]]), np.zeros((1, 4))
    assert metrics.mae(pred, true) == pytest.approx(0.5)
    assert metrics.mse(pred, true) == pytest.approx(1.0)
    # error 2 with delta 1: 1 * (2 - 0.5) = 1.5, mean over 4 coordinates
    assert metrics.huber(pred, true, delta=1.0) == pytest.approx(1.5 / 4)
    assert metrics.huber(pred, true, delta=3.0) == pytest.approx(0.5 * 4 / 4)


def test_size_table_rows_are_sizes_above_each_threshold():
    pred = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 0.5, 0.5]], float)
    true = np.array([[0, 0, 1, 1], [0.25, 0.25, 0.75, 0.75], [0, 0, 1, 1]], float)
    sizes = np.array([0.002, 0.006, 0.010])
    table = metrics.size_table(pred, true, sizes, thresholds=[0, 0.004, 0.008, 0.02])
    assert [r["count"] for r in table] == [3, 2, 1, 0]
    assert table[0]["IoU"] == pytest.approx((1 + 0.25 + 0.25) / 3)
    assert table[1]["Purity"] == pytest.approx((0.25 + 1.0) / 2)
    assert table[2]["Integrity"] == pytest.approx(0.25)
    assert np.isnan(table[3]["IoU"])


def test_size_table_default_thresholds_are_metres():
    # a 10 mm crack is above the 0, 4 and 8 mm rows and below the 12 and 16 mm ones
    box = np.array([[0.0, 0.0, 1.0, 1.0]])
    table = metrics.size_table(box, box, np.array([0.010]))
    assert [r["count"] for r in table] == [1, 1, 1, 0, 0]


def test_losses_agree_with_the_numpy_metrics():
    rng = np.random.default_rng(0)
    pred, true = rng.uniform(size=(6, 4)), rng.uniform(size=(6, 4))
    tp, tt = torch.from_numpy(pred), torch.from_numpy(true)
    assert float(make_loss("mse")(tp, tt)) == pytest.approx(metrics.mse(pred, true))
    assert float(make_loss("mae")(tp, tt)) == pytest.approx(metrics.mae(pred, true))
    assert float(make_loss("huber", 0.1)(tp, tt)) == pytest.approx(metrics.huber(pred, true, 0.1))


def test_giou_loss_is_zero_for_identical_and_above_one_for_distant_boxes():
    a = torch.tensor([[0.1, 0.1, 0.3, 0.3]])
    b = torch.tensor([[0.7, 0.7, 0.9, 0.9]])
    assert float(giou_loss(a, a)) == pytest.approx(0.0, abs=1e-6)
    assert 1.0 < float(giou_loss(a, b)) < 2.0


def test_giou_loss_has_a_gradient_for_disjoint_boxes():
    a = torch.tensor([[0.1, 0.1, 0.3, 0.3]], requires_grad=True)
    giou_loss(a, torch.tensor([[0.7, 0.7, 0.9, 0.9]])).backward()
    assert a.grad.abs().sum() > 0


def test_unknown_loss_is_named():
    with pytest.raises(ValueError, match="l7"):
        make_loss("l7")


# --- bootstrap confidence intervals ------------------------------------------------------------

def _order_statistic(sorted_values, q):
    """The q-quantile of sorted values by linear interpolation between order statistics
    (numpy's default rule, written out by hand)."""
    position = q * (len(sorted_values) - 1)
    below = int(position)
    above = min(below + 1, len(sorted_values) - 1)
    return sorted_values[below] + (position - below) * (sorted_values[above] - sorted_values[below])


def test_bootstrap_matches_a_brute_force_resampling_with_the_same_draws():
    values = np.random.default_rng(11).exponential(0.2, 25)
    resamples, seed = 500, 9
    draws = np.random.default_rng(seed).integers(0, len(values), size=(resamples, len(values)))
    means = sorted(sum(values[i] for i in row) / len(row) for row in draws)
    lo, hi = metrics.bootstrap_ci(values, level=0.9, resamples=resamples, seed=seed)
    assert lo == pytest.approx(_order_statistic(means, 0.05), rel=1e-12)
    assert hi == pytest.approx(_order_statistic(means, 0.95), rel=1e-12)


def test_bootstrap_of_a_large_sample_is_the_normal_interval():
    values = np.random.default_rng(12).exponential(1.0, 2000)
    half = 1.959964 * values.std(ddof=1) / np.sqrt(len(values))
    lo, hi = metrics.bootstrap_ci(values)
    # Monte Carlo error of a 2.5 % quantile of 2000 resampled means: ~0.06 standard errors
    assert lo == pytest.approx(values.mean() - half, abs=0.15 * half / 1.96)
    assert hi == pytest.approx(values.mean() + half, abs=0.15 * half / 1.96)


def test_bootstrap_interval_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(13)
    trials, covered = 300, 0
    for k in range(trials):
        lo, hi = metrics.bootstrap_ci(rng.uniform(0, 1, 40), seed=k)
        covered += lo <= 0.5 <= hi
    assert 0.88 <= covered / trials <= 0.99  # binomial sd at 0.95: 0.013


def test_bootstrap_is_deterministic_and_degenerate_cases_are_exact():
    values = np.random.default_rng(14).uniform(size=30)
    assert metrics.bootstrap_ci(values) == metrics.bootstrap_ci(values)
    assert metrics.bootstrap_ci(np.full(7, 0.25)) == (0.25, 0.25)
    assert metrics.bootstrap_ci(np.array([0.6])) == (0.6, 0.6)
    assert all(np.isnan(metrics.bootstrap_ci(np.array([]))))


def test_bootstrap_refuses_bad_input():
    with pytest.raises(ValueError, match="shape"):
        metrics.bootstrap_ci(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="level"):
        metrics.bootstrap_ci(np.zeros(3), level=95)
