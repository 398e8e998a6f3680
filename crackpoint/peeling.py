"""Peeling (issue 10): take the cracks a crack-set model found out of the measurement with the
solver, and let the model look again at what is left.

The first pass is an evaluation folder of `python -m model evaluate` (its crack_predictions.nc:
every decoded slot, the detections at its threshold, the intervals rescaled on validation).
For every plate with a detection, the solver (`dlem`, with the set-up the shards record)
simulates the plate with the detected cracks, each a straight crack between its end points,
and subtracts their scattered field (that plate minus the uncracked one) from the measured
wavefield; the same network then runs again on the rest (the second pass). The solver is
linear, so what is left is the missed cracks' own field plus the cracks' interaction and the
misfit of the subtracted geometry (docs/model.md, "Peeling").

- `detected`: the end points as the network predicts them;
- `fitted`: those end points moved to fit the first `fit_us` microseconds of the measured
  record (`fit_ends`: a compass search on the squared misfit of the solver's field of all the
  plate's detections, the early record where the interaction with a missed crack is small).

A second-pass detection (score at the first pass's threshold or above) whose box centre lies
more than `separation` label cells from every first-pass detection's centre is added to the
plate's detections (`merge`); the first pass keeps its slots (with the fitted end points).
Second-pass intervals are rescaled by the evaluation's `sigma_scale`. With `boxes="ends"`
each detection's box is then made from its end points as a true crack's box is made from
its vertices (`model.crackset_scoring.boxes_of_ends`: the label cells the straight crack
touches, boxed by the labels' rule); with `"network"` it stays the box head's. With `check`,
the merged detections then go through the solver check (`crackpoint.completion`: those the
record does not need removed, the cracks it still needs found by the solver and added, at
an `add_gain` chosen like the rescaling below; pass 3, boxed from their end points). Boxes
made from the ends and fitted end points are better than the network's σ says, so the merged
detections' σ are rescaled once more, split-conformally as `python -m model evaluate` does
(`sigma_rescale`: the factors that make the 90 % intervals cover 90 % of the matched
pairs): chosen on the plates peeled when no `from_metrics` is given, which is right for
validation plates only, or taken from the metrics.json of such a run (`from_metrics`).

`crackpoint` sits above both packages (`workflow -> {dlem, model}`): this module imports
both, neither imports it.
"""

from __future__ import annotations

import json
import os
from contextlib import nullcontext
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import xarray as xr
from tqdm import tqdm

from crackpoint.completion import (ADD_GAINS, MAX_ADDED, PRUNE_GAIN, PlateCheck, added_count,
                                   atom, atom_ends, check_plate, choose_add_gain,
                                   crack_dictionary)
from crackpoint.fitting import cracks_field, early_setup, fit_ends
from dlem import dataset as dlem_dataset
from dlem.workers import ordered_map
from model.checkpoint import check_setup, load_checkpoint, model_from_checkpoint
from model.crack_labels import crack_targets, load_crack_labels, plate_size
from model.crackset_scoring import (box_end_factors, boxes_of_ends, chosen_scoring,
                                    crack_predictions_dataset, crack_scores, decode_for,
                                    detection_markdown, scale_sigmas, sigma_scales)
from model.data import ShardIndex, WavefieldDataset, read_samples
from model.detection import paired_differences, plate_matches
from model.evaluate import crack_figures
from model.inference import make_loader, predict
from model.io import DataError, write_netcdf_atomic, write_text_atomic
from model.metrics import DEFAULT_SIZE_THRESHOLDS
from model.predict import unlabelled

MODES = ("detected", "fitted")
BOX_SOURCES = ("ends", "network")   # each detection's box: of its end points, or as predicted
CHUNK = 64                   # plates whose subtracted fields are held at once
DECODED = ("score", "box", "ends", "box_sigma", "end_sigma")


