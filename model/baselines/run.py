"""Classical baselines end to end: hyperparameters chosen on one split subset, scores on another.

    python -m model baseline rapid|das --data S.nc ... --labels L.nc ... --split split.json \
        --pristine pristine.nc --out-dir results/eval/NAME

Method (no training; both need the pristine reference wavefield):
1. Read the plate size, source, onset and the P and S wave speeds of the plate's plane
   condition from the pristine reference's documented attributes and variables
   (`imaging.plate_geometry`, docs/data-format.md; the same set-up as the shards, checked),
   the sensor positions and record times from the shard.
2. Search: for every image setting of the grid (RAPID: `beta`; delay-and-sum: `speed`
   "p" | "s" and `t_max` [s]), image the validation samples (those with a crack) on a pixel
   grid 4x finer than the label grid, and reduce each image to label-cell scores (brightest
   pixel / image maximum, `imaging.cell_scores`). For each cell-score threshold `alpha` of
   the grid, the mask `scores >= alpha` gives a box by the label rule; the setting and
   `alpha` with the highest mean box IoU win (`alpha_box`). The threshold with the highest
   mean pixel IoU for the winning setting is `alpha_pixel` (the segmentation way).
3. Score: image the test samples with the winners and write exactly what
   `python -m model evaluate` writes for a segmentation model (`model.scoring.
   write_evaluation`): predictions.nc (cell scores stored as `pred_mask_prob`),
   metrics.json (plus the chosen hyperparameters and the whole search), table1.csv/md,
   figures. `training_seconds` is the search time; `inference_samples_per_s` covers reading
   the test wavefields, imaging and boxing; `params` are 0 (nothing is learned but the
   2-3 hyperparameters).

With `from_metrics` (a metrics.json an earlier run of the same method wrote, e.g. on the
main split) step 2 is skipped: the hyperparameters it chose are reused, and its search time
is reported as the training time. The held-out evaluation scores this way, so nothing is
chosen on held-out samples; so do the robustness evaluations (docs/robustness.md), on
perturbed wavefields (`perturbation`) or shards of a changed material
(`allow_setup_change`), imaged with the pristine reference's wave speeds.

Wavefields are read `CHUNK` samples at a time, so memory stays small for any split size.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from collections.abc import Sequence

import numpy as np

from model import metrics
from model.baselines import METHODS
from model.baselines.das import das_images
from model.baselines.imaging import cell_scores, pixel_grid, plate_geometry, sensors_and_times
from model.baselines.rapid import rapid_images
from model.data import ShardIndex, box_samples, load_labels, read_reference, read_samples, read_split
from model.io import (SHARD_VARIABLES, DataError, check_setup_matches,
                      open_checked, setup_of)
from model.keypoints import predicted_mask_boxes
from model.perturb import Perturbation
from model.scoring import (choose_mask_thresholds, condition_info, mask_scores,
                           predictions_dataset, read_chosen, summarise, write_evaluation)

CHUNK = 16               # samples read and imaged at once
OVERSAMPLE = 4           # image pixels per label cell along each axis
ALPHAS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.99)
DEFAULT_GRIDS = {
    "rapid": {"beta": [1.02, 1.05, 1.1, 1.2, 1.35, 1.5, 2.0], "alpha": list(ALPHAS)},
    "das": {"speed": ["p", "s"], "t_max": [2e-5, 3e-5, 4e-5, 5e-5, 6e-5, 8e-5, 1e-4],
            "alpha": list(ALPHAS)},
}
IMAGE_KEYS = {"rapid": ("beta",), "das": ("speed", "t_max")}


def read_setup(index: ShardIndex, pristine: str | os.PathLike,
               allow: Sequence[str] = ()) -> dict:
    """Geometry (imaging.plate_geometry: plate size, source, wave speeds) of the pristine
    reference, the plate the imaging assumes; sensors (S, 2) [m], times (T,) [s] and label
    grid of the shards; the reference wavefield (T, S, 2) [m]; the image pixel grid (G, 2)
    [m]; and `changes`, how the shards' set-up differs from the reference's where `allow`
    permits it ({path: [reference value, shard value]}, model.io.check_setup_matches; {} for
    the same set-up, anything else is refused)."""
    with open_checked(pristine, SHARD_VARIABLES, "pristine reference") as ds:
        geometry = plate_geometry(ds, pristine)
        digest, reference_setup = setup_of(ds.attrs, pristine, "pristine reference")
    changes = check_setup_matches(f"shard {index.paths[0]}", index.setup_hash, index.setup,
                                  digest, reference_setup, f"the pristine reference {pristine}",
                                  allow)
    with open_checked(index.paths[0], SHARD_VARIABLES, "shard") as ds:
        sensors, times = sensors_and_times(ds, index.paths[0])
        label_shape = tuple(ds["crack_mask"].shape[1:])
    grid = pixel_grid(geometry["width"], geometry["height"], label_shape, OVERSAMPLE)
    return {"geometry": geometry, "sensors": sensors, "times": times, "grid": grid,
            "label_shape": label_shape, "changes": changes,
            "reference": read_reference(pristine, index.wave_shape)}  # set-up checked above


def images(method: str, current: np.ndarray, setup: dict, setting: dict) -> np.ndarray:
    """Damage images (N, G) of wavefields (N, T, S, 2) [m] for one image setting."""
    geo = setup["geometry"]
    if method == "rapid":
        return rapid_images(current, setup["reference"], setup["grid"], geo["source"],
                            setup["sensors"], setting["beta"])
    speed = geo["c_p"] if setting["speed"] == "p" else geo["c_s"]
    return das_images(current, setup["reference"], setup["times"], setup["grid"], geo["source"],
                      setup["sensors"], speed, geo["onset"], setting["t_max"])


def image_settings(method: str, grid: dict) -> list[dict]:
    """Every combination of the image hyperparameters in `grid` (not alpha)."""
    keys = IMAGE_KEYS[method]
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def scores_for(method: str, index: ShardIndex, ids: np.ndarray, setup: dict,
               settings: list[dict], perturbation: Perturbation | None = None
               ) -> list[np.ndarray]:
    """Cell scores (N, H, W) of `ids` for each setting, reading the wavefields once (and
    perturbing them with `perturbation`, model.perturb, before imaging)."""
    out = [np.empty((len(ids), *setup["label_shape"])) for _ in settings]
    for start in range(0, len(ids), CHUNK):
        chunk = slice(start, start + CHUNK)
        current = read_samples(index, ids[chunk], "wavefield")
        if perturbation is not None:
            current = perturbation(current, ids[chunk])
        for k, setting in enumerate(settings):
            out[k][chunk] = cell_scores(images(method, current, setup, setting),
                                        setup["label_shape"], OVERSAMPLE)
    return out


def search(method: str, index: ShardIndex, ids: np.ndarray, boxes: np.ndarray,
           masks: np.ndarray, setup: dict, grid: dict, box_rule: str) -> dict:
    """The grid search on `ids` (step 2 of the module docstring); masks are boxed by the
    labels' `box_rule`."""
    settings = image_settings(method, grid)
    results = []
    for setting, scores in zip(settings, scores_for(method, index, ids, setup, settings)):
        chosen = choose_mask_thresholds(scores, masks, boxes, grid["alpha"], box_rule)
        best = int(np.argmax(chosen["val_box_IoU"]))
        results.append({**setting, "alpha_box": chosen["box"], "alpha_pixel": chosen["pixel"],
                        "box_IoU": chosen["val_box_IoU"][best],
                        "pixel_IoU": max(chosen["val_pixel_IoU"])})
    best = max(results, key=lambda r: r["box_IoU"])  # first best on ties
    return {"best": best, "results": results}


