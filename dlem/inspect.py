"""Human-readable summary of a shard."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr

REQUIRED = ("wavefield", "time", "sensor_x", "sensor_y", "crack_mask", "crack_size",
            "n_cracks", "crack_params", "sample_seed")


def open_shard(path: str | Path) -> xr.Dataset:
    """Open a shard, with a clear error for a missing, corrupt or incomplete file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"shard {path} does not exist")
    try:
        ds = xr.open_dataset(path, engine="netcdf4")
    except Exception as err:  # netCDF4 raises OSError or RuntimeError on corrupt files
        raise ValueError(f"shard {path} is not a readable NetCDF file: {err}") from None
    missing = [v for v in REQUIRED if v not in ds.variables]
    if missing:
        ds.close()
        raise ValueError(f"shard {path} lacks variables {missing}; not a dlem shard")
    return ds


def summary(path: str | Path) -> str:
    with open_shard(path) as ds:
        cfg = json.loads(ds.attrs["config"])
        size = ds["crack_size"].values
        lines = [
            f"{path}: {ds.sizes['sample']} samples "
            f"(indices {int(ds['sample'][0])}..{int(ds['sample'][-1])})",
            f"  source:     {ds.attrs.get('source')}",
            f"  plate:      {ds.attrs['plate_width']} x {ds.attrs['plate_height']} m, "
            f"E={cfg['plate']['youngs_modulus']:.3g} Pa, nu={cfg['plate']['poisson_ratio']}, "
            f"rho={cfg['plate']['density']} kg/m^3",
            f"  wavefield:  {tuple(ds['wavefield'].shape)} {ds['wavefield'].dtype}, "
            f"|u| max {float(np.abs(ds['wavefield']).max()):.3g} m",
            f"  time:       {ds.sizes['time']} records, 0 .. {float(ds['time'][-1]):.4g} s",
            f"  sensors:    {ds.sizes['sensor']}",
            f"  cracks:     {ds['n_cracks'].values.sum()} in total, families "
            f"{ds.attrs.get('crack_families')}",
            f"  crack_size: min {size.min():.4g} m, median {np.median(size):.4g} m, "
            f"max {size.max():.4g} m",
            f"  mask cells: mean {ds['crack_mask'].values.reshape(ds.sizes['sample'], -1).sum(1).mean():.2f} "
            f"of {ds.sizes['label_y'] * ds.sizes['label_x']}",
        ]
    return "\n".join(lines)