def merge(first: dict, second: dict, threshold: float, separation: float,
          grid: tuple[int, int]) -> tuple[dict, np.ndarray]:
    """The first pass's slots followed by the second pass's detections (`score >=
    threshold`) whose box centre is more than `separation` label cells (`grid` = cells along
    x, y) from the centre of every first-pass detection of its plate. `first`, `second`:
    decoded cracks (`DECODED`, `(N, K, ...)` and `(N, K2, ...)`); returns the merged
    `(N, K + K2, ...)` (NaN where nothing was added) and the pass of each slot `(N, K + K2)`
    int8: 1, 2, or 0 for an empty slot."""
    n, k = first["score"].shape
    merged = {name: np.concatenate([first[name], np.full_like(second[name], np.nan)], axis=1)
              for name in DECODED}
    cells = np.tile(np.asarray(grid, np.float64), 2)

    def centres(boxes: np.ndarray) -> np.ndarray:
        boxes = boxes * cells
        return (boxes[..., :2] + boxes[..., 2:]) / 2

    old_c, new_c = centres(first["box"]), centres(second["box"])
    for i in range(n):
        old = old_c[i][first["score"][i] >= threshold]
        for j in np.flatnonzero(second["score"][i] >= threshold):
            gap = np.linalg.norm(old - new_c[i, j], axis=1)
            if gap.size == 0 or gap.min() > separation:
                for name in DECODED:
                    merged[name][i, k + j] = second[name][i, j]
    source = np.where(np.isfinite(merged["score"]), 1, 0).astype(np.int8)
    source[:, k:] *= 2
    return merged, source


def first_pass(folder: str | os.PathLike) -> tuple[xr.Dataset, dict]:
    """The crack_predictions.nc (loaded) and metrics.json of a crack-set evaluation folder;
    DataError naming what is missing."""
    folder = Path(folder)
    path, metrics_path = folder / "crack_predictions.nc", folder / "metrics.json"
    for p in (path, metrics_path):
        if not p.is_file():
            raise DataError(f"{p} not found: --evaluation must be a folder written by "
                            "`python -m model evaluate` for a crack-set model")
    metrics = json.loads(metrics_path.read_text())
    chosen_scoring(metrics, str(metrics_path))
    return xr.load_dataset(path), metrics


def decoded_cracks(ds: xr.Dataset, plate: np.ndarray) -> dict:
    """The decoded cracks (`DECODED`, plate fractions) of a crack_predictions.nc; `plate` =
    (width, height) [m]."""
    return {"score": ds["score"].values, "box": ds["pred_box"].values,
            "box_sigma": ds["pred_box_sigma"].values,
            "ends": ds["pred_ends"].values / plate,
            "end_sigma": ds["pred_ends_sigma"].values / plate}


def mapped(func, jobs: Sequence, workers: int):
    """Context: `func` over `jobs` in order, on `workers` processes when more than one."""
    return ordered_map(func, jobs, workers) if workers > 1 else nullcontext(map(func, jobs))


def _subtracted(job) -> tuple[np.ndarray, np.ndarray]:
    """Worker: `(ends (n, 2, 2) [m], scattered field (T, sensor, 2) float32 [m])` of one
    plate's cracks to subtract; `job` = (their end points [m], the plate's early record to
    fit them to or None, (full set-up, early set-up), the uncracked record, sweeps)."""
    ends, measured, (setup, early), pristine, sweeps = job
    if measured is not None:
        ends, _ = fit_ends(ends, measured, early, sweeps)
    return ends, (cracks_field(setup, ends) - pristine).astype(np.float32)


def second_pass(model, state: dict, index: ShardIndex, ids: np.ndarray,
                fields: dict[int, np.ndarray], batch_size: int) -> tuple[np.ndarray, dict]:
    """The network of `state` on plates `ids` with `fields[sample]` `(T, sensor, 2)` [m]
    subtracted from the measured wavefield (none where absent): its raw maps' label grid
    `(cells along x, along y)` and its decoded cracks (plate fractions, intervals as the
    network gives them)."""
    def subtract(wavefield: np.ndarray, samples: np.ndarray) -> np.ndarray:
        field = fields.get(int(samples[0]))
        return wavefield if field is None else (wavefield - field[None]).astype(np.float32)

    reference = None if state["reference"] is None else state["reference"].numpy()
    dataset = WavefieldDataset(index, ids, unlabelled(ids), state["stats"], reference,
                               perturb=subtract)
    device = torch.device("cpu")
    try:
        raw = predict(model, make_loader(dataset, batch_size, 0, device), device)
    finally:
        dataset.close()
    return np.array(raw.shape[:-3:-1]), decode_for(model, raw)


