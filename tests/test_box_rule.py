"""The two readings of the paper's one-cell margin (§3.5, docs/model.md "Labels"): `edges`
(the default, cell-edge coordinates `[cmin - 1, cmax + 2] / W`) and `indices` (cell indices
`[cmin - 1, cmax + 1] / W`); the labels file records its rule and a mask model's box follows it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from model.cli import main
from model.io import DataError
from model.data import load_labels, make_split, write_split
from model.keypoints import (BOX_RULES, mask_to_box, masks_to_boxes, predicted_mask_boxes,
                             write_labels)
from model.metrics import box_iou
from test_keypoints import _mask
from model.scoring import choose_mask_thresholds

pytestmark = pytest.mark.usefixtures("contract_single_thread")


def test_worked_example_one_crack_cell_at_column_5():
    # docs/model.md: edges gives xmin 4/16, xmax 7/16; indices 4/16 and 6/16
    np.testing.assert_allclose(mask_to_box(_mask([(9, 5)]), "edges"), np.array([4, 8, 7, 11]) / 16)
    np.testing.assert_allclose(mask_to_box(_mask([(9, 5)]), "indices"), np.array([4, 8, 6, 10]) / 16)


def test_edges_is_the_default():
    masks = np.stack([_mask([(9, 5)]), _mask([(0, 0), (3, 7)])])
    np.testing.assert_array_equal(masks_to_boxes(masks), masks_to_boxes(masks, "edges"))


def test_one_cell_box_is_3_cells_centred_by_edges_and_2_cells_shifted_by_indices():
    box_e, box_i = mask_to_box(_mask([(7, 7)]), "edges"), mask_to_box(_mask([(7, 7)]), "indices")
    centre = 7.5 / 16                                           # the crack cell's centre
    assert box_e[2] - box_e[0] == pytest.approx(3 / 16) and box_i[2] - box_i[0] == pytest.approx(2 / 16)
    assert (box_e[0] + box_e[2]) / 2 == pytest.approx(centre)
    assert (box_i[0] + box_i[2]) / 2 == pytest.approx(centre - 0.5 / 16)


def test_indices_boxes_are_clipped_to_the_plate_and_keep_positive_area():
    np.testing.assert_allclose(mask_to_box(_mask([(0, 0)]), "indices"), [0, 0, 1 / 16, 1 / 16])
    np.testing.assert_allclose(mask_to_box(_mask([(15, 15)]), "indices"), [14 / 16, 14 / 16, 1, 1])


@pytest.mark.parametrize("seed", range(5))
def test_rules_share_the_lower_corner_and_differ_by_one_cell_above_unless_clipped(seed):
    rng = np.random.default_rng(seed)
    masks = (rng.random((50, 16, 16)) < 0.02).astype(np.uint8)
    e, i = masks_to_boxes(masks, "edges"), masks_to_boxes(masks, "indices")
    has = ~np.isnan(e[:, 0])
    np.testing.assert_array_equal(np.isnan(e), np.isnan(i))
    np.testing.assert_array_equal(e[has, :2], i[has, :2])
    # a crack in the last column (row): edges' cmax + 2 = 17 is clipped to 16, indices' is 16
    last = np.stack([masks[has][:, :, -1].any(axis=1), masks[has][:, -1, :].any(axis=1)], axis=1)
    assert last.any()
    np.testing.assert_allclose(i[has, 2:], np.where(last, 1.0, e[has, 2:] - 1 / 16))


def test_an_unknown_rule_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match="edges, indices"):
        masks_to_boxes(_mask([(1, 1)])[None], "centres")


def test_labels_file_records_its_rule_and_holds_that_rules_boxes(contract_data, tmp_path):
    shard = contract_data["shards"][0]
    assert main(["labels", str(shard), "--out", str(tmp_path / "i.nc"), "--box-rule", "indices"]) == 0
    with xr.open_dataset(tmp_path / "i.nc") as labels, xr.open_dataset(shard) as ds:
        assert labels.attrs["box_rule"] == "indices"
        assert "--box-rule indices" in labels.attrs["history"]
        np.testing.assert_array_equal(labels["box"].values,
                                      masks_to_boxes(ds["crack_mask"].values, "indices"))
    with xr.open_dataset(contract_data["labels"][0]) as labels:
        assert labels.attrs["box_rule"] == "edges"
    assert load_labels([tmp_path / "i.nc"]).box_rule == "indices"
    assert load_labels(contract_data["labels"]).box_rule == "edges"


def test_cli_refuses_an_unknown_rule(contract_data, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["labels", str(contract_data["shards"][0]), "--out", str(tmp_path / "x.nc"),
              "--box-rule", "centres"])
    assert "invalid choice" in capsys.readouterr().err
    assert not (tmp_path / "x.nc").exists()


def test_label_files_without_the_attribute_are_edges_and_mixed_rules_are_refused(contract_data,
                                                                                 tmp_path):
    with xr.open_dataset(contract_data["labels"][0]) as labels:
        old = labels.load()
    old.attrs.pop("box_rule")
    old.to_netcdf(tmp_path / "old.nc")
    assert load_labels([tmp_path / "old.nc"]).box_rule == "edges"
    write_labels(contract_data["shards"][1], tmp_path / "i.nc", "indices")
    with pytest.raises(DataError, match="mix box rules"):
        load_labels([tmp_path / "old.nc", tmp_path / "i.nc"])


def test_mask_thresholds_are_chosen_with_the_labels_rule():
    """A perfect mask scores box IoU 1 against boxes of the same rule and less across rules."""
    rng = np.random.default_rng(0)
    masks = np.stack([_mask([(r, c), (r, c + 1)]) for r, c in rng.integers(1, 13, (8, 2))])
    prob = masks.astype(float)
    for rule in BOX_RULES:
        true = masks_to_boxes(masks, rule)
        np.testing.assert_allclose(box_iou(predicted_mask_boxes(masks, rule), true), 1.0)
        chosen = choose_mask_thresholds(prob, masks, true, box_rule=rule)
        np.testing.assert_allclose(chosen["val_box_IoU"], 1.0)
    other = choose_mask_thresholds(prob, masks, masks_to_boxes(masks, "indices"))
    assert max(other["val_box_IoU"]) < 0.8


TINY_DENSENET = {"stem_channels": 4, "block_layers": [1, 1, 1], "growth": 4,
                 "sensor_features": 8, "decoder_channels": [8, 8]}


def _indices_labels(contract_data, tmp_path) -> list:
    """`indices` labels of the contract shards and their split (tmp_path/split.json)."""
    labels = [write_labels(shard, tmp_path / "labels" / shard.name, "indices")
              for shard in contract_data["shards"]]
    write_split(make_split(load_labels(labels), (0.6, 0.2, 0.2), seed=0), tmp_path / "split.json")
    return labels


def _train_tiny_densenet(data: list, labels, split, out_dir) -> None:
    assert main(["train", *data, "--labels", *map(str, labels), "--split", str(split),
                 "--arch", "densenet1d", "--out-dir", str(out_dir), "--no-progress",
                 "--epochs", "1", "--batch-size", "4",
                 "--arch-kwargs", json.dumps(TINY_DENSENET)]) == 0


def test_evaluate_turns_a_mask_into_a_box_by_the_rule_of_its_labels(contract_data, tmp_path):
    """A mask model trained on `edges` labels, scored against `indices` labels: its boxes are
    the `indices` boxes of its thresholded masks."""
    labels = _indices_labels(contract_data, tmp_path)
    data = ["--data", *map(str, contract_data["shards"])]
    _train_tiny_densenet(data, contract_data["labels"], contract_data["split"], tmp_path / "run")
    assert main(["evaluate", *data, "--labels", *map(str, labels),
                 "--split", str(tmp_path / "split.json"),
                 "--checkpoint", str(tmp_path / "run" / "checkpoint.pt"),
                 "--out-dir", str(tmp_path / "eval"), "--mask-threshold", "0.5"]) == 0
    with xr.open_dataset(tmp_path / "eval" / "predictions.nc") as preds:
        expected = predicted_mask_boxes(preds["pred_mask_prob"].values >= 0.5, "indices")
        np.testing.assert_allclose(preds["pred_box"].values, np.clip(expected, 0, 1), atol=1e-12)
        label_set = load_labels(labels)
        np.testing.assert_array_equal(preds["true_box"].values,
                                      label_set.box[label_set.rows(preds["sample"].values)])


def test_predict_boxes_a_mask_by_the_rule_of_the_training_labels(contract_data, tmp_path):
    """Trained on `indices` labels, the checkpoint records the rule and `predict` (which has
    no labels) boxes the thresholded masks by it. The box threshold (an evaluation's, read
    with --from-metrics) is the median probability, so the masks are not empty."""
    from model.checkpoint import load_checkpoint

    labels = _indices_labels(contract_data, tmp_path)
    data = ["--data", *map(str, contract_data["shards"])]
    _train_tiny_densenet(data, labels, tmp_path / "split.json", tmp_path / "run")
    checkpoint = str(tmp_path / "run" / "checkpoint.pt")
    assert load_checkpoint(checkpoint)["box_rule"] == "indices"
    assert main(["predict", *data, "--checkpoint", checkpoint, "--out", str(tmp_path / "p.nc")]) == 0
    with xr.open_dataset(tmp_path / "p.nc") as preds:
        t = float(np.median(preds["pred_mask_prob"].values))
    (tmp_path / "metrics.json").write_text(json.dumps(
        {"arch": "densenet1d", "mask_threshold": {"box": t, "pixel": t, "chosen_on": "test"}}))
    assert main(["predict", *data, "--checkpoint", checkpoint, "--out", str(tmp_path / "q.nc"),
                 "--from-metrics", str(tmp_path / "metrics.json")]) == 0
    with xr.open_dataset(tmp_path / "q.nc") as preds:
        assert preds.attrs["box_rule"] == "indices"
        masks = preds["pred_mask_prob"].values >= t
        expected = predicted_mask_boxes(masks, "indices")
        assert not np.allclose(expected, predicted_mask_boxes(masks, "edges"))
        np.testing.assert_allclose(preds["pred_box"].values, np.clip(expected, 0, 1), atol=1e-12)


def test_an_imaging_baseline_boxes_by_the_rule_of_its_labels(contract_data, tmp_path):
    labels = _indices_labels(contract_data, tmp_path)
    out = tmp_path / "das"
    assert main(["baseline", "das", "--data", *map(str, contract_data["shards"]),
                 "--labels", *map(str, labels), "--split", str(tmp_path / "split.json"),
                 "--pristine", str(contract_data["pristine"]), "--out-dir", str(out),
                 "--grid", json.dumps({"speed": ["s"], "t_max": [6e-5]})]) == 0
    chosen = json.loads((out / "metrics.json").read_text())
    assert chosen["box_rule"] == "indices"
    with xr.open_dataset(out / "predictions.nc") as preds:
        expected = predicted_mask_boxes(
            preds["pred_mask_prob"].values >= chosen["hyperparameters"]["alpha_box"], "indices")
        np.testing.assert_allclose(preds["pred_box"].values, np.clip(expected, 0, 1), atol=1e-12)
