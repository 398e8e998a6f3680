#!/usr/bin/env python3
"""Consolidate simulation shards into one chunked NetCDF file for fast random access.

    python workflow/scripts/consolidate.py results/data/shard-*.nc --out results/data/all.nc
        [--chunk-samples 1] [--complevel 1] [--batch-samples 64]

The output has the layout of a shard (docs/data-format.md) over all samples, sorted by the
global `sample` index: every variable with a `sample` dimension is concatenated and stored in
chunks of `--chunk-samples` samples (1 = one wavefield, 1.3 MB, per read: what a shuffled
training epoch asks for); the variables without one (`time`, `sensor_x`, ...) are taken from
the first shard. It is a drop-in `--data` for `python -m model train|evaluate`: one file
handle and one chunk cache instead of one per shard.

The shards are read lazily with xarray + dask in batches of `--batch-samples` samples and
written batch by batch on one thread (HDF5 is not thread-safe), so memory stays at a few
batches whatever the dataset's size. The file is written through the model package's atomic
writer (`model.io.atomic_path`: a temporary name, renamed when complete); its global attribute
`complete = 1` (docs/data-format.md) is set last. The shards must come from one config (same
`config` attribute, compared as text, never parsed) and must not share a sample index;
otherwise nothing is written and the error names the shards.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import dask
import netCDF4
import numpy as np
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the checkout's `model`
from model.io import COMPLETE_ATTR, atomic_path  # noqa: E402


class ConsolidateError(ValueError):
    """The shards cannot be consolidated; the message says which and why."""


def shard_order(paths: Sequence[Path]) -> list[Path]:
    """The shards sorted by their first sample index, checked for one config and no overlap."""
    info = []
    for path in paths:
        with xr.open_dataset(path, engine="netcdf4") as ds:
            if "sample" not in ds.coords or "wavefield" not in ds:
                raise ConsolidateError(f"{path} is not a shard (no `sample` coordinate or `wavefield`)")
            samples = ds["sample"].values.astype(np.int64)
            info.append((int(samples.min()) if samples.size else 0, path, samples,
                         ds.attrs.get("config")))
    info.sort(key=lambda item: item[0])
    configs = {item[3] for item in info}
    if len(configs) > 1:
        first = info[0]
        other = next(item for item in info if item[3] != first[3])
        raise ConsolidateError(f"{other[1]} was simulated with another config than {first[1]} "
                               "(their `config` attributes differ)")
    previous = None
    for _, path, samples, _ in info:
        if np.any(np.diff(samples) <= 0):
            raise ConsolidateError(f"{path}: sample indices are not strictly increasing")
        if previous is not None and samples.size and samples[0] <= previous[1]:
            raise ConsolidateError(f"{path} and {previous[0]} overlap: sample {samples[0]} <= "
                                   f"{previous[1]} (a shard given twice, or the pristine file?)")
        if samples.size:
            previous = (path, samples[-1])
    return [item[1] for item in info]


def encoding_for(ds: xr.Dataset, chunk_samples: int, complevel: int) -> dict:
    encoding = {}
    for name, var in ds.data_vars.items():
        enc = {"zlib": complevel > 0, "complevel": complevel, "shuffle": complevel > 0}
        if "sample" in var.dims:
            enc["chunksizes"] = tuple(min(chunk_samples, ds.sizes["sample"]) if d == "sample"
                                      else ds.sizes[d] for d in var.dims)
        encoding[name] = enc
    return encoding


def consolidate(paths: Sequence[str | os.PathLike], out: str | os.PathLike,
                chunk_samples: int = 1, complevel: int = 1, batch_samples: int = 64) -> dict:
    """Write the shards at `paths` into one file `out`; returns a summary dict."""
    if not paths:
        raise ConsolidateError("no shards given")
    if chunk_samples < 1 or batch_samples < 1 or not 0 <= complevel <= 9:
        raise ConsolidateError("--chunk-samples and --batch-samples must be >= 1, --complevel 0..9")
    paths = shard_order([Path(p) for p in paths])
    out = Path(out)
    try:
        ds = xr.open_mfdataset(paths, combine="nested", concat_dim="sample", data_vars="minimal",
                               coords="minimal", compat="override", join="exact",
                               chunks={"sample": batch_samples}, engine="netcdf4")
    except ValueError as err:
        raise ConsolidateError(f"the shards do not line up (dimension sizes or coordinates "
                               f"differ): {err}") from err
    with ds, atomic_path(out) as tmp:
        for var in ds.variables.values():
            var.encoding = {}  # the shards' chunking and filters do not carry over
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        ds.attrs["history"] = (f"{now} workflow/scripts/consolidate.py from {len(paths)} "
                               f"shards\n{ds.attrs.get('history', '')}").strip()
        ds.attrs["consolidated_from"] = json.dumps([p.name for p in paths])
        ds.attrs.pop(COMPLETE_ATTR, None)       # set last, as the shard writer does
        with dask.config.set(scheduler="synchronous"):
            ds.to_netcdf(tmp, engine="netcdf4",
                         encoding=encoding_for(ds, chunk_samples, complevel))
        with netCDF4.Dataset(tmp, "a") as nc:
            nc.setncattr(COMPLETE_ATTR, 1)
        summary = {"out": str(out), "shards": len(paths), "samples": int(ds.sizes["sample"]),
                   "chunk_samples": chunk_samples}
    summary["bytes"] = out.stat().st_size
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("shards", nargs="+", metavar="SHARD.nc", help="simulation shards")
    parser.add_argument("--out", required=True, metavar="ALL.nc", help="file to write")
    parser.add_argument("--chunk-samples", type=int, default=1,
                        help="samples per stored chunk (1: fastest single-sample reads)")
    parser.add_argument("--complevel", type=int, default=1, help="zlib level, 0 = uncompressed")
    parser.add_argument("--batch-samples", type=int, default=64,
                        help="samples read and written at a time (bounds the memory)")
    args = parser.parse_args(argv)
    try:
        summary = consolidate(args.shards, args.out, args.chunk_samples, args.complevel,
                              args.batch_samples)
    except (ConsolidateError, OSError) as err:
        print(f"consolidate: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
