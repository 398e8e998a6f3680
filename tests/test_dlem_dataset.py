"""Scenarios, configs, NetCDF shards and the dlem CLI."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from dlem import config as config_mod
from dlem import dataset
from dlem.cracks import Ellipse, Polyline, Rectangle, Segment, rasterize

TINY = {
    "seed": 3,
    "plate": {"width": 0.04, "height": 0.04, "thickness": 1e-3, "youngs_modulus": 7e10,
              "poisson_ratio": 0.33, "density": 2700.0},
    "lattice": {"nodes_x": 24},
    "time": {"duration": 2e-5, "n_time": 120},
    "sources": [{"x": 0.012, "y": 0.008, "f0": 2e5, "angle": 30.0}],
    "sensors": {"margin": 0.003},
    "cracks": {
        "count": {"min": 0, "max": 2},
        "families": [
            {"geometry": "segment", "length": [0.004, 0.01]},
            {"geometry": "polyline", "length": [0.005, 0.012], "segments": 3, "kink": [0, 40]},
            {"geometry": "rectangle", "weight": 0.5, "length": [0.003, 0.006], "width": [0.001, 0.002]},
            {"geometry": "ellipse", "weight": 0.5, "length": [0.003, 0.006], "width": [0.001, 0.002]},
        ],
    },
}


@pytest.fixture
def tiny():
    return config_mod.validate(copy.deepcopy(TINY))


def write_yaml(tmp_path, cfg, name="sim.yaml"):
    import yaml
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return path


# ------------------------------------------------------------------ config errors

@pytest.mark.parametrize("mutate,message", [
    (lambda c: c["plate"].update(widht=0.1), "widht"),
    (lambda c: c["plate"].update(width=-0.1), "plate.width"),
    (lambda c: c["lattice"].update(kind="hexagonal"), "lattice.kind"),
    (lambda c: c["cracks"]["families"].append({"geometry": "spiral", "length": 0.01}), "spiral"),
    (lambda c: c["cracks"]["families"].append({"geometry": "rectangle", "length": 0.01}), "needs 'width'"),
    (lambda c: c["cracks"]["families"][0].update(length=[-0.01, 0.01]), "positive"),
    (lambda c: c["cracks"].update(fixed=[{"geometry": "segment", "x": 0.039, "y": 0.02,
                                          "length": 0.01, "angle": 0}]), "leaves the plate"),
    (lambda c: c["cracks"].update(fixed=[{"geometry": "segment", "x": 0.012, "y": 0.008,
                                          "length": 0.004, "angle": 90}]), "overlaps source"),
    (lambda c: c["sources"][0].update(x=0.5), "outside"),
    (lambda c: c["cracks"]["count"].update(min=3, max=1), "min=3"),
])
def test_bad_configs_are_refused_with_a_message_naming_the_problem(mutate, message):
    cfg = copy.deepcopy(TINY)
    mutate(cfg)
    with pytest.raises(config_mod.ConfigError, match=message):
        config_mod.validate(cfg)


def test_time_step_above_the_stable_limit_is_refused_stating_the_limit(tiny):
    tiny["time"]["dt"] = 1e-6
    with pytest.raises(config_mod.ConfigError, match=r"exceeds the stable limit .* use time.dt <="):
        dataset.setup(tiny)


def test_yaml_exponents_without_dot_or_sign_are_numbers(tmp_path):
    path = tmp_path / "sim.yaml"
    text = json.dumps(TINY).replace('70000000000.0', '7e10')
    path.write_text(text)
    assert config_mod.load(path)["plate"]["youngs_modulus"] == 7e10


def test_time_step_divides_the_duration_into_whole_records(tiny):
    st = dataset.setup(tiny)
    assert st.dt <= 0.9 * st.dt_stable * (1 + 1e-12)
    assert st.n_steps * st.dt == pytest.approx(tiny["time"]["duration"])
    assert len(st.times) == tiny["time"]["n_time"]


# ------------------------------------------------------------------ cracks and labels

def test_rasterize_marks_exactly_the_cells_a_segment_passes_through():
    crack = Segment.from_params(x=0.05, y=0.034, length=0.02, angle=0)   # y inside row 5
    mask = rasterize([crack], 0.1, 0.1, 16, 16)
    rows, cols = np.nonzero(mask)
    assert set(rows) == {5}
    assert cols.min() == 6 and cols.max() == 9       # x from 0.04 to 0.06, cells of 6.25 mm


def test_area_cracks_fill_their_interior_cells():
    rect = Rectangle.from_params(x=0.05, y=0.05, length=0.03, width=0.02, angle=0)
    mask = rasterize([rect], 0.1, 0.1, 16, 16)
    assert mask[8, 8] == 1 and mask.sum() == 6 * 4   # x 0.035..0.065 -> 6 cols, y 0.04..0.06 -> 4 rows
    ell = Ellipse.from_params(x=0.05, y=0.05, length=0.03, width=0.02, angle=30)
    assert rasterize([ell], 0.1, 0.1, 16, 16)[8, 8] == 1


def test_polyline_length_is_its_path_length():
    line = Polyline.from_params(points=[[0.01, 0.01], [0.04, 0.05], [0.07, 0.05]])
    assert line.length == pytest.approx(0.05 + 0.03)


def test_scenarios_are_reproducible_and_respect_the_config(tiny):
    counts = []
    for index in range(30):
        seed, drawn = dataset.scenario(tiny, index)
        seed2, drawn2 = dataset.scenario(tiny, index)
        assert seed == seed2 and len(drawn) == len(drawn2)
        for (f1, c1), (f2, c2) in zip(drawn, drawn2):
            assert f1 == f2 and np.array_equal(c1.vertices, c2.vertices)
            assert c1.vertices.min() >= 0.002 and c1.vertices.max() <= 0.038
        counts.append(len(drawn))
    assert set(counts) == {0, 1, 2}


# ------------------------------------------------------------------ shards

def test_same_sample_is_bitwise_identical_with_one_and_two_workers(tiny):
    one = dataset.simulate_range(tiny, 0, 4, workers=1, progress=False)
    two = dataset.simulate_range(tiny, 0, 4, workers=2, progress=False)
    for a, b in zip(one, two):
        assert a["wavefield"].tobytes() == b["wavefield"].tobytes()
        assert np.array_equal(a["crack_mask"], b["crack_mask"])
    alone = dataset.simulate_sample(tiny, 2)
    assert alone["wavefield"].tobytes() == one[2]["wavefield"].tobytes()


def test_shard_round_trip_has_every_variable_and_unit_of_the_contract(tiny, tmp_path):
    out = tmp_path / "shard-0000.nc"
    dataset.write_shard(tiny, out, 5, 9, progress=False)
    with xr.open_dataset(out) as ds:
        assert ds.attrs["Conventions"] == "CF-1.10"
        assert json.loads(ds.attrs["config"]) == tiny
        assert list(ds["sample"].values) == [5, 6, 7, 8]
        expect = {"wavefield": (("sample", "time", "sensor", "component"), "float32", "m"),
                  "time": (("time",), "float64", "s"),
                  "sensor_x": (("sensor",), "float64", "m"),
                  "sensor_y": (("sensor",), "float64", "m"),
                  "crack_mask": (("sample", "label_y", "label_x"), "uint8", "1"),
                  "crack_size": (("sample",), "float64", "m"),
                  "n_cracks": (("sample",), "int32", "1"),
                  "crack_params": (("sample", "crack", "param"), "float64", None),
                  "sample_seed": (("sample",), "int64", "1")}
        for name, (dims, dtype, units) in expect.items():
            assert ds[name].dims == dims, name
            assert ds[name].dtype == np.dtype(dtype), name
            if units:
                assert ds[name].attrs["units"] == units, name
        # crack_params has mixed units: one per param, in the param_units coordinate (CF)
        assert list(ds["param_units"].values) == ["1", "m", "m", "m", "m", "degree"]
        assert "param_units" in ds["crack_params"].coords
        assert "_FillValue" not in ds["time"].encoding
        assert ds.sizes["sensor"] == 81 and ds.sizes["time"] == 120
        assert list(ds["component"].values) == ["ux", "uy"]
        assert ds["wavefield"].encoding["zlib"]
        # sensors row-major from the lower left
        assert ds["sensor_x"][1] > ds["sensor_x"][0] and ds["sensor_y"][9] > ds["sensor_y"][0]
        assert np.all((ds["n_cracks"] > 0) == (ds["crack_mask"].sum(("label_y", "label_x")) > 0))
        assert np.all((ds["n_cracks"] == 0) == (ds["crack_size"] == 0))
        assert np.abs(ds["wavefield"]).max() > 0
        seeds = ds["sample_seed"].values
    assert seeds[1] == dataset.sample_seed(3, 6)


def test_interrupted_write_leaves_no_file_that_looks_finished(tiny, tmp_path, monkeypatch):
    out = tmp_path / "shard.nc"

    def explode(self, path, *args, **kwargs):
        with open(path, "wb") as fh:           # half a file, then the user hits Ctrl-C
            fh.write(b"\x89HDF\r\n\x1a\n" + b"\0" * 1000)
        raise KeyboardInterrupt

    monkeypatch.setattr(xr.Dataset, "to_netcdf", explode)
    with pytest.raises(KeyboardInterrupt):
        dataset.write_shard(tiny, out, 0, 1, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_pristine_reference_has_no_crack(tiny, tmp_path):
    out = tmp_path / "pristine.nc"
    dataset.write_shard(tiny, out, 0, 0, pristine=True, progress=False)
    with xr.open_dataset(out) as ds:
        assert ds.sizes["sample"] == 1 and int(ds["n_cracks"][0]) == 0
        assert int(ds["crack_mask"].sum()) == 0 and ds.attrs["pristine"] == 1


# ------------------------------------------------------------------ CLI

def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "dlem", *map(str, args)], capture_output=True,
                          text=True)


def test_cli_simulate_inspect_plot(tmp_path):
    cfg = write_yaml(tmp_path, TINY)
    shard = tmp_path / "s.nc"
    res = run_cli("simulate", "--config", cfg, "--out", shard, "--samples", "0:3", "--workers", "2")
    assert res.returncode == 0, res.stderr
    res = run_cli("inspect", shard)
    assert res.returncode == 0 and "3 samples" in res.stdout
    traces, snaps = tmp_path / "t.png", tmp_path / "s.png"
    res = run_cli("plot", shard, "--sample", "1", "--traces", traces, "--snapshots", snaps)
    assert res.returncode == 0, res.stderr
    for png in (traces, snaps):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_reports_bad_input_without_a_traceback(tmp_path):
    bad = dict(TINY, plate=dict(TINY["plate"], widht=1))
    res = run_cli("simulate", "--config", write_yaml(tmp_path, bad), "--out", tmp_path / "x.nc")
    assert res.returncode == 2 and "widht" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "x.nc").exists()
    corrupt = tmp_path / "corrupt.nc"
    corrupt.write_bytes(b"not a netcdf file")
    res = run_cli("inspect", corrupt)
    assert res.returncode == 2 and "not a readable NetCDF" in res.stderr
    res = run_cli("simulate", "--config", tmp_path / "sim.yaml", "--out", tmp_path / "y.nc",
                  "--samples", "5:2")
    assert res.returncode == 2 and "START < STOP" in res.stderr
