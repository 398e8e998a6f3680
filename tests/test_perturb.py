"""Perturbed wavefields (model/perturb.py) against independent oracles: the noise's measured
SNR, the count of all-zero sensors, the uniform choice of dead sensors, reproducibility."""

from __future__ import annotations

import numpy as np
import pytest

from model.io import DataError
from model.perturb import (Perturbation, add_noise, dead_sensor_choice, kill_sensors,
                           parse_perturbation)

N_SENSORS = 81


def _signal(n_time: int, samples: int = 2, sensors: int = 3) -> np.ndarray:
    """Sinusoids `(N, time, sensor, component)` float32 of amplitudes 1e-9..1e-7 m, one
    trace all zero."""
    t = np.arange(n_time)[None, :, None, None]
    amplitude = np.logspace(-9, -7, samples * sensors * 2).reshape(samples, 1, sensors, 2)
    fields = (amplitude * np.sin(2 * np.pi * t / 37.0 + amplitude * 1e8)).astype(np.float32)
    fields[0, :, 1, 0] = 0.0
    return fields


@pytest.mark.parametrize("snr_db", [40.0, 20.0, 0.0, -5.0])
def test_the_noise_has_the_requested_snr_relative_to_each_trace(snr_db):
    """On 200,000-step traces the noise power's relative sampling error is sqrt(2 / T) =
    0.3 %, 0.014 dB: the measured SNR of each trace must match within 0.05 dB."""
    clean = _signal(200_000)
    noise = add_noise(clean, np.array([3, 7]), snr_db).astype(np.float64) - clean
    signal_power = np.mean(clean.astype(np.float64) ** 2, axis=1)
    noise_power = np.mean(noise ** 2, axis=1)
    live = signal_power > 0
    measured = 10 * np.log10(signal_power[live] / noise_power[live])
    assert np.all(np.abs(measured - snr_db) < 0.05), measured
    assert np.all(noise[0, :, 1, 0] == 0), "an all-zero trace must stay zero"


def test_the_noise_is_gaussian_white_and_independent_between_traces():
    clean = _signal(100_000)
    noise = add_noise(clean, np.array([0, 1]), 10.0).astype(np.float64) - clean
    rms = np.sqrt(np.mean(clean.astype(np.float64) ** 2, axis=1))
    z = (noise / np.where(rms > 0, rms / 10 ** 0.5, 1)[:, None])[:, :, [0, 2], :].reshape(-1, 100_000)
    kurtosis = np.mean(z ** 4, axis=1) / np.mean(z ** 2, axis=1) ** 2
    assert np.all(np.abs(kurtosis - 3) < 0.1), kurtosis           # Gaussian: 3 (+- 0.015 sd)
    lag1 = np.mean(z[:, 1:] * z[:, :-1], axis=1)
    assert np.all(np.abs(lag1) < 0.02), lag1                         # white
    assert abs(np.corrcoef(z[0], z[1])[0, 1]) < 0.02                 # independent traces


def test_the_noise_of_a_sample_depends_on_its_seed_and_index_not_on_its_batch():
    clean = _signal(500, samples=3)
    batch = add_noise(clean, np.array([10, 11, 12]), 10.0, seed=4)
    alone = add_noise(clean[1:2], np.array([11]), 10.0, seed=4)
    np.testing.assert_array_equal(batch[1:2], alone)
    assert not np.array_equal(add_noise(clean[1:2], np.array([11]), 10.0, seed=5), alone)
    assert not np.array_equal(add_noise(clean[1:2], np.array([12]), 10.0, seed=4), alone)
    assert batch.dtype == np.float32 and batch.shape == clean.shape


@pytest.mark.parametrize("k", [0, 1, 5, 81])
def test_exactly_k_sensors_read_zero_on_every_component_and_the_rest_are_untouched(k):
    rng = np.random.default_rng(0)
    fields = (1.0 + rng.random((6, 50, N_SENSORS, 2))).astype(np.float32)  # never zero
    out = kill_sensors(fields, np.arange(100, 106), k, draw=2)
    zero = np.all(out == 0, axis=(1, 3))                    # (N, sensor)
    assert np.all(zero.sum(axis=1) == k)
    assert not np.any((out == 0) & ~zero[:, None, :, None])  # no partly zeroed sensor
    np.testing.assert_array_equal(out[~np.broadcast_to(zero[:, None, :, None], out.shape)],
                                  fields[~np.broadcast_to(zero[:, None, :, None], out.shape)])


def test_dead_sensors_are_drawn_uniformly_per_sample():
    """Over 4000 samples each of 81 sensors is dead with probability 5/81: counts within
    5 binomial standard deviations (about 15) of 4000 * 5 / 81 = 247."""
    dead = dead_sensor_choice(N_SENSORS, 5, np.arange(4000), draw=0)
    assert all(len(set(row)) == 5 for row in dead)
    counts = np.bincount(dead.ravel(), minlength=N_SENSORS)
    p = 5 / N_SENSORS
    assert np.all(np.abs(counts - 4000 * p) < 5 * np.sqrt(4000 * p * (1 - p))), counts


def test_dead_sensors_reproduce_per_draw_and_sample_and_differ_between_draws():
    samples = np.arange(20, 40)
    first = dead_sensor_choice(N_SENSORS, 5, samples, draw=1)
    np.testing.assert_array_equal(first[3:4], dead_sensor_choice(N_SENSORS, 5, samples[3:4], 1))
    other = dead_sensor_choice(N_SENSORS, 5, samples, draw=2)
    assert any(set(a) != set(b) for a, b in zip(first, other))
    assert len({frozenset(row) for row in first}) > 1, "every sample got the same sensors"


def test_more_dead_sensors_than_sensors_is_refused_in_one_line():
    with pytest.raises(DataError, match=r"dead_sensors = 82 is not possible with 81 sensors"):
        Perturbation(dead_sensors=82).check((2000, N_SENSORS, 2))
    with pytest.raises(DataError, match=r"^[^\n]*$"):
        kill_sensors(np.ones((1, 3, N_SENSORS, 2), np.float32), np.array([0]), 82)


def test_noise_and_dead_sensors_together_leave_dead_sensors_silent():
    fields = _signal(400, samples=2, sensors=N_SENSORS)
    out = Perturbation(snr_db=0.0, dead_sensors=4, draw=1)(fields, np.array([5, 6]))
    assert np.all(np.all(out == 0, axis=(1, 3)).sum(axis=1) >= 4)
    assert not np.array_equal(out[:, :, :, :], fields)


@pytest.mark.parametrize("text, said", [
    ('{"snr_db": 20}', None),
    ('{"dead_sensors": 5, "draw": 1}', None),
    ("20", "must be a non-empty JSON object"),
    ("{snr}", "not valid JSON"),
    ('{"seed": 1}', "needs snr_db (noise) or dead_sensors"),
    ('{"snr_db": 20, "colour": 1}', "unknown key(s) ['colour']"),
    ('{"dead_sensors": -1}', "dead_sensors must be an integer >= 0"),
    ('{"dead_sensors": 2.5}', "dead_sensors must be an integer >= 0"),
    ('{"snr_db": "loud"}', "snr_db must be a finite number"),
    ('{"snr_db": true}', "snr_db must be a finite number"),
])
def test_perturbation_options_are_checked_naming_the_problem(text, said):
    if said is None:
        assert parse_perturbation(text).as_dict() in ({"snr_db": 20.0, "seed": 0},
                                                      {"dead_sensors": 5, "draw": 1})
        return
    with pytest.raises(DataError) as err:
        parse_perturbation(text)
    assert said in str(err.value) and "--perturb" in str(err.value)
