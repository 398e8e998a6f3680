"""Evaluation figures: boxes on the label grid, loss curves, IoU vs size,
one predicted sample on the plate in metres (`plot_prediction`, for `predict`), and for
crack-set models several predicted cracks per sample with their 90 % intervals
(`plot_cracks`) and the reliability diagram of their uncertainties (`plot_reliability`).

Boxes are `(xmin, ymin, xmax, ymax)` plate fractions; masks are `(16, 16)` with row 0 at the
bottom (y = 0), so they are drawn with `origin="lower"` over `[0, 1] x [0, 1]`.

Figures are `matplotlib.figure.Figure`s on their own Agg canvas, outside pyplot: importing or
using this module leaves the caller's backend (a notebook's, say) and pyplot's figures alone.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from model.io import atomic_path

TRUE_COLOUR, PRED_COLOUR = "tab:green", "tab:red"


def new_figure(**kwargs) -> Figure:
    """A figure (`Figure` keyword arguments) drawn by its own Agg canvas, not by pyplot."""
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike, **kwargs) -> None:
    """`fig` as a PNG at `path` (through a temporary file, `model.io.atomic_path`)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", **kwargs)


def _save(fig: Figure, path: str | os.PathLike) -> None:
    save_figure(fig, path, dpi=120, bbox_inches="tight")


def _box_patch(box: np.ndarray, colour: str, label: str) -> Rectangle:
    xmin, ymin, xmax, ymax = box
    return Rectangle((xmin, ymin), xmax - xmin, ymax - ymin, fill=False, edgecolor=colour,
                     linewidth=2, label=label)


def plot_boxes(masks: np.ndarray, true: np.ndarray, pred: np.ndarray, titles: Sequence[str],
               path: str | os.PathLike, suptitle: str,
               pred_masks: np.ndarray | None = None) -> None:
    """One panel per sample: shaded true mask, true box (green), predicted box (red), and
    the predicted mask (translucent red) when a segmentation model gives one.

    `masks` and `pred_masks` `(n, H, W)`, `true` and `pred` `(n, 4)`.
    """
    n = len(masks)
    fig = new_figure(figsize=(3.2 * n, 3.6), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)
    for k, (ax, mask, t, p, title) in enumerate(zip(axes[0], masks, true, pred, titles)):
        height, width = mask.shape
        ax.imshow(mask, cmap="Greys", vmin=0, vmax=2, origin="lower", extent=(0, 1, 0, 1))
        if pred_masks is not None:
            overlay = np.ma.masked_equal(np.asarray(pred_masks[k], np.uint8), 0)
            ax.imshow(overlay, cmap="Reds", vmin=0, vmax=1.5, alpha=0.45, origin="lower",
                      extent=(0, 1, 0, 1))
        grid = dict(color="0.85", linewidth=0.5, zorder=0.5)   # label cells, under the boxes
        ax.vlines(np.linspace(0, 1, width + 1), 0, 1, **grid)
        ax.hlines(np.linspace(0, 1, height + 1), 0, 1, **grid)
        ax.add_patch(_box_patch(t, TRUE_COLOUR, "true"))
        ax.add_patch(_box_patch(p, PRED_COLOUR, "predicted"))
        ax.set(xlim=(0, 1), ylim=(0, 1), aspect="equal", title=title, xlabel="x / plate width")
        ax.title.set_fontsize(9)
    axes[0, 0].set_ylabel("y / plate height")
    axes[0, 0].legend(loc="upper right", fontsize=7)
    fig.suptitle(suptitle)
    _save(fig, path)