def look_again(model, state: dict, index: ShardIndex, ids: np.ndarray, first: dict,
               detected: np.ndarray, plate: np.ndarray, subtract: str, fit_us: float,
               sweeps: int, workers: int, batch_size: int, progress: bool):
    """The second pass over plates `ids`: each plate's `detected` `(N, K)` cracks of `first`
    (decoded, plate fractions), fitted to the early record when `subtract` is "fitted", taken
    out of its wavefield by the solver (`workers` processes, `CHUNK` plates at a time), the
    network run on the rest. Returns the label grid `(cells along x, along y)`, the second
    pass's decoded cracks (the network's σ), the first pass's end points `(N, K, 2, 2)`
    (plate fractions; fitted ones moved) and the fitted end points' moves [m]."""
    config = json.loads(index.setup)
    setups = (dlem_dataset.setup(config), None)
    fit_samples = None
    if subtract == "fitted":
        early, fit_samples = early_setup(config, fit_us)
        setups = (setups[0], early)
    pristine = cracks_field(setups[0], np.zeros((0, 2, 2)))
    refined, moved, parts, grid = first["ends"].copy(), [], [], None
    bar = tqdm(total=int(detected.any(axis=1).sum()), desc=f"peeling ({subtract})",
               unit="plate", disable=not progress)
    for start in range(0, len(ids), CHUNK):
        rows = np.arange(start, min(start + CHUNK, len(ids)))
        todo = rows[detected[rows].any(axis=1)]
        found = [first["ends"][i][detected[i]] * plate for i in todo]          # (n, 2, 2) m
        records = (read_samples(index, ids[todo], "wavefield")[:, :fit_samples]
                   if fit_samples and todo.size else [None] * len(todo))
        jobs = [(ends, record, setups, pristine, sweeps) for ends, record in zip(found, records)]
        fields = {}
        with mapped(_subtracted, jobs, workers) as results:
            for i, given, (ends, field) in zip(todo, found, results):
                if fit_samples:
                    moved.append(np.linalg.norm(ends - given, axis=-1).ravel())
                    refined[i, detected[i]] = ends / plate
                fields[int(ids[i])] = field
                bar.update()
        grid, part = second_pass(model, state, index, ids[rows], fields, batch_size)
        parts.append(part)
    bar.close()
    second = {name: np.concatenate([p[name] for p in parts]) for name in DECODED}
    return grid, second, refined, moved


def solver_check(index: ShardIndex, ids: np.ndarray, merged: dict, detected: np.ndarray,
                 plate: np.ndarray, grid: np.ndarray, fit_us: float, separation: float,
                 min_gain: float, workers: int, progress: bool) -> list[PlateCheck]:
    """`crackpoint.completion`'s check of every plate `ids`: its `detected` `(N, K)` cracks
    of `merged` (plate fractions) pruned and searched around on the first `fit_us`
    microseconds of its record (`workers` processes; the dictionary on the label cells of
    `grid`), the search stopping after a gain below `min_gain`."""
    early, samples = early_setup(json.loads(index.setup), fit_us)
    pristine = cracks_field(early, np.zeros((0, 2, 2)))
    ends = atom_ends(plate, grid)
    with mapped(atom, [(early, pristine, e) for e in ends], workers) as results:
        dictionary = crack_dictionary(ends, list(tqdm(
            results, total=len(ends), desc="solver check: dictionary", unit="crack",
            disable=not progress)))
    cell = plate / grid
    checks = []
    with tqdm(total=len(ids), desc="solver check", unit="plate", disable=not progress) as bar:
        for start in range(0, len(ids), CHUNK):
            rows = np.arange(start, min(start + CHUNK, len(ids)))
            records = read_samples(index, ids[rows], "wavefield")[:, :samples].astype(np.float64)
            jobs = [(merged["ends"][i][detected[i]] * plate, record, early, pristine, dictionary,
                     cell, separation, PRUNE_GAIN, min_gain) for i, record in zip(rows, records)]
            with mapped(check_plate, jobs, workers) as results:
                for check in results:
                    checks.append(check)
                    bar.update()
    return checks


