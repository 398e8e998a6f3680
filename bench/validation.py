"""Validation table: the lattice against exact solutions.

    python bench/validation.py [--json] [--quick]

Point force (``dlem.validation.compare_with_exact``): a vertical Ricker point force
(f0 = 100 kHz) at the centre of a plate at the default config's spacing (100 mm / 95), just
large enough that no edge reflection reaches the receivers (25 and 50 mm away along the
force, across it and at 45 degrees) in the window; each lattice trace against the exact 2D
point-force response at the same node (``dlem.exact``): P and S speeds from the delays, and
the smallest zero-lag waveform correlation.

Rayleigh waves (``dlem.validation.measure_rayleigh_speed``): the speed of the surface wave a
vertical force at a free edge launches along it, against the root of the Rayleigh equation.
"""

from __future__ import annotations

import argparse
import json

from dlem.validation import compare_with_exact, measure_rayleigh_speed

POINT_CASES = [("triangular", 0.25, "waves", "springs"), ("triangular", 0.33, "waves", "springs"),
               ("triangular", 0.20, "waves", "springs"), ("random", 0.25, "waves", "springs"),
               ("triangular", 0.25, "energy", "springs"), ("triangular", 0.25, "waves", "cst"),
               ("triangular", 0.20, "waves", "cst"), ("random", 0.25, "waves", "cst")]
RAYLEIGH_CASES = [(nu, i) for nu in (0.20, 0.29, 1 / 3) for i in ("springs", "cst")]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--json", action="store_true")
    p.add_argument("--quick", action="store_true", help="only the Rayleigh table")
    args = p.parse_args()
    rows = []
    if not args.quick:
        print(f"{'lattice':>10} {'inter.':>7} {'nu':>5} {'calib.':>6} {'c_p':>6} {'err %':>6} "
              f"{'c_s':>6} {'err %':>6} {'min corr':>8}")
        for kind, nu, cal, inter in POINT_CASES:
            m = compare_with_exact(kind, nu, calibration=cal, interaction=inter)
            m["calibration"] = cal
            rows.append(m)
            print(f"{kind:>10} {inter:>7} {nu:5.2f} {cal:>6} {m['c_p']:6.0f} "
                  f"{100 * m['error_c_p']:+6.2f} {m['c_s']:6.0f} {100 * m['error_c_s']:+6.2f} "
                  f"{min(m['correlation']):8.5f}")
    print(f"{'nu':>6} {'interaction':>11} {'c_R':>7} {'measured':>8} {'err %':>6}")
    for nu, inter in RAYLEIGH_CASES:
        m = measure_rayleigh_speed(nu, interaction=inter)
        rows.append(m)
        print(f"{nu:6.3f} {inter:>11} {m['c_r']:7.1f} {m['measured_c_r']:8.1f} "
              f"{100 * m['error_c_r']:+6.2f}")
    if args.json:
        print(json.dumps(rows, default=float))


if __name__ == "__main__":
    main()