def chosen_from(path: str | os.PathLike, method: str) -> tuple[dict, dict, float]:
    """`(best, search, seconds)` of an earlier run of `method` from its metrics.json:
    the chosen hyperparameters (image keys, `alpha_box`, `alpha_pixel`), where and on how
    many samples they were chosen, and the search time [s]."""
    found = read_chosen(path, "hyperparameters")
    if found.get("method") != method:
        raise DataError(f"metrics file {path} is of method {found.get('method')!r}, not {method!r}")
    best = found["hyperparameters"]
    missing = [k for k in (*IMAGE_KEYS[method], "alpha_box", "alpha_pixel") if k not in best]
    if missing:
        raise DataError(f"metrics file {path}: hyperparameters lack {missing}")
    search = found.get("search") if isinstance(found.get("search"), dict) else {}
    return (best, {"from": str(path), "subset": search.get("subset"),
                   "count": search.get("count")},
            float(found.get("training_seconds") or 0.0))


def _finite_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


GRID_VALUES = {  # key: (what it takes, the test of one value)
    "beta": ("finite numbers > 1", lambda v: _finite_number(v) and v > 1),
    "alpha": ("finite numbers in (0, 1]", lambda v: _finite_number(v) and 0 < v <= 1),
    "t_max": ("finite times > 0 [s]", lambda v: _finite_number(v) and v > 0),
    "speed": ('"p" or "s"', lambda v: v in ("p", "s")),
}


def full_grid(method: str, grid: dict) -> dict:
    """The search grid of `method`: its default grid with the keys of `grid` replaced;
    ValueError naming a key `method` does not have, a key that is not a non-empty list, or
    a value out of range (e.g. a speed other than "p" or "s", a NaN)."""
    unknown = set(grid) - set(DEFAULT_GRIDS[method])
    if unknown:
        raise ValueError(f"{method} has no hyperparameter(s) {sorted(unknown)}; "
                         f"its grid keys are {sorted(DEFAULT_GRIDS[method])}")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ValueError(f"--grid {key!r} must be a non-empty list, got {values!r}")
        allowed, ok = GRID_VALUES[key]
        bad = [v for v in values if not ok(v)]
        if bad:
            raise ValueError(f"--grid {key!r}: {bad} out of range; {key} takes {allowed}")
    return {**DEFAULT_GRIDS[method], **grid}


