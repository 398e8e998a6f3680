"""What is learned or chosen sees only the subset it may see: normalisation statistics only
the training samples, mask thresholds and baseline hyperparameters only the validation
samples. Each test makes the other subsets disagree so that a leak changes the result."""

from __future__ import annotations

import json
import shutil

import netCDF4
import numpy as np
import pytest
import xarray as xr

from model.checkpoint import load_checkpoint
from model.cli import main
from model.data import read_samples

pytestmark = pytest.mark.usefixtures("contract_single_thread")

TINY_NET = {"filters": [4, 8, 8, 8], "time_conv_channels": 8, "grid_conv_channels": [8, 8],
            "dense_units": [8], "dropout": 0.0}
SEG_TINY = {"stem_channels": 4, "block_layers": [1, 1, 1], "growth": 4, "sensor_features": 8,
            "decoder_channels": [8, 8]}


def _args(contract_data, shards=None) -> list[str]:
    return ["--data", *map(str, shards or contract_data["shards"]),
            "--labels", *map(str, contract_data["labels"]), "--split", str(contract_data["split"])]


def _split(contract_data) -> dict:
    return json.loads(contract_data["split"].read_text())


def test_normalisation_statistics_see_the_training_samples_only(contract_data, tmp_path):
    split = _split(contract_data)
    held_out = set(split["val"] + split["test"])
    shards, train_fields = [], []
    for path in contract_data["shards"]:
        copy = shutil.copy(path, tmp_path / path.name)
        with netCDF4.Dataset(copy, "a") as nc:
            for k, sample in enumerate(nc["sample"][:]):
                if int(sample) in held_out:            # a million times the training scale
                    nc["wavefield"][k] = np.full(nc["wavefield"].shape[1:], 1e-3, np.float32)
                else:
                    train_fields.append(np.asarray(nc["wavefield"][k], np.float64))
        shards.append(copy)
    assert len(train_fields) == len(split["train"])
    assert main(["train", *_args(contract_data, shards), "--arch-kwargs", json.dumps(TINY_NET),
                 "--epochs", "1", "--out-dir", str(tmp_path / "m"), "--no-progress"]) == 0
    state = load_checkpoint(tmp_path / "m" / "checkpoint.pt")
    field = np.stack(train_fields)                             # (train, time, sensor, 2)
    # the default conditioning: the training-mean wavefield subtracted, one scale per sensor
    reference = field.mean(axis=0)
    np.testing.assert_allclose(state["reference"].numpy(), reference, rtol=1e-5, atol=1e-16)
    scattered = field - reference
    stats = state["stats"]
    assert stats["scaling"] == "sensor"
    np.testing.assert_allclose(stats["mean"], scattered.mean(axis=(0, 1)), rtol=1e-5, atol=1e-15)
    np.testing.assert_allclose(stats["std"], scattered.std(axis=(0, 1)), rtol=1e-5)
    assert np.max(stats["std"]) < 1e-8                         # the contract's 1e-9 noise


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p / (1 - p))


def test_mask_thresholds_are_chosen_on_val_not_test(contract_data, tmp_path, monkeypatch):
    """Val probabilities separate crack cells from the rest between 0.2 and 0.35 (best
    threshold 0.25), test probabilities between 0.6 and 0.9 (best 0.65): val must win."""
    import model.evaluate as evaluate

    assert main(["train", *_args(contract_data), "--arch", "densenet1d", "--arch-kwargs",
                 json.dumps(SEG_TINY), "--epochs", "1", "--batch-size", "4",
                 "--out-dir", str(tmp_path / "m"), "--no-progress"]) == 0
    val = set(_split(contract_data)["val"])

    def fake_predict(model, index, ids, label_set, state, *args):
        masks = read_samples(index, ids, "crack_mask").astype(bool)
        low, high = (0.2, 0.35) if set(ids.tolist()) <= val else (0.6, 0.9)
        return _logit(np.where(masks, high, low)), 1.0

    monkeypatch.setattr(evaluate, "_predict_subset", fake_predict)
    assert main(["evaluate", *_args(contract_data), "--checkpoint",
                 str(tmp_path / "m" / "checkpoint.pt"), "--out-dir", str(tmp_path / "e")]) == 0
    chosen = json.loads((tmp_path / "e" / "metrics.json").read_text())["mask_threshold"]
    assert (chosen["box"], chosen["pixel"], chosen["chosen_on"]) == (0.25, 0.25, "val")


def test_baseline_hyperparameters_are_chosen_on_val_not_test(contract_data, tmp_path,
                                                             monkeypatch):
    """t_max = 4e-5 images the val cracks exactly and the test cracks not at all; 1e-4 the
    other way round: the search must pick 4e-5 (and then score the test subset poorly)."""
    import model.baselines.run as run

    val = set(_split(contract_data)["val"])

    def fake_scores(method, index, ids, setup, settings, perturbation=None):
        masks = read_samples(index, ids, "crack_mask").astype(float)
        corner = np.zeros_like(masks)
        corner[:, 0, 0] = 1.0                                  # a far-off one-cell image
        on_val = set(ids.tolist()) <= val
        return [masks if (s["t_max"] == 4e-5) == on_val else corner for s in settings]

    monkeypatch.setattr(run, "scores_for", fake_scores)
    grid = {"speed": ["p"], "t_max": [1e-4, 4e-5], "alpha": [0.5]}
    assert main(["baseline", "das", *_args(contract_data), "--pristine",
                 str(contract_data["pristine"]), "--grid", json.dumps(grid),
                 "--out-dir", str(tmp_path / "e")]) == 0
    result = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert result["hyperparameters"]["t_max"] == 4e-5 and result["search"]["subset"] == "val"
    assert result["IoU"] < 0.2                                 # test was not looked at
    with xr.open_dataset(tmp_path / "e" / "predictions.nc") as preds:
        assert set(preds["sample"].values.tolist()).isdisjoint(val)
