"""Scaling benchmark: simulation workers, SLURM overhead per job, training memory at scale.

    python bench/scale.py [--json] [--only sim,size,slurm,rss] [--compressions a,b]
                          [--slurm-up] [--rss-budget-mib 1024]

Prints one line per measurement and, with ``--json``, one JSON object as the last line.
How each figure is measured:

- ``sim_compression``: for each ``--compressions`` choice C (default: every name of
  dlem/compression.py), ``{"mb_per_sample", "samples_per_s_1", "samples_per_s_2",
  "speedup", "cores_used_1", "cores_used_2", "write_s"}``. The rates are N over the wall
  time of ``python -m dlem simulate --samples 0:N --workers W --compression C --quiet`` on
  the ``simulation:`` section of workflow/config/default.yaml (N = ``--sim-samples``, by
  default its ``dataset.samples``), after one untimed 1-sample run that fills numba's
  on-disk cache; best of ``--repeat`` runs, every (C, W = 1, 2) interleaved within a repeat. The wall time
  includes the process start and the per-config set-up (``sim_startup_s``: the wall time of
  a 1-sample run). ``mb_per_sample`` is the shard's size on disk over N (1e6 bytes).
  ``cores_used_W`` is the CPU time of the run (workers included) over its wall time: near W
  when the W workers each had a core, lower when other work on the machine took them;
  ``load_avg`` says how busy it was. ``write_s`` is the CPU cost of assembling and
  compressing the N samples' shard with C in one process (``to_dataset`` + ``write_atomic``);
  ``dlem simulate`` itself has each worker compress its own wavefields
  (``dlem.compression.encode_chunk``) and stores the bytes as they arrive.
  ``sim_range_s_W`` and ``sim_range_speedup`` time the simulation alone
  (``dlem.dataset.simulate_range``, in one fresh process), whatever the compression.
- ``size_mb_per_sample`` (``--only size``, no timing, so it holds on a busy machine): the
  same N samples simulated once and written with each choice (``write_atomic``), MB on disk
  per sample.
- ``slurm_overhead_s_per_job``: a DAG of ``--slurm-jobs`` K trivial jobs (`echo > file`) run
  by snakemake locally (``--cores 2``) and through ``--profile workflow/profiles/slurm
  --profile workflow/profiles/slurm-local`` on the throwaway cluster of
  workflow/scripts/slurm_local.py; (slurm - local wall time) / K. Needs that cluster up
  (``--slurm-up`` brings it up and down); otherwise null with the reason.
- ``train_peak_rss_mib``: peak resident memory (``os.wait4`` rusage of the process) of
  ``python -m model train --epochs 1`` over simulated shards whose training subset holds
  ``--rss-factor`` x ``--rss-budget-mib`` of float32 wavefields (2000 x 81 x 2 x 4 B per sample).
  The data are real solver output on a 24-node-wide lattice (the wavefield's size does not
  depend on the lattice), ``--shard-size`` samples per shard, split 0.9/0.05/0.05; the network
  is MicroCrackPointNet shrunk by ``--arch-kwargs`` so the epoch is dominated by reading, not
  by convolutions. ``train_peak_rss_mib_chunk_cache`` repeats the epoch in-process after
  ``netCDF4.set_chunk_cache(--chunk-cache-mib)``: netCDF-C keeps a chunk cache (64 MiB by
  default) per variable per open file, and the training Dataset keeps every shard open.
  ``train_peak_rss_mib_consolidated`` runs the same epoch (as shipped) on the one file that
  workflow/scripts/consolidate.py writes from those shards (``consolidate_s`` to write it).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the checkout's dlem, as `python -m dlem` from the root
from dlem.compression import COMPRESSIONS  # noqa: E402
DEFAULT_CONFIG = yaml.safe_load((ROOT / "workflow" / "config" / "default.yaml").read_text())
SLURM_LOCAL = ROOT / "workflow" / "scripts" / "slurm_local.py"
PROFILES = ["--profile", str(ROOT / "workflow" / "profiles" / "slurm"),
            "--profile", str(ROOT / "workflow" / "profiles" / "slurm-local")]
SAMPLE_BYTES = 2000 * 81 * 2 * 4   # one float32 wavefield (time, sensor, component)
MIB = 1 << 20
SMALL_NET = {"input_pool": 50, "filters": [4, 4], "time_conv_channels": 4,
             "grid_conv_channels": [4, 4], "dense_units": [4], "attention": "none"}
# The parts of one `dlem simulate` run, timed in a fresh process: simulate_range with 1 and 2
# workers (after a 2-sample warm-up), then to_dataset + write_atomic with each compression
# (serial, in the parent).
SIM_PARTS = """\
import json, sys, time
import numpy as np
from dlem import config, dataset
cfg, n, out = config.load(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
dataset.simulate_range(cfg, 0, 2, 1, progress=False)
seconds = {}
for w in (1, 2):
    tic = time.perf_counter()
    samples = dataset.simulate_range(cfg, 0, n, w, progress=False)
    seconds[f"sim_range_s_{w}"] = round(time.perf_counter() - tic, 2)
ds = dataset.to_dataset(cfg, samples, np.arange(n))
seconds["write_s"] = {}
for name in sys.argv[4:]:
    tic = time.perf_counter()
    dataset.write_atomic(ds, out, name)
    seconds["write_s"][name] = round(time.perf_counter() - tic, 2)
print(json.dumps(seconds))
"""
# Shard size per compression, no timing: N samples simulated once, written with each choice.
SIZES = """\
import json, os, sys
import numpy as np
from dlem import config, dataset
cfg, n, out = config.load(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ds = dataset.to_dataset(cfg, dataset.simulate_range(cfg, 0, n, 1, progress=False), np.arange(n))
sizes = {}
for name in sys.argv[4:]:
    dataset.write_atomic(ds, out, name)
    sizes[name] = round(os.path.getsize(out) / n / 1e6, 4)
print(json.dumps(sizes))
"""
TRIVIAL_SNAKEFILE = """\
rule all:
    input: expand("out/{{i}}.txt", i=range({jobs}))

rule trivial:
    output: "out/{{i}}.txt"
    threads: 1
    resources: mem_mb=100, runtime=5
    shell: "echo {{wildcards.i}} > {{output}}"
"""


def load_avg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def timed(cmd: list, env: dict | None = None, cwd: Path | None = None,
          cpu: dict | None = None) -> tuple[float, int]:
    """(wall seconds, peak RSS in MiB) of one subprocess; raises with its output on failure.
    With `cpu`, its CPU seconds (user + system, its waited-for children included) go to
    `cpu["s"]`."""
    tic = time.perf_counter()
    proc = subprocess.Popen([str(c) for c in cmd], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - tic
    if cpu is not None:
        cpu["s"] = usage.ru_utime + usage.ru_stime
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{out[-3000:]}")
    return seconds, usage.ru_maxrss // 1024  # ru_maxrss is in KiB on Linux


def simulation_config(path: Path, nodes_x: int | None = None) -> Path:
    simulation = copy.deepcopy(DEFAULT_CONFIG["simulation"])
    if nodes_x is not None:
        simulation["lattice"]["nodes_x"] = nodes_x
    path.write_text(yaml.safe_dump(simulation, sort_keys=False))
    return path


# ---------------------------------------------------------------- simulation workers
def bench_simulation(work: Path, samples: int, repeat: int, compressions: list[str]) -> dict:
    config = simulation_config(work / "simulation.yaml")
    out = work / "sim.nc"

    def simulate(n: int, workers: int, compression: str) -> tuple[float, float, float]:
        """(wall s, CPU s, MB per sample) of one `dlem simulate` run."""
        cpu = {}
        wall = timed([sys.executable, "-m", "dlem", "simulate", "--config", config, "--out", out,
                      "--samples", f"0:{n}", "--workers", workers, "--compression", compression,
                      "--quiet"], cpu=cpu)[0]
        return wall, cpu["s"], out.stat().st_size / n / 1e6

    simulate(1, 1, compressions[0])  # numba's on-disk cache
    startup = simulate(1, 1, compressions[0])[0]
    load_before = load_avg()
    best = {(c, w): (float("inf"), 0.0, 0.0) for c in compressions for w in (1, 2)}
    for _ in range(repeat):
        for key in best:
            best[key] = min(best[key], simulate(samples, key[1], key[0]))
    out.unlink(missing_ok=True)
    parts = json.loads(subprocess.run([sys.executable, "-c", SIM_PARTS, str(config), str(samples),
                                       str(work / "parts.nc"), *compressions], check=True,
                                      capture_output=True, text=True).stdout.splitlines()[-1])
    per_choice = {}
    for c in compressions:
        (s1, cpu1, mb), (s2, cpu2, _) = best[c, 1], best[c, 2]
        # CPU seconds per wall second: 2.0 means both workers had a core of their own all along
        per_choice[c] = {"mb_per_sample": round(mb, 4), "samples_per_s_1": round(samples / s1, 2),
                         "samples_per_s_2": round(samples / s2, 2), "speedup": round(s1 / s2, 3),
                         "cores_used_1": round(cpu1 / s1, 2), "cores_used_2": round(cpu2 / s2, 2),
                         "write_s": parts["write_s"][c]}
        print(f"simulate {samples} samples (default config), --compression {c}: "
              f"{mb:.3f} MB/sample; 1 worker {samples / s1:.1f} samples/s "
              f"({cpu1 / s1:.2f} cores busy), 2 workers {samples / s2:.1f} samples/s "
              f"({cpu2 / s2:.2f} cores busy), speedup {s1 / s2:.2f}x; writing the shard in one "
              f"process {parts['write_s'][c]:.1f} s")
    range_speedup = round(parts["sim_range_s_1"] / parts["sim_range_s_2"], 3)
    print(f"  simulating alone (dlem.dataset.simulate_range, in one process): 1 worker "
          f"{parts['sim_range_s_1']:.1f} s, 2 workers {parts['sim_range_s_2']:.1f} s "
          f"({range_speedup:.2f}x); start-up {startup:.1f} s; load avg {load_before}")
    return {"sim_samples": samples, "sim_compression": per_choice,
            "sim_startup_s": round(startup, 2), "sim_range_s_1": parts["sim_range_s_1"],
            "sim_range_s_2": parts["sim_range_s_2"], "sim_range_speedup": range_speedup,
            "load_avg": [load_before, load_avg()]}


def bench_sizes(work: Path, samples: int, compressions: list[str]) -> dict:
    config = simulation_config(work / "simulation.yaml")
    sizes = json.loads(subprocess.run([sys.executable, "-c", SIZES, str(config), str(samples),
                                       str(work / "sizes.nc"), *compressions], check=True,
                                      capture_output=True, text=True).stdout.splitlines()[-1])
    for name, mb in sizes.items():
        print(f"shard size, {samples} samples (default config), --compression {name}: "
              f"{mb:.3f} MB/sample")
    return {"size_samples": samples, "size_mb_per_sample": sizes}


# ---------------------------------------------------------------- SLURM overhead
def slurm_state(start: bool, work: Path) -> tuple[str | None, str | None, Path | None]:
    """(SLURM_CONF, reason when none, state dir to take down afterwards)."""
    status = subprocess.run([sys.executable, SLURM_LOCAL, "status"], capture_output=True, text=True)
    if status.returncode == 0:
        return status.stdout.split("SLURM_CONF=")[1].split()[0], None, None
    if not start:
        return None, "no SLURM cluster up (run workflow/scripts/slurm_local.py up, or pass --slurm-up)", None
    state_dir = work / "slurm"
    up = subprocess.run([sys.executable, SLURM_LOCAL, "up", "--state-dir", state_dir],
                        capture_output=True, text=True)
    if up.returncode != 0:
        return None, up.stderr.strip().splitlines()[-1], None
    return str(state_dir / "slurm.conf"), None, state_dir


def bench_slurm(work: Path, jobs: int, start: bool) -> dict:
    conf, reason, state_dir = slurm_state(start, work)
    if conf is None:
        print(f"SLURM overhead: not measured: {reason}")
        return {"slurm_overhead_s_per_job": None, "slurm_reason": reason}
    try:
        env = dict(os.environ, SLURM_CONF=conf)
        seconds = {}
        for mode, flags in (("local", ["--cores", "2"]), ("slurm", PROFILES)):
            d = work / f"trivial-{mode}"
            d.mkdir()
            (d / "Snakefile").write_text(TRIVIAL_SNAKEFILE.format(jobs=jobs))
            seconds[mode] = timed([sys.executable, "-m", "snakemake", "--snakefile", d / "Snakefile",
                                   "--directory", d, *flags], env=env, cwd=d)[0]
    except RuntimeError as err:
        logs = sorted((work / "trivial-slurm" / ".snakemake" / "slurm_logs").rglob("*.log"))
        detail = " | ".join(p.read_text(errors="replace").strip()[-300:] for p in logs[:2])
        print(f"SLURM overhead: the DAG failed: {err}\n{detail}")
        return {"slurm_overhead_s_per_job": None,
                "slurm_reason": f"the trivial DAG failed: {str(err).splitlines()[-1]} {detail}"}
    finally:
        if state_dir is not None:
            subprocess.run([sys.executable, SLURM_LOCAL, "down", "--state-dir", state_dir],
                           capture_output=True, text=True)
    per_job = (seconds["slurm"] - seconds["local"]) / jobs
    print(f"SLURM: {jobs} trivial jobs in {seconds['slurm']:.1f} s through the slurm profile, "
          f"{seconds['local']:.1f} s locally: {per_job:.1f} s overhead per job "
          f"(status polled every 2 s at first, slurm-local profile)")
    return {"slurm_jobs": jobs, "slurm_seconds": round(seconds["slurm"], 1),
            "slurm_local_seconds": round(seconds["local"], 1),
            "slurm_overhead_s_per_job": round(per_job, 2)}


# ---------------------------------------------------------------- training memory
def make_dataset(data: Path, samples: int, shard_size: int) -> tuple[list[Path], list[Path], Path]:
    """Simulated shards, their labels and a 0.9/0.05/0.05 split under `data` (reused if there)."""
    data.mkdir(parents=True, exist_ok=True)
    config = simulation_config(data / "simulation.yaml", nodes_x=24)
    shards, labels = [], []
    for i, start in enumerate(range(0, samples, shard_size)):
        shard, label = data / f"shard-{i:04d}.nc", data / f"labels-{i:04d}.nc"
        stop = min(start + shard_size, samples)
        if not shard.is_file():
            timed([sys.executable, "-m", "dlem", "simulate", "--config", config, "--out", shard,
                   "--samples", f"{start}:{stop}", "--workers", 2, "--quiet"])
        if not label.is_file():
            timed([sys.executable, "-m", "model", "labels", shard, "--out", label])
        shards.append(shard)
        labels.append(label)
    split = data / f"split-{samples}.json"
    timed([sys.executable, "-m", "model", "split", "--labels", *labels, "--out", split,
           "--fractions", 0.9, 0.05, 0.05])
    return shards, labels, split


def bench_rss(work: Path, budget_mib: int, factor: float, shard_size: int, chunk_cache_mib: int,
              data_dir: Path | None) -> dict:
    train_samples = int(-(-factor * budget_mib * MIB // SAMPLE_BYTES))
    samples = int(-(-train_samples // 0.9)) + 1
    data = data_dir or work / "data"
    tic = time.perf_counter()
    shards, labels, split = make_dataset(data, samples, shard_size)
    n_train = len(json.loads(split.read_text())["train"])
    print(f"dataset: {samples} samples in {len(shards)} shards ({samples * SAMPLE_BYTES / MIB:.0f} MiB "
          f"of wavefields, {sum(p.stat().st_size for p in shards) / MIB:.0f} MiB on disk), "
          f"{n_train} for training ({n_train * SAMPLE_BYTES / MIB:.0f} MiB = "
          f"{n_train * SAMPLE_BYTES / MIB / budget_mib:.1f}x the {budget_mib} MiB budget); "
          f"made in {time.perf_counter() - tic:.0f} s")
    args = ["train", "--data", *map(str, shards), "--labels", *map(str, labels), "--split", str(split),
            "--epochs", "1", "--batch-size", "32", "--no-progress", "--device", "cpu",
            "--arch-kwargs", json.dumps(SMALL_NET)]
    env = dict(os.environ, OMP_NUM_THREADS="2")
    seconds, rss = timed([sys.executable, "-m", "model", *args, "--out-dir", work / "model-a"], env=env)
    print(f"one epoch as shipped: {seconds:.0f} s, peak RSS {rss} MiB "
          f"({'within' if rss <= budget_mib else 'OVER'} the {budget_mib} MiB budget)")
    capped = (f"import sys, netCDF4; netCDF4.set_chunk_cache({chunk_cache_mib * MIB}); "
              f"from model.cli import main; sys.exit(main(sys.argv[1:]))")
    seconds_c, rss_c = timed([sys.executable, "-c", capped, *args, "--out-dir", work / "model-b"], env=env)
    print(f"one epoch with a {chunk_cache_mib} MiB netCDF chunk cache: {seconds_c:.0f} s, "
          f"peak RSS {rss_c} MiB ({'within' if rss_c <= budget_mib else 'OVER'} the budget)")
    all_nc = data / f"all-{samples}.nc"
    tic = time.perf_counter()
    if not all_nc.is_file():
        timed([sys.executable, ROOT / "workflow" / "scripts" / "consolidate.py", *shards,
               "--out", all_nc])
    consolidate_s = time.perf_counter() - tic
    one = ["train", "--data", str(all_nc), *args[1 + len(shards) + 1:]]
    seconds_1, rss_1 = timed([sys.executable, "-m", "model", *one, "--out-dir", work / "model-c"], env=env)
    print(f"one epoch as shipped on the consolidated file ({consolidate_s:.0f} s to write): "
          f"{seconds_1:.0f} s, peak RSS {rss_1} MiB "
          f"({'within' if rss_1 <= budget_mib else 'OVER'} the budget)")
    return {"rss_budget_mib": budget_mib, "dataset_samples": samples, "dataset_shards": len(shards),
            "train_samples": n_train, "train_data_mib": round(n_train * SAMPLE_BYTES / MIB),
            "train_data_over_budget": round(n_train * SAMPLE_BYTES / MIB / budget_mib, 2),
            "train_epoch_s": round(seconds, 1), "train_peak_rss_mib": rss,
            "train_within_budget": rss <= budget_mib,
            "chunk_cache_mib": chunk_cache_mib, "train_peak_rss_mib_chunk_cache": rss_c,
            "train_within_budget_chunk_cache": rss_c <= budget_mib,
            "consolidate_s": round(consolidate_s, 1), "train_epoch_s_consolidated": round(seconds_1, 1),
            "train_peak_rss_mib_consolidated": rss_1,
            "train_within_budget_consolidated": rss_1 <= budget_mib}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="print the JSON summary as the last line")
    p.add_argument("--only", default="sim,slurm,rss",
                   help="comma-separated parts to run: sim, size (no timing), slurm, rss")
    p.add_argument("--sim-samples", type=int, default=DEFAULT_CONFIG["dataset"]["samples"],
                   help="samples per simulation timing (and per shard of `size`); default: "
                        "the default config's dataset, %(default)s")
    p.add_argument("--compressions", default=",".join(COMPRESSIONS),
                   help="comma-separated --compression choices of `sim` and `size`")
    p.add_argument("--repeat", type=int, default=2, help="simulation timings per worker count (best kept)")
    p.add_argument("--slurm-jobs", type=int, default=8, help="trivial jobs in the SLURM DAG")
    p.add_argument("--slurm-up", action="store_true",
                   help="bring the throwaway SLURM up (and down afterwards) when none is up")
    p.add_argument("--rss-budget-mib", type=int, default=1024, help="memory budget of one epoch")
    p.add_argument("--rss-factor", type=float, default=4.0, help="training data / budget")
    p.add_argument("--shard-size", type=int, default=250, help="samples per shard (paper: 250)")
    p.add_argument("--chunk-cache-mib", type=int, default=4, help="netCDF chunk cache of the capped run")
    p.add_argument("--data-dir", type=Path, help="keep (and reuse) the RSS dataset here")
    args = p.parse_args(argv)
    parts = set(args.only.split(","))
    summary = {"cpus": os.cpu_count(), "load_avg_start": load_avg()}
    with tempfile.TemporaryDirectory(prefix="crackpoint-scale-") as tmp:
        work = Path(tmp)
        compressions = args.compressions.split(",")
        unknown = sorted(set(compressions) - set(COMPRESSIONS))
        if unknown:
            p.error(f"--compressions: unknown {unknown}; choose from {', '.join(COMPRESSIONS)}")
        if "sim" in parts:
            summary.update(bench_simulation(work, args.sim_samples, args.repeat, compressions))
        if "size" in parts:
            summary.update(bench_sizes(work, args.sim_samples, compressions))
        if "slurm" in parts:
            summary.update(bench_slurm(work, args.slurm_jobs, args.slurm_up))
        if "rss" in parts:
            summary.update(bench_rss(work, args.rss_budget_mib, args.rss_factor, args.shard_size,
                                     args.chunk_cache_mib, args.data_dir))
    summary["load_avg_end"] = load_avg()
    if args.json:
        print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
