"""Scoring a crack-set model (`target = "cracks"`, model/nets/crackset.py): its decoded cracks
against the per-crack labels, by `model.detection` and `model.calibration`.

Inputs, for N samples: `decoded` (`model.nets.crackset.decode_cracks`: `score` `(N, K)`,
`box` `(N, K, 4)`, `ends` `(N, K, 2, 2)`, `box_sigma`, `end_sigma`, plate fractions, NaN
slots), the targets `(N, C, 8)` (`model.crack_labels.crack_targets`: true box and end points,
plate fractions, NaN rows) and the plate size [m] for outlines in metres.

- `score_threshold` decides which predictions count as detections; evaluation chooses it on
  the validation subset (`choose_score_threshold`: the best F1 at IoU 0.5, grid 0.05..0.95;
  first best on ties), or takes it from an earlier evaluation's metrics.json.
- Calibration is measured on the Hungarian-matched pairs (`model.detection.crack_matches`)
  of detections and true cracks: the box corners, and the end points under the pairing of
  predicted to true ends with the smaller summed distance (the same choice as
  `model.detection.endpoint_error`), each end's x and y pooled over both ends.
- The predicted standard deviations are rescaled after training, one factor for the box
  corners and one for the end coordinates (`sigma_scales`): the factor that makes the 90 %
  central intervals cover 90 % of the matched validation pairs (split-conformal
  calibration: the log-variance head learns the training residual, which on 168 plates is
  far below the error on new plates). Evaluation chooses them on the validation subset
  with the threshold, or takes them from an earlier evaluation's metrics.json.
- `boxes_of_ends`: a detection's box made from its end points as the labels box a crack
  from its vertices (the cells the straight crack touches, boxed by the labels' rule);
  `crackpoint.peeling` boxes its detections so once their end points are fitted.
- `union_boxes`: the box around a sample's detections, the single box every other model of
  this package predicts (zeros when nothing is detected), so a crack-set model also appears
  in the single-box tables (IoU, Table 1) beside them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from model.calibration import NOMINAL_LEVELS, central_z, coverage_report
from model.detection import (DEFAULT_SCORE_THRESHOLD, PlateMatches, count_table,
                             crack_matches, crack_size_table, detection_intervals,
                             detection_scores, greedy_flags, plate_matches)
from model.cracks import cell_ranges
from model.io import DataError
from model.keypoints import BOX_COORDS, cell_boxes
from model.metrics import DEFAULT_SIZE_THRESHOLDS
from model.nets.crackset import decode_cracks
from model.novelty import novelty_variables, withdraw_intervals

SCORE_THRESHOLDS = tuple(np.round(np.arange(0.05, 0.951, 0.05), 2).tolist())
COVERAGE_NAMES = (*BOX_COORDS, "end_x", "end_y")


def decode_for(model, raw: np.ndarray) -> dict[str, np.ndarray]:
    """`decode_cracks` of raw maps `(N, 17, H, W)` with `model`'s `max_cracks`, `min_score`."""
    return decode_cracks(raw, model.config.max_cracks, model.config.min_score)


def matched_iou(model, raw: np.ndarray, targets: np.ndarray,
                score_threshold: float = DEFAULT_SCORE_THRESHOLD) -> float:
    """Mean matched IoU of the true cracks of `targets` `(N, C, 8)` (0 for a missed crack)
    with `model`'s detections from `raw`; NaN when no sample has a crack."""
    decoded = decode_for(model, raw)
    _, iou = crack_matches(decoded["box"], decoded["score"], targets[..., :4], score_threshold)
    found = iou[np.isfinite(iou)]
    return float(found.mean()) if found.size else float("nan")


def choose_score_threshold(decoded: dict, targets: np.ndarray,
                           grid: Sequence[float] = SCORE_THRESHOLDS) -> dict:
    """The detection threshold of `grid` with the best F1 at IoU 0.5 (greedy matching) on
    `decoded` against `targets` (the validation subset); the F1 of every grid value."""
    f1 = []
    for t in grid:
        score = np.where(decoded["score"] >= t, decoded["score"], np.nan)
        tp, found = greedy_flags(decoded["box"], score, targets[..., :4], 0.5)
        n_pred, n_true = np.isfinite(score).sum(), np.isfinite(targets[..., 0]).sum()
        f1.append(float(2 * tp.sum() / (n_pred + n_true)) if n_pred + n_true else 0.0)
    return {"value": float(grid[int(np.argmax(f1))]), "chosen_on": "val", "grid": list(grid),
            "val_F1_50": f1}


