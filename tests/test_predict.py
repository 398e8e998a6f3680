"""`python -m model predict`: a checkpoint (or an imaging baseline) on shards without labels or
split -> boxes in plate fractions and metres (NetCDF + CSV), figures; a shard of another
set-up than the checkpoint's is refused."""

from __future__ import annotations

import csv
import json
import shutil

import netCDF4
import numpy as np
import pytest
import xarray as xr

from conftest import write_contract_shard
from model.cli import main
from test_provenance import OTHER_SETUP

pytestmark = pytest.mark.usefixtures("contract_single_thread")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SEG_TINY = {"stem_channels": 4, "block_layers": [1, 1, 1], "growth": 4, "sensor_features": 8,
            "decoder_channels": [8, 8]}


def _train(contract_data, out, arch, *extra):
    assert main(["train", "--data", *map(str, contract_data["shards"]),
                 "--labels", *map(str, contract_data["labels"]),
                 "--split", str(contract_data["split"]), "--arch", arch, "--out-dir", str(out),
                 "--no-progress", *extra]) == 0
    return out / "checkpoint.pt"


@pytest.fixture(scope="module")
def meanbox(contract_data, tmp_path_factory):
    return _train(contract_data, tmp_path_factory.mktemp("meanbox"), "meanbox")


@pytest.fixture(scope="module")
def densenet(contract_data, tmp_path_factory):
    return _train(contract_data, tmp_path_factory.mktemp("densenet"), "densenet1d", "--epochs",
                  "1", "--batch-size", "4", "--arch-kwargs", json.dumps(SEG_TINY))


@pytest.fixture(scope="module")
def oblong(contract_data, tmp_path_factory):
    """The contract shards with the plate height changed to 0.05 m (width 0.1 m): a plate
    whose x and y scales differ, so metres can only come out right from the contract's two
    attributes."""
    root = tmp_path_factory.mktemp("oblong")
    paths = []
    for shard in contract_data["shards"]:
        path = root / shard.name
        shutil.copy(shard, path)
        with netCDF4.Dataset(path, "a") as nc:
            nc.setncattr("plate_height", 0.05)
        paths.append(path)
    return paths


def _read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_boxes_are_written_in_plate_fractions_and_in_metres(meanbox, oblong, tmp_path):
    out = tmp_path / "pred.nc"
    assert main(["predict", "--checkpoint", str(meanbox), "--data", *map(str, oblong),
                 "--out", str(out)]) == 0
    with xr.open_dataset(out) as preds:
        frac, metres = preds["pred_box"].values, preds["pred_box_m"].values
        assert preds["sample"].values.tolist() == list(range(20))
        assert frac.shape == metres.shape == (20, 4)
        assert preds["pred_box"].attrs["units"] == "1" and preds["pred_box_m"].attrs["units"] == "m"
    assert np.all((frac >= 0) & (frac <= 1))
    np.testing.assert_allclose(metres[:, [0, 2]], frac[:, [0, 2]] * 0.1, rtol=1e-12)
    np.testing.assert_allclose(metres[:, [1, 3]], frac[:, [1, 3]] * 0.05, rtol=1e-12)
    rows = _read_csv(tmp_path / "pred.csv")
    assert [int(r["sample"]) for r in rows] == list(range(20))
    np.testing.assert_allclose([[float(r[k]) for k in ("xmin_m", "ymin_m", "xmax_m", "ymax_m")]
                                for r in rows], metres, rtol=1e-6)
    np.testing.assert_allclose([[float(r[k]) for k in ("xmin", "ymin", "xmax", "ymax")]
                                for r in rows], frac, atol=1e-6)


