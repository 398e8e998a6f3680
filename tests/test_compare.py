"""`python -m model compare` on hand-made evaluation folders: bootstrap intervals in both
tables, the mean-box overlap mark, the paired difference, and one-line errors for a
metrics.json, table1.csv or predictions.nc that lacks something."""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest
import xarray as xr

from model.cli import main
from model.metrics import bootstrap_ci

N = 60  # scored samples per model


def write_eval_dir(root, name, iou, arch="microcrackpointnet", target="box", samples=None,
                   drop=()):
    """An evaluation folder as evaluate writes it, with per-sample IoU `iou` (N,) and
    Purity = IoU, Integrity = sqrt(IoU) (any per-sample scores in [0, 1] will do)."""
    iou = np.asarray(iou, dtype=np.float64)
    samples = np.arange(len(iou)) if samples is None else np.asarray(samples)
    scores = {"iou": iou, "purity": iou, "integrity": np.sqrt(iou)}
    out = root / name
    (out / "figures").mkdir(parents=True)
    xr.Dataset({**{k: (("sample",), v) for k, v in scores.items()},
                "crack_size": (("sample",), np.linspace(0.004, 0.02, len(iou)))},
               coords={"sample": samples}).to_netcdf(out / "predictions.nc")
    metrics = {"arch": arch, "target": target, "subset": "test", "count": len(iou),
               "IoU": iou.mean(), "Purity": iou.mean(), "Integrity": np.sqrt(iou).mean(),
               "MAE": 0.1, "params": {"total": 10}, "training_seconds": 1.0,
               "inference_samples_per_s": 5.0}
    for key in drop:
        metrics.pop(key)
    (out / "metrics.json").write_text(json.dumps(metrics))
    (out / "table1.csv").write_text(
        "crack_size_gt_m,count,IoU,Purity,Integrity\n"
        f"0,{len(iou)},{iou.mean()},{iou.mean()},{np.sqrt(iou).mean()}\n")
    return out


def run_compare(root, names):
    return main(["compare", "--eval-dirs", *(str(root / n) for n in names),
                 "--out-dir", str(root / "compare")])


def read_rows(root):
    with open(root / "compare" / "table.csv", newline="") as handle:
        return {r["model"]: r for r in csv.DictReader(handle)}


def md_row(root, name):
    lines = (root / "compare" / "table.md").read_text().splitlines()
    return next(line for line in lines if line.startswith(f"| {name} | "))


@pytest.fixture
def three_models(tmp_path):
    """A floor (arch meanbox, named `floor` to show it is found by arch), a model with the
    floor's score distribution, and one far above it."""
    rng = np.random.default_rng(7)
    write_eval_dir(tmp_path, "floor", rng.uniform(0.0, 0.2, N), arch="meanbox")
    write_eval_dir(tmp_path, "close", rng.uniform(0.0, 0.2, N))
    write_eval_dir(tmp_path, "good", rng.uniform(0.6, 0.9, N), arch="densenet1d", target="mask")
    return tmp_path


def test_csv_holds_the_bootstrap_interval_of_each_metric(three_models):
    assert run_compare(three_models, ["floor", "close", "good"]) == 0
    rows = read_rows(three_models)
    with xr.open_dataset(three_models / "good" / "predictions.nc") as ds:
        per_sample = {"IoU": ds["iou"].values, "Purity": ds["purity"].values,
                      "Integrity": ds["integrity"].values}
    for metric, values in per_sample.items():
        lo, hi = bootstrap_ci(values)
        row = rows["good"]
        assert float(row[f"{metric}_lo"]) == pytest.approx(lo, abs=1e-6)
        assert float(row[f"{metric}_hi"]) == pytest.approx(hi, abs=1e-6)
        assert float(row[f"{metric}_lo"]) < float(row[metric]) < float(row[f"{metric}_hi"])


def test_existing_columns_are_kept(three_models):
    assert run_compare(three_models, ["floor", "close", "good"]) == 0
    row = read_rows(three_models)["good"]
    assert {"model", "kind", "count", "IoU", "Purity", "Integrity", "MAE", "MSE", "pixel_IoU",
            "params", "training_seconds", "inference_samples_per_s", "count_gt_0", "IoU_gt_0",
            "chosen"} <= set(row)
    assert not any(k.startswith("_") for k in row)


def test_markdown_shows_each_mean_with_its_interval(three_models):
    assert run_compare(three_models, ["floor", "close", "good"]) == 0
    row, cells = read_rows(three_models)["good"], md_row(three_models, "good").split(" | ")
    for column, metric in zip(cells[2:5], ("IoU", "Purity", "Integrity")):
        expected = (f"{float(row[metric]):.3f} [{float(row[metric + '_lo']):.2f}, "
                    f"{float(row[metric + '_hi']):.2f}]")
        assert column == expected


