"""Scoring and writing an evaluation, for any predictor: the per-sample predictions
dataset, the metrics, the paper's Table 1, the figures, and the choice of a mask model's
thresholds. The `evaluate` driver (model/evaluate.py), the imaging baselines
(model/baselines/run.py) and `predict` (model/predict.py) use it, so every model and
baseline produces the same files through the same code.

Predicted boxes are clipped to the plate `[0, 1]` before scoring (area outside the plate
cannot hold a crack); samples without a crack have no true box and are excluded (their count
is reported). `write_evaluation` writes in `out_dir`:
- `predictions.nc`: `pred_box` (clipped), `pred_box_raw`, `true_box`, `iou`, `purity`,
  `integrity`, `crack_size` [m], `n_cracks` over `(sample, coord)`;
- `metrics.json`: mean IoU/Purity/Integrity, MAE/MSE/Huber, counts, inference samples/s,
  parameter counts, training seconds;
- `table1.csv`, `table1.md`: rows crack size > threshold, columns count/IoU/Purity/Integrity;
- `figures/boxes_{best,median,worst}.png`, `figures/loss_curves.png`, `figures/iou_vs_size.png`.

Mask models (`target = "mask"`, e.g. densenet1d) are scored two ways. The box way (paper
§3.6, every table): the box of the mask `sigmoid(logits) >= t_box` by the labels file's
rule (its `box_rule`; `model.keypoints.masks_to_boxes`; an empty mask predicts a zero-area
box). The pixel way (1D-DenseNet200E's, paper §3.6.2): the crack-class IoU of the mask
`sigmoid >= t_pixel` against `crack_mask`, per sample and averaged (`pixel_IoU`), and the
pooled two-class mean IoU (`pixel_mIoU_2class`), added by `mask_scores` (predictions.nc
then also holds `pred_mask_prob`, `true_mask` and `pixel_iou`). Each threshold maximises its
own score on the validation subset (`choose_mask_thresholds`, grid 0.05..0.95), unless it is
fixed or taken from an earlier evaluation's metrics.json (`mask_thresholds_from`).
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from model import metrics, plots
from model.io import DataError, write_netcdf_atomic, write_text_atomic
from model.keypoints import BOX_COORDS, DEFAULT_BOX_RULE, predicted_mask_boxes

PANELS_PER_FIGURE = 4
MASK_THRESHOLDS = tuple(np.round(np.arange(0.05, 0.951, 0.05), 2).tolist())


def predictions_dataset(sample: np.ndarray, pred_raw: np.ndarray, true: np.ndarray,
                        crack_size: np.ndarray, n_cracks: np.ndarray) -> xr.Dataset:
    """The per-sample predictions and scores as an xarray Dataset."""
    pred = np.clip(pred_raw, 0.0, 1.0)
    box_attrs = {"units": "1", "comment": "xmin, ymin, xmax, ymax as plate fractions"}
    return xr.Dataset(
        {
            "pred_box": (("sample", "coord"), pred,
                         {**box_attrs, "long_name": "predicted box, clipped to [0, 1]"}),
            "pred_box_raw": (("sample", "coord"), pred_raw, {**box_attrs, "long_name": "network output"}),
            "true_box": (("sample", "coord"), true, {**box_attrs, "long_name": "label box"}),
            "iou": (("sample",), metrics.box_iou(pred, true), {"units": "1"}),
            "purity": (("sample",), metrics.purity(pred, true), {"units": "1"}),
            "integrity": (("sample",), metrics.integrity(pred, true), {"units": "1"}),
            "crack_size": (("sample",), crack_size, {"units": "m", "long_name": "total crack length"}),
            "n_cracks": (("sample",), n_cracks, {"units": "1"}),
        },
        coords={"sample": ("sample", sample, {"units": "1"}), "coord": ("coord", list(BOX_COORDS))},
        attrs={"Conventions": "CF-1.10", "title": "crackpoint box predictions",
               "source": "python -m model evaluate"},
    )


def table_csv(table: list[dict]) -> str:
    """Table 1 as CSV text (`crack_size_gt_m, count, IoU, Purity, Integrity`)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["crack_size_gt_m", *metrics.TABLE_COLUMNS])
    for row in table:
        writer.writerow([row["threshold"], row["count"],
                         *(f"{row[c]:.6f}" for c in metrics.TABLE_COLUMNS[1:])])
    return buffer.getvalue()