def checked(merged: dict, source: np.ndarray, checks: Sequence[PlateCheck], add_gain: float,
            threshold: float, plate: np.ndarray, grid: np.ndarray,
            box_rule: str) -> tuple[dict, np.ndarray, np.ndarray]:
    """The merged detections after the solver check at `add_gain` (`PlateCheck.state`): the
    slots of detections no longer present emptied, the search's cracks present in
    `MAX_ADDED` new slots, pass 3, at score `threshold`, boxed from their end points
    (`box_rule`), their σ one label cell (to be rescaled with the rest). Returns those
    decoded cracks, their passes and each plate's misfit left `(N,)`."""
    n, k = source.shape
    out = {name: np.concatenate([merged[name], np.full((n, MAX_ADDED, *merged[name].shape[2:]),
                                                       np.nan)], axis=1) for name in DECODED}
    passes = np.concatenate([source, np.zeros((n, MAX_ADDED), source.dtype)], axis=1)
    detected = merged["score"] >= threshold
    left = np.zeros(n)
    cell = 1.0 / np.asarray(grid, np.float64)          # a label cell in plate fractions
    for i, check in enumerate(checks):
        steps = added_count(check.gains, add_gain)
        present = check.states[steps]
        given = np.flatnonzero(detected[i])
        gone = given[np.setdiff1d(np.arange(check.n_given), present)]
        for name in DECODED:
            out[name][i, gone] = np.nan
        passes[i, gone] = 0
        found = check.candidates[present[present >= check.n_given] - check.n_given]
        slots = np.arange(k, k + len(found))
        out["score"][i, slots] = threshold
        out["ends"][i, slots] = found / plate
        out["box"][i, slots] = boxes_of_ends(found, plate, grid, box_rule)
        out["box_sigma"][i, slots] = np.tile(cell, 2)
        out["end_sigma"][i, slots] = cell
        passes[i, slots] = 3
        left[i] = check.misfits[steps]
    return out, passes, left


