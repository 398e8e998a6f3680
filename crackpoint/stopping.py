"""SIGTERM as an exception: a stopped run (``scancel``, a cluster time limit) cleans up as on
Ctrl-C, its ``finally`` blocks removing the temporary output.

``raise_terminated`` is the SIGTERM handler of both command lines. It raises ``Terminated``
(a ``KeyboardInterrupt``) in the main thread, but never inside the ``UNINTERRUPTIBLE``
libraries: an exception raised there can leave a lock held that their own clean-up then
waits for forever (xarray's CombinedLock takes its locks one by one; a ``dlem simulate``
stopped while writing a shard's header hung so). There it is raised in the caller of the
outermost of their frames, as that returns.
"""

from __future__ import annotations

import _thread
import importlib.util
import os
import sys
import threading
import time
from functools import partial

REDELIVER_S = 2.0   # SIGTERM is raised again after this long if the process still runs
_redelivering = threading.Event()


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread (see `raise_terminated`) so that cleanup runs."""


def _package_dirs(*names: str) -> tuple[str, ...]:
    """The folders of the installed packages ``names`` (without importing them)."""
    specs = (importlib.util.find_spec(name) for name in names)
    return tuple(os.path.dirname(spec.origin) + os.sep for spec in specs if spec and spec.origin)


UNINTERRUPTIBLE = _package_dirs("xarray", "netCDF4", "h5py")


def raise_terminated(signum, frame) -> None:
    """SIGTERM handler: raise ``Terminated`` now, or as the outermost frame of the
    ``UNINTERRUPTIBLE`` libraries returns. A library with a bare ``except:`` on the way
    (netCDF4's indexing helpers) can swallow it, so a daemon thread delivers the signal
    again every ``REDELIVER_S`` seconds until the process has ended."""
    if not _redelivering.is_set():
        _redelivering.set()
        threading.Thread(target=_redeliver, args=(signum,), daemon=True).start()
    inside = None
    while frame is not None:
        if frame.f_code.co_filename.startswith(UNINTERRUPTIBLE):
            inside = frame
        frame = frame.f_back
    sys.setprofile(None if inside is None else partial(_raise_on_return, inside))
    if inside is None:
        raise Terminated


def _raise_on_return(library_frame, frame, event: str, arg) -> None:
    """Profile hook of the main thread: raise ``Terminated`` as ``library_frame`` returns
    (the hook's exception replaces the frame's return; the interpreter removes the hook)."""
    if event == "return" and frame is library_frame:
        raise Terminated


def _redeliver(signum: int) -> None:
    while True:
        time.sleep(REDELIVER_S)
        _thread.interrupt_main(signum)  # runs the handler again; nothing under SIG_DFL