def table_markdown(table: list[dict], title: str) -> str:
    """Table 1 as a Markdown table."""
    lines = [f"**{title}**", "", "| crack size > (m) | count | IoU | Purity | Integrity |",
             "|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['threshold']:g} | {r['count']} | {r['IoU']:.4f} | {r['Purity']:.4f} "
              f"| {r['Integrity']:.4f} |" for r in table]
    return "\n".join(lines) + "\n"


def _figure_picks(iou: np.ndarray) -> dict[str, np.ndarray]:
    """Positions of the best, median and worst samples by IoU (up to 4 each)."""
    order = np.argsort(-iou, kind="stable")
    k = min(PANELS_PER_FIGURE, len(order))
    mid = max(0, len(order) // 2 - k // 2)
    return {"best": order[:k], "median": order[mid:mid + k], "worst": order[::-1][:k]}


def _figures(out_dir: Path, preds: xr.Dataset, true_masks: np.ndarray, table: list[dict],
             history_csv: Path | None, name: str, pred_masks: np.ndarray | None) -> None:
    fig_dir = out_dir / "figures"
    iou = preds["iou"].values
    for kind, picks in _figure_picks(iou).items():
        titles = [f"sample {int(preds.sample[i])}: IoU {iou[i]:.2f}\n"
                  f"size {1e3 * float(preds.crack_size[i]):.1f} mm" for i in picks]
        plots.plot_boxes(true_masks[picks], preds["true_box"].values[picks],
                         preds["pred_box"].values[picks], titles, fig_dir / f"boxes_{kind}.png",
                         f"{name}: {kind} predictions (red) vs truth (green)",
                         None if pred_masks is None else pred_masks[picks])
    if history_csv is not None and history_csv.is_file():
        plots.plot_loss_curves(history_csv, fig_dir / "loss_curves.png")
    plots.plot_iou_vs_size(preds["crack_size"].values, iou, table, fig_dir / "iou_vs_size.png")


def write_evaluation(out_dir: str | os.PathLike, preds: xr.Dataset, result: dict,
                     true_masks: np.ndarray, thresholds: Sequence[float], name: str,
                     history_csv: Path | None = None) -> dict:
    """Write predictions.nc, metrics.json (`result` + Table 1), table1.csv/md and figures.

    `preds` from `predictions_dataset` (plus optional mask variables), `true_masks`
    `(N, 16, 16)` the samples' crack masks (figures), `name` the model's name in titles.
    """
    out_dir = Path(out_dir)
    table = metrics.size_table(preds["pred_box"].values, preds["true_box"].values,
                               preds["crack_size"].values, thresholds)
    result = {**result, "table1": table}
    if "pixel_iou" in preds:
        size, pix = preds["crack_size"].values, preds["pixel_iou"].values
        result["pixel_table"] = [
            {"threshold": float(t), "count": int((size > t).sum()),
             "pixel_IoU": float(pix[size > t].mean()) if (size > t).any() else None}
            for t in thresholds]
    write_netcdf_atomic(preds, out_dir / "predictions.nc")
    write_text_atomic(json.dumps(result, indent=1) + "\n", out_dir / "metrics.json")
    write_text_atomic(table_csv(table), out_dir / "table1.csv")
    count = preds.sizes["sample"]
    write_text_atomic(table_markdown(table, f"{name} on {result['subset']} ({count} samples): "
                                     "crack size vs IoU, Purity, Integrity"),
                      out_dir / "table1.md")
    pred_masks = None
    if "pred_mask_prob" in preds:
        pred_masks = (preds["pred_mask_prob"].values >= preds.attrs["mask_threshold_box"])
    _figures(out_dir, preds, true_masks, table, history_csv, name, pred_masks)
    return result


def summarise(preds: xr.Dataset, info: dict, subset: str, subset_size: int,
              seconds: float) -> dict:
    """The metrics.json content: `info` (arch, params, training cost ...), mean scores,
    errors, counts and speed (`seconds` to predict the subset)."""
    pred, true = preds["pred_box"].values, preds["true_box"].values
    huber_delta = info.get("huber_delta", 1.0)
    count = preds.sizes["sample"]
    return {
        **info, "subset": subset, "count": count, "no_crack_excluded": subset_size - count,
        "IoU": float(preds["iou"].mean()), "Purity": float(preds["purity"].mean()),
        "Integrity": float(preds["integrity"].mean()),
        "MAE": metrics.mae(pred, true), "MSE": metrics.mse(pred, true),
        "Huber": metrics.huber(pred, true, huber_delta), "huber_delta": huber_delta,
        "inference_samples_per_s": count / seconds if seconds > 0 else float("inf"),
    }


def condition_info(perturbation, allow: Sequence[str], changes: dict[str, list],
                   setup_hash: str | None) -> dict:
    """What metrics.json records about data other than clean data of the set-up the model
    was trained or tuned on: `perturbation` (a model.perturb.Perturbation's keys) and, when
    set-up changes were allowed, `setup_change`: the allowed paths, the differences
    `{path: [trained or tuned value, scored value]}` and the scored shards' `setup_hash`.
    Empty for clean data."""
    info = {}
    if perturbation is not None:
        info["perturbation"] = perturbation.as_dict()
    if allow:
        info["setup_change"] = {"allowed": list(allow), "changes": changes,
                                "setup_hash": setup_hash}
    return info


def read_chosen(path: str | os.PathLike, key: str | None = None) -> dict:
    """The metrics.json at `path` (written by evaluate or baseline), checked to hold the
    JSON object `key` if given (`mask_threshold`, `hyperparameters`: what was chosen on
    validation); DataError naming the file and what is wrong otherwise."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"metrics file not found: {path}")
    try:
        chosen = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DataError(f"metrics file {path} is not valid JSON: {err}") from err
    if not isinstance(chosen, dict):
        raise DataError(f"metrics file {path} must hold a JSON object")
    if key is not None and not isinstance(chosen.get(key), dict):
        raise DataError(f"metrics file {path} lacks the key {key!r} (a JSON object)")
    return chosen


def mask_thresholds_from(path: str | os.PathLike, arch: str) -> dict:
    """The box and pixel thresholds an evaluation of the same architecture `arch` chose
    (its metrics.json `mask_threshold`), for `mask_scores`."""
    chosen = read_chosen(path, "mask_threshold")
    if chosen.get("arch") != arch:
        raise DataError(f"metrics file {path} is of arch {chosen.get('arch')!r}, "
                        f"the checkpoint of {arch!r}")
    t = chosen["mask_threshold"]
    for key in ("box", "pixel"):
        if not isinstance(t.get(key), (int, float)):
            raise DataError(f"metrics file {path}: mask_threshold lacks the number {key!r}")
    return {"box": float(t["box"]), "pixel": float(t["pixel"]),
            "chosen_on": t.get("chosen_on", "val"), "from": str(path)}


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(logits, np.float64)))


def choose_mask_thresholds(prob: np.ndarray, true_masks: np.ndarray, true_boxes: np.ndarray,
                           grid: Sequence[float] = MASK_THRESHOLDS,
                           box_rule: str = DEFAULT_BOX_RULE) -> dict:
    """Thresholds on validation probabilities `(N, H, W)` maximising the mean box IoU of the
    mask's box (by `box_rule`, that of `true_boxes`' labels) (`box`) and the mean pixel IoU
    (`pixel`); the first best on ties."""
    box = [float(metrics.box_iou(predicted_mask_boxes(prob >= t, box_rule), true_boxes).mean())
           for t in grid]
    pix = [float(metrics.pixel_iou(prob >= t, true_masks).mean()) for t in grid]
    return {"box": float(grid[int(np.argmax(box))]), "pixel": float(grid[int(np.argmax(pix))]),
            "grid": list(grid), "val_box_IoU": box, "val_pixel_IoU": pix}


def mask_scores(preds: xr.Dataset, prob: np.ndarray, true_masks: np.ndarray,
                thresholds: dict) -> tuple[xr.Dataset, dict]:
    """Add the pixel-way variables to `preds`; return it and the pixel metrics."""
    t_box, t_pix = thresholds["box"], thresholds["pixel"]
    pix = metrics.pixel_iou(prob >= t_pix, true_masks)
    dims = ("sample", "label_y", "label_x")
    preds = preds.assign(
        pred_mask_prob=(dims, prob.astype(np.float32),
                        {"units": "1", "long_name": "predicted crack probability per label cell"}),
        true_mask=(dims, true_masks.astype(np.uint8), {"units": "1", "long_name": "crack_mask"}),
        pixel_iou=(("sample",), pix, {"units": "1", "long_name":
                                      f"crack-class IoU of the mask probability >= {t_pix}"}))
    preds.attrs.update(mask_threshold_box=t_box, mask_threshold_pixel=t_pix)
    scores = {
        "pixel_IoU": float(pix.mean()),
        "pixel_mIoU_2class": metrics.pixel_mean_iou(prob >= t_pix, true_masks),
        "pixel_IoU_at_0.5": float(metrics.pixel_iou(prob >= 0.5, true_masks).mean()),
        "mask_threshold": {"box": t_box, "pixel": t_pix,
                           "chosen_on": thresholds.get("chosen_on", "val"),
                           **({"from": thresholds["from"]} if "from" in thresholds else {})},
    }
    return preds, scores
