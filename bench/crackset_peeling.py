"""Residual peeling: does subtracting the solver's field of the cracks a crack-set model found
reveal the ones it missed? (docs/model.md, "What limits the count").

    python bench/crackset_peeling.py --evaluation DIR --checkpoint CKPT --data SHARD ... \
        [--subtract detected|fitted|true] [--separation 2.0]

DIR is a `python -m model evaluate` folder of CKPT on plates of the shards: its
crack_predictions.nc is the first pass, at its detection threshold. For every plate, the
solver (`dlem`, with the set-up the shards record) simulates the plate with the cracks to
subtract and without cracks, and their difference, the cracks' scattered field, is taken
from the measured wavefield; the model runs again on the rest. The cracks to subtract:

- `detected`: the first pass's detections, each a straight crack between its predicted end
  points (what a user could do);
- `fitted`: the same cracks with their end points moved to fit the measured wavefield of
  the first `--fit-us` microseconds (the solver's field of all of them against the
  measurement, least squares; a compass search that moves one coordinate by 2 mm, then
  1 mm, while the misfit falls, at most `--sweeps` rounds per step; the early record, where
  the cracks' interaction, which the fit cannot hold for a missed crack, is small);
- `true`: the true cracks a detection found (greedy at IoU 0.5), each a straight crack
  between its true end points (what exact end points of the found cracks would allow; a
  kinked crack is still drawn straight).

Second-pass detections whose box centre lies more than `--separation` label cells from every
first-pass detection's centre are added to the first pass's; both are scored by
`model.detection` and paired over the plates (95 % bootstrap, bench/crackset_paired.py).
Prints one JSON line with the plates, the count accuracy by crack count of both passes and
the added detections, then one per metric (baseline: first pass, candidate: peeled).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import xarray as xr
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from crackset_paired import paired_differences  # noqa: E402
from dlem import dataset as dlem_dataset  # noqa: E402
from dlem.cracks import Polyline  # noqa: E402
from model.checkpoint import check_setup, load_checkpoint, model_from_checkpoint  # noqa: E402
from model.crack_labels import plate_size  # noqa: E402
from model.crackset_scoring import decode_for  # noqa: E402
from model.data import ShardIndex, WavefieldDataset, read_samples  # noqa: E402
from model.detection import count_table, plate_matches  # noqa: E402
from model.inference import make_loader, predict  # noqa: E402
from model.predict import unlabelled  # noqa: E402

GRID = 16   # label cells per plate side (the separation's unit)


def straight(ends: np.ndarray) -> Polyline | None:
    """A straight solver crack between `ends` `(2, 2)` [m]; None when shorter than 0.1 mm."""
    return Polyline.from_params(points=ends) if np.linalg.norm(ends[1] - ends[0]) >= 1e-4 else None


def solver_cracks(ends: np.ndarray) -> list[Polyline]:
    """Straight solver cracks of end points `(n, 2, 2)` [m], those under 0.1 mm left out."""
    return [c for c in map(straight, ends) if c is not None]


def fit_ends(ends: np.ndarray, measured: np.ndarray, setup, sweeps: int,
             steps: tuple[float, ...] = (2e-3, 1e-3)) -> np.ndarray:
    """End points `(n, 2, 2)` [m] moved to fit `measured` `(T', sensor, 2)` [m] (the first T'
    samples; `setup` simulates exactly those): a compass search on the squared misfit of the
    cracks' simulated field, one coordinate at a time by each of `steps` [m]."""
    theta = ends.reshape(-1).astype(np.float64)

    def misfit(values: np.ndarray) -> float:
        field = dlem_dataset.sensor_records(setup, solver_cracks(values.reshape(-1, 2, 2)))
        return float(np.sum((measured - field.astype(np.float64)) ** 2))

    best = misfit(theta)
    for step in steps:
        for _ in range(sweeps):
            moved = False
            for j in range(theta.size):
                for sign in (1.0, -1.0):
                    trial = theta.copy()
                    trial[j] += sign * step
                    value = misfit(trial)
                    if value < best:
                        best, theta, moved = value, trial, True
                        break
            if not moved:
                break
    return theta.reshape(-1, 2, 2)


