"""Predict crack boxes on new shards, without labels or a split: boxes in plate fractions and metres.

    python -m model predict --checkpoint CKPT --data SHARD.nc [...] --out PRED.nc \
        [--from-metrics results/eval/NAME/metrics.json] [--figures DIR --samples I J ...]
    python -m model predict --method das|rapid --pristine P.nc \
        --from-metrics results/eval/das/metrics.json --data SHARD.nc [...] --out PRED.nc

Every sample of the shards is predicted. What is read from a shard is the contract
(docs/data-format.md): the wavefield, the plate size (`plate_width`, `plate_height`), the
sensor and source positions for the figures, `setup_hash`/`setup`, and the `crack_mask` only
to draw the truth. A shard whose set-up differs from the one the checkpoint was trained on
is refused, naming the differing set-up sections; so is a pristine reference of another
set-up than the shards.

- Box models: the network's box, clipped to the plate.
- Mask models (`target = "mask"`, densenet1d): the box of the mask `sigmoid(logits) >= t`
  by the box rule of the labels it was trained on (the checkpoint's `box_rule`), `t` the
  box threshold an evaluation chose (`--from-metrics`, its
  metrics.json `mask_threshold.box`), else 0.5. An empty mask gives the zero-area box
  `(0, 0, 0, 0)` and `detected = false`.
- Crack-set models (`target = "cracks"`, crackset): the box around the cracks detected with
  a score at least the threshold an evaluation chose (`--from-metrics`, its metrics.json
  `score_threshold`), else 0.5 (`model.crackset_scoring.union_boxes`); no detection gives
  `(0, 0, 0, 0)`. Each crack's own box, end points and intervals come from `evaluate`
  (crack_predictions.nc). When the checkpoint holds its training distribution
  (`model.novelty`), every sample also gets its `distance` to the training plates and, with
  `--from-metrics` (its `novelty_threshold`), `novel`: a plate unlike any the model was
  trained on, whose prediction is not to be trusted.
- Imaging baselines (`--method rapid|das`): the hyperparameters an earlier `python -m model
  baseline` run chose (`--from-metrics`, required), the pristine reference (`--pristine`);
  the box of the cell scores `>= alpha_box`, by the box rule of the labels that run scored
  against (its metrics.json `box_rule`).

Outputs: `PRED.nc` (below, `predictions_dataset`), `PRED.csv` beside it (same stem; one row
per sample: `sample`, the box in fractions and in metres, `detected`, and `distance`, `novel`
where the file has them), and with `--figures`
one `DIR/sample-I.png` per requested global sample index `I`.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from model.data import Labels, ShardIndex, WavefieldDataset, read_samples
from model.io import (DataError, SHARD_VARIABLES, check_finite, check_output_dir, open_checked,
                      write_netcdf_atomic, write_text_atomic)
from model.keypoints import (BOX_COORDS, BOX_RULE_ATTR, common_box_rule, masks_to_boxes,
                             predicted_mask_boxes)
from model.novelty import given_threshold, mahalanobis, novel_plates, novelty_variables

DEFAULT_MASK_THRESHOLD = 0.5


# --- pure functions ----------------------------------------------------------------------------

def to_metres(boxes: np.ndarray, width: float, height: float) -> np.ndarray:
    """Boxes `(N, 4)` `(xmin, ymin, xmax, ymax)` from plate fractions to metres: x times the
    plate `width` [m], y times its `height` [m] (origin at the lower-left corner)."""
    return np.asarray(boxes, np.float64) * np.array([width, height, width, height])


def predictions_dataset(sample: np.ndarray, boxes: np.ndarray, width: float, height: float,
                        attrs: dict, mask_prob: np.ndarray | None = None,
                        per_sample: dict | None = None) -> xr.Dataset:
    """The predictions file: `pred_box` `(sample, coord)` in plate fractions (clipped to
    [0, 1]), `pred_box_m` the same box in metres, `detected` (the box has a positive area),
    for mask models and baselines `pred_mask_prob` `(sample, label_y, label_x)`, and the
    variables of `per_sample` (`{name: ("sample", values (N,), attributes)}`, e.g.
    `model.novelty.novelty_variables`)."""
    frac = np.clip(np.asarray(boxes, np.float64), 0.0, 1.0)
    detected = (frac[:, 2] > frac[:, 0]) & (frac[:, 3] > frac[:, 1])
    data = {
        "pred_box": (("sample", "coord"), frac, {
            "units": "1", "long_name": "predicted crack box, fractions of the plate",
            "comment": "xmin, ymin (plate_height fractions for y), xmax, ymax"}),
        "pred_box_m": (("sample", "coord"), to_metres(frac, width, height), {
            "units": "m", "long_name": "predicted crack box in metres from the lower-left corner"}),
        "detected": (("sample",), detected, {
            "units": "1", "long_name": "the predicted box has a positive area"}),
    }
    if mask_prob is not None:
        data["pred_mask_prob"] = (("sample", "label_y", "label_x"),
                                  np.asarray(mask_prob, np.float32),
                                  {"units": "1", "long_name": "crack score per label cell"})
    data.update(per_sample or {})
    return xr.Dataset(
        data,
        coords={"sample": ("sample", np.asarray(sample, np.int64),
                           {"units": "1", "long_name": "global sample index"}),
                "coord": ("coord", list(BOX_COORDS))},
        attrs={"Conventions": "CF-1.10", "title": "crackpoint box predictions on new data",
               "source": "python -m model predict", "plate_width": float(width),
               "plate_height": float(height), **attrs},
    )


def predictions_csv(preds: xr.Dataset) -> str:
    """One CSV row per sample: `sample`, the box in fractions, in metres, `detected`, and
    `distance`, `novel` where `preds` has them."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    extra = [name for name in ("distance", "novel") if name in preds]
    writer.writerow(["sample", *BOX_COORDS, *(f"{c}_m" for c in BOX_COORDS), "detected",
                     *extra])
    columns = [preds[name].values for name in extra]
    for i, (s, frac, metres, det) in enumerate(zip(preds["sample"].values,
                                                   preds["pred_box"].values,
                                                   preds["pred_box_m"].values,
                                                   preds["detected"].values)):
        writer.writerow([int(s), *(f"{v:.6f}" for v in frac), *(f"{v:.6e}" for v in metres),
                         int(det), *(f"{float(c[i]):.4f}" if c.dtype.kind == "f" else int(c[i])
                                     for c in columns)])
    return buffer.getvalue()


