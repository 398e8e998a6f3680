"""Paired comparison of two crack-set evaluations of the same plates, read from `python -m
model evaluate` outputs (crack_predictions.nc): the candidate's detection scores minus the
baseline's, with a 95 % percentile-bootstrap interval over the plates.

    python bench/crackset_paired.py --baseline DIR --candidate DIR

Both folders must score the same samples. Each resample draws whole plates (the draws of
`model.metrics.bootstrap_ci`) and scores both models on it (`model.detection.
resampled_scores`, each at its own detection threshold), so what the plates share cancels:
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
from model.detection import PlateMatches, detection_scores, resampled_scores  # noqa: E402
from model.metrics import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED  # noqa: E402


def read(folder: Path):
    """`(samples, PlateMatches)` of one evaluation folder."""
    try:
        return prediction_matches(folder)
    except FileNotFoundError as error:
        raise SystemExit(str(error)) from None


def paired_differences(baseline: PlateMatches, candidate: PlateMatches) -> list[dict]:
    """One row per detection metric for two scorings of the same plates: `metric`,
    `baseline`, `candidate`, `difference` and its 95 % plate-bootstrap `interval95`."""
    n = len(baseline.score)
    draws = np.random.default_rng(BOOTSTRAP_SEED).integers(0, n, size=(BOOTSTRAP_RESAMPLES, n))
    base_draws, cand_draws = resampled_scores(baseline, draws), resampled_scores(candidate, draws)
    base_all, cand_all = detection_scores(baseline), detection_scores(candidate)
    rows = []
    for name in base_draws:
        diff = cand_draws[name] - base_draws[name]
        diff = diff[np.isfinite(diff)]
        interval = np.percentile(diff, [2.5, 97.5]).tolist() if diff.size else [None, None]
        both = (base_all[name], cand_all[name])
        rows.append({"metric": name, "baseline": both[0], "candidate": both[1],
                     "difference": both[1] - both[0] if None not in both else None,
                     "interval95": interval})
    return rows


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
