"""The classical baselines and the comparison end to end on contract shards: `python -m model
baseline` chooses its hyperparameters on val and writes what `evaluate` writes; a mask model
is scored both ways; `python -m model compare` gives one row per model and no NaN."""

import csv
import json

import pytest
import xarray as xr

from model.cli import main

pytestmark = pytest.mark.usefixtures("contract_single_thread")

EVAL_FILES = {"predictions.nc", "metrics.json", "table1.csv", "table1.md", "figures"}
FIGURES = {"boxes_best.png", "boxes_median.png", "boxes_worst.png", "iou_vs_size.png"}
SEG_TINY = {"stem_channels": 4, "block_layers": [1, 1, 1], "growth": 4, "sensor_features": 8,
            "decoder_channels": [8, 8]}


def _data_args(contract_data):
    return ["--data", *map(str, contract_data["shards"]),
            "--labels", *map(str, contract_data["labels"]), "--split", str(contract_data["split"])]


@pytest.fixture(scope="module")
def scored(contract_data, tmp_path_factory):
    """Eval folders of the mean box, RAPID, delay-and-sum and a one-epoch densenet1d."""
    root = tmp_path_factory.mktemp("scored")
    data = _data_args(contract_data)
    grids = {"rapid": {"beta": [1.1, 1.5], "alpha": [0.5, 0.9]},
             "das": {"t_max": [4e-5, 1e-4], "alpha": [0.5, 0.9]}}
    for method, grid in grids.items():
        assert main(["baseline", method, *data, "--pristine", str(contract_data["pristine"]),
                     "--out-dir", str(root / "eval" / method), "--grid", json.dumps(grid),
                     "--size-thresholds", "0", "0.01", "0.05"]) == 0
    for arch, extra in [("meanbox", []),
                        ("densenet1d", ["--epochs", "1", "--batch-size", "4", "--arch-kwargs",
                                        json.dumps(SEG_TINY), "--reference", "subtract",
                                        "--pristine", str(contract_data["pristine"])])]:
        assert main(["train", *data, "--arch", arch, "--out-dir", str(root / "models" / arch),
                     "--no-progress", *extra]) == 0
        assert main(["evaluate", *data, "--checkpoint", str(root / "models" / arch / "checkpoint.pt"),
                     "--out-dir", str(root / "eval" / arch),
                     "--size-thresholds", "0", "0.01", "0.05"]) == 0
    return root


@pytest.mark.parametrize("method", ["rapid", "das"])
def test_baseline_writes_the_evaluate_outputs_with_its_chosen_hyperparameters(scored, method):
    out = scored / "eval" / method
    assert {p.name for p in out.iterdir()} == EVAL_FILES
    assert FIGURES <= {p.name for p in (out / "figures").iterdir()}
    result = json.loads((out / "metrics.json").read_text())
    assert result["count"] == 4 and 0 <= result["IoU"] <= 1 and 0 <= result["pixel_IoU"] <= 1
    chosen = result["hyperparameters"]
    assert chosen["alpha_box"] in (0.5, 0.9) and result["search"]["subset"] == "val"
    expected = {"rapid": 2 , "das": 4}[method]   # image settings searched: beta; speed x t_max
    assert len(result["search"]["results"]) == expected
    assert (chosen["beta"] in (1.1, 1.5)) if method == "rapid" else (chosen["speed"] in "ps")
    assert result["params"]["total"] == 0
    with open(out / "table1.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 3
    with xr.open_dataset(out / "predictions.nc") as preds:
        assert preds["pred_box"].shape == (4, 4) and preds["pred_mask_prob"].shape == (4, 16, 16)


def test_segmentation_model_is_scored_both_ways(scored):
    result = json.loads((scored / "eval" / "densenet1d" / "metrics.json").read_text())
    assert result["target"] == "mask" and result["mask_threshold"]["chosen_on"] == "val"
    for key in ("IoU", "Purity", "Integrity", "pixel_IoU", "pixel_mIoU_2class"):
        assert 0 <= result[key] <= 1, key
    assert len(result["pixel_table"]) == len(result["table1"]) == 3
    with xr.open_dataset(scored / "eval" / "densenet1d" / "predictions.nc") as preds:
        assert preds["true_mask"].shape == (4, 16, 16) and preds["pixel_iou"].shape == (4,)


def test_a_baseline_refuses_an_unknown_hyperparameter(contract_data, tmp_path, capsys):
    code = main(["baseline", "rapid", *_data_args(contract_data), "--pristine",
                 str(contract_data["pristine"]), "--out-dir", str(tmp_path / "e"),
                 "--grid", '{"speed": ["p"]}'])
    assert code == 2 and "speed" in capsys.readouterr().err


def test_comparison_has_a_row_per_model_and_no_nan(scored, tmp_path):
    names = ["meanbox", "rapid", "das", "densenet1d"]
    assert main(["compare", "--eval-dirs", *(str(scored / "eval" / n) for n in names),
                 "--histories", *(str(scored / "models" / n / "history.csv")
                                  for n in ("meanbox", "densenet1d")),
                 "--out-dir", str(tmp_path / "compare")]) == 0
    out = tmp_path / "compare"
    text = (out / "table.csv").read_text()
    rows = list(csv.DictReader(text.splitlines()))
    assert [r["model"] for r in rows] == names
    assert "nan" not in text.lower() and "nan" not in (out / "table.md").read_text().lower()
    for row in rows:
        assert 0 <= float(row["IoU"]) <= 1 and float(row["inference_samples_per_s"]) > 0
        assert {"IoU_gt_0.01", "Purity_gt_0.01", "Integrity_gt_0.01", "params",
                "training_seconds"} <= set(row)
    assert (rows[0]["pixel_IoU"], rows[1]["pixel_IoU"] != "") == ("", True)
    for png in ("iou_vs_crack_size.png", "loss_curves.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