def unlabelled(sample_ids: np.ndarray) -> Labels:
    """Labels with no box for `sample_ids` (the Dataset wants some; prediction uses none)."""
    n = len(sample_ids)
    return Labels(sample=np.asarray(sample_ids, np.int64), box=np.full((n, 4), np.nan),
                  has_crack=np.zeros(n, bool), crack_size=np.zeros(n), n_cracks=np.zeros(n, np.int32),
                  paths=["(none: prediction)"])


def shard_geometry(index: ShardIndex) -> dict:
    """Plate size [m], sensor positions `(S, 2)` [m] and source positions `(K, 2)` [m] from the
    first shard's documented attributes and variables (all shards share the set-up)."""
    path = index.paths[0]
    with open_checked(path, SHARD_VARIABLES, "shard") as ds:
        missing = [a for a in ("plate_width", "plate_height") if a not in ds.attrs]
        missing += [v for v in ("sensor_x", "sensor_y", "source_x", "source_y")
                    if v not in ds.variables]
        if missing:
            raise DataError(f"shard {path} lacks {missing} (docs/data-format.md); regenerate "
                            "it with `python -m dlem simulate`")
        geometry = {"width": float(ds.attrs["plate_width"]),
                    "height": float(ds.attrs["plate_height"])}
        for key, (x, y) in {"sensors": ("sensor_x", "sensor_y"),
                            "sources": ("source_x", "source_y")}.items():
            geometry[key] = np.column_stack([check_finite(ds[v].values.astype(np.float64), path, v)
                                             for v in (x, y)])
    if not all(np.isfinite(geometry[k]) and geometry[k] > 0 for k in ("width", "height")):
        raise DataError(f"shard {path}: plate_width and plate_height must be finite and > 0")
    return geometry


# --- predictors --------------------------------------------------------------------------------

