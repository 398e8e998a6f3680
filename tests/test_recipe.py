"""The training recipe's parts, each against an independent oracle: input conditioning
(numpy on the shards), the learning-rate schedule (hand values), the box output
parametrisation and the l1_giou loss (brute-force geometry)."""

import math

import numpy as np
import pytest
import torch
import xarray as xr

from model.data import (ShardIndex, WavefieldDataset, condition, load_labels, mean_wavefield,
                        normalisation_stats)
from model.losses import make_loss
from model.nets.microcrackpointnet import MicroCrackPointNet
from model.train import cosine_factor, train, TrainConfig

pytestmark = pytest.mark.usefixtures("contract_single_thread")

TINY = {"filters": [4, 8, 8, 8], "time_conv_channels": 8, "grid_conv_channels": [8, 8],
        "dense_units": [32], "dropout": 0.0}


def _fields(contract_data, ids):
    fields = []
    for path in contract_data["shards"]:
        with xr.open_dataset(path) as ds:
            fields.append(ds["wavefield"].values)
    return np.concatenate(fields)[ids].astype(np.float64)  # the shards hold samples 0..19


def test_trace_scaling_gives_every_nonzero_trace_unit_rms():
    rng = np.random.default_rng(0)
    field = rng.normal(size=(50, 6, 2)) * np.geomspace(1e-12, 1e-6, 6)[None, :, None]
    field[:, 2, 1] = 0.0  # a dead trace stays zero, not NaN
    x = condition(field.astype(np.float32), np.zeros(2, np.float32), np.ones(2, np.float32), "trace")
    rms = np.sqrt((x.astype(np.float64) ** 2).mean(axis=0))
    expected = np.ones((6, 2))
    expected[2, 1] = 0.0
    np.testing.assert_allclose(rms, expected, rtol=1e-5, atol=1e-7)
    assert x.dtype == np.float32


def test_sensor_statistics_are_per_sensor_and_component_over_training_samples(contract_data):
    index = ShardIndex.build(contract_data["shards"])
    ids = np.array([2, 5, 11, 13])
    field = _fields(contract_data, ids)
    stats = normalisation_stats(index, ids, None, "sensor", chunk_samples=3)
    assert stats["scaling"] == "sensor"
    np.testing.assert_allclose(stats["mean"], field.mean(axis=(0, 1)), rtol=1e-9, atol=1e-20)
    np.testing.assert_allclose(stats["std"], field.std(axis=(0, 1)), rtol=1e-9)


def test_mean_reference_is_the_training_mean_wavefield(contract_data):
    index = ShardIndex.build(contract_data["shards"])
    ids = np.array([1, 4, 12, 17])
    mean = mean_wavefield(index, ids, chunk_samples=3)
    np.testing.assert_allclose(mean, _fields(contract_data, ids).mean(axis=0), rtol=1e-5, atol=1e-20)


def test_dataset_applies_reference_and_sensor_scaling(contract_data):
    index = ShardIndex.build(contract_data["shards"])
    labels = load_labels(contract_data["labels"])
    ids = np.array([3, 15])
    reference = np.full(index.wave_shape, 1e-10, np.float32)
    std = np.linspace(1e-9, 2e-9, 81 * 2).reshape(81, 2)
    stats = {"mean": np.zeros((81, 2)).tolist(), "std": std.tolist(), "scaling": "sensor"}
    dataset = WavefieldDataset(index, ids, labels, stats, reference, cache=True)
    x = dataset[1][0].numpy()
    np.testing.assert_array_equal(dataset[1][0].numpy(), x)  # the cached copy is the same
    dataset.close()
    expected = (_fields(contract_data, ids)[1] - 1e-10) / std
    np.testing.assert_allclose(x, expected, rtol=1e-4, atol=1e-5)  # x ~ 1: float32 rounding


def test_cosine_schedule_warms_up_linearly_then_decays_to_zero():
    total, warmup = 10, 4
    values = [cosine_factor(k, total, warmup) for k in range(total + 1)]
    assert values[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert values[4] == pytest.approx(1.0)  # the cosine starts at its top
    assert values[7] == pytest.approx(0.5 * (1 + math.cos(math.pi * 3 / 6)))
    assert values[10] == pytest.approx(0.0, abs=1e-12)
    assert [cosine_factor(k, 5, 0) for k in (0, 5)] == pytest.approx([1.0, 0.0])


def test_centre_size_output_is_a_valid_box_with_the_same_parameters():
    torch.manual_seed(0)
    corners = MicroCrackPointNet(n_time=400, **TINY)
    torch.manual_seed(0)
    centre = MicroCrackPointNet(n_time=400, box_output="centre_size", **TINY)
    assert sum(p.numel() for p in corners.parameters()) == sum(p.numel() for p in centre.parameters())
    x = 50 * torch.randn(16, 400, 81, 2)
    raw, box = corners.eval()(x), centre.eval()(x)
    assert torch.all(box[:, 2:] >= box[:, :2])
    # the same raw outputs, read as sigmoid centre and size (plate fractions)
    c, s = torch.sigmoid(raw[:, :2]), torch.sigmoid(raw[:, 2:])
    torch.testing.assert_close(box, torch.cat([c - s / 2, c + s / 2], dim=1))


def test_l1_giou_is_mae_plus_one_minus_giou_of_brute_force_geometry():
    pred = torch.tensor([[0.1, 0.2, 0.5, 0.6], [0.6, 0.6, 0.9, 0.8]], dtype=torch.float64)
    true = torch.tensor([[0.3, 0.1, 0.7, 0.5], [0.1, 0.1, 0.3, 0.2]], dtype=torch.float64)
    # box 1: overlap 0.2 x 0.3 = 0.06, areas 0.16 + 0.16, hull 0.6 x 0.5
    # box 2: disjoint, areas 0.06 + 0.02, hull 0.8 x 0.7
    giou = np.array([0.06 / 0.26 - (0.30 - 0.26) / 0.30, 0.0 - (0.56 - 0.08) / 0.56])
    mae = np.abs(pred.numpy() - true.numpy()).mean()
    assert float(make_loss("l1_giou")(pred, true)) == pytest.approx(mae + np.mean(1 - giou), rel=1e-6)


def test_the_recipe_trains_end_to_end_and_records_its_conditioning(contract_data, tmp_path):
    config = TrainConfig(arch_kwargs={**TINY, "box_output": "centre_size"}, epochs=2,
                         batch_size=4, lr=1e-3, loss="l1_giou", reference="mean",
                         scaling="trace", warmup_epochs=1.0)
    state = train([str(p) for p in contract_data["shards"]],
                  [str(p) for p in contract_data["labels"]], str(contract_data["split"]),
                  tmp_path, config, progress=False)
    assert state["finished"] and state["stats"]["scaling"] == "trace"
    assert state["reference"].shape == ShardIndex.build(contract_data["shards"]).wave_shape
    lrs = [row["lr"] for row in state["history"]]
    assert lrs[0] < lrs[1] <= 1e-3  # warm-up: the first epoch starts below the peak