def sigma_scales(decoded: dict, targets: np.ndarray, score_threshold: float,
                 level: float = 0.9) -> dict:
    """Factors `{"box": s, "ends": s}` for the predicted standard deviations such that the
    central intervals at `level` cover that fraction of the matched pairs of `decoded`
    against `targets` (the validation subset): the `level` quantile of `|error| / sigma`
    over the group's coordinates divided by `central_z(level)`; 1 for a group without
    pairs or whose quantile is 0 (errors that small: no width to calibrate). Also `level` and
    `pairs`."""
    slot, _ = crack_matches(decoded["box"], decoded["score"], targets[..., :4], score_threshold)
    errors = matched_errors(decoded, targets, slot)
    scales = {"level": float(level), "pairs": int(len(errors["box_error"]))}
    for group, key in (("box", "box"), ("ends", "end")):
        z = np.abs(errors[f"{key}_error"]) / errors[f"{key}_sigma"]
        factor = float(np.quantile(z, level) / central_z(level)) if z.size else 1.0
        scales[group] = factor if factor > 0 else 1.0
    return scales


def box_end_factors(scales) -> bool:
    """Whether `scales` holds a number for `box` and one for `ends` (as `sigma_scales`
    returns them)."""
    return isinstance(scales, dict) and all(isinstance(scales.get(k), (int, float))
                                            for k in ("box", "ends"))


def chosen_scoring(metrics: dict, source: str) -> tuple[float, dict]:
    """The detection threshold and `sigma_scale` an earlier crack-set evaluation chose, from
    its metrics.json read as `metrics`; DataError naming `source` when either is missing."""
    given, scales = metrics.get("score_threshold"), metrics.get("sigma_scale")
    if not (isinstance(given, (int, float)) and box_end_factors(scales)):
        raise DataError(f"{source} lacks the number 'score_threshold' and the numbers "
                        "'sigma_scale.box', 'sigma_scale.ends' of a crack-set evaluation")
    return float(given), scales


def scale_sigmas(decoded: dict, scales: dict) -> dict:
    """`decoded` with `box_sigma` and `end_sigma` multiplied by `scales["box"]`,
    `scales["ends"]` (`sigma_scales`)."""
    return {**decoded, "box_sigma": decoded["box_sigma"] * scales["box"],
            "end_sigma": decoded["end_sigma"] * scales["ends"]}


def union_boxes(decoded: dict, score_threshold: float) -> np.ndarray:
    """`(N, 4)` box around each sample's detections (`score >= score_threshold`); zeros for
    a sample with none (a zero-area box, as an empty predicted mask gives)."""
    kept = decoded["score"] >= score_threshold                                   # (N, K)
    box = decoded["box"]
    lo = np.where(kept[..., None], box[..., :2], np.inf).min(axis=1)
    hi = np.where(kept[..., None], box[..., 2:], -np.inf).max(axis=1)
    out = np.concatenate([lo, hi], axis=1)
    out[~kept.any(axis=1)] = 0.0
    return out


def boxes_of_ends(ends: np.ndarray, plate: Sequence[float], grid: Sequence[int],
                  rule: str) -> np.ndarray:
    """Boxes `(..., 4)` (plate fractions) of straight cracks between end points `(..., 2, 2)`
    [m] on a plate `plate` = (width, height) [m] under a `grid` = (cells along x, along y)
    label grid: the cells the crack touches (`model.cracks.cell_ranges`) boxed by the labels'
    `rule` (`model.keypoints.cell_boxes`), as the labels box a crack; NaN where an end is."""
    ends = np.asarray(ends, np.float64)
    ranges = cell_ranges(ends, float(plate[0]), float(plate[1]), int(grid[0]), int(grid[1]))
    boxes = cell_boxes(ranges, int(grid[0]), int(grid[1]), rule)
    return np.where(np.isfinite(ends).all(axis=(-1, -2))[..., None], boxes, np.nan)