def peel(data: Sequence[str], labels: Sequence[str], checkpoint: str | os.PathLike,
         evaluation: str | os.PathLike, out_dir: str | os.PathLike, subtract: str = "detected",
         separation: float = 2.0, fit_us: float = 50.0, sweeps: int = 2,
         size_thresholds: Sequence[float] = DEFAULT_SIZE_THRESHOLDS, batch_size: int = 16,
         workers: int = 1, progress: bool = True, boxes: str = "ends",
         from_metrics: dict | None = None, check: bool = False) -> dict:
    """Peel the plates of `evaluation` (module docstring) and write to `out_dir` what
    `python -m model evaluate` writes for a crack-set model, of the merged detections:
    crack_predictions.nc (with `peeling_pass` per slot), metrics.json (the detection scores,
    tables and calibration, `peeling`: the options, plates subtracted, detections added,
    median end-point move, and `paired`, the peeled scores minus the first pass's with 95 %
    plate-bootstrap intervals), detection.md and figures/. `workers` processes run the
    solver; `boxes` (`BOX_SOURCES`) says where the merged detections' boxes come from;
    `from_metrics` (a peel metrics.json of validation plates) gives `sigma_rescale` (and,
    with `check`, the solver check's `add_gain`). With `check`, the merged detections go
    through the solver check (`crackpoint.completion`) before their boxes are made.
    Returns the metrics."""
    rescale = add_gain = None
    if from_metrics is not None:
        given = from_metrics.get("peeling") or {}
        rescale = given.get("sigma_rescale")
        if not box_end_factors(rescale):
            raise DataError("the --from-metrics file lacks the numbers 'peeling.sigma_rescale."
                            "box' and '.ends' of a `python -m crackpoint peel` run")
        rescale = {**rescale, "chosen_on": "from_metrics"}
        if check:
            add_gain = (given.get("check") or {}).get("add_gain")
            if not isinstance(add_gain, (int, float)) or not add_gain > 0:
                raise DataError("the --from-metrics file lacks the number 'peeling.check."
                                "add_gain' of a `python -m crackpoint peel --check` run")
    if subtract not in MODES:
        raise ValueError(f"subtract must be one of {MODES}, got {subtract!r}")
    if boxes not in BOX_SOURCES:
        raise ValueError(f"boxes must be one of {BOX_SOURCES}, got {boxes!r}")
    if not separation >= 0:
        raise ValueError(f"separation must be >= 0 label cells, got {separation}")
    if sweeps < 1 or workers < 1 or batch_size < 1:
        raise ValueError("sweeps, workers and batch_size must be at least 1")
    ds, chosen = first_pass(evaluation)
    ids, threshold = ds["sample"].values, float(chosen["score_threshold"])
    index = ShardIndex.build(data)
    state = load_checkpoint(checkpoint)
    check_setup(state, index.setup_hash, index.setup, f"shard {index.paths[0]}", checkpoint)
    if state.get("target", "box") != "cracks":
        raise DataError(f"{checkpoint} is not a crack-set checkpoint (target "
                        f"{state.get('target')!r}); peeling needs one")
    index.locate(ids)   # DataError naming evaluated plates that no --data shard holds
    plate = np.asarray(plate_size(index.paths[0]))
    cracks = load_crack_labels(labels)
    targets = crack_targets(cracks, ids, tuple(plate))
    scored = ds["true_box"].values
    same = targets.shape[:2] == scored.shape[:2] and np.allclose(
        np.nan_to_num(targets[..., :4], nan=-1), np.nan_to_num(scored, nan=-1), atol=1e-6)
    if not same:
        raise DataError("the --labels boxes differ from those the evaluation scored: give the "
                        "labels of the evaluated plates")
    first = decoded_cracks(ds, plate)
    model = model_from_checkpoint(state, source=str(checkpoint))
    detected = ds["detected"].values
    grid, second, refined, moved = look_again(model, state, index, ids, first, detected, plate,
                                              subtract, fit_us, sweeps, workers, batch_size,
                                              progress)
    second = scale_sigmas(second, chosen["sigma_scale"])
    merged, source = merge({**first, "ends": refined}, second, threshold, separation,
                           tuple(grid))
    rows = cracks.labels.rows(ids)
    check_info, misfit_left = None, None
    if check:
        checks = solver_check(index, ids, merged, merged["score"] >= threshold, plate, grid,
                              fit_us, separation, add_gain or min(ADD_GAINS), workers,
                              progress)
        check_info = {"prune_gain": PRUNE_GAIN, "add_gain": add_gain,
                      "chosen_on": "from_metrics"}
        if add_gain is None:   # on the plates peeled: validation plates only (docstring)
            add_gain, accuracy = choose_add_gain(checks, cracks.labels.n_cracks[rows])
            check_info = {**check_info, "add_gain": add_gain, "chosen_on": "these plates",
                          "count_accuracy_by_gain": accuracy}
        merged, source, misfit_left = checked(merged, source, checks, add_gain, threshold,
                                              plate, grid, cracks.labels.box_rule)
        cracked = np.array([c.misfits[0] > 0 for c in checks])
        check_info.update(
            removed=int(sum(c.n_given - (c.state(add_gain) < c.n_given).sum() for c in checks)),
            added=int((source == 3).sum()),
            median_misfit_left=float(np.median(misfit_left[cracked])) if cracked.any() else None)
    if boxes == "ends":
        merged["box"] = boxes_of_ends(merged["ends"] * plate, plate, grid,
                                      cracks.labels.box_rule)
    if rescale is None:   # on the plates peeled: validation plates only (docstring)
        rescale = {**sigma_scales(merged, targets, threshold), "chosen_on": "these plates"}
    novel = ds["novel"].values if "novel" in ds else None
    scores, errors = crack_scores(merged, targets, cracks.outline[rows], cracks.length[rows],
                                  tuple(plate), threshold, size_thresholds,
                                  sigma_scale=rescale, novel=novel)
    merged = scale_sigmas(merged, rescale)
    before = plate_matches(first["box"], first["score"], targets[..., :4], threshold,
                           first["ends"] * plate, cracks.outline[rows])
    after = plate_matches(merged["box"], merged["score"], targets[..., :4], threshold,
                          merged["ends"] * plate, cracks.outline[rows])
    result = {
        **scores, "sigma_scale": chosen["sigma_scale"], "samples_scored": int(len(ids)),
        "peeling": {"evaluation": str(evaluation), "checkpoint": str(checkpoint),
                    "subtract": subtract, "separation_cells": separation, "boxes": boxes,
                    "sigma_rescale": rescale,
                    "fit_us": fit_us if subtract == "fitted" or check else None,
                    "sweeps": sweeps if subtract == "fitted" else None,
                    "plates_subtracted": int(detected.any(axis=1).sum()),
                    "added": int((source == 2).sum()), "check": check_info,
                    "median_end_moved_m": float(np.median(np.concatenate(moved)))
                    if moved else None},
        "paired": paired_differences(before, after),
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    distance = ds["distance"].values if "distance" in ds else None
    predictions = crack_predictions_dataset(ids, merged, targets, tuple(plate), threshold,
                                            distance, novel)
    predictions["peeling_pass"] = (("sample", "slot"), source,
                                   {"long_name": "pass that found the slot's crack",
                                    "flag_values": np.array([0, 1, 2, 3], np.int8),
                                    "flag_meanings": "empty first_pass second_pass "
                                                     "solver_check"})
    if misfit_left is not None:
        predictions["misfit_left"] = ("sample", misfit_left, {
            "units": "1", "long_name": "solver misfit of the detections as a fraction of the "
                                       "plate's scattered energy (0 uncracked)",
            "comment": f"first {fit_us:g} us of the record"})
    predictions.attrs["source"] = "python -m crackpoint peel"
    write_netcdf_atomic(predictions, out_dir / "crack_predictions.nc")
    write_text_atomic(json.dumps(result, indent=2) + "\n", out_dir / "metrics.json")
    title = (f"{state['arch']} peeled ({subtract}) on {len(ids)} samples, detection threshold "
             f"{threshold:g}")
    write_text_atomic(detection_markdown(scores, title) + "\n" + paired_markdown(
        result["paired"], result["peeling"]), out_dir / "detection.md")
    crack_figures(out_dir / "figures", ids, merged, cracks, rows, tuple(plate), threshold,
                  errors, f"{state['arch']} peeled", novel, source)
    return result


def paired_markdown(rows: list[dict], peeling: dict) -> str:
    """The peeled-minus-first-pass table of `paired_differences` rows, as Markdown."""
    check = peeling.get("check")
    checked_text = "" if not check else (
        f"; solver check: {check['removed']} detections removed, {check['added']} cracks added "
        f"at gain >= {check['add_gain']:g}")
    lines = [f"**Peeled minus first pass** (same plates; {peeling['plates_subtracted']} plates "
             f"subtracted, {peeling['added']} detections added{checked_text}; 95 % bootstrap "
             "intervals over the plates)", "", "| metric | first pass | peeled | difference | interval |",
             "|---|---:|---:|---:|---:|"]
    for row in rows:
        metres = row["metric"].endswith("_m")   # lengths in mm, two decimals
        scale, digits = (1e3, 2) if metres else (1.0, 3)
        name = row["metric"][:-2] + " [mm]" if metres else row["metric"]

        def cell(v, sign=""):
            return "–" if v is None else f"{scale * v:{sign}.{digits}f}"

        lo, hi = row["interval95"]
        lines.append(f"| {name} | {cell(row['baseline'])} | {cell(row['candidate'])} | "
                     f"{cell(row['difference'], '+')} | [{cell(lo, '+')}, {cell(hi, '+')}] |")
    return "\n".join(lines) + "\n"
