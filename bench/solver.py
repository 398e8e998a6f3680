"""Solver benchmark: node-steps per second of the kernels, and one default-config sample.

    python bench/solver.py [--json] [--nodes-x 128] [--steps 2000] [--config workflow/config/default.yaml]

Prints one line per measurement and, with ``--json``, one JSON object as the last line:
``node_steps_per_s`` (structured triangular kernel, float32, one thread), ``naive_node_steps_per_s``
(the per-element loop over an element list, scatter to both ends, same lattice, same run),
``csr_node_steps_per_s`` (the general CSR-gather kernel used for random lattices),
``cst_node_steps_per_s`` and ``cst_csr_node_steps_per_s`` (``lattice.interaction: cst``: the
structured two-pass constant-strain-triangle kernel and the CSR gather, same lattice, same run),
``speedup_vs_naive``, ``sample_seconds`` (one sample of the config, after the per-config set-up,
which is reported as ``setup_seconds``), ``nodes``, ``steps``, and the roofline inputs:
``flop_per_node_step`` (counted from the kernel source), ``gflops`` achieved,
``bytes_per_node_step`` (arrays streamed per node and step) and ``working_set_mib``.
Each timing is the best of ``--repeat`` runs after a warm-up (JIT compilation excluded).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import yaml  # noqa: E402

from dlem import config as config_mod  # noqa: E402
from dlem import dataset  # noqa: E402
from dlem.lattice import build_lattice, stable_dt  # noqa: E402
from dlem.solver import Simulation  # noqa: E402

# Floating-point operations per node and step in advance_triangular: per direction pair
# 4 differences, 4 products by the scales + 2 sums (ax, ay), 4 products + 2 sums for B @ a and
# 2 accumulations = 18; three pairs = 54 (the first pair skips 2 accumulations: 52); the update
# a1 v + a2 f (6) and u + dt v (4): 62.
FLOP_PER_NODE_STEP = 62
# float32 words read or written per node and step that are not reused from the row above:
# u (2 read, 2 written), v (2 + 2), three scales, two coefficients.
WORDS_PER_NODE_STEP = 13


def plate_cfg(nodes_x: int, interaction: str = "springs") -> tuple[dict, dict]:
    plate = dict(width=0.1, height=0.1, thickness=1e-3, youngs_modulus=7e10, poisson_ratio=0.33,
                 density=2700.0, plane="stress")
    return plate, dict(nodes_x=nodes_x, kind="triangular", interaction=interaction)


def rate(sim: Simulation, steps: int, repeat: int) -> float:
    """Best node-steps per second over ``repeat`` runs of ``steps`` steps."""
    sim.advance(2)                               # compile / warm caches
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        sim.advance(steps)
        best = min(best, time.perf_counter() - t0)
    return sim.lattice.n_nodes * steps / best


def kernel_rates(nodes_x: int, steps: int, repeat: int, cst: bool = True) -> dict:
    out = {}
    cases = [("springs", "triangular", "triangular", steps),
             ("springs", "bondlist", "bondlist", max(steps // 4, 10)),
             ("springs", "csr", "csr", max(steps // 4, 10))]
    if cst:
        cases += [("cst", "triangular", "cst", steps), ("cst", "csr", "cst_csr", max(steps // 4, 10))]
    for interaction in dict.fromkeys(c[0] for c in cases):
        lat = build_lattice(*plate_cfg(nodes_x, interaction))
        dt = 0.9 * stable_dt(lat)
        rng = np.random.default_rng(0)
        u0 = rng.standard_normal((lat.n_nodes, 2)) * 1e-9
        out.update({"nodes": lat.n_nodes, "steps": steps, "grid": list(lat.grid_shape)})
        for _, kernel, name, n in (c for c in cases if c[0] == interaction):
            sim = Simulation(lat, np.zeros(len(lat.bonds), bool), np.zeros(lat.n_nodes), dt,
                             np.float32, kernel=kernel)
            sim.set_state(u0, np.zeros_like(u0))
            out[name] = rate(sim, n, repeat)
    return out


def sample_time(config_path: Path, repeat: int) -> dict:
    cfg = yaml.load(config_path.read_text(), Loader=config_mod._Loader)
    cfg = config_mod.validate(cfg.get("simulation", cfg))
    t0 = time.perf_counter()
    st = dataset.setup(cfg)
    setup_s = time.perf_counter() - t0
    dataset.simulate_sample(cfg, 0)              # compile
    best = min(_timed(lambda: dataset.simulate_sample(cfg, i)) for i in range(1, repeat + 1))
    return {"sample_seconds": best, "setup_seconds": setup_s, "sample_nodes": st.lattice.n_nodes,
            "sample_steps": st.n_steps, "sample_dt": st.dt}


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="print the JSON summary as the last line")
    p.add_argument("--nodes-x", type=int, default=128, help="lattice nodes along x (default 128)")
    p.add_argument("--steps", type=int, default=2000, help="time steps per timing (default 2000)")
    p.add_argument("--repeat", type=int, default=3, help="timings per measurement (best kept)")
    p.add_argument("--config", type=Path,
                   default=Path(__file__).parents[1] / "workflow/config/default.yaml",
                   help="config whose sample is timed (workflow config or simulation config)")
    p.add_argument("--scaling", action="store_true",
                   help="also time the structured kernel from 64 to 1024 nodes_x (cache effects)")
    args = p.parse_args()

    k = kernel_rates(args.nodes_x, args.steps, args.repeat)
    summary = {
        "node_steps_per_s": k["triangular"],
        "naive_node_steps_per_s": k["bondlist"],
        "csr_node_steps_per_s": k["csr"],
        "cst_node_steps_per_s": k["cst"],
        "cst_csr_node_steps_per_s": k["cst_csr"],
        "speedup_vs_naive": k["triangular"] / k["bondlist"],
        "nodes": k["nodes"], "steps": k["steps"], "grid": k["grid"],
        "flop_per_node_step": FLOP_PER_NODE_STEP,
        "gflops": k["triangular"] * FLOP_PER_NODE_STEP / 1e9,
        "bytes_per_node_step": 4 * WORDS_PER_NODE_STEP,
        "working_set_mib": k["nodes"] * 4 * 9 * 1.0 / 2**20 * (k["grid"][1] + 2) / k["grid"][1],
        "machine": f"{platform.machine()} {platform.processor() or ''} ({os.cpu_count()} cpus), one thread",
    }
    print(f"lattice {k['grid'][0]} x {k['grid'][1]} ({k['nodes']} nodes), {k['steps']} steps, float32")
    print(f"  structured triangular kernel: {k['triangular']:.3e} node-steps/s "
          f"({summary['gflops']:.1f} GFLOP/s at {FLOP_PER_NODE_STEP} flop/node-step)")
    print(f"  naive per-element loop:       {k['bondlist']:.3e} node-steps/s "
          f"(structured is {summary['speedup_vs_naive']:.1f}x faster)")
    print(f"  CSR gather (random lattice):  {k['csr']:.3e} node-steps/s")
    print(f"  cst structured (two-pass):    {k['cst']:.3e} node-steps/s "
          f"({k['cst'] / k['triangular']:.2f}x the springs' stencil)")
    print(f"  cst CSR gather:               {k['cst_csr']:.3e} node-steps/s")
    summary.update(sample_time(args.config, args.repeat))
    print(f"one sample of {args.config}: {summary['sample_seconds']:.3f} s "
          f"({summary['sample_nodes']} nodes x {summary['sample_steps']} steps; set-up "
          f"{summary['setup_seconds']:.2f} s once per config)")
    if args.scaling:
        summary["scaling"] = {}
        for nx in (64, 128, 256, 512, 1024):
            r = kernel_rates(nx, max(200, args.steps * 128**2 // nx**2), 2, cst=False)
            mib = r["nodes"] * 36 / 2**20
            summary["scaling"][nx] = r["triangular"]
            print(f"  nodes_x {nx:5d}: {r['nodes']:8d} nodes, working set {mib:7.1f} MiB: "
                  f"{r['triangular']:.3e} node-steps/s")
    if args.json:
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