def test_models_overlapping_the_floor_are_marked_and_explained(three_models):
    assert run_compare(three_models, ["floor", "close", "good"]) == 0
    rows = read_rows(three_models)
    assert (rows["floor"]["IoU_overlaps_meanbox"], rows["close"]["IoU_overlaps_meanbox"],
            rows["good"]["IoU_overlaps_meanbox"]) == ("", "yes", "no")
    assert "†" in md_row(three_models, "close")
    assert "†" not in md_row(three_models, "good") + md_row(three_models, "floor")
    text = (three_models / "compare" / "table.md").read_text()
    assert re.search(r"† marks a model whose IoU interval overlaps the mean box's \(floor",
                     text)
    assert f"n = {N} test samples" in text and "not resolved" in text


def test_paired_difference_to_the_floor_is_the_mean_of_per_sample_differences(three_models):
    assert run_compare(three_models, ["floor", "close", "good"]) == 0
    rows = read_rows(three_models)
    for name in ("close", "good"):
        diff = float(rows[name]["IoU"]) - float(rows["floor"]["IoU"])
        assert float(rows[name]["IoU_minus_meanbox"]) == pytest.approx(diff, abs=2e-6)  # 6 digits each
        assert (float(rows[name]["IoU_minus_meanbox_lo"]) < diff
                < float(rows[name]["IoU_minus_meanbox_hi"]))
    assert float(rows["good"]["IoU_minus_meanbox_lo"]) > 0  # far above the floor


def test_paired_difference_aligns_samples_by_id(tmp_path):
    rng = np.random.default_rng(3)
    iou = rng.uniform(0, 1, N)
    order = rng.permutation(N)
    write_eval_dir(tmp_path, "meanbox", iou, arch="meanbox")
    write_eval_dir(tmp_path, "shuffled", iou[order], samples=order)  # same scores per sample
    assert run_compare(tmp_path, ["meanbox", "shuffled"]) == 0
    row = read_rows(tmp_path)["shuffled"]
    assert [float(row[k]) for k in ("IoU_minus_meanbox", "IoU_minus_meanbox_lo",
                                    "IoU_minus_meanbox_hi")] == pytest.approx([0, 0, 0], abs=1e-9)


def test_paired_difference_is_left_empty_for_different_samples(tmp_path):
    rng = np.random.default_rng(4)
    write_eval_dir(tmp_path, "meanbox", rng.uniform(0, 1, N), arch="meanbox")
    write_eval_dir(tmp_path, "other", rng.uniform(0, 1, N), samples=np.arange(N) + 1000)
    assert run_compare(tmp_path, ["meanbox", "other"]) == 0
    row = read_rows(tmp_path)["other"]
    assert row["IoU_minus_meanbox"] == "" and row["IoU_overlaps_meanbox"] in ("yes", "no")
    assert "paired by sample" not in (tmp_path / "compare" / "table.md").read_text()


def test_floor_is_found_by_name_when_metrics_lack_the_arch(tmp_path):
    rng = np.random.default_rng(5)
    write_eval_dir(tmp_path, "meanbox", rng.uniform(0, 0.2, N), arch=None)
    write_eval_dir(tmp_path, "net", rng.uniform(0, 0.2, N))
    assert run_compare(tmp_path, ["net", "meanbox"]) == 0
    assert read_rows(tmp_path)["net"]["IoU_overlaps_meanbox"] == "yes"


def test_without_a_mean_box_nothing_is_marked(tmp_path):
    rng = np.random.default_rng(6)
    for name in ("a", "b"):
        write_eval_dir(tmp_path, name, rng.uniform(0, 0.2, N))
    assert run_compare(tmp_path, ["a", "b"]) == 0
    assert {r["IoU_overlaps_meanbox"] for r in read_rows(tmp_path).values()} == {""}
    text = (tmp_path / "compare" / "table.md").read_text()
    assert "†" not in text and "[" in md_row(tmp_path, "a")


@pytest.mark.parametrize("key", ["count", "IoU", "Purity", "Integrity"])
def test_a_metrics_file_lacking_a_key_is_a_one_line_error(tmp_path, capsys, key):
    write_eval_dir(tmp_path, "ok", np.full(N, 0.5))
    write_eval_dir(tmp_path, "broken", np.full(N, 0.5), drop=(key,))
    assert run_compare(tmp_path, ["ok", "broken"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert str(tmp_path / "broken" / "metrics.json") in err and repr(key) in err


@pytest.mark.parametrize("missing, named", [("predictions.nc", "predictions.nc"),
                                            ("table1.csv", "table1.csv")])
def test_a_missing_file_is_a_one_line_error(tmp_path, capsys, missing, named):
    write_eval_dir(tmp_path, "broken", np.full(N, 0.5))
    (tmp_path / "broken" / missing).unlink()
    assert run_compare(tmp_path, ["broken"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and named in err


def test_predictions_lacking_a_score_are_a_one_line_error(tmp_path, capsys):
    out = write_eval_dir(tmp_path, "broken", np.full(N, 0.5))
    with xr.open_dataset(out / "predictions.nc") as ds:
        ds = ds.drop_vars("purity").load()
    ds.to_netcdf(out / "predictions.nc")
    assert run_compare(tmp_path, ["broken"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "purity" in err
