"""How far is a multi-crack plate's scattered field from the sum of its cracks' fields alone?
Measured with the solver: how much the cracks interact, and how that compares with the weakest
crack's own signature (docs/model.md, "What limits the count"; the assumption of the crack
superposition augmentation measured there, commit 87bdcc6).

    python bench/superposition.py --config workflow/config/multicrack.yaml --samples 40

For every sample among the config's first `--samples` with two or more cracks, the solver
runs the plate with all its cracks, with each crack alone, and without cracks; the residual
`all - pristine - sum(alone - pristine)` is measured relative to the scattered field
`all - pristine` in time windows that start at 0 and end at `--ends` [µs] (the whole record
last). The residual is what the cracks do to each other (waves scattered by one and then by
another), which no sum of single-crack fields holds. Beside it, the scattered field of each
plate's weakest crack alone (whole record) over the residual's: below 1, that crack's own
signature is weaker than the interaction. Prints one JSON line: the windows' median and
90th percentile relative residual over the plates, and the median ratio by crack count.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import yaml
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dlem import config as config_mod  # noqa: E402
from dlem import dataset  # noqa: E402


def wavefield(setup, cracks) -> np.ndarray:
    """Sensor wavefield (time, sensor, 2) [m], float64, of the set-up with `cracks` cut."""
    return dataset.sensor_records(setup, cracks).astype(np.float64)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="workflow/config/multicrack.yaml",
                   help="workflow config (its simulation section) or simulation config")
    p.add_argument("--samples", type=int, default=40, help="first sample indices to look at")
    p.add_argument("--ends", type=float, nargs="+", default=[30.0, 45.0, 60.0],
                   help="window ends [µs]; the whole record is added")
    args = p.parse_args(argv)
    raw = yaml.safe_load(Path(args.config).read_text())
    cfg = config_mod.validate(raw.get("simulation", raw))
    setup = dataset.setup(cfg)
    times = np.asarray(setup.times)
    ends = [e * 1e-6 for e in args.ends] + [float(times[-1]) + 1e-12]
    pristine = wavefield(setup, [])
    rows, plates = [], []
    for index in tqdm(range(args.samples), desc="plates", file=sys.stderr):
        cracks = [c for _, c in dataset.scenario(cfg, index)[1]]
        if len(cracks) < 2:
            continue
        scattered = wavefield(setup, cracks) - pristine
        alone = [wavefield(setup, [c]) - pristine for c in cracks]
        residual = scattered - sum(alone)
        rows.append([np.linalg.norm(residual[times < end])
                     / np.linalg.norm(scattered[times < end]) for end in ends])
        weakest = min(np.linalg.norm(a) for a in alone)
        plates.append({"sample": index, "cracks": len(cracks),
                       "lengths_mm": [round(c.length * 1e3, 1) for c in cracks],
                       "weakest_over_residual": round(float(weakest / np.linalg.norm(residual)), 3)})
    rows = np.asarray(rows)
    out = {"config": args.config, "plates": len(plates),
           "window_end_us": [round(e * 1e6, 3) for e in ends],
           "median_relative_residual": np.round(np.median(rows, axis=0), 4).tolist(),
           "p90_relative_residual": np.round(np.quantile(rows, 0.9, axis=0), 4).tolist(),
           "weakest_over_residual_median": {
               str(n): float(np.median([q["weakest_over_residual"] for q in plates
                                        if q["cracks"] == n]))
               for n in sorted({q["cracks"] for q in plates})}}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
