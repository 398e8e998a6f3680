"""`python -m model evaluate`: score a checkpoint on a split subset.

Predicts the subset (and, for a mask model, the validation subset its thresholds are chosen
on, unless they are fixed or taken from `from_metrics`), then writes predictions.nc,
metrics.json, table1.csv/md and figures through `model.scoring`, which describes them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from model import metrics
from model.checkpoint import check_setup, load_checkpoint, model_from_checkpoint
from model.data import (Labels, ShardIndex, WavefieldDataset, box_samples, load_labels,
                        read_samples, read_split)
from model.inference import make_loader, predict, resolve_device
from model.io import DataError
from model.keypoints import predicted_mask_boxes
from model.perturb import Perturbation
from model.scoring import (choose_mask_thresholds, condition_info, mask_scores,
                           mask_thresholds_from, predictions_dataset, read_chosen, sigmoid,
                           summarise, write_evaluation)


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
                    perturbation: Perturbation | None = None) -> tuple[np.ndarray, float]:
    """Raw model output for `ids` (their wavefields perturbed by `perturbation` before the
    checkpoint's conditioning) and the seconds it took."""
    reference = None if state["reference"] is None else state["reference"].numpy()
    dataset = WavefieldDataset(index, ids, label_set, state["stats"], reference,
                               perturb=perturbation)
    try:
        tic = time.perf_counter()
        out = predict(model, make_loader(dataset, batch_size, workers, device), device)
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
    if ((perturbation is not None or allow_setup_change) and target == "mask"
            and from_metrics is None and mask_threshold is None):
        raise DataError("nothing is chosen on perturbed data or another set-up: give the mask "
                        "thresholds with --from-metrics (the clean evaluation's metrics.json) "
                        "or --mask-threshold")
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
    ids = box_samples(split_dict, subset, label_set)
    if len(ids) == 0:
        raise DataError(f"split {split}: subset {subset!r} has no sample with a crack to score")

    raw, seconds = _predict_subset(model, index, ids, label_set, state, batch_size, workers,
                                   torch_device, perturbation)
    true_masks = read_samples(index, ids, "crack_mask")
    rows = label_set.rows(ids)
    info = checkpoint_info(state, checkpoint)
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
