"""Crack superposition (model/superpose.py): the physics it leans on, checked against the solver
(two cracks simulated together against each simulated alone), the partner draw's rules
(counts, clearance, reproducibility) against brute force, and the training set it feeds."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import yaml

from dlem import config as config_mod
from dlem import dataset
from dlem.cracks import Segment
from model.data import condition
from model.superpose import Superposition, joined, segment_distance, superposed
from model.train import TrainConfig

pytestmark = pytest.mark.usefixtures("contract_single_thread")


def _simulate(st, cracks) -> np.ndarray:
    """The sensor wavefield (time, sensor, 2) [m] of the set-up `st` with `cracks` cut."""
    sim = dataset.simulation(st, cracks)
    records = np.zeros((len(st.times), len(st.sensor_nodes), 2), st.dtype)
    sim.advance(st.n_steps, st.sensor_nodes, records, st.every)
    return records.astype(np.float64)


def test_two_cracks_scatter_the_sum_of_each_alone_in_the_first_arrivals():
    """The default plate, a 15 mm and a 6 mm crack 40 mm apart: the superposed wavefield
    matches the solver's two-crack wavefield within 10 % of the scattered field until 30 µs
    (single scattering), and over the whole record it is still nearer to it than either
    crack's field alone (the interaction the superposition leaves out is smaller than a
    crack)."""
    with open("workflow/config/default.yaml") as handle:
        cfg = config_mod.validate(yaml.safe_load(handle)["simulation"])
    st = dataset.setup(cfg)
    long_crack = Segment.from_params(x=0.065, y=0.07, length=0.015, angle=30)
    short_crack = Segment.from_params(x=0.06, y=0.03, length=0.006, angle=100)
    pristine = _simulate(st, [])
    both = _simulate(st, [long_crack, short_crack])
    alone = [_simulate(st, [c]) for c in (long_crack, short_crack)]
    summed = superposed(alone[0], alone[1], pristine)
    assert summed.dtype == np.float32
    early = np.asarray(st.times) < 30e-6
    scattered = both - pristine
    residual = summed - both
    assert np.linalg.norm(residual[early]) < 0.1 * np.linalg.norm(scattered[early])
    whole = np.linalg.norm(residual)
    assert whole < min(np.linalg.norm(a - both) for a in alone)
    assert whole > 1e-3 * np.linalg.norm(scattered)   # not exact: the cracks interact


def _brute_distance(a, b, n: int = 801) -> float:
    t = np.linspace(0.0, 1.0, n)[:, None]
    pa = a[:2] + t * (a[2:] - a[:2])
    pb = b[:2] + t * (b[2:] - b[:2])
    return float(np.min(np.linalg.norm(pa[:, None] - pb[None], axis=-1)))


def test_segment_distance_matches_dense_sampling_crossing_and_collinear_cases():
    rng = np.random.default_rng(0)
    for _ in range(150):
        a, b = rng.random(4), rng.random(4)
        assert segment_distance(a, b) == pytest.approx(_brute_distance(a, b), abs=2e-3)
    assert segment_distance([0, 0, 1, 1], [0, 1, 1, 0]) == 0.0               # crossing
    assert segment_distance([0, 0, 1, 0], [2, 0, 3, 0]) == pytest.approx(1.0)  # collinear apart
    assert segment_distance([0, 0, 2, 0], [1, 0, 3, 0]) == 0.0               # collinear overlap
    assert segment_distance([0, 0, 1, 0], [0.5, 0.2, 0.5, 1]) == pytest.approx(0.2)


def _targets(counts, rng) -> np.ndarray:
    """Crack rows (N, 3, 8) with `counts[i]` random short segments (box, then ends), NaN after."""
    out = np.full((len(counts), 3, 8), np.nan)
    for i, n in enumerate(counts):
        for k in range(n):
            centre, half = rng.uniform(0.1, 0.9, 2), rng.uniform(-0.08, 0.08, 2)
            ends = np.concatenate([centre - half, centre + half])
            out[i, k, :4] = [*np.minimum(ends[:2], ends[2:]), *np.maximum(ends[:2], ends[2:])]
            out[i, k, 4:] = ends
    return out.astype(np.float32)


def test_partners_fit_the_crack_rows_keep_their_clearance_and_repeat_per_epoch():
    rng = np.random.default_rng(1)
    counts = rng.integers(0, 4, size=60)
    targets = _targets(counts, rng)
    samples = np.arange(1000, 1060)
    always = Superposition(1.0, clearance=0.05, seed=7)
    found = 0
    for i in range(60):
        j = always.partner(0, i, samples, targets)
        if counts[i] == 0 or counts[i] == 3:
            assert j is None                       # quiet plates stay quiet; full plates stay
            continue
        if j is None:
            continue
        found += 1
        assert j != i and counts[j] >= 1 and counts[i] + counts[j] <= 3
        assert min(_brute_distance(a, b) for a in targets[i, :counts[i], 4:]
                   for b in targets[j, :counts[j], 4:]) >= 0.05 - 2e-3
        assert always.partner(0, i, samples, targets) == j          # reproducible
    assert found >= 20
    eligible = [i for i in range(60) if 0 < counts[i] < 3]
    assert any(always.partner(0, i, samples, targets) != always.partner(1, i, samples, targets)
               for i in eligible)                                   # fresh in every epoch
    never = Superposition(0.0, seed=7)
    assert all(never.partner(0, i, samples, targets) is None for i in range(60))
    half = Superposition(0.5, clearance=0.0, seed=7)
    drawn = np.mean([half.partner(e, i, samples, targets) is not None
                     for e in range(20) for i in eligible])
    assert 0.4 < drawn < 0.6


def test_joined_keeps_both_plates_cracks_and_refuses_too_many():
    rng = np.random.default_rng(2)
    one, two = _targets([1, 2], rng)
    both = joined(one, two)
    np.testing.assert_array_equal(both[0], one[0])
    np.testing.assert_array_equal(both[1:3], two[:2])
    with pytest.raises(ValueError, match="do not fit"):
        joined(two, two)


@pytest.mark.parametrize("probability", [-0.1, 1.5, float("nan"), True])
def test_a_bad_probability_is_refused_in_one_line(probability):
    with pytest.raises(ValueError, match="augment_superpose"):
        Superposition(probability).check()


def test_the_option_needs_a_crack_set_model_and_the_pristine_reference():
    TrainConfig(arch="crackset", augment_superpose=0.5, reference="subtract").validate("cracks")
    with pytest.raises(ValueError, match="crack-set"):
        TrainConfig(augment_superpose=0.5, reference="subtract").validate("box")
    with pytest.raises(ValueError, match="subtract"):
        TrainConfig(arch="crackset", augment_superpose=0.5, reference="mean").validate("cracks")


def test_the_training_set_yields_the_superposed_plate_and_both_plates_cracks(tmp_path):
    """A TINY shard (up to two cracks per plate): the item of a plate drawn a partner is the
    conditioned sum of the two raw wavefields minus the pristine one, and its target holds
    both plates' cracks; a plate drawn none is the plain training set's item."""
    import xarray as xr

    from model.cli import main as model_main
    from model.data import ShardIndex, WavefieldDataset, load_labels, normalisation_stats
    from test_dlem_dataset import TINY

    cfg = config_mod.validate(copy.deepcopy(TINY))
    shard, pristine_path = tmp_path / "shard.nc", tmp_path / "pristine.nc"
    dataset.write_shard(cfg, shard, 0, 16, progress=False)
    dataset.write_shard(cfg, pristine_path, 0, 1, pristine=True, progress=False)
    assert model_main(["labels", str(shard), "--out", str(tmp_path / "labels.nc")]) == 0
    index, labels = ShardIndex.build([str(shard)]), load_labels([str(tmp_path / "labels.nc")])
    ids = np.arange(16)
    with xr.open_dataset(pristine_path) as p:
        reference = p["wavefield"].values[0].astype(np.float32)
    stats = normalisation_stats(index, ids, reference, "sensor")
    superpose = Superposition(1.0, clearance=0.0, seed=0)
    data = WavefieldDataset(index, ids, labels, stats, reference, "cracks",
                            superpose=superpose)
    counts = np.isfinite(data.cracks[:, :, 0]).sum(1)
    plain = WavefieldDataset(index, ids, labels, stats, reference, "cracks")
    checked = 0
    for i in range(12):
        j = superpose.partner(0, i, ids, data.cracks)
        x, target = data[i]
        if j is None:
            np.testing.assert_array_equal(x.numpy(), plain[i][0].numpy())
            continue
        raw = data.read_raw(i).astype(np.float64) + data.read_raw(j) - reference
        expected = condition(raw.astype(np.float32), data.offset, data.inv_std, "sensor")
        np.testing.assert_allclose(x.numpy(), expected, rtol=1e-5, atol=1e-5)
        rows = target.numpy()[np.isfinite(target.numpy()[:, 0])]
        assert len(rows) == counts[i] + counts[j]
        np.testing.assert_array_equal(rows[:counts[i]], data.cracks[i, :counts[i]])
        checked += 1
    assert checked >= 3
    assert isinstance(x, torch.Tensor)
