"""Accuracy-matched cost: the lattice against devito, both against the exact solution.

    pip install devito==4.8.23     # not a project dependency; it pins numpy <= 2.4.3
    python bench/devito_compare.py [--repeat 5] [--orders 8 4] [--far 4] > devito.json

(devito 4.8.23 runs with the numpy the project installs; reinstall that one after the pip
line above, e.g. ``pip install numpy==2.4.6``, if other packages need it.)

The problem: the default aluminium plate (E 70 GPa, nu 0.33, rho 2700 kg/m^3, 1 mm thick,
plane stress) under the default config's source, a vertical Ricker point force of 1 N at
f0 = 100 kHz (delay 1.5 / f0), in a square plate just large enough that no edge reflection
reaches a receiver (25 and 50 mm from the force along it, across it and at 45 degrees)
before the S wave has passed the farthest (``dlem.validation.point_force_domain``: 0.30 m
square, 46 us). Each solver's traces are compared with the exact unbounded-plate response
(``dlem.exact``) at the points and times it computes (``dlem.validation.trace_errors``).

Target accuracy: every receiver's (ux, uy) trace correlates >= 0.999 at zero lag with the
exact one, and P and S arrival speeds within 0.2 %. Every solver runs the same grid spacings,
coarse to fine in steps of about 10 %, until two in a row meet the target; the coarser of
the first such pair is the one compared.

* dlem: the triangular lattice with springs (``dlem.validation.compare_with_exact``),
  ``dt = 0.9`` x the Lanczos stability limit (the solver's default safety), float32.
* devito: the elastic velocity-stress formulation of devito's own elastic example
  (``examples/seismic/elastic``: staggered grid, v then tau, leapfrog in time), space order 8
  and 4, constant lam, mu, 1/rho, float32, ``dt = 0.95`` x the exact stability limit
  ``h / (c_p sqrt(2) sum|a_m|)`` (``a_m`` the staggered first-derivative weights; devito's
  ``critical_dt`` uses the same 0.95). The force enters v_y at a v_y node as
  ``dt F / (rho t h^2)`` before the stress update; u = dt * cumulative sum of v, each
  component recorded at its own staggered node (the array entry itself, no interpolation),
  the exact solution evaluated at those points.

Cost: the time loop of one simulation on one core, compilation excluded (numba's JIT and
devito's code generation + C compile are timed apart, on their first call), the minimum
of ``--repeat`` runs, the solvers interleaved; as CPU time of this process (both loops run
in it, on one thread: what the loop costs on a core of its own, even on a shared machine)
and as wall time (the same on an idle machine). One core: NUMBA_NUM_THREADS=1, devito with
DEVITO_LANGUAGE=C (no OpenMP), OMP_NUM_THREADS=1 (set here before the imports). Prints JSON:
every grid's accuracy and cost, the chosen grids, the ratio devito / dlem of their time
loops. Then all of it again with the receivers ``--far`` times farther (100 and 200 mm: a
0.71 m plate, 94 us; the search starts at each solver's first choice): phase errors grow
with the distance travelled, and the fixed cost of a call (devito's argument processing, a
few ms) weighs less. Progress on stderr.
"""

from __future__ import annotations

import os

