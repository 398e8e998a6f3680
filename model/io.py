"""File access shared by the `model` package: checked opening and reading, atomic writes.

Every reader of a shard, labels or pristine file goes through `open_checked`, so a missing
file, a file that is not NetCDF, one that lacks a variable of the contract
(docs/data-format.md), or a shard whose writer never finished (no global attribute
`complete = 1`) fails with an error that names the file and what is wrong; `reading` and
`check_finite` do the same for a read that fails half-way (a corrupt chunk) and for NaN or
infinite values.

Provenance: a shard (and the pristine reference) carries `setup_hash`, the sha256 of its
physical set-up `setup` (canonical JSON of the simulation config without the crack scenario
and the seed); labels files carry their shard's. `setup_of` reads them and refuses a file
without them (written before provenance: regenerate it); `check_same_setup` names the file
that does not belong with the others, and which set-up sections differ; `allowed_changes`
lets differences in named paths through (`--allow-setup-change`, docs/robustness.md).

Writes go through `atomic_path`: a temporary file beside the destination, renamed when
whole and removed on any error or interruption (SIGTERM too, once the CLI has turned it into
`crackpoint.stopping.Terminated`). A write fault is raised as an OSError naming the
destination and the cause; a full disk, which netCDF-C and torch report as a bare
RuntimeError, is named as such.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import xarray as xr

SHARD_LABEL_VARIABLES = ("sample", "crack_mask", "crack_size", "n_cracks", "crack_params",
                         "crack_vertices")
SHARD_VARIABLES = ("sample", "wavefield", "crack_mask", "crack_size", "n_cracks")
LABEL_VARIABLES = ("sample", "box", "has_crack", "crack_size", "n_cracks")
WAVEFIELD_DIMS = ("sample", "time", "sensor", "component")
COMPLETE_ATTR = "complete"       # a shard's global attribute, 1 once its last sample is written
SETUP_HASH_ATTR = "setup_hash"   # sha256 hex of SETUP_ATTR (shards, pristine, labels)
SETUP_ATTR = "setup"             # canonical JSON of the physical set-up (shards, pristine)
LOW_SPACE_BYTES = 1 << 20        # below this many free bytes a failed write is a full disk


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
    if "crack_mask" in variables and not isinstance(dataset.attrs.get(SETUP_HASH_ATTR), str):
        dataset.close()
        raise DataError(f"{kind} file {path} has no global attribute {SETUP_HASH_ATTR!r} "
                        "(written before shards carried their set-up); regenerate it with "
                        "`python -m dlem simulate`")
    if "wavefield" in variables and dataset["wavefield"].dims != WAVEFIELD_DIMS:
        dims = dataset["wavefield"].dims
        dataset.close()
        raise DataError(f"{kind} file {path}: wavefield has dims {dims}, expected {WAVEFIELD_DIMS}")
    return dataset


def setup_of(attrs: dict, path: str | os.PathLike, kind: str) -> tuple[str, str | None]:
    """`(setup_hash, setup JSON or None)` from a file's global attributes (a labels file has
    the hash only); DataError naming the file when it has no hash (an older file)."""
    found = attrs.get(SETUP_HASH_ATTR)
    if not isinstance(found, str) or not found:
        again = ("`python -m model labels`" if kind == "labels"
                 else "`python -m dlem simulate`")
        raise DataError(f"{kind} file {path} has no global attribute {SETUP_HASH_ATTR!r} "
                        f"(written before files carried their set-up); regenerate it with {again}")
    setup = attrs.get(SETUP_ATTR)
    return found, setup if isinstance(setup, str) else None


def setup_difference(a: str | None, b: str | None) -> str:
    """The set-up sections (`plate`, `sources`, ...) whose values differ between two
    canonical set-up JSONs, as text ("plate, time"); "unknown sections" when either is
    missing or unreadable."""
    try:
        first, second = json.loads(a), json.loads(b)
    except (TypeError, ValueError):
        return "unknown sections"
    if not isinstance(first, dict) or not isinstance(second, dict):
        return "unknown sections"
    keys = sorted(k for k in set(first) | set(second) if first.get(k) != second.get(k))
    return ", ".join(keys) or "no section (same values, another hash)"


def _leaves(value, path: str = "") -> dict:
    """`{dotted path: leaf value}` of nested dicts and lists (list items by position)."""
    items = (value.items() if isinstance(value, dict)
             else enumerate(value) if isinstance(value, list) else None)
    if items is None:
        return {path: value}
    return {k: v for key, item in items
            for k, v in _leaves(item, f"{path}.{key}" if path else str(key)).items()}


def setup_changes(a: str | None, b: str | None) -> dict[str, list] | None:
    """Every leaf that differs between two canonical set-up JSONs, by dotted path
    (`plate.youngs_modulus`; list items by position, `sources.0.f0`) -> `[value in a, value
    in b]` (None where one lacks it); None when either JSON is missing or unreadable."""
    try:
        first, second = _leaves(json.loads(a)), _leaves(json.loads(b))
    except (TypeError, ValueError):
        return None
    return {k: [first.get(k), second.get(k)] for k in sorted(set(first) | set(second))
            if first.get(k) != second.get(k)}


def allowed_changes(expected_setup: str | None, setup: str | None,
                    allow: Sequence[str]) -> tuple[dict[str, list] | None, str]:
    """`(setup_changes(expected_setup, setup), "")` when a path of `allow` covers every
    difference (a path covers itself and every path below it: `plate` covers
    `plate.density`); else `(None, note)`, the note naming what `allow` does not cover ("" when
    nothing was allowed), for the refusal's message."""
    changes = setup_changes(expected_setup, setup)
    refused = (["unknown sections"] if changes is None else
               [k for k in changes if not any(k == a or k.startswith(a + ".") for a in allow)])
    if allow and not refused:
        return changes, ""
    note = (f"; --allow-setup-change {' '.join(allow)} does not cover {', '.join(refused)}"
            if allow else "")
    return None, note


