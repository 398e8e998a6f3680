"""Writing output files safely: atomic replacement, stale temporaries, faults named.

A file is written as ``.NAME.tmp-PID`` beside its destination and renamed onto it only when
complete, so the destination is always whole. An error or an interruption (Ctrl-C, or
SIGTERM once ``python -m dlem`` has turned it into ``Terminated``) removes the temporary
file; a SIGKILL cannot, and the next write to the same destination removes the temporaries
whose process is gone. A shard also carries the global attribute ``complete = 1``, set after
its last sample (docs/data-format.md), so even a leftover temporary file opened by hand is
recognisably unfinished.

Write faults surface as an ``OSError`` whose ``filename`` is the destination (not the
temporary name) and whose ``strerror`` is the cause: netCDF-C reports a full disk as
"NetCDF: HDF error", so when the destination's file system has almost no space left the
cause says so.
"""

from __future__ import annotations

import errno
import glob
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

COMPLETE_ATTR = "complete"       # global attribute, 1 once every sample is written
LOW_SPACE_BYTES = 1 << 20        # below this many free bytes a failed write is a full disk


def temporary_path(path: Path) -> Path:
    """``.NAME.tmp-PID`` beside ``path``, for this process."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:         # exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Remove the ``.NAME.tmp-PID`` files beside ``path`` whose process no longer runs (a
    writer killed by SIGKILL); return them. A live writer's file is left alone."""
    stale = []
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.tmp-*"):
        pid = tmp.name.rsplit("-", 1)[1]
        if pid.isdigit() and not pid_alive(int(pid)):
            tmp.unlink(missing_ok=True)
            stale.append(tmp)
    return stale


def check_destination(path: Path) -> None:
    """Refuse, before any work, a destination that is a folder or lies below a file."""
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory, not a file", str(path))
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"{parent} is a file, not a directory", str(path))


def free_bytes(folder: Path) -> int | None:
    """Free bytes on the file system of ``folder`` (None when it cannot be asked)."""
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def is_write_fault(err: BaseException) -> bool:
    """An OSError, or netCDF-C's RuntimeError ("NetCDF: HDF error" on a full disk)."""
    return isinstance(err, OSError) or (isinstance(err, RuntimeError)
                                        and str(err).startswith("NetCDF"))


def read_only(folder: Path) -> bool:
    """Whether ``folder`` is on a file system mounted read-only."""
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def first_line(message: str) -> str:
    """The first line of a library's message, cut before a parenthesis it leaves open (HDF5
    via h5py: "Can't write unprocessed chunk data (file write failed: time = <ctime>\n...")."""
    line = (message.splitlines() or [""])[0]
    return line[:line.index(" (")] if line.count("(") > line.count(")") else line


def write_fault(err: Exception, path: Path) -> OSError:
    """The OSError to report when writing ``path`` failed with ``err``: ``filename`` is
    ``path``, ``strerror`` the cause (a full disk named as such)."""
    code = err.errno if isinstance(err, OSError) and err.errno and err.errno > 0 else errno.EIO
    cause = first_line(err.strerror if isinstance(err, OSError) and err.strerror else str(err))
    free = free_bytes(path.parent)
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
    """One line naming the path(s) and the cause of ``err``."""
    if err.filename is not None and err.strerror:
        where = str(err.filename) + (f" -> {err.filename2}" if err.filename2 else "")
        return f"{where}: {err.strerror}"
    return str(err)


@contextmanager
def atomic_file(path: str | Path):
    """Yield a temporary path beside ``path``, renamed to it on success and removed on any
    error or interruption: a file at ``path`` is always complete. Stale temporaries of
    ``path`` are removed first; a write fault is raised as ``write_fault``'s OSError."""
    path = Path(path)
    check_destination(path)
    tmp = temporary_path(path)
    try:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            remove_stale_temporaries(path)
            yield tmp
            os.replace(tmp, path)
        except Exception as err:
            if is_write_fault(err):
                raise write_fault(err, path) from err
            raise
    finally:
        if tmp.exists():  # (unlinking a missing file on a read-only file system fails)
            tmp.unlink()