os.environ.update(DEVITO_LANGUAGE="C", DEVITO_LOGGING="WARNING", OMP_NUM_THREADS="1",
                  NUMBA_NUM_THREADS="1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from dlem.exact import point_force_response  # noqa: E402
from dlem.lattice import lame_constants, wave_speeds  # noqa: E402
from dlem.source import ricker  # noqa: E402
from dlem.validation import compare_with_exact, point_force_domain, trace_errors  # noqa: E402

E, NU, RHO, THICKNESS, F0 = 70e9, 0.33, 2700.0, 1e-3, 100e3
R = (0.025, 0.05)
CORRELATION, SPEED = 0.999, 2e-3            # the target accuracy
# grid spacings [m] tried, coarse to fine, the same for every solver (steps of about 10 %)
SPACINGS = [1e-3 * h for h in (4.4, 4.0, 3.6, 3.3, 3.0, 2.7, 2.4, 2.2, 2.0, 1.8, 1.65, 1.5,
                               1.35, 1.2, 1.1, 1.0, 0.9, 0.8, 0.7, 0.6)]


def staggered_weights(space_order: int) -> np.ndarray:
    """Weights ``a_m`` of the staggered first derivative
    ``f'(0) ~ sum_m a_m (f((m - 1/2) h) - f((1/2 - m) h)) / h``, m = 1 .. space_order / 2
    (exact for polynomials of degree space_order)."""
    m = np.arange(1, space_order // 2 + 1)
    x = m - 0.5
    # odd moments: sum_m 2 a_m x_m^(2k+1) = delta_k0
    a = np.vstack([2 * x ** (2 * k + 1) for k in range(len(m))])
    return np.linalg.solve(a, np.eye(len(m))[0])


class DevitoElastic:
    """The point-force problem on devito's staggered velocity-stress scheme; one operator per
    grid, compiled when built."""

    def __init__(self, spacing: float, space_order: int, r=R):
        from devito import (Eq, Grid, Operator, PrecomputedSparseTimeFunction,
                            TensorTimeFunction, VectorTimeFunction, diag, div, grad, solve)
        c_p, c_s = wave_speeds(E, NU, RHO, "stress")
        lam, mu = lame_constants(E, NU, "stress")
        self.delay, t_end, size = point_force_domain(c_p, c_s, F0, r)
        n = int(np.ceil((size + 4 * spacing) / spacing)) + 1
        h = spacing
        self.dt = 0.95 * h / (c_p * np.sqrt(2) * np.abs(staggered_weights(space_order)).sum())
        self.nt = int(np.ceil(t_end / self.dt)) + 1
        self.points, self.space_order = n * n, space_order
        start, start_cpu = time.perf_counter(), cpu_with_children()
        grid = Grid(shape=(n, n), extent=((n - 1) * h, (n - 1) * h), dtype=np.float32)
        v = VectorTimeFunction(name="v", grid=grid, space_order=space_order, time_order=1)
        tau = TensorTimeFunction(name="tau", grid=grid, space_order=space_order, time_order=1)
        # Staggered: v_x[i, j] lies at ((i + 1/2) h, j h), v_y[i, j] at (i h, (j + 1/2) h).
        # Source and receivers address array entries (PrecomputedSparseTimeFunction, weight 1
        # on one entry): devito's coordinate-based injection can land a point given exactly at
        # a staggered node one entry off by rounding, and interpolating v_y averages it
        # to the cell's nodes first. The force acts at v_y[i0, i0].
        i0 = n // 2
        offsets = np.array([[0.5, 0.0], [0.0, 0.5]]) * h          # of v_x, v_y
        self.source = i0 * h + offsets[1]
        r, diag_r = np.asarray(r), np.asarray(r) / np.sqrt(2)
        nominal = self.source + np.column_stack(
            [np.concatenate([np.zeros(2), r, diag_r]), np.concatenate([r, np.zeros(2), diag_r])])
        index = [np.round((nominal - off) / h).astype(np.int32) for off in offsets]
        self.at = [k * h + off for k, off in zip(index, offsets)]  # (receiver, 2) [m] per component

        def entries(name, where):
            coeffs = np.zeros((len(where), 2, 2))
            coeffs[:, :, 0] = 1.0
            return PrecomputedSparseTimeFunction(name=name, grid=grid, npoint=len(where),
                                                 nt=self.nt, r=2, gridpoints=where,
                                                 interpolation_coeffs=coeffs)

        src = entries("src", np.array([[i0, i0]], np.int32))
        # the body force F / (t h^2) [N/m^3] of the node; h kept out of the code, so that one
        # compiled operator serves every grid
        src.data[:, 0] = ricker(np.arange(self.nt) * self.dt, F0, self.delay) / (
            RHO * THICKNESS * h * h)
        recs = [entries(name, index[k]) for k, name in enumerate(("recx", "recy"))]
        s = grid.stepping_dim.spacing
        eq_v = v.dt - (1 / RHO) * div(tau)
        e = grad(v.forward) + grad(v.forward).transpose(inner=False)
        eq_tau = tau.dt - lam * diag(div(v.forward)) - mu * e
        # the force enters v^(n+1/2) before tau^(n+1) is computed from it (injected after the
        # stress update, the wave would lag one step)
        self.op = Operator(
            [Eq(v.forward, solve(eq_v, v.forward))] + src.inject(field=v[1].forward, expr=src * s)
            + [Eq(tau.forward, solve(eq_tau, tau.forward))]
            + recs[0].interpolate(expr=v[0].indexify()) + recs[1].interpolate(expr=v[1].indexify()),
            name="PointForceElastic")
        self.op.cfunction                                    # generate and compile the C code
        self.compile_s = time.perf_counter() - start
        self.compile_cpu_s = cpu_with_children() - start_cpu
        self.fields, self.recs = (v, tau), recs

    def run(self) -> tuple[np.ndarray, float, float]:
        """(displacement (nt, receiver, 2) [m], wall and CPU time [s] of the time loop)."""
        for f in (*self.fields[0], *self.fields[1]):
            f.data[:] = 0
        for rec in self.recs:
            rec.data[:] = 0
        start, start_cpu = time.perf_counter(), time.process_time()
        self.op.apply(time_M=self.nt - 2, dt=np.float32(self.dt))
        wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
        # rec[n] = v[n] = v at t_(n - 1/2); u^n = u^(n-1) + dt v^(n - 1/2)
        u = self.dt * np.cumsum(np.stack([r.data for r in self.recs], axis=-1), axis=0)
        return u.astype(np.float64), wall, cpu

    def errors(self, u: np.ndarray) -> dict:
        c_p, c_s = wave_speeds(E, NU, RHO, "stress")
        lam, mu = lame_constants(E, NU, "stress")
        times = np.arange(self.nt) * self.dt
        exact = np.stack([point_force_response(*(self.at[k] - self.source).T, times, lam=lam,
                                               mu=mu, rho=RHO, thickness=THICKNESS, f0=F0,
                                               delay=self.delay)[:, :, k] for k in range(2)],
                         axis=-1)
        dist = np.hypot(*(self.at[1] - self.source).T)          # u_y's points give the speeds
        return trace_errors(u, exact, dist, self.dt, self.delay, F0, c_p, c_s)


def cpu_with_children() -> float:
    """CPU time [s] of this process and its finished children (devito's C compiler)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def passes(m: dict) -> bool:
    return bool(min(m["correlation"]) >= CORRELATION and abs(m["error_c_p"]) <= SPEED
                and abs(m["error_c_s"]) <= SPEED)


def summary(m: dict) -> dict:
    return {"min_correlation": min(m["correlation"]), "error_c_p": m["error_c_p"],
            "error_c_s": m["error_c_s"], "passes": passes(m)}


def dlem_run(spacing: float, r=R) -> dict:
    m = compare_with_exact("triangular", NU, spacing=spacing, f0=F0, r=r, E=E, rho=RHO,
                           dtype=np.float32)
    return {"solver": "dlem", "spacing_mm": 1e3 * m["spacing"], "nodes": m["nodes"],
            "steps": m["steps"], "dt_ns": 1e9 * m["dt"], "solve_s": m["solve_s"],
            "solve_cpu_s": m["solve_cpu_s"], **summary(m)}


def dlem_times(spacing: float, r=R) -> tuple[float, float]:
    m = dlem_run(spacing, r)
    return m["solve_s"], m["solve_cpu_s"]


def devito_run(model: DevitoElastic, spacing: float) -> dict:
    u, wall, cpu = model.run()
    return {"solver": f"devito-so{model.space_order}", "spacing_mm": 1e3 * spacing,
            "nodes": model.points, "steps": model.nt, "dt_ns": 1e9 * model.dt, "solve_s": wall,
            "solve_cpu_s": cpu, "compile_s": model.compile_s,
            "compile_cpu_s": model.compile_cpu_s, **summary(model.errors(u))}


def machine() -> dict:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines()
                  if line.startswith("Model name")), platform.processor())
    return {"cpu": model, "cores": os.cpu_count(), "load_average": os.getloadavg()}


def timed(chosen: dict, r, repeat: int, models: dict) -> dict:
    """Each chosen grid run ``repeat`` times with receivers at ``r`` [m], the solvers
    interleaved: its accuracy, the minimum wall and CPU time of its time loop, its node-steps
    per CPU second, and every solver's cost over dlem's."""
    runs = {name: [] for name in chosen}
    for _ in range(repeat):
        for name, row in chosen.items():
            h = row["spacing"]
            if name == "dlem":
                runs[name].append(dlem_run(h, r))
            else:
                runs[name].append(devito_run(models[name, h, r], h))   # built by ``search``
    out = {"receivers_m": list(r)}
    for name, rows in runs.items():
        cpu = min(m["solve_cpu_s"] for m in rows)
        out[name] = {**rows[0], "solve_s": min(m["solve_s"] for m in rows), "solve_cpu_s": cpu,
                     "runs_cpu_s": [m["solve_cpu_s"] for m in rows],
                     "node_steps_per_cpu_s": rows[0]["nodes"] * rows[0]["steps"] / cpu}
    if "dlem" in runs:
        out["cost_over_dlem"] = {
            name: {key: out[name][key] / out["dlem"][key] for key in ("solve_cpu_s", "solve_s")}
            for name in runs if name != "dlem"}
    return out


def search(names: list, r, start: dict, models: dict) -> tuple[list, dict]:
    """Run every solver on ``SPACINGS`` from ``start[name]`` on (coarse to fine, the solvers
    interleaved, one grid of each per round) with receivers at ``r`` [m], until two grids in
    a row meet the target. Returns every row and, per solver, the coarser of the first such
    pair (none if no pair did)."""
    rows = {name: [] for name in names}
    for h in SPACINGS:
        for name in names:
            if h > start[name] or sum(m["passes"] for m in rows[name][-2:]) == 2:
                continue
            if name == "dlem":
                rows[name].append(dlem_run(h, r))
            else:
                models[name, h, r] = DevitoElastic(h, int(name.split("so")[1]), r)
                rows[name].append(devito_run(models[name, h, r], h))
            row = rows[name][-1]
            row.update(spacing=h, receivers_m=list(r))
            print(f"{name:>11} r {r[-1]:.3f} m, h {1e3 * h:4.2f} mm: correlation "
                  f"{row['min_correlation']:.5f}, P {100 * row['error_c_p']:+.3f} %, S "
                  f"{100 * row['error_c_s']:+.3f} %, {row['solve_cpu_s']:.3f} s CPU",
                  file=sys.stderr, flush=True)
    chosen = {name: next((m for m, finer in zip(rows[name], rows[name][1:])
                          if m["passes"] and finer["passes"]), None) for name in names}
    return ([m for name in names for m in rows[name]],
            {name: m for name, m in chosen.items() if m is not None})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=5, help="timed runs of each chosen grid")
    p.add_argument("--orders", type=int, nargs="+", default=[8, 4], help="devito space orders")
    p.add_argument("--far", type=float, default=4.0,
                   help="then the same with the receivers this many times farther")
    args = p.parse_args()
    import devito

    out = {"machine_before": machine(), "devito": devito.__version__,
           "target": {"min_correlation": CORRELATION, "speed_error": SPEED}}
    first, second = dlem_run(SPACINGS[0]), dlem_run(SPACINGS[0])
    out["dlem_jit_s"] = first["solve_s"] - second["solve_s"]   # numba compiles on the first
    out["dlem_jit_cpu_s"] = first["solve_cpu_s"] - second["solve_cpu_s"]
    names = ["dlem"] + [f"devito-so{o}" for o in args.orders]
    models = {}                                    # (name, spacing, receivers) -> DevitoElastic
    out["grids"], chosen = search(names, R, dict.fromkeys(names, SPACINGS[0]), models)
    out["chosen"] = timed(chosen, R, args.repeat, models)
    # farther receivers need finer grids: search on from each solver's choice
    far = tuple(args.far * np.asarray(R))
    out["far_grids"], chosen = search(names, far, {n: m["spacing"] for n, m in chosen.items()},
                                      models)
    out["far"] = timed(chosen, far, args.repeat, models)
    out["machine_after"] = machine()
    print(json.dumps(out, indent=1, default=float))


if __name__ == "__main__":
    main()
