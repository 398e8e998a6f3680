"""Wave-speed validation table: measured P and S speeds of the lattice vs the continuum.

    python bench/validation.py [--json]

Each row simulates a 0.4 m plate (401 nodes across, f0 = 100 kHz) with a vertical point force
at its centre and measures the speeds from receiver delays (dlem.validation). The tests
assert the same cases within 5 %.
"""

from __future__ import annotations

import argparse
import json

from dlem.validation import measure_wave_speeds

CASES = [("triangular", 0.25, "waves"), ("triangular", 0.33, "waves"), ("triangular", 0.20, "waves"),
         ("random", 0.25, "waves"), ("triangular", 0.25, "energy")]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    rows = []
    print(f"{'lattice':>10} {'nu':>5} {'calibration':>11} {'c_p':>7} {'meas.':>7} {'err %':>6} "
          f"{'c_s':>7} {'meas.':>7} {'err %':>6}")
    for kind, nu, cal in CASES:
        m = measure_wave_speeds(kind, nu, calibration=cal)
        m["calibration"] = cal
        rows.append(m)
        print(f"{kind:>10} {nu:5.2f} {cal:>11} {m['c_p']:7.0f} {m['measured_c_p']:7.0f} "
              f"{100 * m['error_c_p']:6.2f} {m['c_s']:7.0f} {m['measured_c_s']:7.0f} "
              f"{100 * m['error_c_s']:6.2f}")
    if args.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