def check_same_setup(files: Sequence[tuple[str, str, str | None]], what: str) -> tuple[str, str | None]:
    """Check that `files`, `(name, setup_hash, setup JSON or None)` each, share one set-up;
    return its `(hash, JSON)`. Otherwise a one-line DataError naming the odd one out (the
    first file whose hash differs from the most common one; the first file's on a tie) and
    the sections that differ. `what` names the group, e.g. "shards"."""
    if not files:
        raise DataError(f"no {what} given")
    counts: dict[str, int] = {}
    for _, digest, _ in files:
        counts[digest] = counts.get(digest, 0) + 1
    common = max(counts, key=counts.get)  # first seen wins a tie (dicts keep order)
    ref = next(f for f in files if f[1] == common)
    setup = next((f[2] for f in files if f[1] == common and f[2] is not None), None)
    for name, digest, own in files:
        if digest != common:
            raise DataError(f"{what} do not belong together: {name} has set-up {digest[:12]}, "
                            f"{ref[0]} (and {counts[common] - 1} other(s)) {common[:12]}; "
                            f"differing sections: {setup_difference(own, setup)}")
    return common, setup


def check_setup_matches(name: str, digest: str, setup: str | None, expected: str,
                        expected_setup: str | None, against: str,
                        allow: Sequence[str] = ()) -> dict[str, list]:
    """DataError when `name`'s set-up hash `digest` is not `expected` (that of `against`,
    e.g. "the shards"), naming the differing sections when both JSONs are known; unless
    every difference lies under a path of `allow` (`allowed_changes`): then the differences,
    `{path: [expected value, name's value]}` (`setup_changes`), are returned ({} when the
    set-ups are the same)."""
    if digest == expected:
        return {}
    changes, note = allowed_changes(expected_setup, setup, allow)
    if changes is not None:
        return changes
    raise DataError(f"{name} has set-up {digest[:12]}, {against} {expected[:12]}: they do "
                    f"not belong together (differing sections: "
                    f"{setup_difference(setup, expected_setup)}){note}")


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
