"""model.novelty: the Mahalanobis distance to the training embeddings, its threshold and the
withdrawn intervals, against identities of the Gaussian and brute force."""

import numpy as np
import pytest
from scipy.spatial.distance import mahalanobis as scipy_mahalanobis

from model.calibration import interval_coverage
from model.novelty import (choose_distance_threshold, fit_distribution, mahalanobis,
                           novelty_report, withdraw_intervals)


def _correlated(n: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(dim, dim)) + 2 * np.eye(dim)
    mean = rng.normal(size=dim) * 3
    return rng.normal(size=(n, dim)) @ mixing.T + mean, mean, mixing @ mixing.T


def test_distance_matches_scipy_with_the_true_covariance_for_a_large_sample():
    sample, mean, covariance = _correlated(200_000, 4, seed=0)
    fit = fit_distribution(sample, shrinkage=0.0)
    probe, _, _ = _correlated(5, 4, seed=1)
    truth = [scipy_mahalanobis(p, mean, np.linalg.inv(covariance)) for p in probe]
    np.testing.assert_allclose(mahalanobis(probe, fit), truth, rtol=0.02)


def test_mean_squared_distance_of_the_training_plates_is_d_times_n_minus_1_over_n():
    # trace(S^-1 (N-1)/N S) = D (N-1)/N for the unbiased covariance S, exactly
    sample, _, _ = _correlated(50, 6, seed=2)
    fit = fit_distribution(sample, shrinkage=0.0)
    assert np.mean(mahalanobis(sample, fit) ** 2) == pytest.approx(6 * 49 / 50, rel=1e-9)


def test_distance_is_invariant_under_an_affine_change_of_the_embedding():
    sample, _, _ = _correlated(100, 3, seed=3)
    probe, _, _ = _correlated(7, 3, seed=4)
    transform, shift = np.array([[2.0, 1.0, 0.0], [0.0, 0.5, 0.0], [1.0, 0.0, -3.0]]), 7.0
    plain = mahalanobis(probe, fit_distribution(sample, shrinkage=0.0))
    moved = mahalanobis(probe @ transform.T + shift,
                        fit_distribution(sample @ transform.T + shift, shrinkage=0.0))
    np.testing.assert_allclose(moved, plain, rtol=1e-8)


def test_the_ridge_keeps_a_degenerate_covariance_invertible():
    rng = np.random.default_rng(5)
    low_rank = rng.normal(size=(10, 2)) @ rng.normal(size=(2, 8))   # rank 2 in 8 dimensions
    distance = mahalanobis(low_rank + 1.0, fit_distribution(low_rank))
    assert np.isfinite(distance).all() and (distance > 0).all()
    with pytest.raises(ValueError, match="N >= 2"):
        fit_distribution(low_rank[:1])


def test_threshold_is_the_validation_quantile():
    distance = np.random.default_rng(6).exponential(size=1000)
    threshold = choose_distance_threshold(distance, level=0.99)
    assert threshold["value"] == pytest.approx(np.sort(distance)[989] + 0.01 * (
        np.sort(distance)[990] - np.sort(distance)[989]))   # linear interpolation at 989.01
    assert (distance > threshold["value"]).sum() == 10 and threshold["chosen_on"] == "val"


def test_withdrawn_intervals_cover_everything_and_leave_other_plates_alone():
    sigma = np.array([[[0.1, 0.2, 0.1, 0.2], [np.nan] * 4], [[0.3, 0.3, 0.3, 0.3]] * 2])
    decoded = {"box_sigma": sigma, "end_sigma": sigma.reshape(2, 2, 2, 2), "score": None}
    out = withdraw_intervals(decoded, np.array([False, True]))
    np.testing.assert_array_equal(out["box_sigma"][0], sigma[0])        # NaN slot stays NaN
    assert np.isinf(out["box_sigma"][1]).all() and np.isinf(out["end_sigma"][1]).all()
    assert np.isnan(out["end_sigma"][0, 1]).all()
    error = np.array([[5.0], [0.01]])
    covered = interval_coverage(error, np.array([[np.inf], [0.1]]), (0.5, 0.9))
    np.testing.assert_array_equal(covered[:, 0], [1.0, 1.0])


def test_report_counts_novel_plates_by_crack_presence():
    distance = np.array([1.0, 5.0, 2.0, 6.0, 0.5])
    has_crack = np.array([True, True, False, False, False])
    report = novelty_report(distance, {"value": 4.0, "level": 0.99}, has_crack)
    assert report["novel"] == 2 and report["novel_fraction"] == pytest.approx(0.4)
    assert report["novel_fraction_cracked"] == pytest.approx(0.5)
    assert report["novel_fraction_uncracked"] == pytest.approx(1 / 3)
    assert report["median_distance"] == 2.0
    assert novelty_report(distance[2:], {"value": 4.0}, has_crack[2:])[
        "novel_fraction_cracked"] is None


def test_a_threshold_is_taken_from_metrics_only_when_it_holds_a_number():
    from model.novelty import given_threshold

    assert given_threshold({"novelty_threshold": {"value": 3, "level": 0.99}})["value"] == 3
    assert given_threshold({}) is None
    assert given_threshold({"novelty_threshold": None}) is None
    assert given_threshold({"novelty_threshold": {"value": "3"}}) is None
