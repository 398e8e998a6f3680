"""Score a checkpoint on a split subset: predictions, metrics, the paper's Table 1, figures.

Predicted boxes are clipped to the plate `[0, 1]` before scoring (area outside the plate
cannot hold a crack); samples without a crack have no true box and are excluded (their count
is reported). Outputs in `out_dir`:
- `predictions.nc`: `pred_box` (clipped), `pred_box_raw`, `true_box`, `iou`, `purity`,
  `integrity`, `crack_size` [m], `n_cracks` over `(sample, coord)`;
- `metrics.json`: mean IoU/Purity/Integrity, MAE/MSE/Huber, counts, inference samples/s,
  parameter counts, training seconds;
- `table1.csv`, `table1.md`: rows crack size > threshold, columns count/IoU/Purity/Integrity;
- `figures/boxes_{best,median,worst}.png`, `figures/loss_curves.png`, `figures/iou_vs_size.png`.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from model import metrics, plots
from model.checkpoint import load_checkpoint, model_from_checkpoint
from model.data import ShardIndex, WavefieldDataset, box_samples, load_labels, read_split
from model.inference import make_loader, predict, resolve_device
from model.io import DataError, write_netcdf_atomic, write_text_atomic
from model.keypoints import BOX_COORDS

PANELS_PER_FIGURE = 4


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


def _figures(out_dir: Path, dataset: WavefieldDataset, preds: xr.Dataset, table: list[dict],
             history_csv: Path, arch: str) -> None:
    fig_dir = out_dir / "figures"
    iou = preds["iou"].values
    for name, picks in _figure_picks(iou).items():
        masks = np.stack([dataset.read_raw(int(i), "crack_mask") for i in picks])
        titles = [f"sample {int(preds.sample[i])}: IoU {iou[i]:.2f}\n"
                  f"size {1e3 * float(preds.crack_size[i]):.1f} mm" for i in picks]
        plots.plot_boxes(masks, preds["true_box"].values[picks], preds["pred_box"].values[picks],
                         titles, fig_dir / f"boxes_{name}.png",
                         f"{arch}: {name} predictions (red) vs truth (green)")
    if history_csv.is_file():
        plots.plot_loss_curves(history_csv, fig_dir / "loss_curves.png")
    plots.plot_iou_vs_size(preds["crack_size"].values, iou, table, fig_dir / "iou_vs_size.png")


def evaluate(data: list[str], labels: list[str], split: str, checkpoint: str | os.PathLike,
             out_dir: str | os.PathLike, subset: str = "test",
             thresholds: Sequence[float] = metrics.DEFAULT_SIZE_THRESHOLDS,
             batch_size: int = 32, device: str = "auto", workers: int = 0) -> dict:
    """Write all evaluation outputs for `checkpoint` on `subset`; return the metrics dict."""
    out_dir, checkpoint = Path(out_dir), Path(checkpoint)
    state = load_checkpoint(checkpoint)
    torch_device = resolve_device(device)
    model = model_from_checkpoint(state).to(torch_device)
    label_set = load_labels(labels)
    split_dict = read_split(split, label_set)
    index = ShardIndex.build(data)
    ids = box_samples(split_dict, subset, label_set)
    if len(ids) == 0:
        raise DataError(f"split {split}: subset {subset!r} has no sample with a crack to score")
    reference = None if state["reference"] is None else state["reference"].numpy()
    dataset = WavefieldDataset(index, ids, label_set, state["stats"], reference)

    try:
        tic = time.perf_counter()
        pred_raw = predict(model, make_loader(dataset, batch_size, workers, torch_device),
                           torch_device)
        seconds = time.perf_counter() - tic
        rows = label_set.rows(ids)
        preds = predictions_dataset(ids, pred_raw, label_set.box[rows],
                                    label_set.crack_size[rows], label_set.n_cracks[rows])
        table = metrics.size_table(preds["pred_box"].values, preds["true_box"].values,
                                   preds["crack_size"].values, thresholds)
        result = summarise(preds, state, checkpoint, subset, len(split_dict[subset]), seconds)
        result["device"] = str(torch_device)
        write_netcdf_atomic(preds, out_dir / "predictions.nc")
        write_text_atomic(json.dumps(result, indent=1) + "\n", out_dir / "metrics.json")
        write_text_atomic(table_csv(table), out_dir / "table1.csv")
        write_text_atomic(table_markdown(table, f"{state['arch']} on {subset} ({len(ids)} "
                                         "samples): crack size vs IoU, Purity, Integrity"),
                          out_dir / "table1.md")
        _figures(out_dir, dataset, preds, table, checkpoint.parent / "history.csv", state["arch"])
    finally:
        dataset.close()
    return result


def summarise(preds: xr.Dataset, state: dict, checkpoint: Path, subset: str,
              subset_size: int, seconds: float) -> dict:
    """The metrics.json content: mean scores, errors, counts, speed and training cost."""
    pred, true = preds["pred_box"].values, preds["true_box"].values
    huber_delta = state["config"].get("huber_delta", 1.0)
    count = preds.sizes["sample"]
    return {
        "arch": state["arch"], "checkpoint": str(checkpoint), "subset": subset,
        "count": count, "no_crack_excluded": subset_size - count,
        "IoU": float(preds["iou"].mean()), "Purity": float(preds["purity"].mean()),
        "Integrity": float(preds["integrity"].mean()),
        "MAE": metrics.mae(pred, true), "MSE": metrics.mse(pred, true),
        "Huber": metrics.huber(pred, true, huber_delta), "huber_delta": huber_delta,
        "inference_samples_per_s": count / seconds,
        "params": state["params"], "epochs": state["epoch"],
        "training_seconds": float(sum(r["seconds"] for r in state["history"])),
    }
