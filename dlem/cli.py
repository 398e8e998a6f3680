"""Command line: ``python -m dlem simulate|inspect|plot``."""

from __future__ import annotations

import argparse
import sys

from . import config as config_mod


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
    try:
        if args.command == "simulate":
            from .dataset import write_shard
            cfg = config_mod.load(args.config)
            start, stop = args.samples
            ds = write_shard(cfg, args.out, start, stop, args.workers, args.pristine,
                             progress=not args.quiet)
            print(f"wrote {args.out}: {ds.sizes['sample']} samples, {ds.attrs['source']}")
        elif args.command == "inspect":
            from .inspect import summary
            print(summary(args.shard))
        elif args.command == "plot":
            from .plot import plot_sample
            for path in plot_sample(args.shard, args.sample, args.traces, args.snapshots,
                                    args.times):
                print(f"wrote {path}")
    except (config_mod.ConfigError, ValueError, FileNotFoundError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
