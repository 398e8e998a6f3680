"""`python -m model scenarios` on hand-made evaluation folders: a row per model, a column
group per scenario with the bootstrap interval of its IoU, and one-line errors."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from model.cli import main
from model.metrics import bootstrap_ci
from test_compare import write_eval_dir

RNG = np.random.default_rng(11)
IOU = {("heldout", "net"): RNG.uniform(0.5, 0.9, 40), ("heldout", "das"): RNG.uniform(0.3, 0.6, 40),
       ("long", "net"): RNG.uniform(0.2, 0.5, 24), ("long", "das"): RNG.uniform(0.3, 0.7, 24),
       ("two-cracks", "net"): RNG.uniform(0.0, 0.3, 12)}


@pytest.fixture
def folders(tmp_path):
    """Each group's folders, named by model: `das` was not scored on two-cracks."""
    out = {}
    for (group, model), iou in IOU.items():
        out.setdefault(group, []).append(str(write_eval_dir(tmp_path / group, model, iou)))
    return out


def run(tmp_path, folders, *extra):
    return main(["scenarios", "--reference", *folders["heldout"],
                 "--scenario", "long", *folders["long"],
                 "--scenario", "two-cracks", *folders["two-cracks"], *extra,
                 "--out-dir", str(tmp_path / "compare")])


def test_one_row_per_model_and_a_column_group_per_scenario(tmp_path, folders):
    assert run(tmp_path, folders) == 0
    with open(tmp_path / "compare" / "scenarios.csv", newline="") as fh:
        rows = {r["model"]: r for r in csv.DictReader(fh)}
    assert list(rows) == ["net", "das"]
    for (group, model), iou in IOU.items():
        lo, hi = bootstrap_ci(iou)
        row = rows[model]
        assert int(row[f"{group}:count"]) == len(iou)
        assert float(row[f"{group}:IoU"]) == pytest.approx(iou.mean(), abs=1e-6)
        assert (float(row[f"{group}:IoU_lo"]), float(row[f"{group}:IoU_hi"])) == \
            pytest.approx((lo, hi), abs=1e-6)
    assert rows["das"]["two-cracks:IoU"] == "" and rows["das"]["two-cracks:count"] == ""


def test_markdown_shows_each_iou_with_its_interval_reference_first(tmp_path, folders):
    assert run(tmp_path, folders) == 0
    lines = (tmp_path / "compare" / "scenarios.md").read_text().splitlines()
    assert "| model | held-out, training cracks (n = 40) | long (n = 24) | two-cracks (n = 12) |" \
        in lines
    lo, hi = bootstrap_ci(IOU["long", "das"])
    das = next(line for line in lines if line.startswith("| das |"))
    assert f"| {IOU['long', 'das'].mean():.3f} [{lo:.2f}, {hi:.2f}] |" in das
    assert das.endswith("| – |")


@pytest.mark.parametrize("extra, named", [
    (["--scenario", "long", "x"], "--scenario long given twice"),
    (["--scenario", "heldout", "x"], "may not be named 'heldout'"),
    (["--scenario", "empty"], "scenario 'empty' has no evaluation folders"),
])
def test_a_bad_scenario_list_is_a_one_line_error(tmp_path, folders, capsys, extra, named):
    assert run(tmp_path, folders, *extra) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and named in err, err


def test_two_folders_of_one_model_in_a_scenario_are_refused(tmp_path, folders, capsys):
    folders["long"].append(folders["two-cracks"][0])   # another `net`
    assert run(tmp_path, folders) == 2
    err = capsys.readouterr().err.strip()
    assert "scenario 'long' holds two folders named net" in err, err
