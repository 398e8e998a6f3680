"""Command line: `python -m crackpoint peel` (see `--help`): what needs both the solver and a
trained model. Bad input ends the command with a one-line error (exit status 2) naming it."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Sequence

from crackpoint.stopping import Terminated, raise_terminated

FORMATTER = argparse.ArgumentDefaultsHelpFormatter


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    from crackpoint.peeling import BOX_SOURCES, MODES
    from model.metrics import DEFAULT_SIZE_THRESHOLDS

    parser = argparse.ArgumentParser(prog="python -m crackpoint", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("peel", formatter_class=FORMATTER,
                       help="subtract the solver's field of a crack-set model's detections "
                            "and look again (crackpoint.peeling)",
                       description="Peel a crack-set evaluation: subtract the solver's field of "
                                   "the detected cracks from each plate's wavefield, run the "
                                   "network again, add what it finds away from the first "
                                   "detections, and score the result as `python -m model "
                                   "evaluate` does (docs/model.md, Peeling).")
    p.add_argument("--data", nargs="+", required=True, metavar="SHARD.nc",
                   help="simulation shards holding the evaluated plates")
    p.add_argument("--labels", nargs="+", required=True, metavar="LABELS.nc",
                   help="their label files (`python -m model labels`)")
    p.add_argument("--checkpoint", required=True, help="the crack-set checkpoint evaluated")
    p.add_argument("--evaluation", required=True, metavar="DIR",
                   help="its `python -m model evaluate` folder: the first pass")
    p.add_argument("--out-dir", required=True, metavar="DIR")
    p.add_argument("--subtract", choices=MODES, default="detected",
                   help="detected: the predicted end points; fitted: moved to fit the early "
                        "record")
    p.add_argument("--boxes", choices=BOX_SOURCES, default="ends",
                   help="each detection's box: made from its end points by the labels' rule "
                        "(ends), or the network's box head's (network)")
    p.add_argument("--separation", type=float, default=2.0,
                   help="label cells a second-pass detection's centre must lie from every "
                        "first-pass one's to be added")
    p.add_argument("--fit-us", type=_positive(float), default=50.0,
                   help="fitted and --check: microseconds of the record fitted")
    p.add_argument("--sweeps", type=_positive(int), default=2, help="fitted: rounds per step")
    p.add_argument("--check", action="store_true",
                   help="then the solver check: remove detections the record does not need, "
                        "add the cracks it still needs (crackpoint.completion); its gain "
                        "threshold chosen on the plates peeled, or taken with --from-metrics")
    p.add_argument("--size-thresholds", type=float, nargs="+",
                   default=list(DEFAULT_SIZE_THRESHOLDS), metavar="M",
                   help="crack-length thresholds [m] of the by-size table")
    p.add_argument("--from-metrics", metavar="METRICS.json",
                   help="the metrics.json of a peel of validation plates: its interval "
                        "rescaling (without it, chosen on the plates peeled: give validation "
                        "plates)")
    p.add_argument("--batch-size", type=_positive(int), default=16)
    p.add_argument("--workers", type=_positive(int), default=1,
                   help="solver processes")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, raise_terminated)  # cleanup runs as on Ctrl-C
    from crackpoint.peeling import peel
    from dlem.workers import WorkerDied
    from model.io import DataError, check_output_dir, describe_os_error

    try:
        check_output_dir(args.out_dir)
        chosen = None
        if args.from_metrics:
            try:
                with open(args.from_metrics) as handle:
                    chosen = json.load(handle)
            except json.JSONDecodeError as err:
                raise DataError(f"--from-metrics {args.from_metrics} is not JSON: {err}") from None
        result = peel(args.data, args.labels, args.checkpoint, args.evaluation, args.out_dir,
                      args.subtract, args.separation, args.fit_us, args.sweeps,
                      args.size_thresholds, args.batch_size, args.workers, args.progress,
                      args.boxes, chosen, args.check)
        detection = result["detection"]
        print(json.dumps({"samples": result["samples_scored"], **result["peeling"],
                          "count_accuracy_cracked": detection["count_accuracy_cracked"],
                          "AP50": detection["AP50"]}))
    except (DataError, ValueError, WorkerDied) as err:
        print(f"python -m crackpoint {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"python -m crackpoint {args.command}: error: {describe_os_error(err)}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        why = "terminated (SIGTERM)" if isinstance(err, Terminated) else "interrupted"
        print(f"python -m crackpoint {args.command}: {why}; unfinished output removed",
              file=sys.stderr)
        return 143 if isinstance(err, Terminated) else 130
    return 0
