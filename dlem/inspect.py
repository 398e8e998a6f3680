"""Human-readable summary of a shard, after checking it is whole and finite."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr

from .files import COMPLETE_ATTR

REQUIRED = ("wavefield", "time", "sensor_x", "sensor_y", "crack_mask", "crack_size",
            "n_cracks", "crack_params", "sample_seed")
# checked finite besides the wavefield (crack_params and crack_vertices are NaN-padded)
FINITE = ("time", "sensor_x", "sensor_y", "crack_size")


def open_shard(path: str | Path) -> xr.Dataset:
    """Open a shard, with a clear error for a missing, corrupt, incomplete or unfinished file
    (one without the global attribute ``complete = 1``, set after its last sample)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"shard {path} does not exist")
    try:
        ds = xr.open_dataset(path, engine="netcdf4")
    except Exception as err:  # netCDF4 raises OSError or RuntimeError on corrupt files
        raise ValueError(f"shard {path} is not a readable NetCDF file: {err}") from None
    if "crack_mask" in ds.variables and ds.attrs.get(COMPLETE_ATTR) != 1:  # the labels go first
        ds.close()
        raise ValueError(f"shard {path} is unfinished (no global attribute {COMPLETE_ATTR} = 1): "
                         "its writer was stopped before the last sample; simulate it again")
    missing = [v for v in REQUIRED if v not in ds.variables]
    if missing:
        ds.close()
        raise ValueError(f"shard {path} lacks variables {missing}; not a dlem shard")
    return ds


def read_checked(ds: xr.Dataset, path: str | Path, name: str, position: int | None = None,
                 ) -> np.ndarray:
    """``ds[name]`` (or its sample at ``position``) as an array; ValueError naming the file,
    the variable and the sample when it cannot be read or is not finite."""
    var, where = ds[name], name
    if position is not None:
        var = var[position]
        where = f"{name} of sample {int(ds['sample'][position])} (position {position})"
    try:
        values = var.values
    except (RuntimeError, OSError) as err:
        raise ValueError(f"shard {path}: cannot read {where}: {err} (corrupt or truncated "
                         "file)") from None
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        raise ValueError(f"shard {path}: {where} holds {int((~np.isfinite(values)).sum())} "
                         "non-finite value(s) (NaN or inf)")
    return values


def summary(path: str | Path) -> str:
    """The shard's summary (several lines); reads the wavefield one sample at a time."""
    with open_shard(path) as ds:
        cfg = json.loads(ds.attrs["config"])
        checked = {name: read_checked(ds, path, name) for name in FINITE}
        size, time = checked["crack_size"], checked["time"]
        peak = max(float(np.abs(read_checked(ds, path, "wavefield", k)).max())
                   for k in range(ds.sizes["sample"]))
        lines = [
            f"{path}: {ds.sizes['sample']} samples "
            f"(indices {int(ds['sample'][0])}..{int(ds['sample'][-1])})",
            f"  source:     {ds.attrs.get('source')}",
            f"  plate:      {ds.attrs['plate_width']} x {ds.attrs['plate_height']} m, "
            f"E={cfg['plate']['youngs_modulus']:.3g} Pa, nu={cfg['plate']['poisson_ratio']}, "
            f"rho={cfg['plate']['density']} kg/m^3",
            f"  wavefield:  {tuple(ds['wavefield'].shape)} {ds['wavefield'].dtype}, "
            f"|u| max {peak:.3g} m",
            f"  waves:      c_p {ds.attrs.get('wave_speed_p', float('nan')):.5g} m/s, "
            f"c_s {ds.attrs.get('wave_speed_s', float('nan')):.5g} m/s "
            f"(plane {ds.attrs.get('plane', '?')})",
            f"  set-up:     sha256 {ds.attrs.get('setup_hash', 'missing (older shard)')}",
            f"  time:       {ds.sizes['time']} records, 0 .. {float(time[-1]):.4g} s",
            f"  sensors:    {ds.sizes['sensor']}",
            f"  cracks:     {ds['n_cracks'].values.sum()} in total, families "
            f"{ds.attrs.get('crack_families')}",
            f"  crack_size: min {size.min():.4g} m, median {np.median(size):.4g} m, "
            f"max {size.max():.4g} m",
            f"  mask cells: mean {ds['crack_mask'].values.reshape(ds.sizes['sample'], -1).sum(1).mean():.2f} "
            f"of {ds.sizes['label_y'] * ds.sizes['label_x']}",
        ]
    return "\n".join(lines)