def matched_errors(decoded: dict, targets: np.ndarray, slot: np.ndarray) -> dict:
    """Errors (prediction - truth) and predicted standard deviations of the matched pairs
    (`slot` `(N, C)` from `crack_matches`), plate fractions: `box_error`, `box_sigma` `(M, 4)`;
    `end_error`, `end_sigma` `(2M, 2)` (each end's x, y; ends paired as in the module
    docstring)."""
    s, c = np.nonzero(slot >= 0)
    k = slot[s, c]
    box_error = decoded["box"][s, k] - targets[s, c, :4]
    pred_ends, true_ends = decoded["ends"][s, k], targets[s, c, 4:].reshape(-1, 2, 2)
    sigma = decoded["end_sigma"][s, k]                                           # (M, 2, 2)
    same = np.linalg.norm(pred_ends - true_ends, axis=-1).sum(-1)
    swapped = np.linalg.norm(pred_ends - true_ends[:, ::-1], axis=-1).sum(-1)
    true_ends = np.where((swapped < same)[:, None, None], true_ends[:, ::-1], true_ends)
    return {"box_error": box_error, "box_sigma": decoded["box_sigma"][s, k],
            "end_error": (pred_ends - true_ends).reshape(-1, 2), "end_sigma": sigma.reshape(-1, 2),
            "plate": s}


def crack_scores(decoded: dict, targets: np.ndarray, true_outline: np.ndarray,
                 crack_length: np.ndarray, plate: tuple[float, float], score_threshold: float,
                 size_thresholds: Sequence[float] = DEFAULT_SIZE_THRESHOLDS,
                 levels: Sequence[float] = NOMINAL_LEVELS,
                 sigma_scale: dict | None = None,
                 novel: np.ndarray | None = None) -> tuple[dict, dict]:
    """Every score of a crack-set model on N samples, JSON-able (NaN as None), and the
    matched pairs' errors and standard deviations in metres (`box_error`, `box_sigma`
    `(M, 4)`, `end_error`, `end_sigma` `(2M, 2)`, for the reliability diagram). The scores:
    `detection` (`model.detection.detection_scores`, outline errors in metres from the two
    end points), `detection_interval` (95 % bootstrap intervals over samples of its main
    metrics, `model.detection.detection_intervals`), `detection_by_count`,
    `detection_by_size` (its tables; sizes are each crack's own length [m] above each
    threshold), and `calibration` (`coverage_report` of the box corners and end coordinates
    of the matched pairs, with the plate-bootstrap interval of the pooled coverage and
    `mean_sigma_m`, the mean predicted standard deviation per coordinate [m]). With
    `sigma_scale` (`sigma_scales`) the standard deviations are rescaled by it (`scale_sigmas`)
    for `calibration` and the returned errors, and `calibration_unscaled` holds the coverage
    of the decoded ones: the detection scores do not depend on the standard deviations, so
    they are computed once.
    With `novel` `(N,)` (plates far from the training data, `model.novelty`),
    `calibration_novelty` holds the coverage when those plates' intervals are withdrawn
    (`withdraw_intervals`: they cover any truth) and `pairs_on_novel_plates` how many
    matched pairs that concerns."""
    pred_outline = decoded["ends"] * np.asarray(plate)                            # (N, K, 2, 2) m
    matches = plate_matches(decoded["box"], decoded["score"], targets[..., :4], score_threshold,
                            pred_outline, true_outline)
    slot = matches.slot
    scale = np.tile(np.asarray(plate, np.float64), 2)                            # x, y, x, y
    errors = matched_errors(decoded, targets, slot)
    scores = {
        "score_threshold": score_threshold,
        "detection": detection_scores(matches),
        "detection_interval": detection_intervals(matches),
        "detection_by_count": count_table(matches),
        "detection_by_size": crack_size_table(matches, crack_length, size_thresholds),
    }
    if sigma_scale is not None:
        scores["calibration_unscaled"] = _calibration(errors, scale, levels)[0]
        decoded = scale_sigmas(decoded, sigma_scale)
        errors = matched_errors(decoded, targets, slot)
    scores["calibration"], in_metres = _calibration(errors, scale, levels)
    if novel is not None:
        withdrawn = matched_errors(withdraw_intervals(decoded, novel), targets, slot)
        cover = _calibration(withdrawn, scale, levels)[0]
        scores["calibration_novelty"] = {
            "box": cover["box"], "ends": cover["ends"],
            "pairs_on_novel_plates": int(np.isinf(withdrawn["box_sigma"][:, 0]).sum())}
    return _json_safe(scores), in_metres


