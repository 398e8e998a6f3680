"""Scoring held-out samples without choosing anything on them: `evaluate --from-metrics`
takes a mask model's thresholds, and `baseline --from-metrics` a baseline's hyperparameters,
from the main split's metrics.json; a split with every sample in `test` scores them all."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from model.cli import main
from model.data import load_labels, make_split, read_split, write_split

pytestmark = pytest.mark.usefixtures("contract_single_thread")

SEG_TINY = {"stem_channels": 4, "block_layers": [1, 1, 1], "growth": 4, "sensor_features": 8,
            "decoder_channels": [8, 8]}
DAS_POINT = {"speed": ["p"], "t_max": [4e-5], "alpha": [0.9]}  # a one-point grid


def _data(contract_data, split):
    return ["--data", *map(str, contract_data["shards"]),
            "--labels", *map(str, contract_data["labels"]), "--split", str(split)]


@pytest.fixture(scope="module")
def runs(contract_data, tmp_path_factory):
    """An all-test split of the contract samples (the held-out way), a one-epoch densenet1d
    and a mean box evaluated on the main split, and delay-and-sum searched on it."""
    root = tmp_path_factory.mktemp("heldout")
    all_test = root / "all-test.json"
    write_split(make_split(load_labels(contract_data["labels"]), (0, 0, 1)), all_test)
    main_data = _data(contract_data, contract_data["split"])
    for arch, extra in [("meanbox", []),
                        ("densenet1d", ["--epochs", "1", "--batch-size", "4",
                                        "--arch-kwargs", json.dumps(SEG_TINY)])]:
        assert main(["train", *main_data, "--arch", arch, "--out-dir", str(root / "models" / arch),
                     "--no-progress", *extra]) == 0
        assert main(["evaluate", *main_data, "--checkpoint",
                     str(root / "models" / arch / "checkpoint.pt"),
                     "--out-dir", str(root / "eval" / arch)]) == 0
    assert main(["baseline", "das", *main_data, "--pristine", str(contract_data["pristine"]),
                 "--out-dir", str(root / "eval" / "das"),
                 "--grid", json.dumps({"t_max": [4e-5, 1e-4], "alpha": [0.5, 0.9]})]) == 0
    return root, all_test


def _metrics(path):
    return json.loads(path.read_text())


def test_a_split_with_fractions_0_0_1_puts_every_sample_in_test(runs, contract_data):
    split = read_split(runs[1], load_labels(contract_data["labels"]))
    assert split["train"] == [] and split["val"] == []
    assert split["test"] == sorted(load_labels(contract_data["labels"]).sample.tolist())


def test_mask_thresholds_come_from_the_given_metrics_not_the_held_out_samples(
        runs, contract_data, tmp_path):
    root, all_test = runs
    chosen = _metrics(root / "eval" / "densenet1d" / "metrics.json")
    # thresholds no search would pick on its own grid, so they can only have been read
    chosen["mask_threshold"].update(box=0.4321, pixel=0.6543)
    given = tmp_path / "chosen.json"
    given.write_text(json.dumps(chosen))
    out = tmp_path / "eval"
    assert main(["evaluate", *_data(contract_data, all_test), "--checkpoint",
                 str(root / "models" / "densenet1d" / "checkpoint.pt"), "--out-dir", str(out),
                 "--from-metrics", str(given)]) == 0
    result = _metrics(out / "metrics.json")
    assert (result["mask_threshold"]["box"], result["mask_threshold"]["pixel"]) == (0.4321, 0.6543)
    assert result["mask_threshold"]["from"] == str(given)
    assert result["split"] == str(all_test)
    n_with_crack = int(load_labels(contract_data["labels"]).has_crack.sum())
    assert result["count"] == n_with_crack  # every held-out sample with a crack is scored
    with xr.open_dataset(out / "predictions.nc") as preds:
        assert preds.attrs["mask_threshold_box"] == 0.4321


def test_box_model_from_metrics_of_another_arch_is_refused(runs, contract_data, tmp_path, capsys):
    root, all_test = runs
    code = main(["evaluate", *_data(contract_data, all_test), "--checkpoint",
                 str(root / "models" / "meanbox" / "checkpoint.pt"), "--out-dir",
                 str(tmp_path / "e"), "--from-metrics",
                 str(root / "eval" / "densenet1d" / "metrics.json")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "densenet1d" in err


def test_box_model_from_its_own_metrics_scores_all_samples(runs, contract_data, tmp_path):
    root, all_test = runs
    assert main(["evaluate", *_data(contract_data, all_test), "--checkpoint",
                 str(root / "models" / "meanbox" / "checkpoint.pt"), "--out-dir",
                 str(tmp_path / "e"), "--from-metrics",
                 str(root / "eval" / "meanbox" / "metrics.json")]) == 0
    assert _metrics(tmp_path / "e" / "metrics.json")["count"] == int(
        load_labels(contract_data["labels"]).has_crack.sum())


def test_baseline_from_metrics_scores_like_a_search_over_just_those_values(
        runs, contract_data, tmp_path):
    """Reusing the chosen hyperparameters must predict exactly what a search restricted to
    them predicts on the same samples (an independent route to the same setting)."""
    root, _ = runs
    chosen = _metrics(root / "eval" / "das" / "metrics.json")
    chosen["hyperparameters"].update(speed="p", t_max=4e-5, alpha_box=0.9, alpha_pixel=0.9)
    given = tmp_path / "chosen.json"
    given.write_text(json.dumps(chosen))
    data = [*_data(contract_data, contract_data["split"]), "--pristine",
            str(contract_data["pristine"])]
    assert main(["baseline", "das", *data, "--out-dir", str(tmp_path / "reused"),
                 "--from-metrics", str(given)]) == 0
    assert main(["baseline", "das", *data, "--out-dir", str(tmp_path / "searched"),
                 "--grid", json.dumps(DAS_POINT)]) == 0
    reused = _metrics(tmp_path / "reused" / "metrics.json")
    assert reused["search"]["from"] == str(given) and "results" not in reused["search"]
    assert reused["training_seconds"] == chosen["training_seconds"]
    assert reused["hyperparameters"] == {"speed": "p", "t_max": 4e-5, "alpha_box": 0.9,
                                         "alpha_pixel": 0.9}
    with xr.open_dataset(tmp_path / "reused" / "predictions.nc") as a, \
            xr.open_dataset(tmp_path / "searched" / "predictions.nc") as b:
        np.testing.assert_array_equal(a["pred_box"].values, b["pred_box"].values)
        np.testing.assert_array_equal(a["pred_mask_prob"].values, b["pred_mask_prob"].values)


def test_baseline_from_metrics_needs_no_validation_samples(runs, contract_data, tmp_path):
    root, all_test = runs
    assert main(["baseline", "das", *_data(contract_data, all_test), "--pristine",
                 str(contract_data["pristine"]), "--out-dir", str(tmp_path / "e"),
                 "--from-metrics", str(root / "eval" / "das" / "metrics.json")]) == 0
    result = _metrics(tmp_path / "e" / "metrics.json")
    assert result["hyperparameters"] == _metrics(root / "eval" / "das" / "metrics.json")[
        "hyperparameters"]
    assert result["count"] == int(load_labels(contract_data["labels"]).has_crack.sum())


@pytest.mark.parametrize("case", ["other-method", "no-hyperparameters", "with-grid"])
def test_baseline_from_bad_metrics_is_a_one_line_error(runs, contract_data, tmp_path, capsys,
                                                       case):
    root, all_test = runs
    source = root / "eval" / "das" / "metrics.json"
    method, extra = "das", []
    if case == "other-method":
        method = "rapid"
    elif case == "no-hyperparameters":
        broken = _metrics(source)
        del broken["hyperparameters"]
        source = tmp_path / "broken.json"
        source.write_text(json.dumps(broken))
    else:
        extra = ["--grid", json.dumps(DAS_POINT)]
    code = main(["baseline", method, *_data(contract_data, all_test), "--pristine",
                 str(contract_data["pristine"]), "--out-dir", str(tmp_path / "e"),
                 "--from-metrics", str(source), *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert {"other-method": "'das'", "no-hyperparameters": "hyperparameters",
            "with-grid": "--from-metrics"}[case] in err
