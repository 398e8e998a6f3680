"""File access shared by the `model` package: checked opening and reading, atomic writes.

Every reader of a shard, labels or pristine file goes through `open_checked`, so a missing
file, a file that is not NetCDF, one that lacks a variable of the contract
(docs/data-format.md), or a shard whose writer never finished (no global attribute
`complete = 1`) fails with an error that names the file and what is wrong; `reading` and
`check_finite` do the same for a read that fails half-way (a corrupt chunk) and for NaN or
infinite values.

Writes go through `atomic_path`: a temporary file beside the destination, renamed when
whole and removed on any error or interruption (SIGTERM too, once the CLI has turned it into
`Terminated`). A write fault is raised as an OSError naming the destination and the cause;
a full disk, which netCDF-C and torch report as a bare RuntimeError, is named as such.
"""

from __future__ import annotations

import _thread
import contextlib
import errno
import os
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import xarray as xr

SHARD_LABEL_VARIABLES = ("sample", "crack_mask", "crack_size", "n_cracks")
SHARD_VARIABLES = ("sample", "wavefield", "crack_mask", "crack_size", "n_cracks")
LABEL_VARIABLES = ("sample", "box", "has_crack", "crack_size", "n_cracks")
WAVEFIELD_DIMS = ("sample", "time", "sensor", "component")
COMPLETE_ATTR = "complete"       # a shard's global attribute, 1 once its last sample is written
LOW_SPACE_BYTES = 1 << 20        # below this many free bytes a failed write is a full disk
REDELIVER_S = 2.0                # SIGTERM is raised again after this long if still running
_redelivering = threading.Event()


class DataError(ValueError):
    """An input file is missing, unreadable or does not follow the data contract."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread (see `raise_terminated`) so cleanup runs."""


def raise_terminated(signum, frame) -> None:
    """SIGTERM handler: raise `Terminated`, so `finally` blocks remove temporary files.

    A library with a bare `except:` on the way (netCDF4's indexing helpers) can swallow
    the exception, so a daemon thread delivers the signal again every `REDELIVER_S`
    seconds until the process has ended.
    """
    if not _redelivering.is_set():
        _redelivering.set()
        threading.Thread(target=_redeliver, args=(signum,), daemon=True).start()
    raise Terminated


def _redeliver(signum: int) -> None:
    while True:
        time.sleep(REDELIVER_S)
        _thread.interrupt_main(signum)  # runs the handler again; nothing under SIG_DFL


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
    if ("crack_mask" in variables and "crack_mask" in dataset.variables  # a shard
            and dataset.attrs.get(COMPLETE_ATTR) != 1):
        dataset.close()
        raise DataError(f"{kind} file {path} is unfinished (no global attribute "
                        f"{COMPLETE_ATTR} = 1): its writer stopped before the last sample")
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
def reading(path: str | os.PathLike, what: str) -> Iterator[None]:
    """Turn a read fault in the block (netCDF-C raises RuntimeError "NetCDF: HDF error" for a
    corrupt chunk) into a DataError naming `path` and `what` (e.g. "wavefield of sample 7")."""
    try:
        yield
    except (RuntimeError, OSError) as err:
        raise DataError(f"{path}: cannot read {what}: {err} (corrupt or truncated file)") from err


def check_finite(values: np.ndarray, path: str | os.PathLike, variable: str,
                 sample_ids: np.ndarray | None = None) -> np.ndarray:
    """`values` unchanged if all finite; else a DataError naming the file, the variable and
    (with `sample_ids`, one per row of `values`) the first samples concerned."""
    bad = ~np.isfinite(values)
    if not bad.any():
        return values
    where = ""
    if sample_ids is not None:
        rows = np.asarray(sample_ids)[bad.reshape(len(bad), -1).any(axis=1)]
        where = f" of sample(s) {rows[:5].tolist()}{' ...' if rows.size > 5 else ''}"
    raise DataError(f"{path}: {variable}{where} holds {int(bad.sum())} non-finite value(s) "
                    "(NaN or inf)")


def check_output_file(path: str | os.PathLike) -> None:
    """Refuse, before any work, a file destination that is a folder or lies below a file."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory, not a file", str(path))
    check_output_dir(path.parent)


def check_output_dir(path: str | os.PathLike) -> None:
    """Refuse, before any work, an output folder that is a file or lies below a file."""
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    if not path.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "is a file, not a directory", str(path))


def read_only(folder: Path) -> bool:
    """Whether `folder` is on a file system mounted read-only."""
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def write_fault(err: Exception, path: Path) -> OSError:
    """The OSError to report when writing `path` failed with `err`: `filename` is `path`,
    `strerror` the cause, a full disk named as such (with the free bytes left)."""
    code = err.errno if isinstance(err, OSError) and err.errno and err.errno > 0 else errno.EIO
    cause = (err.strerror if isinstance(err, OSError) and err.strerror
             else (str(err).splitlines() or [""])[0])
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        free = None
    low = free is not None and free < LOW_SPACE_BYTES
    denied = code in (errno.EACCES, errno.EPERM)  # netCDF-C's create says so on a read-only
    if denied and read_only(path.parent):          # and on a full file system too
        code, cause = errno.EROFS, os.strerror(errno.EROFS)
    elif (denied and os.access(path.parent, os.W_OK) or code == errno.EIO) and low:
        code = errno.ENOSPC
    if code == errno.ENOSPC:
        said = "" if cause == os.strerror(errno.ENOSPC) else f"; the writer said: {cause}"
        cause = f"no space left on device ({free} bytes free{said})"
    return OSError(code, cause, str(path))


def describe_os_error(err: OSError) -> str:
    """One line naming the path(s) and the cause of `err`."""
    if err.filename is not None and err.strerror:
        where = str(err.filename) + (f" -> {err.filename2}" if err.filename2 else "")
        return f"{where}: {err.strerror}"
    return str(err)


@contextlib.contextmanager
def atomic_path(out_path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `out_path`; rename it onto `out_path` on success.

    A reader never sees a half-written file; on error the temporary file is removed. A write
    fault in the block (OSError, or the RuntimeError of netCDF-C or torch) is raised as
    `write_fault`'s OSError naming `out_path`.
    """
    out_path = Path(out_path)
    check_output_file(out_path)
    tmp = out_path.with_name(f".{out_path.name}.tmp-{os.getpid()}")
    try:
        try:
            out_path.parent.mkdir(parents=True, exist_ok=True)
            yield tmp
            os.replace(tmp, out_path)
        except (OSError, RuntimeError) as err:
            raise write_fault(err, out_path) from err
    finally:
        if tmp.exists():  # (unlinking a missing file on a read-only file system fails)
            tmp.unlink()


def write_netcdf_atomic(dataset: xr.Dataset, out_path: str | os.PathLike) -> None:
    """`dataset.to_netcdf(out_path)` through a temporary file and `os.replace`."""
    with atomic_path(out_path) as tmp:
        dataset.to_netcdf(tmp, engine="netcdf4")


def write_text_atomic(text: str, out_path: str | os.PathLike) -> None:
    """Write `text` to `out_path` through a temporary file and `os.replace`."""
    with atomic_path(out_path) as tmp:
        tmp.write_text(text)