def plot_loss_curves(history_csv: str | os.PathLike, path: str | os.PathLike) -> None:
    """Training and validation loss (log scale) and validation IoU per epoch from history.csv."""
    with open(history_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    epoch = [int(r["epoch"]) for r in rows]
    fig = new_figure(figsize=(9, 3.5))
    ax_loss, ax_iou = fig.subplots(1, 2)
    ax_loss.plot(epoch, [float(r["train_loss"]) for r in rows], "o-", ms=3, label="train")
    ax_loss.plot(epoch, [float(r["val_loss"]) for r in rows], "o-", ms=3, label="validation")
    ax_loss.set(yscale="log", xlabel="epoch", ylabel="loss", title="loss")
    ax_loss.legend()
    ax_iou.plot(epoch, [float(r["val_iou"]) for r in rows], "o-", ms=3, color="tab:purple")
    ax_iou.set(xlabel="epoch", ylabel="mean IoU", ylim=(0, 1), title="validation IoU")
    _save(fig, path)


def plot_iou_vs_size(crack_size: np.ndarray, iou: np.ndarray, table: list[dict],
                     path: str | os.PathLike) -> None:
    """Per-sample IoU against crack size [mm], with the Table-1 means (size > threshold)."""
    fig = new_figure(figsize=(5, 3.5))
    ax = fig.subplots()
    ax.scatter(1e3 * np.asarray(crack_size), iou, s=8, alpha=0.5, label="sample")
    ax.plot([1e3 * r["threshold"] for r in table], [r["IoU"] for r in table], "s-",
            color="tab:red", label="mean IoU, size > threshold")
    ax.set(xlabel="crack size (total length) [mm]", ylabel="IoU", ylim=(0, 1),
           title="IoU vs crack size")
    ax.legend(fontsize=8)
    _save(fig, path)


def plot_prediction(width: float, height: float, sensors: np.ndarray, sources: np.ndarray,
                    pred_box: np.ndarray, path: str | os.PathLike, title: str,
                    true_mask: np.ndarray | None = None,
                    true_box: np.ndarray | None = None) -> None:
    """One sample on the plate, in metres: the plate outline, the sensors (dots), the
    sources (stars), the predicted box (red) and, when known, the true crack mask (grey
    cells, `(H, W)`, row 0 at y = 0) and its box (green). Boxes `(4,)` in metres."""
    fig = new_figure(figsize=(6.0, 4.6 * height / width + 0.4), layout="constrained")
    ax = fig.subplots()
    mm = 1e3
    if true_mask is not None:
        overlay = np.ma.masked_equal(np.asarray(true_mask, np.uint8), 0)
        ax.imshow(overlay, cmap="Greys", vmin=0, vmax=1.6, origin="lower",
                  extent=(0, width * mm, 0, height * mm))
    ax.add_patch(Rectangle((0, 0), width * mm, height * mm, fill=False, edgecolor="black",
                           linewidth=1.5))
    ax.scatter(sensors[:, 0] * mm, sensors[:, 1] * mm, s=10, color="tab:blue", label="sensors")
    ax.scatter(sources[:, 0] * mm, sources[:, 1] * mm, s=120, marker="*", color="tab:orange",
               label="source")
    if true_box is not None:
        ax.add_patch(_box_patch(np.asarray(true_box) * mm, TRUE_COLOUR, "true box"))
    ax.add_patch(_box_patch(np.asarray(pred_box) * mm, PRED_COLOUR, "predicted box"))
    pad = 0.03 * max(width, height) * mm
    ax.set(xlim=(-pad, width * mm + pad), ylim=(-pad, height * mm + pad), aspect="equal",
           xlabel="x [mm]", ylabel="y [mm]", title=title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=7)
    _save(fig, path)


def plot_reliability(observed: dict[str, np.ndarray], levels: Sequence[float],
                     path: str | os.PathLike, title: str) -> None:
    """Reliability diagram: observed coverage of the central intervals against their
    nominal level (`levels` `(L,)`), one line per coordinate group of `observed`
    (name -> `(L,)` fractions, e.g. from `model.calibration.interval_coverage`), with the
    diagonal a calibrated predictor follows (above it: intervals too wide)."""
    fig = new_figure(figsize=(4.6, 4.4), layout="constrained")
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="calibrated")
    for name, values in observed.items():
        ax.plot(levels, values, "o-", ms=3, label=name)
    ax.set(xlim=(0, 1), ylim=(0, 1), aspect="equal", xlabel="nominal central-interval level",
           ylabel="observed coverage", title=title)
    ax.title.set_fontsize(9)
    ax.legend(fontsize=7, loc="upper left")
    _save(fig, path)


def plot_cracks(width: float, height: float, panels: Sequence[dict], path: str | os.PathLike,
                suptitle: str, z90: float) -> None:
    """One panel per sample on the plate, in millimetres: each true crack's outline and box
    (green) and each detected crack's box (red, its score beside it), its end points joined
    (red) with their 90 % intervals (error bars of `z90` standard deviations), and the box's
    90 % band (dotted: the box with every edge moved out, and in, by `z90` sigma; the inner
    one only while it is still a box).

    A panel is a dict: `title`; `true_box` `(C, 4)` plate fractions and `true_outline`
    `(C, P, 2)` [m] (NaN rows and points ignored); `box`, `box_sigma` `(K, 4)` plate
    fractions, `ends`, `end_sigma` `(K, 2, 2)` [m] and `score` `(K,)` of the detections;
    optionally `marks` `(K,)`, a text written after each score (e.g. which pass found it).
    """
    mm = 1e3
    scale = np.array([width, height, width, height]) * mm
    n = max(len(panels), 1)
    fig = new_figure(figsize=(3.3 * n, 3.7), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, panel in zip(axes, panels):
        ax.add_patch(Rectangle((0, 0), width * mm, height * mm, fill=False, edgecolor="black"))
        for box, outline in zip(panel["true_box"], panel["true_outline"]):
            if not np.isfinite(box).all():
                continue
            ax.add_patch(_box_patch(box * scale, TRUE_COLOUR, "true"))
            points = outline[np.isfinite(outline).all(axis=1)] * mm
            ax.plot(points[:, 0], points[:, 1], color=TRUE_COLOUR, linewidth=2)
        marks = panel.get("marks", [""] * len(panel["score"]))
        for box, sigma, ends, end_sigma, score, mark in zip(
                panel["box"], panel["box_sigma"], panel["ends"], panel["end_sigma"],
                panel["score"], marks):
            box, band = box * scale, z90 * sigma * scale
            ax.add_patch(_box_patch(box, PRED_COLOUR, "predicted"))
            for sign in (1, -1):
                grown = box + sign * band * np.array([-1, -1, 1, 1])
                if grown[2] > grown[0] and grown[3] > grown[1]:
                    ax.add_patch(Rectangle(grown[:2], grown[2] - grown[0], grown[3] - grown[1],
                                           fill=False, edgecolor=PRED_COLOUR, linewidth=0.8,
                                           linestyle=":"))
            ax.errorbar(ends[:, 0] * mm, ends[:, 1] * mm, xerr=z90 * end_sigma[:, 0] * mm,
                        yerr=z90 * end_sigma[:, 1] * mm, color=PRED_COLOUR, linewidth=1.5,
                        capsize=2, marker="o", ms=3)
            ax.text(box[0], box[3] + 1, f"{score:.2f}{mark}", color=PRED_COLOUR, fontsize=7)
        pad = 0.03 * max(width, height) * mm
        ax.set(xlim=(-pad, width * mm + pad), ylim=(-pad, height * mm + pad), aspect="equal",
               xlabel="x [mm]", title=panel["title"])
        ax.title.set_fontsize(9)
    axes[0].set_ylabel("y [mm]")
    fig.suptitle(suptitle)
    _save(fig, path)
