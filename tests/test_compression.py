"""Shard compression (`dlem.compression`, `python -m dlem simulate --compression`): every
choice is lossless and stores what it names."""

from __future__ import annotations

import copy
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr
import yaml
from test_dlem_dataset import TINY

from dlem import config as config_mod
from dlem import dataset
from dlem.compression import COMPRESSIONS

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cfg():
    return config_mod.validate(copy.deepcopy(TINY))


@pytest.fixture(scope="module")
def reference(cfg, tmp_path_factory):
    """Samples 0-2 of the tiny config as written by default, loaded."""
    out = tmp_path_factory.mktemp("compression") / "default.nc"
    dataset.write_shard(cfg, out, 0, 3, progress=False)
    with xr.open_dataset(out) as ds:
        return ds.load()


@pytest.mark.parametrize("name", list(COMPRESSIONS))
def test_each_compression_is_lossless_and_stores_its_filters(cfg, reference, name, tmp_path):
    out = tmp_path / f"{name}.nc"
    dataset.write_shard(cfg, out, 0, 3, progress=False, compression=name)
    with xr.open_dataset(out) as ds:
        for var in ("wavefield", "crack_mask", "crack_params", "sample_seed"):
            np.testing.assert_array_equal(ds[var].values, reference[var].values, err_msg=var)
    expected = COMPRESSIONS[name]
    with netCDF4.Dataset(out) as nc:
        for var in ("wavefield", "crack_mask"):
            stored = nc[var].filters()
            assert bool(stored["zlib"]) == expected["zlib"], (var, stored)
            assert bool(stored["shuffle"]) == expected["shuffle"], (var, stored)
            if expected["zlib"]:
                assert stored["complevel"] == expected["complevel"], (var, stored)


def test_the_workflow_offers_exactly_the_solver_choices():
    """`dataset.compression` in the workflow schema names the choices `dlem.compression`
    declares, and nothing else (the option is declared once, in the solver)."""
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    entry = schema["properties"]["dataset"]["properties"]["compression"]
    assert entry["enum"] == list(COMPRESSIONS)
    assert "default" not in entry  # the solver's DEFAULT_COMPRESSION applies when it is unset


def test_an_unknown_compression_fails_before_any_work(cfg, tmp_path):
    out = tmp_path / "shard.nc"
    with pytest.raises(ValueError, match="unknown compression 'lz4'; choose one of zlib4-shuffle"):
        dataset.write_shard(cfg, out, 0, 1, progress=False, compression="lz4")
    assert not list(tmp_path.iterdir())