def merge(first: dict, second: dict, threshold: float, separation: float) -> tuple[dict, int]:
    """The first pass's slots plus the second pass's detections (score >= `threshold`) whose
    box centre is more than `separation` cells from every first-pass detection's centre;
    `{"box" (N, 2K, 4), "score" (N, 2K), "ends" (N, 2K, 2, 2)}` and the number added."""
    n, k = first["score"].shape
    out = {name: np.concatenate([first[name], np.full_like(second[name], np.nan)], axis=1)
           for name in ("box", "score", "ends")}
    centre = {p: GRID * (d["box"][..., :2] + d["box"][..., 2:]) / 2 for p, d in
              (("first", first), ("second", second))}
    added = 0
    for i in range(n):
        old = centre["first"][i][first["score"][i] >= threshold]
        for j in np.flatnonzero(second["score"][i] >= threshold):
            gap = np.linalg.norm(old - centre["second"][i, j], axis=1)
            if gap.size == 0 or gap.min() > separation:
                for name in out:
                    out[name][i, k + j] = second[name][i, j]
                added += 1
    return out, added


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--evaluation", required=True, type=Path, metavar="DIR")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", required=True, nargs="+", help="the shards holding DIR's plates")
    p.add_argument("--subtract", choices=("detected", "fitted", "true"), default="detected")
    p.add_argument("--fit-us", type=float, default=50.0, help="fitted: record fitted [µs]")
    p.add_argument("--sweeps", type=int, default=2, help="fitted: rounds per step")
    p.add_argument("--separation", type=float, default=2.0, help="label cells (see above)")
    p.add_argument("--first", type=int, help="only the first N plates (a quick look)")
    p.add_argument("--batch-size", type=int, default=16)
    args = p.parse_args(argv)
    if args.first is not None and args.first < 1:
        p.error(f"--first must be at least 1, got {args.first}")
    if args.sweeps < 1:
        p.error(f"--sweeps must be at least 1, got {args.sweeps}")
    path = args.evaluation / "crack_predictions.nc"
    if not path.is_file():
        raise SystemExit(f"{path} not found (a crack-set evaluate folder)")
    first = xr.load_dataset(path).isel(sample=slice(args.first))
    threshold, ids = float(first.attrs["score_threshold"]), first["sample"].values
    index = ShardIndex.build(args.data)
    state = load_checkpoint(args.checkpoint)
    check_setup(state, index.setup_hash, index.setup, f"shard {index.paths[0]}", args.checkpoint)
    plate = np.asarray(plate_size(index.paths[0]))
    true_box, true_ends = first["true_box"].values, first["true_ends"].values

    def matches(d: dict):
        return plate_matches(d["box"], d["score"], true_box, threshold, d["ends"], true_ends)

    first_pass = {"box": first["pred_box"].values, "score": first["score"].values,
                  "ends": first["pred_ends"].values}
    before = matches(first_pass)
    config = json.loads(index.setup)
    setup = dlem_dataset.setup(config)
    pristine = dlem_dataset.sensor_records(setup, []).astype(np.float64)
    if args.subtract == "fitted":
        duration, n_time = config["time"]["duration"], config["time"]["n_time"]
        if not 0 < args.fit_us * 1e-6 <= duration:
            p.error(f"--fit-us must lie in (0, {duration * 1e6:g}] (the record), got {args.fit_us}")
        fit_samples = int(round(args.fit_us * 1e-6 / duration * n_time))
        early = dlem_dataset.setup({**config, "time": {**config["time"], "n_time": fit_samples,
                                                       "duration": args.fit_us * 1e-6}})
    if args.subtract == "true":
        ends, keep = true_ends, before.found50
    else:
        ends, keep = first["pred_ends"].values, first["detected"].values
    scattered, moved = {}, []
    refined = first["pred_ends"].values.copy()   # fitted: the detections' fitted end points
    for i, sample in enumerate(tqdm(ids, desc="simulating", file=sys.stderr)):
        slots = np.flatnonzero(keep[i])
        chosen = ends[i, slots]
        if not len(chosen):
            continue
        if args.subtract == "fitted":
            measured = read_samples(index, ids[i:i + 1], "wavefield")[0, :fit_samples]
            fitted = fit_ends(chosen, measured.astype(np.float64), early, args.sweeps)
            moved.append(np.linalg.norm(fitted - chosen, axis=-1).ravel())
            refined[i, slots] = chosen = fitted
        scattered[int(sample)] = (dlem_dataset.sensor_records(setup, solver_cracks(chosen))
                                  - pristine)

    def peel(fields: np.ndarray, samples: np.ndarray) -> np.ndarray:
        """`WavefieldDataset`'s perturbation: the measured field minus the subtracted one."""
        field = scattered.get(int(samples[0]))
        return fields if field is None else (fields - field[None]).astype(np.float32)

    model = model_from_checkpoint(state, source=args.checkpoint)
    reference = None if state["reference"] is None else state["reference"].numpy()
    dataset = WavefieldDataset(index, ids, unlabelled(ids), state["stats"], reference,
                               perturb=peel)
    device = torch.device("cpu")
    try:
        second = decode_for(model, predict(model, make_loader(dataset, args.batch_size, 0, device),
                                           device))
    finally:
        dataset.close()
    second["ends"] = second["ends"] * plate
    peeled, added = merge({**first_pass, "ends": refined}, second, threshold, args.separation)
    after = matches(peeled)
    by_count = {name: {r["n_cracks"]: r["count_accuracy"] for r in count_table(m) if r["samples"]}
                for name, m in (("first", before), ("peeled", after))}
    print(json.dumps({"plates": len(ids), "subtract": args.subtract, "plates_subtracted":
                      len(scattered), "added": added, "count_accuracy_by_cracks": by_count,
                      "median_end_moved_m": float(np.median(np.concatenate(moved)))
                      if moved else None}))
    rows = paired_differences(before, after)
    for row in rows:
        print(json.dumps(row))
    return rows


if __name__ == "__main__":
    main()