def test_a_shard_of_another_set_up_is_refused_naming_the_differing_sections(meanbox, tmp_path,
                                                                           capsys):
    shard = tmp_path / "steel.nc"
    write_contract_shard(shard, list(range(5)), np.random.default_rng(2), setup=OTHER_SETUP)
    code = main(["predict", "--checkpoint", str(meanbox), "--data", str(shard),
                 "--out", str(tmp_path / "pred.nc")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "steel.nc has set-up" in err and "differing sections: plate" in err
    assert not (tmp_path / "pred.nc").exists() and not (tmp_path / "pred.csv").exists()


def test_a_figure_is_written_per_requested_sample_as_a_valid_png(contract_data, meanbox,
                                                                 tmp_path):
    import matplotlib.pyplot as plt

    figures = tmp_path / "figures"
    assert main(["predict", "--checkpoint", str(meanbox), "--data",
                 *map(str, contract_data["shards"]), "--out", str(tmp_path / "p.nc"),
                 "--figures", str(figures), "--samples", "0", "13"]) == 0
    assert sorted(p.name for p in figures.iterdir()) == ["sample-0.png", "sample-13.png"]
    for name in ("sample-0.png", "sample-13.png"):   # 0 is uncracked: no truth to draw
        path = figures / name
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        image = plt.imread(path)
        assert image.ndim == 3 and min(image.shape[:2]) > 100


def test_an_unknown_sample_is_refused_before_any_work(contract_data, meanbox, tmp_path, capsys):
    code = main(["predict", "--checkpoint", str(meanbox), "--data", str(contract_data["shards"][0]),
                 "--out", str(tmp_path / "p.nc"), "--figures", str(tmp_path / "f"),
                 "--samples", "42"])
    assert code == 2 and "[42]" in capsys.readouterr().err
    assert not (tmp_path / "p.nc").exists()


def test_a_mask_model_takes_the_evaluation_threshold_else_one_half(contract_data, densenet,
                                                                   tmp_path):
    from model.keypoints import predicted_mask_boxes

    data = ["--data", *map(str, contract_data["shards"])]
    assert main(["predict", "--checkpoint", str(densenet), *data,
                 "--out", str(tmp_path / "half.nc")]) == 0
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"arch": "densenet1d",
                                   "mask_threshold": {"box": 0.3, "pixel": 0.4}}))
    assert main(["predict", "--checkpoint", str(densenet), *data, "--from-metrics",
                 str(metrics), "--out", str(tmp_path / "chosen.nc")]) == 0
    for name, threshold in (("half.nc", 0.5), ("chosen.nc", 0.3)):
        with xr.open_dataset(tmp_path / name) as preds:
            assert preds.attrs["mask_threshold"] == threshold
            prob = preds["pred_mask_prob"].values
            assert prob.shape == (20, 16, 16)
            np.testing.assert_allclose(preds["pred_box"].values,
                                       predicted_mask_boxes(prob >= threshold), atol=1e-12)


@pytest.mark.parametrize("method,chosen", [
    ("das", {"speed": "p", "t_max": 4e-5, "alpha_box": 0.5, "alpha_pixel": 0.5}),
    ("rapid", {"beta": 1.2, "alpha_box": 0.9, "alpha_pixel": 0.5}),
])
def test_an_imaging_baseline_predicts_with_its_chosen_hyperparameters(contract_data, tmp_path,
                                                                      method, chosen):
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"method": method, "hyperparameters": chosen}))
    assert main(["predict", "--method", method, "--pristine", str(contract_data["pristine"]),
                 "--from-metrics", str(metrics), "--data", *map(str, contract_data["shards"]),
                 "--out", str(tmp_path / "p.nc")]) == 0
    with xr.open_dataset(tmp_path / "p.nc") as preds:
        assert preds.attrs["method"] == method and preds.attrs["alpha_box"] == chosen["alpha_box"]
        scores = preds["pred_mask_prob"].values
        assert scores.shape == (20, 16, 16) and preds["pred_box_m"].shape == (20, 4)
        assert preds["detected"].values.all()       # the brightest cell always reaches alpha


def test_a_baseline_needs_the_pristine_plate_and_its_metrics(contract_data, tmp_path, capsys):
    code = main(["predict", "--method", "das", "--data", str(contract_data["shards"][0]),
                 "--out", str(tmp_path / "p.nc")])
    assert code == 2 and "needs --pristine and --from-metrics" in capsys.readouterr().err
