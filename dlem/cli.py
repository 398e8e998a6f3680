"""Command line: ``python -m dlem simulate|inspect|plot``.

Every expected failure ends in one line on stderr naming the problem and the path, exit
status 2: a bad config, an unreadable, unfinished or non-finite shard, an OS fault (no
permission, a folder where a file goes, a full disk, a read-only file system). SIGTERM is
turned into ``Terminated`` (``crackpoint.stopping``) so that the temporary output is
removed as on Ctrl-C (exit status 143, or 130 on Ctrl-C).
"""

from __future__ import annotations

import argparse
import signal
import sys

from crackpoint.stopping import Terminated, raise_terminated

from . import config as config_mod
from .compression import COMPRESSIONS, DEFAULT_COMPRESSION
from .files import describe_os_error
from .workers import WorkerDied


def _range(text: str) -> tuple[int, int]:
    try:
        start, stop = (int(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--samples must be START:STOP, got {text!r}") from None
    if start < 0 or stop <= start:
        raise argparse.ArgumentTypeError(f"--samples {text}: need 0 <= START < STOP")
    return start, stop


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dlem", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("simulate", help="simulate samples and write one NetCDF shard")
    s.add_argument("--config", required=True, help="simulation config (YAML or JSON)")
    s.add_argument("--out", required=True, help="shard to write (written atomically)")
    s.add_argument("--samples", type=_range, default=(0, 1),
                   help="global sample indices START:STOP (STOP excluded); default 0:1")
    s.add_argument("--workers", type=int, default=1, help="worker processes (same bits for any)")
    s.add_argument("--pristine", action="store_true",
                   help="write the crack-free reference (one sample, ignores --samples)")
    s.add_argument("--compression", choices=list(COMPRESSIONS), default=DEFAULT_COMPRESSION,
                   help="lossless HDF5 filters of the data variables (dlem/compression.py): "
                        "zlib level, with or without the shuffle filter, or none; default "
                        "%(default)s")
    s.add_argument("--quiet", action="store_true", help="no progress bar")

    i = sub.add_parser("inspect", help="print a summary of a shard")
    i.add_argument("shard")

    g = sub.add_parser("plot", help="sensor traces, crack mask and wavefield snapshots of a sample")
    g.add_argument("shard")
    g.add_argument("--sample", type=int, default=0, help="position of the sample in the shard")
    g.add_argument("--traces", required=True, help="PNG of the traces and the crack mask")
    g.add_argument("--snapshots", help="PNG of full-lattice |u| at a few times (re-simulates)")
    g.add_argument("--times", type=float, nargs="+",
                   help="snapshot times [s]; default: four evenly spaced")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    signal.signal(signal.SIGTERM, raise_terminated)
    try:
        if args.command == "simulate":
            from .dataset import write_shard
            cfg = config_mod.load(args.config)
            start, stop = args.samples
            ds = write_shard(cfg, args.out, start, stop, args.workers, args.pristine,
                             progress=not args.quiet, compression=args.compression)
            print(f"wrote {args.out}: {ds.sizes['sample']} samples, {ds.attrs['source']}")
        elif args.command == "inspect":
            from .inspect import summary
            print(summary(args.shard))
        elif args.command == "plot":
            from .plot import plot_sample
            for path in plot_sample(args.shard, args.sample, args.traces, args.snapshots,
                                    args.times):
                print(f"wrote {path}")
    except OSError as err:
        print(f"python -m dlem {args.command}: error: {describe_os_error(err)}", file=sys.stderr)
        return 2
    except (config_mod.ConfigError, ValueError, WorkerDied) as err:
        print(f"python -m dlem {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # cleaned up: no redelivery
        why = "terminated (SIGTERM)" if isinstance(err, Terminated) else "interrupted"
        print(f"python -m dlem {args.command}: {why}; unfinished output removed", file=sys.stderr)
        return 143 if isinstance(err, Terminated) else 130
    return 0