def network_predictions(checkpoint: str | os.PathLike, index: ShardIndex, ids: np.ndarray,
                        from_metrics: str | os.PathLike | None = None, batch_size: int = 32,
                        device: str = "auto", workers: int = 0) -> tuple:
    """`(boxes (N, 4) fractions, mask probabilities (N, H, W) or None, attributes, per-sample
    variables)` of a checkpoint on `ids` (the last `{}` but for a crack-set model's
    `distance` and `novel`, module docstring); DataError when the shards' set-up is not the
    checkpoint's."""
    from model.checkpoint import check_setup, load_checkpoint, model_from_checkpoint
    from model.crackset_scoring import decode_for, union_boxes
    from model.detection import DEFAULT_SCORE_THRESHOLD
    from model.scoring import mask_thresholds_from, read_chosen, sigmoid
    from model.inference import make_loader, predict, predict_embedded, resolve_device

    state = load_checkpoint(checkpoint)
    check_setup(state, index.setup_hash, index.setup, f"shard {index.paths[0]}", checkpoint)
    target = state.get("target", "box")
    box_rule = common_box_rule({str(checkpoint): state.get(BOX_RULE_ATTR)})
    attrs = {"checkpoint": str(checkpoint), "arch": state["arch"], "target": target,
             BOX_RULE_ATTR: box_rule}
    threshold, chosen = None, {}
    if target == "mask":
        threshold = (mask_thresholds_from(from_metrics, state["arch"])["box"]
                     if from_metrics is not None else DEFAULT_MASK_THRESHOLD)
        attrs.update(mask_threshold=threshold,
                     mask_threshold_from=str(from_metrics) if from_metrics else "default 0.5")
    elif from_metrics is not None:
        chosen = read_chosen(from_metrics)
        if chosen.get("arch", state["arch"]) != state["arch"]:
            raise DataError(f"metrics file {from_metrics} is of arch {chosen.get('arch')!r}, "
                            f"the checkpoint of {state['arch']!r}")
        if target == "cracks":
            if not isinstance(chosen.get("score_threshold"), (int, float)):
                raise DataError(f"metrics file {from_metrics} lacks the number "
                                "'score_threshold' of a crack-set evaluation")
            threshold = float(chosen["score_threshold"])
    if target == "cracks":
        threshold = DEFAULT_SCORE_THRESHOLD if threshold is None else threshold
        attrs.update(score_threshold=threshold,
                     score_threshold_from=str(from_metrics) if from_metrics else "default 0.5")
    torch_device = resolve_device(device)
    model = model_from_checkpoint(state, source=checkpoint).to(torch_device)
    reference = None if state["reference"] is None else state["reference"].numpy()
    if reference is not None and reference.shape != tuple(index.wave_shape):
        raise DataError(f"{checkpoint}: its reference wavefield has shape {reference.shape}, "
                        f"the shards {tuple(index.wave_shape)}")
    dataset = WavefieldDataset(index, ids, unlabelled(ids), state["stats"], reference)
    try:
        loader = make_loader(dataset, batch_size, workers, torch_device)
        if target == "cracks":
            raw, embedding = predict_embedded(model, loader, torch_device)
        else:
            raw = predict(model, loader, torch_device)
    finally:
        dataset.close()
    if target == "mask":
        prob = sigmoid(raw)
        return predicted_mask_boxes(prob >= threshold, box_rule), prob, attrs, {}
    if target == "cracks":
        per_sample = distance_to_training(state.get("novelty"), embedding,
                                          given_threshold(chosen), attrs)
        return union_boxes(decode_for(model, raw), threshold), None, attrs, per_sample
    return raw, None, attrs, {}


def distance_to_training(distribution: dict | None, embedding: np.ndarray,
                         threshold: dict | None, attrs: dict) -> dict:
    """`model.novelty.novelty_variables` of each embedding's distance to a checkpoint's
    training `distribution` (with `novel` only when a `threshold` is given, which is then
    recorded in `attrs`); `{}` for a checkpoint without one."""
    if distribution is None:
        return {}
    distance = mahalanobis(embedding, distribution)
    novel = None
    if threshold is not None:
        attrs["novelty_threshold"] = float(threshold["value"])
        novel = novel_plates(distance, threshold)
    return novelty_variables(distance, novel)


