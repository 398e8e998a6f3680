"""From a config to NetCDF shards: scenarios per sample index, simulation, atomic writing.

A sample is fully defined by (config, sample index): its seed is drawn from
``SeedSequence([config seed, index])`` and stored as ``sample_seed``; its cracks come from
``default_rng(sample_seed)``. The lattice, time step and sources depend on the config only.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path

import h5py
import netCDF4
import numpy as np
import xarray as xr
from tqdm import tqdm

from . import __version__
from . import config as config_mod
from .compression import DEFAULT_COMPRESSION, encode_chunk, filters
from .cracks import PARAM_UNITS, PARAMS, Crack, cut_elements, rasterize, sample_cracks
from .files import COMPLETE_ATTR, atomic_file
from .lattice import Lattice, build_lattice, stable_dt, stiffness_blocks, wave_speeds
from .sensors import nearest_nodes, sensor_grid
from .solver import Simulation, damping_profile
from .source import PointSource, source_forces
from .workers import ordered_map

MAX_VERTICES = 48
WAVEFIELD_DIMS = ("sample", "time", "sensor", "component")
WAVEFIELD_ATTRS = {"units": "m", "long_name": "displacement at the sensors"}
# Elapsed time since the simulation starts, a duration (CF section 4.4 identifies a *time
# coordinate* by a "<unit> since <epoch>" units string, optionally standard_name "time" or
# axis "T"; this axis has no calendar epoch, so it carries none of the three).
TIME_ATTRS = {"units": "s", "long_name": "time since the start of the simulation",
              "comment": "a duration, not a calendar time; each source's wavelet peaks at its "
                         "source_onset"}
# config sections that are not part of the physical set-up: the crack scenario and the
# dataset seed (the sample range is not in the config)
NOT_SETUP = ("cracks", "seed")


@dataclass
class Setup:
    """Everything about a run that does not depend on the sample.

    ``dt`` [s] is the time step, ``every`` the steps per record, so that
    ``n_time * every`` steps of ``dt`` span exactly ``duration``; ``times`` (n_time,) [s].
    """

    cfg: dict
    lattice: Lattice
    dt: float
    dt_stable: float
    every: int
    times: np.ndarray
    sources: list[PointSource]
    source_nodes: np.ndarray
    source_force: np.ndarray
    sensor_x: np.ndarray
    sensor_y: np.ndarray
    sensor_nodes: np.ndarray
    damping: np.ndarray

    @property
    def n_steps(self) -> int:
        return len(self.times) * self.every

    @property
    def dtype(self):
        return np.dtype(self.cfg["time"]["dtype"])


def choose_time_step(dt_stable: float, duration: float, n_time: int, safety: float,
                     dt: float | None) -> tuple[float, int]:
    """The time step [s] and steps per record.

    A requested ``dt`` above the stable limit ``dt_stable`` is refused. The step used is the
    largest ``duration / (n_time * every) <= (dt or safety * dt_stable)``, so records fall
    exactly on steps and no interpolation is needed.
    """
    if dt is not None and dt > dt_stable:
        raise config_mod.ConfigError(
            f"time.dt={dt:.4g} s exceeds the stable limit {dt_stable:.4g} s of this lattice "
            f"(2 / omega_max); use time.dt <= {dt_stable:.4g} or leave it null")
    target = dt if dt is not None else safety * dt_stable
    every = int(np.ceil(duration / (n_time * target) - 1e-9))
    return duration / (n_time * every), max(every, 1)


@lru_cache(maxsize=4)
def _setup_cached(cfg_json: str) -> Setup:
    cfg = json.loads(cfg_json)
    plate, t = cfg["plate"], cfg["time"]
    lattice = build_lattice(plate, cfg["lattice"])
    dt_stable = stable_dt(lattice, stiffness_blocks(lattice))
    dt, every = choose_time_step(dt_stable, t["duration"], t["n_time"], t["safety"], t["dt"])
    sources = [PointSource(**s) for s in cfg["sources"]]
    steps = np.arange(t["n_time"] * every) * dt
    sx, sy = sensor_grid(plate["width"], plate["height"], **cfg["sensors"])
    absorbing = cfg["absorbing"]
    damping = damping_profile(lattice.points, plate["width"], plate["height"],
                              absorbing["width"], absorbing["strength"] * 2 * np.pi * sources[0].f0)
    return Setup(cfg, lattice, dt, dt_stable, every, np.arange(t["n_time"]) * dt * every,
                 sources, nearest_nodes(lattice.points, [s.x for s in sources],
                                        [s.y for s in sources]),
                 source_forces(sources, steps), sx, sy,
                 nearest_nodes(lattice.points, sx, sy), damping)


def setup(cfg: dict) -> Setup:
    """The sample-independent part of a run (cached per process for a given config)."""
    return _setup_cached(config_mod.dumps(cfg))


def setup_json(cfg: dict) -> str:
    """Canonical JSON of the physical set-up: every section of the resolved config but
    ``NOT_SETUP`` (plate, lattice, time, sources, absorbing, sensors, labels), sorted keys,
    no spaces. Two shards whose set-ups agree can be used together."""
    return json.dumps({k: v for k, v in cfg.items() if k not in NOT_SETUP}, sort_keys=True,
                      separators=(",", ":"))


def setup_hash(cfg: dict) -> str:
    """sha256 (hex) of ``setup_json(cfg)`` in UTF-8: the shard's ``setup_hash`` attribute."""
    return hashlib.sha256(setup_json(cfg).encode("utf-8")).hexdigest()