def run_baseline(method: str, data: Sequence[str], labels: Sequence[str], split: str,
                 pristine: str | os.PathLike, out_dir: str | os.PathLike,
                 subset: str = "test", search_subset: str = "val",
                 thresholds: Sequence[float] = metrics.DEFAULT_SIZE_THRESHOLDS,
                 grid: dict | None = None, name: str | None = None,
                 from_metrics: str | os.PathLike | None = None,
                 perturbation: Perturbation | None = None,
                 allow_setup_change: Sequence[str] = ()) -> dict:
    """Choose the hyperparameters of `method` on `search_subset` (or take them from the
    metrics.json `from_metrics`), score `subset`, write the evaluation files to `out_dir`;
    return the metrics dict.

    Robustness (docs/robustness.md): `perturbation` changes the wavefields of `subset`
    (not the pristine reference) before imaging; `allow_setup_change` lets shards whose
    set-up differs from the pristine reference's in those paths only be scored, imaged
    with the reference's plate (its wave speeds). Both need `from_metrics`: nothing is
    chosen on such data."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if from_metrics is not None and grid:
        raise DataError("give either a search grid or --from-metrics, not both")
    if (perturbation is not None or allow_setup_change) and from_metrics is None:
        raise DataError("nothing is chosen on perturbed data or another set-up: give the "
                        "hyperparameters with --from-metrics (the clean evaluation's "
                        "metrics.json)")
    grid = full_grid(method, grid or {})
    label_set = load_labels(labels)
    split_dict = read_split(split, label_set)
    index = ShardIndex.build(data)
    index.check_labels(label_set)
    setup = read_setup(index, pristine, allow_setup_change)
    if perturbation is not None:
        perturbation.check(index.wave_shape)
    ids = box_samples(split_dict, subset, label_set)
    if from_metrics is not None:
        best, searched, search_seconds = chosen_from(from_metrics, method)
        val_ids = np.empty(0, np.int64)
    else:
        val_ids = box_samples(split_dict, search_subset, label_set)
    if len(ids) == 0 or (from_metrics is None and len(val_ids) == 0):
        raise DataError(f"split {split}: subsets {search_subset!r} ({len(val_ids)}) and "
                        f"{subset!r} ({len(ids)}) both need samples with a crack")
    if from_metrics is None:
        tic = time.perf_counter()
        found = search(method, index, val_ids, label_set.box[label_set.rows(val_ids)],
                       read_samples(index, val_ids, "crack_mask"), setup, grid,
                       label_set.box_rule)
        search_seconds = time.perf_counter() - tic
        best = found["best"]
        searched = {"subset": search_subset, "count": int(len(val_ids)), "grid": grid,
                    "results": found["results"]}
    setting = {k: best[k] for k in IMAGE_KEYS[method]}

    tic = time.perf_counter()
    scores = scores_for(method, index, ids, setup, [setting], perturbation)[0]
    boxes = predicted_mask_boxes(scores >= best["alpha_box"], label_set.box_rule)
    seconds = time.perf_counter() - tic
    rows = label_set.rows(ids)
    preds = predictions_dataset(ids, boxes, label_set.box[rows], label_set.crack_size[rows],
                                label_set.n_cracks[rows])
    true_masks = read_samples(index, ids, "crack_mask")
    preds, pixel = mask_scores(preds, scores, true_masks,
                               {"box": best["alpha_box"], "pixel": best["alpha_pixel"],
                                "chosen_on": searched.get("subset") or search_subset})
    preds["pred_mask_prob"].attrs["long_name"] = ("brightest image pixel in the cell / image "
                                                  "maximum (not a probability)")
    info = {
        "arch": name or method, "method": method, "target": "image",
        "hyperparameters": {**setting, "alpha_box": best["alpha_box"],
                            "alpha_pixel": best["alpha_pixel"]},
        "search": searched, "box_rule": label_set.box_rule,
        "geometry": {k: (v.tolist() if isinstance(v, np.ndarray) else v)
                     for k, v in setup["geometry"].items()},
        "params": {"trainable": 0, "non_trainable": 0, "total": 0}, "epochs": 0,
        "training_seconds": search_seconds,
    }
    result = {**summarise(preds, info, subset, len(split_dict[subset]), seconds), **pixel,
              "split": str(split), "device": "cpu",
              **condition_info(perturbation, allow_setup_change, setup["changes"],
                               index.setup_hash)}
    return write_evaluation(out_dir, preds, result, true_masks, thresholds, name or method,
                            history_csv=None)