def baseline_predictions(method: str, index: ShardIndex, ids: np.ndarray,
                         pristine: str | os.PathLike, from_metrics: str | os.PathLike,
                         ) -> tuple[np.ndarray, np.ndarray, dict]:
    """`(boxes (N, 4), cell scores (N, H, W), attributes)` of an imaging baseline with the
    hyperparameters an earlier `python -m model baseline` chose (its metrics.json)."""
    from model.baselines.run import IMAGE_KEYS, chosen_from, read_setup, scores_for
    from model.scoring import read_chosen

    best, _, _ = chosen_from(from_metrics, method)
    chosen_rule = read_chosen(from_metrics).get(BOX_RULE_ATTR)
    box_rule = common_box_rule({str(from_metrics): chosen_rule})
    setup = read_setup(index, pristine)
    setting = {k: best[k] for k in IMAGE_KEYS[method]}
    scores = scores_for(method, index, ids, setup, [setting])[0]
    attrs = {"method": method, "hyperparameters_from": str(from_metrics),
             "alpha_box": float(best["alpha_box"]), BOX_RULE_ATTR: box_rule,
             **{k: (v if isinstance(v, str) else float(v)) for k, v in setting.items()}}
    return predicted_mask_boxes(scores >= best["alpha_box"], box_rule), scores, attrs


# --- driver ------------------------------------------------------------------------------------

def csv_path(out: str | os.PathLike) -> Path:
    """The CSV beside the predictions file: same folder and stem, `.csv`."""
    return Path(out).with_suffix(".csv")


def run_predict(data: Sequence[str], out: str | os.PathLike,
                checkpoint: str | os.PathLike | None = None, method: str | None = None,
                pristine: str | os.PathLike | None = None,
                from_metrics: str | os.PathLike | None = None,
                figures: str | os.PathLike | None = None, samples: Sequence[int] = (),
                batch_size: int = 32, device: str = "auto", workers: int = 0) -> xr.Dataset:
    """Predict every sample of `data` with a checkpoint or an imaging `method`; write `out`,
    its CSV and the figures of `samples` (global indices) to `figures`; return the dataset."""
    if (checkpoint is None) == (method is None):
        raise DataError("give either --checkpoint or --method")
    if method is not None and (pristine is None or from_metrics is None):
        raise DataError(f"--method {method} needs --pristine and --from-metrics (the "
                        "metrics.json of a `python -m model baseline` run)")
    if samples and figures is None:
        raise DataError("--samples selects figures: give --figures DIR too")
    if figures is not None:
        check_output_dir(figures)
    index = ShardIndex.build(data)
    wanted = np.asarray(list(samples), np.int64)
    index.locate(wanted)                    # unknown ids named before any work
    ids = index.sample
    geometry = shard_geometry(index)
    if checkpoint is not None:
        boxes, prob, attrs, per_sample = network_predictions(checkpoint, index, ids,
                                                             from_metrics, batch_size, device,
                                                             workers)
    else:
        boxes, prob, attrs = baseline_predictions(method, index, ids, pristine, from_metrics)
        per_sample = {}
    attrs.update(setup_hash=index.setup_hash, shards=", ".join(Path(p).name for p in index.paths))
    preds = predictions_dataset(ids, boxes, geometry["width"], geometry["height"], attrs, prob,
                                per_sample)
    write_netcdf_atomic(preds, out)
    write_text_atomic(predictions_csv(preds), csv_path(out))
    if figures is not None and len(wanted):
        write_figures(preds, index, geometry, wanted, figures, attrs.get("arch") or method)
    return preds


def write_figures(preds: xr.Dataset, index: ShardIndex, geometry: dict, wanted: np.ndarray,
                  folder: str | os.PathLike, name: str) -> list[Path]:
    """`folder/sample-I.png` for each global sample index in `wanted`."""
    from model import plots

    masks = read_samples(index, wanted, "crack_mask")
    rule = common_box_rule({"predictions": preds.attrs.get(BOX_RULE_ATTR)})
    true_boxes = masks_to_boxes(masks, rule)
    rows = np.searchsorted(preds["sample"].values, wanted)
    paths = []
    for k, (sample, row) in enumerate(zip(wanted, rows)):
        path = Path(folder) / f"sample-{int(sample)}.png"
        has = bool(masks[k].any())
        plots.plot_prediction(
            geometry["width"], geometry["height"], geometry["sensors"], geometry["sources"],
            preds["pred_box_m"].values[row], path,
            f"{name}: sample {int(sample)}",
            true_mask=masks[k] if has else None,
            true_box=to_metres(true_boxes[k:k + 1], geometry["width"], geometry["height"])[0]
            if has else None)
        paths.append(path)
    return paths