def contract_constants(cfg: dict) -> tuple[dict, dict]:
    """What readers of a shard need about the physics, as (global attributes, variables)
    of docs/data-format.md: the continuum P and S wave speeds [m/s] for the plate's plane
    condition, and per source its position [m], centre frequency [Hz] and onset [s]."""
    plate = cfg["plate"]
    plane = plate.get("plane", "stress")
    c_p, c_s = wave_speeds(plate["youngs_modulus"], plate["poisson_ratio"], plate["density"],
                           plane)
    sources = [PointSource(**s) for s in cfg["sources"]]
    attrs = {"plane": plane, "wave_speed_p": float(c_p), "wave_speed_s": float(c_s),
             "setup": setup_json(cfg), "setup_hash": setup_hash(cfg)}
    variables = {
        "source_x": ("source", np.array([s.x for s in sources], np.float64),
                     {"units": "m", "long_name": "source x position"}),
        "source_y": ("source", np.array([s.y for s in sources], np.float64),
                     {"units": "m", "long_name": "source y position"}),
        "source_f0": ("source", np.array([s.f0 for s in sources], np.float64),
                      {"units": "Hz", "long_name": "Ricker centre frequency"}),
        "source_onset": ("source", np.array([s.onset for s in sources], np.float64),
                         {"units": "s", "long_name": "time of the wavelet's peak"}),
    }
    return attrs, variables


