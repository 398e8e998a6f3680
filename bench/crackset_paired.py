"""Paired comparison of two crack-set evaluations of the same plates, read from `python -m
model evaluate` outputs (crack_predictions.nc): the candidate's detection scores minus the
baseline's, with a 95 % percentile-bootstrap interval over the plates.

    python bench/crackset_paired.py --baseline DIR --candidate DIR

Both folders must score the same samples. Each resample draws whole plates (the draws of
`model.metrics.bootstrap_ci`) and scores both models on it (`model.detection.
paired_differences`, each at its own detection threshold), so what the plates share cancels:
the interval says how well these plates pin the difference down, not how a retrained model
would vary. Prints one JSON line per metric: baseline, candidate, difference, interval.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from model.crackset_scoring import prediction_matches  # noqa: E402
from model.detection import paired_differences  # noqa: E402


def read(folder: Path):
    """`(samples, PlateMatches)` of one evaluation folder."""
    try:
        return prediction_matches(folder)
    except FileNotFoundError as error:
        raise SystemExit(str(error)) from None


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--baseline", required=True, type=Path, metavar="DIR")
    p.add_argument("--candidate", required=True, type=Path, metavar="DIR")
    args = p.parse_args(argv)
    samples, baseline = read(args.baseline)
    other, candidate = read(args.candidate)
    if not np.array_equal(samples, other):
        raise SystemExit("the two evaluations score different samples; pair only evaluations "
                         "of one subset")
    rows = paired_differences(baseline, candidate)
    for row in rows:
        print(json.dumps(row))
    return rows

if __name__ == "__main__":
    main()
