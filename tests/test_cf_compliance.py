"""The NetCDF files declare CF-1.10: the IOOS compliance checker (`compliance-checker
--test=cf:1.10`) finds nothing in them but the findings docs/data-format.md keeps, all of them
about the `time` axis (a duration, which the checker takes for a calendar time by its name)."""

from __future__ import annotations

import copy
import json

import pytest
from test_dlem_dataset import TINY

from dlem import config as config_mod
from dlem import dataset

compliance = pytest.importorskip("compliance_checker.runner")
pytestmark = pytest.mark.filterwarnings(  # loading every checker warns of one we do not run
    "ignore:The ioos_sos checker is deprecated:DeprecationWarning")

CF = "cf:1.10"
# (section, what the message must name): the findings docs/data-format.md keeps, and why
KEPT = {
    "§3.1 Units": "time",              # "s" is no "<unit> since <epoch>": see the doc
    "§4.4 Time Coordinate": "time",    # the same finding, from the time-coordinate check
    "§4.4.1 Calendar": "time",         # a calendar for an axis without an epoch
    "§2.4 Dimensions": "time (T)",     # T guessed from the name: (sample, T, sensor, component)
    "§5.1 Independent Latitude, Longitude, Vertical, and Time Axes": "'time'",  # standard_name
}


def findings(path, tmp_path) -> list[tuple[str, str]]:
    """(section, message) of every high- and medium-priority finding of the checker."""
    report = tmp_path / f"{path.stem}.json"
    compliance.CheckSuite.load_all_available_checkers()
    compliance.ComplianceChecker.run_checker(str(path), [CF], 0, "normal",
                                             output_filename=str(report),
                                             output_format="json_new")
    result = json.loads(report.read_text())[str(path)][CF]
    return [(item["name"], msg) for level in ("high_priorities", "medium_priorities")
            for item in result[level] for msg in item["msgs"]]


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """A two-sample shard and the pristine reference of the tiny solver config."""
    root = tmp_path_factory.mktemp("cf")
    cfg = config_mod.validate(copy.deepcopy(TINY))
    dataset.write_shard(cfg, root / "shard-0000.nc", 0, 2, progress=False)
    dataset.write_shard(cfg, root / "pristine.nc", 0, 1, pristine=True, progress=False)
    return root


@pytest.mark.parametrize("name", ["shard-0000.nc", "pristine.nc"])
def test_solver_files_have_only_the_kept_time_findings(shards, name, tmp_path):
    found = findings(shards / name, tmp_path)
    unexpected = [(section, msg) for section, msg in found
                  if section not in KEPT or KEPT[section] not in msg]
    assert not unexpected, unexpected


def test_label_files_have_no_finding(shards, tmp_path):
    from model.keypoints import write_labels

    labels = write_labels(shards / "shard-0000.nc", tmp_path / "labels.nc")
    assert findings(labels, tmp_path) == []
