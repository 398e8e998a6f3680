"""Shard compression (`dlem.compression`, `python -m dlem simulate --compression`): every
choice is lossless and stores what it names; chunks compressed in Python (`encode_chunk`,
as the simulation workers do) read back through HDF5's own filters bit for bit."""

from __future__ import annotations

import copy
import zlib
from pathlib import Path

import h5py
import netCDF4
import numpy as np
import pytest
import xarray as xr
import yaml
from test_dlem_dataset import TINY

from dlem import config as config_mod
from dlem import dataset
from dlem.compression import COMPRESSIONS, encode_chunk, filters

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
        for k in range(3):  # the solver's output in memory, never written: the oracle
            np.testing.assert_array_equal(ds["wavefield"].values[k],
                                          dataset.simulate_wavefield(cfg, k))
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


@pytest.mark.parametrize("name", list(COMPRESSIONS))
def test_a_chunk_encoded_in_python_reads_back_through_hdf5s_filters(name, tmp_path):
    """`encode_chunk` bytes stored as they are (`write_direct_chunk`) under a variable that
    declares the choice's filters: netCDF4 (HDF5's shuffle and deflate decoders, not ours)
    returns the original values bit for bit, signed zeros, subnormals and extremes included."""
    rng = np.random.default_rng(1)
    chunks = rng.standard_normal((3, 50, 7, 2)).astype(np.float32) * 1e-9
    chunks[0, :3, 0, 0] = [-0.0, np.finfo(np.float32).smallest_subnormal, np.finfo(np.float32).max]
    chunks[1] = np.cumsum(chunks[1], axis=0)   # smooth, as wavefields are: zlib has work to do
    path = tmp_path / "chunks.nc"
    with netCDF4.Dataset(path, "w") as nc:
        for dim, size in zip(("sample", "time", "sensor", "component"), chunks.shape):
            nc.createDimension(dim, size)
        nc.createVariable("wavefield", "f4", ("sample", "time", "sensor", "component"),
                          chunksizes=(1, *chunks.shape[1:]), **filters(name))
    with h5py.File(path, "r+") as h5:
        for k, chunk in enumerate(chunks):
            h5["wavefield"].id.write_direct_chunk((k, 0, 0, 0), encode_chunk(chunk, name))
    with netCDF4.Dataset(path) as nc:
        back = nc["wavefield"][:].filled()
    np.testing.assert_array_equal(back.view(np.uint32), chunks.view(np.uint32))


def test_encode_chunk_shuffles_bytes_as_hdf5_defines_it():
    """The shuffle filter by its definition (byte j of value i goes to j * n + i), on two
    float32 values written out by hand."""
    values = np.array([1.0, -2.0], dtype=np.float32)   # 00 00 80 3f, 00 00 00 c0 (little-endian)
    assert encode_chunk(values, "none") == bytes([0, 0, 0x80, 0x3F, 0, 0, 0, 0xC0])
    shuffled = bytes([0, 0, 0, 0, 0x80, 0, 0x3F, 0xC0])

    assert zlib.decompress(encode_chunk(values, "zlib1-shuffle")) == shuffled
    assert zlib.decompress(encode_chunk(values, "zlib4")) == encode_chunk(values, "none")
