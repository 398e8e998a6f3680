"""workflow/scripts/consolidate.py: shards -> one chunked NetCDF, a drop-in `--data` file.

Uses the contract shards of conftest.py (two shards of 10 samples each).
"""

from __future__ import annotations

import importlib.util
import json

import netCDF4
import numpy as np
import pytest
import xarray as xr

from conftest import write_contract_shard
from test_workflow import ROOT

spec = importlib.util.spec_from_file_location(
    "consolidate", ROOT / "workflow" / "scripts" / "consolidate.py")
consolidate = importlib.util.module_from_spec(spec)
spec.loader.exec_module(consolidate)


@pytest.fixture(scope="module")
def consolidated(contract_data, tmp_path_factory):
    """The contract shards consolidated, given in reverse order."""
    out = tmp_path_factory.mktemp("consolidated") / "all.nc"
    summary = consolidate.consolidate(contract_data["shards"][::-1], out, chunk_samples=1)
    return out, summary


def test_holds_every_sample_bit_for_bit_sorted_by_index(contract_data, consolidated):
    out, summary = consolidated
    with xr.open_dataset(out) as all_:
        assert summary["samples"] == all_.sizes["sample"] == 20
        assert all_["sample"].values.tolist() == list(range(20))
        for shard in contract_data["shards"]:
            with xr.open_dataset(shard) as part:
                ids = part["sample"].values
                for name in ("wavefield", "crack_mask", "crack_size", "n_cracks", "sample_seed"):
                    np.testing.assert_array_equal(all_[name].sel(sample=ids).values,
                                                  part[name].values, err_msg=name)
                np.testing.assert_array_equal(all_["sensor_x"].values, part["sensor_x"].values)
        assert json.loads(all_.attrs["consolidated_from"]) == ["shard-0000.nc", "shard-0001.nc"]


def test_stores_the_wavefield_in_chunks_of_chunk_samples(contract_data, tmp_path, consolidated):
    out, _ = consolidated
    with netCDF4.Dataset(out) as ds:
        assert ds["wavefield"].chunking() == [1, 2000, 81, 2]
    out4 = tmp_path / "all4.nc"
    consolidate.consolidate(contract_data["shards"], out4, chunk_samples=4)
    with netCDF4.Dataset(out4) as ds:
        assert ds["wavefield"].chunking() == [4, 2000, 81, 2]


def test_is_a_drop_in_data_file_for_the_model(contract_data, consolidated):
    from model.data import ShardIndex, WavefieldDataset, load_labels

    out, _ = consolidated
    labels = load_labels(contract_data["labels"])
    ids = labels.sample[labels.has_crack]
    stats = {"mean": [0.0, 0.0], "std": [1e-9, 1e-9]}
    from_shards = WavefieldDataset(ShardIndex.build(contract_data["shards"]), ids, labels, stats)
    from_one = WavefieldDataset(ShardIndex.build([out]), ids, labels, stats)
    for i in range(len(ids)):
        for a, b in zip(from_shards[i], from_one[i]):
            assert np.array_equal(a.numpy(), b.numpy())
    from_shards.close()
    from_one.close()


def test_refuses_overlapping_shards_and_writes_nothing(contract_data, tmp_path):
    out = tmp_path / "all.nc"
    shard = contract_data["shards"][0]
    with pytest.raises(consolidate.ConsolidateError, match="overlap"):
        consolidate.consolidate([shard, shard], out)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_refuses_shards_of_another_config(contract_data, tmp_path):
    other = tmp_path / "other.nc"
    write_contract_shard(other, list(range(20, 30)), np.random.default_rng(0), n_time=2000)
    with netCDF4.Dataset(other, "a") as ds:
        ds.setncattr("config", json.dumps({"test": False}))
    with pytest.raises(consolidate.ConsolidateError, match="another config"):
        consolidate.consolidate([*contract_data["shards"], other], tmp_path / "all.nc")


def test_cli_reports_an_error_with_status_2(tmp_path, capsys):
    code = consolidate.main([str(tmp_path / "missing.nc"), "--out", str(tmp_path / "all.nc")])
    assert code == 2
    assert "consolidate: error:" in capsys.readouterr().err
