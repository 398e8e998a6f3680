"""`python -m model evaluate`: score a checkpoint on a split subset.

Predicts the subset (and, for a mask model, the validation subset its thresholds are chosen
on, unless they are fixed or taken from `from_metrics`), then writes predictions.nc,
metrics.json, table1.csv/md and figures through `model.scoring`, which describes them.

Crack-set models (`target = "cracks"`) are scored on every sample of the subset, uncracked
plates included (`evaluate_cracks`): the detection metrics, tables and calibration of
`model.crackset_scoring` go to metrics.json (`detection`, `detection_by_count`,
`detection_by_size`, `calibration` (of the intervals rescaled on validation, `sigma_scale`;
`calibration_unscaled` as the network gives them), `score_threshold`), detection.md,
crack_predictions.nc, figures/cracks_*.png and figures/reliability.png; the box around each
sample's detections is scored like any other model's box (predictions.nc, Table 1, the
comparison tables).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from model import metrics, plots
from model.calibration import RELIABILITY_LEVELS, central_z, interval_coverage
from model.checkpoint import check_setup, load_checkpoint, model_from_checkpoint
from model.data import (Labels, ShardIndex, WavefieldDataset, box_samples, load_labels,
                        read_samples, read_split, target_samples)
from model.inference import make_loader, predict, predict_embedded, resolve_device
from model.crack_labels import crack_targets, load_crack_labels, plate_size
from model.crackset_scoring import (choose_score_threshold, chosen_scoring,
                                    crack_predictions_dataset,
                                    crack_scores, decode_for, detection_markdown, scale_sigmas,
                                    sigma_scales, union_boxes)
from model.io import DataError, write_netcdf_atomic, write_text_atomic
from model.keypoints import predicted_mask_boxes
from model.novelty import (choose_distance_threshold, given_threshold, mahalanobis,
                           novel_plates, novelty_report)
from model.perturb import Perturbation
from model.scoring import (choose_mask_thresholds, condition_info, mask_scores,
                           mask_thresholds_from, predictions_dataset, read_chosen, sigmoid,
                           summarise, write_evaluation)

PASS_MARKS = {2: "peeled", 3: "solver"}   # `crackpoint.peeling`'s later passes, in figures


def checkpoint_info(state: dict, checkpoint: Path) -> dict:
    """What metrics.json says about a trained model: name, target, size and training cost."""
    return {
        "arch": state["arch"], "target": state.get("target", "box"),
        "checkpoint": str(checkpoint), "params": state["params"], "epochs": state["epoch"],
        "training_seconds": float(sum(r["seconds"] for r in state["history"])),
        "huber_delta": state["config"].get("huber_delta", 1.0),
    }


def _predict_subset(model, index: ShardIndex, ids: np.ndarray, label_set: Labels, state: dict,
                    batch_size: int, workers: int, device,
                    perturbation: Perturbation | None = None, embedded: bool = False):
    """Raw model output for `ids` (their wavefields perturbed by `perturbation` before the
    checkpoint's conditioning) and the seconds it took; with `embedded`, the output is
    `(raw, embedding)` (`model.inference.predict_embedded`)."""
    reference = None if state["reference"] is None else state["reference"].numpy()
    dataset = WavefieldDataset(index, ids, label_set, state["stats"], reference,
                               perturb=perturbation)
    try:
        tic = time.perf_counter()
        loader = make_loader(dataset, batch_size, workers, device)
        out = (predict_embedded if embedded else predict)(model, loader, device)
        return out, time.perf_counter() - tic
    finally:
        dataset.close()


def evaluate(data: list[str], labels: list[str], split: str, checkpoint: str | os.PathLike,
             out_dir: str | os.PathLike, subset: str = "test",
             thresholds: Sequence[float] = metrics.DEFAULT_SIZE_THRESHOLDS,
             batch_size: int = 32, device: str = "auto", workers: int = 0,
             mask_threshold: float | None = None,
             from_metrics: str | os.PathLike | None = None,
             perturbation: Perturbation | None = None,
             allow_setup_change: Sequence[str] = ()) -> dict:
    """Write all evaluation outputs for `checkpoint` on `subset`; return the metrics dict.

    Mask models only: `mask_threshold` fixes both thresholds instead of choosing them on
    `val`; `from_metrics` (a metrics.json of the same architecture, e.g. the main split's
    results/eval/NAME/metrics.json) takes the thresholds that evaluation chose. Box models
    choose nothing; for them `from_metrics` is only checked to be of the same architecture.

    Robustness (docs/robustness.md): `perturbation` changes every raw wavefield before the
    checkpoint's conditioning (model.perturb); `allow_setup_change` lets shards whose set-up
    differs from the checkpoint's in those paths only (e.g. `plate.youngs_modulus`) be
    scored. Both are recorded in metrics.json (`scoring.condition_info`), and a mask model
    then needs its thresholds given: nothing is chosen on such data.
    """
    if mask_threshold is not None and from_metrics is not None:
        raise DataError("give either a fixed mask threshold or --from-metrics, not both")
    checkpoint = Path(checkpoint)
    state = load_checkpoint(checkpoint)
    torch_device = resolve_device(device)
    model = model_from_checkpoint(state, source=checkpoint).to(torch_device)
    target = state.get("target", "box")
    if ((perturbation is not None or allow_setup_change) and target in ("mask", "cracks")
            and from_metrics is None and mask_threshold is None):
        raise DataError("nothing is chosen on perturbed data or another set-up: give the mask "
                        "or detection thresholds with --from-metrics (the clean evaluation's "
                        "metrics.json) or, for a mask model, --mask-threshold")
    if from_metrics is not None:  # checked before any prediction
        given = (mask_thresholds_from(from_metrics, state["arch"]) if target == "mask"
                 else read_chosen(from_metrics))
        if given.get("arch", state["arch"]) != state["arch"]:
            raise DataError(f"metrics file {from_metrics} is of arch {given.get('arch')!r}, "
                            f"the checkpoint of {state['arch']!r}")
    label_set = load_labels(labels)
    split_dict = read_split(split, label_set)
    index = ShardIndex.build(data)
    index.check_labels(label_set)
    changes = check_setup(state, index.setup_hash, index.setup, f"shard {index.paths[0]}",
                          checkpoint, allow_setup_change)
    if perturbation is not None:
        perturbation.check(index.wave_shape)
    info = checkpoint_info(state, checkpoint)
    if target == "cracks":
        extra = {"split": str(split), "device": str(torch_device),
                 **condition_info(perturbation, allow_setup_change, changes, index.setup_hash)}
        return evaluate_cracks(model, state, index, label_set, split_dict, subset, out_dir,
                               thresholds, info, extra, batch_size, workers, torch_device,
                               given if from_metrics is not None else None, perturbation,
                               checkpoint.parent / "history.csv")
    ids = box_samples(split_dict, subset, label_set)
    if len(ids) == 0:
        raise DataError(f"split {split}: subset {subset!r} has no sample with a crack to score")

    raw, seconds = _predict_subset(model, index, ids, label_set, state, batch_size, workers,
                                   torch_device, perturbation)
    true_masks = read_samples(index, ids, "crack_mask")
    rows = label_set.rows(ids)
    if target == "mask":
        box_rule = label_set.box_rule   # the mask's box follows the labels' rule
        val_ids = box_samples(split_dict, "val", label_set)
        if from_metrics is not None:
            chosen = given
        elif mask_threshold is not None or len(val_ids) == 0:
            t = 0.5 if mask_threshold is None else float(mask_threshold)
            chosen = {"box": t, "pixel": t, "chosen_on": "fixed"}
        else:
            val_raw, _ = _predict_subset(model, index, val_ids, label_set, state, batch_size,
                                         workers, torch_device)
            chosen = choose_mask_thresholds(sigmoid(val_raw), read_samples(index, val_ids, "crack_mask"),
                                            label_set.box[label_set.rows(val_ids)],
                                            box_rule=box_rule)
        pred_raw = predicted_mask_boxes(sigmoid(raw) >= chosen["box"], box_rule)
    else:
        pred_raw = raw
    preds = predictions_dataset(ids, pred_raw, label_set.box[rows], label_set.crack_size[rows],
                                label_set.n_cracks[rows])
    extra = {}
    if target == "mask":
        preds, extra = mask_scores(preds, sigmoid(raw), true_masks, chosen)
    result = {**summarise(preds, info, subset, len(split_dict[subset]), seconds), **extra,
              "split": str(split), "device": str(torch_device),
              **condition_info(perturbation, allow_setup_change, changes, index.setup_hash)}
    return write_evaluation(out_dir, preds, result, true_masks, thresholds, state["arch"],
                            checkpoint.parent / "history.csv")


def evaluate_cracks(model, state: dict, index: ShardIndex, label_set: Labels, split_dict: dict,
                    subset: str, out_dir: str | os.PathLike, thresholds: Sequence[float],
                    info: dict, extra: dict, batch_size: int, workers: int, device,
                    chosen: dict | None, perturbation: Perturbation | None,
                    history_csv: Path) -> dict:
    """`evaluate` for a crack-set checkpoint (module docstring) on every sample of `subset`:
    the detection threshold and the standard-deviation scales (`sigma_scale`,
    `model.crackset_scoring.sigma_scales`) come from `chosen` (an earlier evaluation's
    metrics.json) or are chosen on the validation subset; `extra` joins metrics.json, with
    the coverage of the unscaled intervals as `calibration_unscaled`. Returns the metrics."""
    ids = target_samples(split_dict, subset, label_set, "cracks")
    if len(ids) == 0:
        raise DataError(f"subset {subset!r} of the split has no sample to score")
    cracks = load_crack_labels(label_set.paths)
    plate = plate_size(index.paths[0])
    distribution = state.get("novelty")   # None: a checkpoint from before model.novelty
    (raw, embedding), seconds = _predict_subset(model, index, ids, label_set, state, batch_size,
                                                workers, device, perturbation, embedded=True)
    decoded = decode_for(model, raw)
    targets = crack_targets(cracks, ids, plate)
    if chosen is not None:
        given, scales = chosen_scoring(chosen, "the --from-metrics file")
        threshold = {"value": given, "chosen_on": "from_metrics"}
        scales = {**scales, "chosen_on": "from_metrics"}
        far = given_threshold(chosen)
        if distribution is not None and far is None:
            raise DataError("the --from-metrics file lacks the number 'novelty_threshold.value' "
                            "its checkpoint's training distribution needs: evaluate the main "
                            "split again with this code")
        far = None if distribution is None else {**far, "chosen_on": "from_metrics"}
    else:
        val_ids = target_samples(split_dict, "val", label_set, "cracks")
        if len(val_ids) == 0:
            raise DataError("the split's val subset is empty: nothing to choose the detection "
                            "threshold on")
        (val_raw, val_embedding), _ = _predict_subset(model, index, val_ids, label_set, state,
                                                      batch_size, workers, device, embedded=True)
        val_decoded, val_targets = decode_for(model, val_raw), crack_targets(cracks, val_ids,
                                                                             plate)
        threshold = choose_score_threshold(val_decoded, val_targets)
        scales = {**sigma_scales(val_decoded, val_targets, threshold["value"]), "chosen_on": "val"}
        far = (None if distribution is None else
               choose_distance_threshold(mahalanobis(val_embedding, distribution)))
    t = threshold["value"]
    rows = cracks.labels.rows(ids)
    distance = None if distribution is None else mahalanobis(embedding, distribution)
    novel = None if distance is None else novel_plates(distance, far)
    scores, errors = crack_scores(decoded, targets, cracks.outline[rows], cracks.length[rows],
                                  plate, t, thresholds, sigma_scale=scales, novel=novel)
    scores["sigma_scale"] = scales
    scores["novelty_threshold"] = far
    scores["novelty"] = (None if distance is None else
                         novelty_report(distance, far, cracks.labels.n_cracks[rows] > 0))
    decoded = scale_sigmas(decoded, scales)
    boxed = label_set.has_crack[label_set.rows(ids)]  # the single-box part: cracked samples
    box_ids, box_rows = ids[boxed], label_set.rows(ids[boxed])
    preds = predictions_dataset(box_ids, union_boxes(decoded, t)[boxed], label_set.box[box_rows],
                                label_set.crack_size[box_rows], label_set.n_cracks[box_rows])
    result = {**summarise(preds, info, subset, len(ids), seconds), **scores,
              "score_threshold_choice": threshold, "samples_scored": int(len(ids)),
              "inference_samples_per_s": len(ids) / seconds if seconds > 0 else float("inf"),
              **extra}
    out_dir = Path(out_dir)
    result = write_evaluation(out_dir, preds, result, read_samples(index, box_ids, "crack_mask"),
                              thresholds, state["arch"], history_csv)
    write_netcdf_atomic(crack_predictions_dataset(ids, decoded, targets, plate, t, distance,
                                                  novel),
                        out_dir / "crack_predictions.nc")
    write_text_atomic(detection_markdown(scores, f"{state['arch']} on {subset} ({len(ids)} "
                                         f"samples, detection threshold {t:g})"),
                      out_dir / "detection.md")
    crack_figures(out_dir / "figures", ids, decoded, cracks, rows, plate, t, errors,
                   state["arch"], novel)
    return result


def crack_figures(fig_dir: Path, ids: np.ndarray, decoded: dict, cracks, rows: np.ndarray,
                  plate: tuple[float, float], threshold: float, errors: dict,
                  name: str, novel: np.ndarray | None,
                  passes: np.ndarray | None = None) -> None:
    """figures/cracks_{0..3}.png: up to four samples with that many true cracks each (the
    first in sample order) with their detections, a plate flagged by `novel` marked in its
    title, and with `passes` `(N, K)` (`crackpoint.peeling`: 1, 2 or 3 per slot) the
    detections of the second pass marked "peeled", those the solver check added "solver";
    figures/reliability.png."""
    z90 = central_z(0.9)
    n_true = cracks.labels.n_cracks[rows]
    for count in range(cracks.box.shape[1] + 1):
        picks = np.flatnonzero(n_true == count)[:4]
        if picks.size == 0:
            continue
        panels = []
        for i in picks:
            kept = decoded["score"][i] >= threshold
            flag = "\nnovel: far from training" if novel is not None and novel[i] else ""
            found_by = np.ones(kept.sum(), int) if passes is None else passes[i][kept]
            later = [f"{int(np.sum(found_by == p))} {mark}" for p, mark in PASS_MARKS.items()
                     if np.any(found_by == p)]
            found = f"{int(kept.sum())} found" + (f" ({', '.join(later)})" if later else "")
            panels.append({
                "title": f"sample {int(ids[i])}: {count} true, {found}{flag}",
                "marks": [f" {PASS_MARKS[p]}" if p in PASS_MARKS else "" for p in found_by],
                "true_box": cracks.box[rows[i]], "true_outline": cracks.outline[rows[i]],
                "box": decoded["box"][i][kept], "box_sigma": decoded["box_sigma"][i][kept],
                "ends": decoded["ends"][i][kept] * np.asarray(plate),
                "end_sigma": decoded["end_sigma"][i][kept] * np.asarray(plate),
                "score": decoded["score"][i][kept]})
        plots.plot_cracks(*plate, panels, fig_dir / f"cracks_{count}.png",
                          f"{name}: detections (red, score >= {threshold:g}, dotted: 90 % "
                          f"intervals) and true cracks (green)", z90)
    levels = np.asarray(RELIABILITY_LEVELS)
    observed = {}
    for label, part, columns in (("box x", "box", [0, 2]), ("box y", "box", [1, 3]),
                                 ("end x", "end", [0]), ("end y", "end", [1])):
        err = errors[f"{part}_error"][:, columns].reshape(-1, 1)
        sig = errors[f"{part}_sigma"][:, columns].reshape(-1, 1)
        observed[label] = interval_coverage(err, sig, levels)[:, 0]
    plots.plot_reliability(observed, levels, fig_dir / "reliability.png",
                           f"{name}: {len(errors['box_error'])} matched cracks")
