"""Shared pytest fixtures.

`contract_*` fixtures write small NetCDF files shaped exactly like docs/data-format.md
(random wavefields, masks rasterised from random line segments) so that the `model`
package is tested without running the solver.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import xarray as xr

CONTRACT_PLATE = 0.1          # m, square plate
CONTRACT_N_TIME = 2000
CONTRACT_GRID = 16
# the `config` attribute (part of a resolved simulation config; no reader uses it) and the
# physical set-up whose canonical JSON and sha256 the shards carry (`setup`, `setup_hash`)
CONTRACT_CONFIG = {
    "plate": {"width": CONTRACT_PLATE, "height": CONTRACT_PLATE, "thickness": 0.001,
              "youngs_modulus": 7.0e10, "poisson_ratio": 0.33, "density": 2700.0,
              "plane": "stress"},
    "sources": [{"x": 0.03, "y": 0.04, "f0": 1.0e5, "amplitude": 1.0, "angle": 90.0}],
}
CONTRACT_SETUP = {**CONTRACT_CONFIG, "time": {"n_time": CONTRACT_N_TIME}}


def contract_setup_attrs(setup: dict) -> dict:
    """The provenance and physics attributes of docs/data-format.md for a set-up dict:
    canonical JSON, its sha256, the plane-stress wave speeds of its plate [m/s]."""
    text = json.dumps(setup, sort_keys=True, separators=(",", ":"))
    plate = setup["plate"]
    E, nu, rho = plate["youngs_modulus"], plate["poisson_ratio"], plate["density"]
    return {"setup": text, "setup_hash": hashlib.sha256(text.encode()).hexdigest(),
            "plane": "stress", "wave_speed_p": float(np.sqrt(E / (rho * (1 - nu**2)))),
            "wave_speed_s": float(np.sqrt(E / (2 * rho * (1 + nu))))}


def contract_segment(rng: np.random.Generator, grid: int = CONTRACT_GRID):
    """(mask (grid, grid) uint8, length [m], end points (2, 2) [m]) of a random straight
    crack on the plate."""
    centre = rng.uniform(0.2, 0.8, 2) * CONTRACT_PLATE
    length = rng.uniform(0.002, 0.02)
    angle = rng.uniform(0, np.pi)
    t = np.linspace(-0.5, 0.5, 200)[:, None]
    points = centre + t * length * np.array([np.cos(angle), np.sin(angle)])
    cells = np.clip((points / CONTRACT_PLATE * grid).astype(int), 0, grid - 1)
    mask = np.zeros((grid, grid), np.uint8)
    mask[cells[:, 1], cells[:, 0]] = 1  # row = y, column = x
    return mask, length, points[[0, -1]]


def write_contract_shard(path, sample_ids, rng: np.random.Generator, pristine_every: int = 0,
                         n_time: int = CONTRACT_N_TIME, setup: dict | None = None) -> xr.Dataset:
    """Write a shard with the contract's variables; every `pristine_every`-th sample is
    uncracked. `setup` (default `CONTRACT_SETUP`) gives its set-up attributes."""
    setup = CONTRACT_SETUP if setup is None else setup
    source = setup["sources"][0]
    n = len(sample_ids)
    masks = np.zeros((n, CONTRACT_GRID, CONTRACT_GRID), np.uint8)
    sizes = np.zeros(n)
    n_cracks = np.zeros(n, np.int32)
    params = np.full((n, 1, 6), np.nan)      # one crack row: family 0 (segment), x, y, length,
    vertices = np.full((n, 1, 2, 2), np.nan)  # width 0, angle [deg]; its two end points
    for i in range(n):
        if pristine_every and i % pristine_every == 0:
            continue
        masks[i], sizes[i], vertices[i, 0] = contract_segment(rng)
        n_cracks[i] = 1
        (x0, y0), (x1, y1) = vertices[i, 0]
        params[i, 0] = [0, (x0 + x1) / 2, (y0 + y1) / 2, sizes[i], 0,
                        np.degrees(np.arctan2(y1 - y0, x1 - x0))]
    grid = np.linspace(0.1, 0.9, 9) * CONTRACT_PLATE
    sx, sy = np.meshgrid(grid, grid)  # row-major from the lower left: k = iy * 9 + ix
    ds = xr.Dataset(
        {
            "wavefield": (("sample", "time", "sensor", "component"),
                          (1e-9 * rng.standard_normal((n, n_time, 81, 2))).astype(np.float32),
                          {"units": "m"}),
            "sensor_x": (("sensor",), sx.ravel(), {"units": "m"}),
            "sensor_y": (("sensor",), sy.ravel(), {"units": "m"}),
            "crack_mask": (("sample", "label_y", "label_x"), masks, {"units": "1"}),
            "crack_size": (("sample",), sizes, {"units": "m"}),
            "n_cracks": (("sample",), n_cracks, {"units": "1"}),
            "crack_params": (("sample", "crack", "param"), params),
            "crack_vertices": (("sample", "crack", "vertex", "xy"), vertices, {"units": "m"}),
            "sample_seed": (("sample",), np.asarray(sample_ids, np.int64) + 1000, {"units": "1"}),
            "source_x": (("source",), [source["x"]], {"units": "m"}),
            "source_y": (("source",), [source["y"]], {"units": "m"}),
            "source_f0": (("source",), [source["f0"]], {"units": "Hz"}),
            "source_onset": (("source",), [1.5 / source["f0"]], {"units": "s"}),
        },
        coords={
            "sample": ("sample", np.asarray(sample_ids, np.int64), {"units": "1"}),
            "time": ("time", np.arange(n_time) * 1e-7, {"units": "s"}),
            "component": ("component", ["ux", "uy"]),
            "param": ("param", ["family", "x", "y", "length", "width", "angle"]),
            "xy": ("xy", ["x", "y"]),
        },
        attrs={"Conventions": "CF-1.10", "title": "contract test shard",
               "plate_width": CONTRACT_PLATE, "plate_height": CONTRACT_PLATE,
               "config": json.dumps(CONTRACT_CONFIG), **contract_setup_attrs(setup),
               "crack_families": json.dumps(["segment"]),
               "complete": 1},
    )
    encoding = {"wavefield": {"zlib": True, "complevel": 1, "chunksizes": (1, n_time, 81, 2)}}
    ds.to_netcdf(path, engine="netcdf4", encoding=encoding)
    return ds


def pytest_collection_modifyitems(config, items):
    """Modules with end-to-end (`slow`) tests first: pytest-xdist (`--dist loadfile`,
    pyproject.toml) then starts each on a worker of its own at once, while the many short
    modules fill the time beside them, instead of leaving the longest for last."""
    slow = {item.module.__name__ for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.module.__name__ not in slow)   # stable: order kept


@pytest.fixture(scope="module")
def contract_single_thread():
    """One torch intra-op thread for a test module: the machine's two cores are shared, and
    oversubscribed threads made small convolutions 15x slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def contract_data(tmp_path_factory):
    """Two shards (samples 0-9 and 10-19; samples 0 and 10 uncracked), their label files,
    a pristine reference and a 0.6/0.2/0.2 split. Returns a dict of paths."""
    from model.data import load_labels, make_split, write_split
    from model.keypoints import write_labels

    root = tmp_path_factory.mktemp("contract")
    rng = np.random.default_rng(1234)
    shards, labels = [], []
    for i, ids in enumerate([range(0, 10), range(10, 20)]):
        shard = root / f"shard-{i:04d}.nc"
        write_contract_shard(shard, list(ids), rng, pristine_every=10)
        shards.append(shard)
        labels.append(write_labels(shard, root / "labels" / f"shard-{i:04d}.nc"))
    pristine = root / "pristine.nc"
    write_contract_shard(pristine, [0], rng, pristine_every=1)
    split = root / "split.json"
    write_split(make_split(load_labels(labels), (0.6, 0.2, 0.2), seed=0), split)
    return {"root": root, "shards": shards, "labels": labels, "pristine": pristine,
            "split": split}
