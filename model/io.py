"""File access shared by the `model` package: checked opening and atomic writes.

Every reader of a shard, labels or pristine file goes through `open_checked`, so a missing
file, a file that is not NetCDF, or one that lacks a variable of the contract
(docs/data-format.md) fails with an error that names the file and what is wrong.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import xarray as xr

SHARD_LABEL_VARIABLES = ("sample", "crack_mask", "crack_size", "n_cracks")
SHARD_VARIABLES = ("sample", "wavefield", "crack_mask", "crack_size", "n_cracks")
LABEL_VARIABLES = ("sample", "box", "has_crack", "crack_size", "n_cracks")
WAVEFIELD_DIMS = ("sample", "time", "sensor", "component")


class DataError(ValueError):
    """An input file is missing, unreadable or does not follow the data contract."""


def open_checked(path: str | os.PathLike, variables: Sequence[str], kind: str,
                 **open_kwargs) -> xr.Dataset:
    """Open a NetCDF file lazily and check it holds `variables`; `kind` names it in errors."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{kind} file not found: {path}")
    try:
        dataset = xr.open_dataset(path, engine="netcdf4", **open_kwargs)
    except Exception as err:  # netCDF4 raises OSError, ValueError, RuntimeError...
        raise DataError(f"{kind} file {path} is not a readable NetCDF file: {err}") from err
    missing = [name for name in variables if name not in dataset.variables]
    if missing:
        dataset.close()
        raise DataError(f"{kind} file {path} lacks the variable(s) {missing} "
                        f"required by docs/data-format.md")
    if "wavefield" in variables and dataset["wavefield"].dims != WAVEFIELD_DIMS:
        dims = dataset["wavefield"].dims
        dataset.close()
        raise DataError(f"{kind} file {path}: wavefield has dims {dims}, expected {WAVEFIELD_DIMS}")
    return dataset


@contextlib.contextmanager
def atomic_path(out_path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `out_path`; rename it onto `out_path` on success.

    A reader never sees a half-written file; on error the temporary file is removed.
    """
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)


def write_netcdf_atomic(dataset: xr.Dataset, out_path: str | os.PathLike) -> None:
    """`dataset.to_netcdf(out_path)` through a temporary file and `os.replace`."""
    with atomic_path(out_path) as tmp:
        dataset.to_netcdf(tmp, engine="netcdf4")


def write_text_atomic(text: str, out_path: str | os.PathLike) -> None:
    """Write `text` to `out_path` through a temporary file and `os.replace`."""
    with atomic_path(out_path) as tmp:
        tmp.write_text(text)