def sample_seed(seed: int, index: int) -> int:
    """The 63-bit seed of sample ``index`` of a dataset with config seed ``seed``."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def scenario(cfg: dict, index: int, pristine: bool = False) -> tuple[int, list[tuple[int, Crack]]]:
    """The seed and the ``(family index, crack)`` list of sample ``index``."""
    seed = sample_seed(cfg["seed"], index)
    if pristine:
        return seed, []
    plate = cfg["plate"]
    sources = np.array([[s["x"], s["y"]] for s in cfg["sources"]])
    return seed, sample_cracks(cfg["cracks"], np.random.default_rng(seed), plate["width"],
                               plate["height"], sources)


def simulation(st: Setup, cracks: list[Crack]) -> Simulation:
    """A ready-to-run simulation of the plate with ``cracks`` cut into it."""
    cut = cut_elements(cracks, st.lattice.points, st.lattice.bonds)
    return Simulation(st.lattice, cut, st.damping, st.dt, st.dtype, st.source_nodes,
                      st.source_force)


def describe_sample(cfg: dict, index: int, pristine: bool = False) -> dict:
    """The per-sample label arrays of the shard (no simulation): crack mask, size, count,
    parameters, vertices and seed (see docs/data-format.md)."""
    seed, drawn = scenario(cfg, index, pristine)
    cracks = [c for _, c in drawn]
    lab = cfg["labels"]
    n_max = max(cfg["cracks"]["count"]["max"], len(cfg["cracks"].get("fixed") or []), 1)
    params = np.full((n_max, len(PARAMS)), np.nan)
    vertices = np.full((n_max, MAX_VERTICES, 2), np.nan)
    for k, (family, crack) in enumerate(drawn):
        params[k] = crack.params(family)
        v = crack.vertices[:MAX_VERTICES]
        vertices[k, :len(v)] = v
    return {
        "crack_mask": rasterize(cracks, cfg["plate"]["width"], cfg["plate"]["height"],
                                lab["nx"], lab["ny"]),
        "crack_size": float(sum(c.length for c in cracks)),
        "n_cracks": len(cracks),
        "crack_params": params,
        "crack_vertices": vertices,
        "sample_seed": seed,
    }


def sensor_records(st: Setup, cracks: list[Crack]) -> np.ndarray:
    """The sensor wavefield (n_time, sensors, 2) [m], in the set-up's dtype, of the plate
    with ``cracks`` cut into it."""
    records = np.zeros((len(st.times), len(st.sensor_nodes), 2), st.dtype)
    simulation(st, cracks).advance(st.n_steps, st.sensor_nodes, records, st.every)
    return records


def simulate_wavefield(cfg: dict, index: int, pristine: bool = False) -> np.ndarray:
    """The sensor wavefield (n_time, sensors, 2) float32 [m] of one sample."""
    _, drawn = scenario(cfg, index, pristine)
    records = sensor_records(setup(cfg), [c for _, c in drawn])
    if not np.all(np.isfinite(records)):
        raise FloatingPointError(f"sample {index}: the wavefield is not finite (unstable run)")
    return records.astype(np.float32)


def simulate_sample(cfg: dict, index: int, pristine: bool = False) -> dict:
    """Simulate one sample: its wavefield and label arrays."""
    return {"wavefield": simulate_wavefield(cfg, index, pristine),
            **describe_sample(cfg, index, pristine)}


def _work(args):
    cfg, index, pristine, encode = args
    field = simulate_wavefield(cfg, index, pristine)
    return field if encode is None else encode(field)


@contextmanager
def wavefields(cfg: dict, indices, workers: int = 1, pristine: bool = False,
               progress: bool = True, encode: Callable[[np.ndarray], bytes] | None = None):
    """Context: an iterator over the wavefields of ``indices`` in order, simulated by
    ``workers`` processes (the same bits for any count; ``dlem.workers.ordered_map``), each
    passed through ``encode`` in its worker when given (e.g. compressed:
    ``dlem.compression.encode_chunk``). The workers start at entry, so what the caller does
    before iterating (describing the samples, writing the shard's header) overlaps the
    simulation; leaving the block stops them."""
    jobs = [(cfg, int(i), pristine, encode) for i in indices]
    bar = dict(total=len(jobs), desc="simulating", unit="sample", disable=not progress)
    if workers <= 1:
        yield (_work(j) for j in tqdm(jobs, **bar))
        return
    with ordered_map(_work, jobs, workers) as fields:
        yield tqdm(fields, **bar)


def simulate_range(cfg: dict, start: int, stop: int, workers: int = 1, pristine: bool = False,
                   progress: bool = True) -> list[dict]:
    """Simulate samples ``start..stop-1`` with ``workers`` processes (same bits for any count)."""
    with wavefields(cfg, range(start, stop), workers, pristine, progress) as fields:
        return [{"wavefield": w, **describe_sample(cfg, i, pristine)}
                for i, w in zip(range(start, stop), fields)]


def to_dataset(cfg: dict, samples: list[dict], indices: np.ndarray,
               pristine: bool = False) -> xr.Dataset:
    """Assemble simulated samples into the shard layout of docs/data-format.md."""
    st = setup(cfg)
    stack = {k: np.stack([s[k] for s in samples]) for k in samples[0]}
    plate = cfg["plate"]
    families = [f["geometry"] for f in cfg["cracks"].get("families", [])]
    if cfg["cracks"].get("fixed"):
        families = [c["geometry"] for c in cfg["cracks"]["fixed"]]
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    constants, source_vars = contract_constants(cfg)
    ds = xr.Dataset(
        {
            **source_vars,
            "sensor_x": ("sensor", st.sensor_x, {"units": "m", "long_name": "sensor x position"}),
            "sensor_y": ("sensor", st.sensor_y, {"units": "m", "long_name": "sensor y position"}),
            "crack_mask": (("sample", "label_y", "label_x"), stack["crack_mask"].astype(np.uint8),
                           {"units": "1", "long_name": "crack segmentation label, row 0 at y=0"}),
            "crack_size": ("sample", stack["crack_size"].astype(np.float64),
                           {"units": "m", "long_name": "total crack length",
                            "comment": "segment: length; polyline: path length; rectangle: long "
                                       "side; ellipse: major axis; summed over the cracks"}),
            "n_cracks": ("sample", stack["n_cracks"].astype(np.int32),
                         {"units": "1", "long_name": "number of cracks"}),
            "crack_params": (("sample", "crack", "param"), stack["crack_params"],
                             {"long_name": "crack parameters, NaN-padded",
                              "comment": "mixed units: one per param, in param_units"}),
            "crack_vertices": (("sample", "crack", "vertex", "xy"), stack["crack_vertices"],
                               {"units": "m", "long_name": "crack path vertices, NaN-padded"}),
            "sample_seed": ("sample", stack["sample_seed"].astype(np.int64),
                            {"units": "1", "long_name": "seed reproducing the sample"}),
        },
        coords={
            "sample": ("sample", np.asarray(indices, np.int64), {"units": "1", "long_name": "global sample index"}),
            "time": ("time", st.times, TIME_ATTRS),
            "component": ("component", np.array(["ux", "uy"]), {"units": "1"}),
            "param": ("param", np.array(PARAMS), {"units": "1"}),
            "param_units": ("param", np.array(PARAM_UNITS),
                            {"long_name": "units of each crack parameter (UDUNITS)"}),
            "xy": ("xy", np.array(["x", "y"]), {"units": "1"}),
        },
        attrs={
            "Conventions": "CF-1.10",
            "title": "dLEM wavefields of cracked plates at a sensor grid",
            "institution": "crackpoint",
            "source": f"dlem {__version__} dynamic lattice element solver ({st.lattice.kind} "
                      f"lattice, {st.lattice.n_nodes} nodes, dt={st.dt:.6g} s)",
            "history": f"{now} python -m dlem simulate{' --pristine' if pristine else ''}",
            "references": "Moreh et al. 2024 (MicroCrackPointNet); Sattari et al. 2022 (dLEM)",
            "config": config_mod.dumps(cfg),
            "crack_families": json.dumps(families),
            "plate_width": plate["width"],
            "plate_height": plate["height"],
            "dt": st.dt,
            "dlem_version": __version__,
            "pristine": int(pristine),
            **constants,
        },
    )
    if "wavefield" in stack:
        ds["wavefield"] = (WAVEFIELD_DIMS, stack["wavefield"], WAVEFIELD_ATTRS)
    return ds


def _encoding(ds: xr.Dataset, compression: str = DEFAULT_COMPRESSION) -> dict:
    """The filters of ``compression`` (``dlem.compression``) for the data variables; no
    `_FillValue` on the float coordinates (`time`): CF forbids one on a coordinate variable,
    and a coordinate has no missing values."""
    encoding = {v: filters(compression) for v in ds.data_vars}
    encoding.update({c: {"_FillValue": None} for c in ds.coords if ds[c].dtype.kind == "f"})
    return encoding


def write_atomic(ds: xr.Dataset, path: str | Path,
                 compression: str = DEFAULT_COMPRESSION) -> None:
    """Write a whole ``ds`` to NetCDF (``compression``, one chunk per sample for the
    wavefield), atomically, with ``complete = 1`` set last."""
    encoding = _encoding(ds, compression)
    if "wavefield" in ds:
        encoding["wavefield"]["chunksizes"] = (1,) + ds["wavefield"].shape[1:]
    with atomic_file(path) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4", encoding=encoding)
        with netCDF4.Dataset(tmp, "a") as nc:
            nc.setncattr(COMPLETE_ATTR, 1)


def write_shard(cfg: dict, out: str | Path, start: int, stop: int, workers: int = 1,
                pristine: bool = False, progress: bool = True,
                compression: str = DEFAULT_COMPRESSION) -> xr.Dataset:
    """Simulate samples ``start..stop-1`` (or the one pristine sample) and write the shard,
    every data variable filtered by ``compression`` (a name of ``dlem.compression``).

    The workers start first and compress their own wavefields (``encode_chunk``); the
    labels are written while they simulate, then each compressed wavefield is stored as it
    arrives (h5py's ``write_direct_chunk``: the writer does no compression), so memory holds
    one sample at a time; the global attribute ``complete = 1`` is set after the last one
    (``files.atomic_file`` explains how an interrupted write is cleaned up).
    Returns the shard's dataset without the wavefield.
    """
    encoding_filters = filters(compression)  # an unknown name fails before any work
    if pristine:
        start, stop = 0, 1
    indices = np.arange(start, stop)
    st = setup(cfg)   # before the workers fork: they inherit it
    encode = partial(encode_chunk, name=compression)
    with wavefields(cfg, indices, workers, pristine, progress, encode) as chunks, \
            atomic_file(out) as tmp:
        ds = to_dataset(cfg, [describe_sample(cfg, i, pristine) for i in indices], indices,
                        pristine)
        ds.to_netcdf(tmp, engine="netcdf4", encoding=_encoding(ds, compression))
        with netCDF4.Dataset(tmp, "a") as nc:
            var = nc.createVariable("wavefield", "f4", WAVEFIELD_DIMS, **encoding_filters,
                                    chunksizes=(1, len(st.times), len(st.sensor_nodes), 2))
            var.setncatts(WAVEFIELD_ATTRS)
        with h5py.File(tmp, "r+") as h5:
            wavefield = h5["wavefield"].id
            for k, chunk in enumerate(chunks):
                wavefield.write_direct_chunk((k, 0, 0, 0), chunk)
        with netCDF4.Dataset(tmp, "a") as nc:
            nc.setncattr(COMPLETE_ATTR, 1)     # last: a shard without it is unfinished
    return ds