def _calibration(errors: dict, scale: np.ndarray, levels: Sequence[float]) -> tuple[dict, dict]:
    """`calibration` of `crack_scores` from `matched_errors` (plate fractions) and the plate
    size per box coordinate `scale` [m]; and those errors and deviations in metres."""
    box_err, box_sig = errors["box_error"] * scale, errors["box_sigma"] * scale
    end_err, end_sig = errors["end_error"] * scale[:2], errors["end_sigma"] * scale[:2]
    plate = errors["plate"]
    calibration = {
        "box": coverage_report(box_err, box_sig, BOX_COORDS, levels, plate),
        "ends": coverage_report(end_err, end_sig, ("end_x", "end_y"), levels,
                                np.repeat(plate, 2)),
        "mean_sigma_m": {**dict(zip(BOX_COORDS, _column_means(box_sig))),
                         **dict(zip(("end_x", "end_y"), _column_means(end_sig)))},
    }
    return calibration, {"box_error": box_err, "box_sigma": box_sig, "end_error": end_err,
                         "end_sigma": end_sig}


def _column_means(values: np.ndarray) -> list[float]:
    return (values.mean(axis=0) if len(values) else np.full(values.shape[1], np.nan)).tolist()


def _json_safe(value):
    """NaN and inf as None, numpy scalars as Python numbers, recursively."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def crack_predictions_dataset(sample: np.ndarray, decoded: dict, targets: np.ndarray,
                              plate: tuple[float, float], score_threshold: float,
                              distance: np.ndarray | None = None,
                              novel: np.ndarray | None = None) -> xr.Dataset:
    """The decoded cracks of `sample` `(N,)` as a Dataset: `score`, `detected` `(sample, slot)`,
    `pred_box`, `pred_box_sigma` `(sample, slot, coord)` (plate fractions), `pred_ends`,
    `pred_ends_sigma` `(sample, slot, end, xy)` [m], and the true `true_box`, `true_ends`
    `(sample, crack, ...)` alike; NaN pads empty slots and rows. With `distance` and `novel`
    `(N,)` (`model.novelty`), those two per-sample variables too."""
    plate = np.asarray(plate, np.float64)
    n, k = decoded["score"].shape
    frac = {"units": "1", "comment": "xmin, ymin, xmax, ymax as plate fractions"}
    metres = {"units": "m", "comment": "from the plate's lower-left corner"}
    true_ends = targets[..., 4:].reshape(n, -1, 2, 2) * plate
    per_sample = {} if distance is None else novelty_variables(distance, novel)
    return xr.Dataset(
        {
            "score": (("sample", "slot"), decoded["score"], {"units": "1",
                      "long_name": "crack confidence (heatmap peak)"}),
            "detected": (("sample", "slot"), decoded["score"] >= score_threshold,
                         {"long_name": f"score >= {score_threshold}"}),
            "pred_box": (("sample", "slot", "coord"), decoded["box"], frac),
            "pred_box_sigma": (("sample", "slot", "coord"), decoded["box_sigma"],
                               {**frac, "long_name": "predicted standard deviation"}),
            "pred_ends": (("sample", "slot", "end", "xy"), decoded["ends"] * plate, metres),
            "pred_ends_sigma": (("sample", "slot", "end", "xy"), decoded["end_sigma"] * plate,
                                {"units": "m", "long_name": "predicted standard deviation"}),
            "true_box": (("sample", "crack", "coord"), targets[..., :4].astype(np.float64), frac),
            "true_ends": (("sample", "crack", "end", "xy"), true_ends.astype(np.float64), metres),
            **per_sample,
        },
        coords={"sample": ("sample", np.asarray(sample, np.int64)),
                "coord": ("coord", list(BOX_COORDS)), "xy": ("xy", ["x", "y"])},
        attrs={"Conventions": "CF-1.10", "title": "crackpoint crack-set predictions",
               "source": "python -m model evaluate", "score_threshold": score_threshold,
               "max_cracks": k},
    )


def prediction_matches(folder) -> tuple[np.ndarray, PlateMatches]:
    """`(sample (N,), PlateMatches)` of an evaluation folder's crack_predictions.nc (the
    `crack_predictions_dataset` that `python -m model evaluate` writes), matched at its own
    score threshold, outlines from the end points: the detection scores of an earlier
    evaluation, re-derived without its model (e.g. a metric added since)."""
    path = Path(folder) / "crack_predictions.nc"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (a crack-set evaluate folder)")
    with xr.open_dataset(path) as ds:
        return ds["sample"].values, plate_matches(
            ds["pred_box"].values, ds["score"].values, ds["true_box"].values,
            float(ds.attrs["score_threshold"]), ds["pred_ends"].values, ds["true_ends"].values)


def detection_markdown(scores: dict, title: str) -> str:
    """The detection tables (by crack count, by crack size) and the coverage as Markdown."""
    def cell(v, fmt=".3f"):
        return "–" if v is None else format(v, fmt)

    def mm(v):
        return cell(None if v is None else 1e3 * v, ".2f")

    lines = [f"**{title}**", "", "| cracks per sample | samples | cracks | AP@0.5 | AP@0.5:0.95 "
             "| count accuracy | false alarms | matched IoU | end-point error [mm] |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in [*scores["detection_by_count"], {"n_cracks": "all", **scores["detection"]}]:
        lines.append(f"| {row['n_cracks']} | {row['samples']} | {row['cracks']} | "
                     f"{cell(row['AP50'])} | {cell(row['AP50_95'])} | "
                     f"{cell(row['count_accuracy'])} | {cell(row['false_alarm_rate'])} | "
                     f"{cell(row['matched_IoU'])} | {mm(row.get('endpoint_error_m'))} |")
    interval = scores.get("detection_interval")
    if interval:
        names = {"AP50": "AP@0.5", "AP50_95": "AP@0.5:0.95", "count_accuracy": "count accuracy",
                 "false_alarm_rate": "false alarms", "matched_IoU": "matched IoU"}
        parts = [f"{label} [{cell(interval[key][0])}, {cell(interval[key][1])}]"
                 for key, label in names.items() if key in interval]
        # no event resamples to [0, 0]; the rule of three bounds the rate instead
        uncracked = sum(r["samples"] for r in scores["detection_by_count"] if r["n_cracks"] == 0)
        if scores["detection"]["false_alarm_rate"] == 0 and uncracked:
            parts.append(f"no false alarm on {uncracked} uncracked plates: at most "
                         f"{3 / uncracked:.3f} at 95 % (rule of three)")
        if "endpoint_error_m" in interval:
            lo, hi = interval["endpoint_error_m"]
            parts.append(f"end-point error [{mm(lo)}, {mm(hi)}] mm")
        lines += ["", "95 % bootstrap intervals over the samples (all): " + "; ".join(parts)
                  + "."]
        cracked = interval.get("count_accuracy_cracked")
        if cracked:
            lines += ["", "Count accuracy on the cracked plates only (issue 10's target; the "
                      "uncracked ones are the false alarms): "
                      f"{cell(scores['detection']['count_accuracy_cracked'])} "
                      f"[{cell(cracked[0])}, {cell(cracked[1])}]."]
    lines += ["", "| crack length > [mm] | cracks | recall@0.5 | matched IoU "
              "| end-point error [mm] |", "|---:|---:|---:|---:|---:|"]
    for row in scores["detection_by_size"]:
        lines.append(f"| {1e3 * row['threshold']:g} | {row['cracks']} | "
                     f"{cell(row['recall50'])} | {cell(row['matched_IoU'])} | "
                     f"{mm(row.get('endpoint_error_m'))} |")
    cal = scores["calibration"]
    levels = [f"{q:g}" for q in cal["box"]["levels"]]
    novelty, withdrawn = scores.get("novelty"), scores.get("calibration_novelty")
    if novelty:
        far = novelty["threshold"]
        cover = [f"{part} {cell(withdrawn[part]['coverage']['all'].get('0.9'))}"
                 for part in ("box", "ends")]
        lines += ["", f"Distance to the training plates: {novelty['novel']} of "
                  f"{novelty['plates']} plates are novel (Mahalanobis distance above "
                  f"{far['value']:.2f}, the {far['level']:.0%} quantile on validation; "
                  f"median distance {novelty['median_distance']:.2f}). With their intervals "
                  f"withdrawn the 90 % intervals cover: " + ", ".join(cover) + "."]
    lines += ["", "| coordinate | pairs | " + " | ".join(f"{float(q):.0%} interval covers"
                                                       for q in levels) + " |",
              "|---|---:|" + "---:|" * len(levels)]

    def covers(part: str, name: str, q: str) -> str:
        text = cell(cal[part]["coverage"][name][q])
        interval = cal[part].get("interval_all", {}).get(q) if name == "all" else None
        return text + (f" [{cell(interval[0])}, {cell(interval[1])}]" if interval else "")

    for part in ("box", "ends"):
        for name in cal[part]["coverage"]:
            label = f"{part}: {name}" if name == "all" else name
            lines.append(f"| {label} | {cal[part]['pairs']} | "
                         + " | ".join(covers(part, name, q) for q in levels) + " |")
    if any("interval_all" in cal[part] for part in ("box", "ends")):
        lines += ["", "[lo, hi]: 95 % bootstrap interval over the plates."]
    return "\n".join(lines) + "\n"
