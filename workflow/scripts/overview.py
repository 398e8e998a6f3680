"""The overview figure: what goes in (sensor traces) and what comes out (crack boxes).

For a few evaluated samples (the best, the median and a poor one by the first model's IoU),
one row each: the plate with its sensors, source, crack, 16x16 label cells, true box and every
model's predicted box; beside it the ux traces of the sensor column nearest the crack.
Called by the `overview` rule (`script:`); reads only workflow outputs and, of the shards,
only what docs/data-format.md documents (through `model.io.open_checked`); computes no
metric. The figure is drawn on its own Agg canvas (`model.plots.new_figure`), not by pyplot,
and written through a temporary file (`model.plots.save_figure`).
"""

import sys
import textwrap
from pathlib import Path

if "snakemake" in globals():  # the checkout's packages, as `python -m model` from its root
    sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821

import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from model.io import SHARD_VARIABLES, open_checked  # noqa: E402
from model.plots import new_figure, save_figure  # noqa: E402

SOURCE_VARIABLES = ("source_x", "source_y")  # docs/data-format.md, per source [m]


def pick_samples(predictions: xr.Dataset) -> list[tuple[str, int]]:
    """(title, global sample index) of the best, median and 25th-percentile sample by IoU."""
    iou = predictions["iou"].values
    order = np.argsort(-iou, kind="stable")
    picks = {"best": order[0], "median": order[len(order) // 2],
             "lower quartile": order[min(len(order) - 1, (3 * len(order)) // 4)]}
    seen, out = set(), []
    for title, pos in picks.items():
        sample = int(predictions["sample"].values[pos])
        if sample not in seen:
            seen.add(sample)
            out.append((title, sample))
    return out


def load(path: Path) -> xr.Dataset:
    """A predictions file (`python -m model evaluate|baseline`), loaded and closed."""
    with xr.open_dataset(path) as ds:
        return ds.load()


def open_sample(shards: list[Path], sample: int) -> xr.Dataset:
    """Global sample `sample` of the first shard that holds it, loaded."""
    for shard in shards:
        with open_checked(shard, (*SHARD_VARIABLES, *SOURCE_VARIABLES), "shard") as ds:
            if sample in ds["sample"].values:
                return ds.sel(sample=sample).load()
    raise KeyError(f"sample {sample} is in none of {shards}")


def draw_plate(ax, ds: xr.Dataset, boxes: dict[str, np.ndarray], colours: dict[str, str]) -> None:
    width, height = float(ds.attrs["plate_width"]), float(ds.attrs["plate_height"])
    mm = 1e3
    mask = ds["crack_mask"].values
    ny, nx = mask.shape
    ax.imshow(np.ma.masked_equal(mask, 0), origin="lower", cmap="Greys", vmin=0, vmax=2,
              extent=(0, width * mm, 0, height * mm), alpha=0.6)
    ax.scatter(ds["sensor_x"] * mm, ds["sensor_y"] * mm, s=6, marker="^", color="tab:blue",
               label="sensors")
    for k, (x, y) in enumerate(zip(ds["source_x"].values, ds["source_y"].values)):
        ax.plot(x * mm, y * mm, "*", ms=12, color="orange", label="source" if k == 0 else None)
    if "crack_vertices" in ds:
        for crack in ds["crack_vertices"].values:
            xy = crack[np.isfinite(crack).all(axis=1)]
            if len(xy):
                ax.plot(xy[:, 0] * mm, xy[:, 1] * mm, color="crimson", lw=2)
    for name, box in boxes.items():
        if not np.all(np.isfinite(box)):
            continue
        x0, y0, x1, y1 = box * np.array([width, height, width, height]) * mm
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, lw=1.8,
                               ls="-" if name == "true box" else "--",
                               color=colours[name], label=name))
    ax.set_xlim(0, width * mm)
    ax.set_ylim(0, height * mm)
    ax.set_aspect("equal")
    ax.set_xlabel("x [mm]")
    ax.set_ylabel("y [mm]")


def draw_traces(ax, ds: xr.Dataset) -> None:
    """ux at the sensor column nearest the crack's centre, offset by row."""
    sx, sy = ds["sensor_x"].values, ds["sensor_y"].values
    mask = ds["crack_mask"].values
    rows, cols = np.nonzero(mask)
    cx = (cols.mean() + 0.5) / mask.shape[1] * float(ds.attrs["plate_width"]) if cols.size \
        else float(np.median(sx))
    column = np.unique(sx)[np.argmin(np.abs(np.unique(sx) - cx))]
    sensors = np.nonzero(np.isclose(sx, column))[0]
    sensors = sensors[np.argsort(sy[sensors])]
    u = ds["wavefield"].sel(component="ux").values[:, sensors]  # (time, sensor)
    scale = np.abs(u).max() or 1.0
    t = ds["time"].values * 1e6
    for k in range(len(sensors)):
        ax.plot(t, u[:, k] / scale * 0.9 + k, color="black", lw=0.6)
    ax.set_yticks(range(len(sensors)), [f"{1e3 * sy[s]:.0f}" for s in sensors])
    ax.set_ylabel("sensor y [mm]")
    ax.set_xlabel("time [µs]")
    ax.set_title(f"ux at x = {1e3 * column:.0f} mm (scaled by {scale:.1e} m)", fontsize=9)


def overview(shards: list[Path], predictions: dict[str, Path], out: Path) -> None:
    preds = {m: load(p) for m, p in predictions.items()}
    first = next(iter(preds.values()))
    picks = pick_samples(first)
    palette = ["tab:red", "tab:purple", "tab:cyan", "tab:brown", "tab:olive"]
    colours = {"true box": "tab:green"}
    colours.update({m: palette[k % len(palette)] for k, m in enumerate(preds)})
    fig = new_figure(figsize=(11, 3.8 * len(picks)), layout="constrained")
    axes = fig.subplots(len(picks), 2, gridspec_kw={"width_ratios": [1, 1.6]}, squeeze=False)
    for row, (title, sample) in enumerate(picks):
        ds = open_sample(shards, sample)
        boxes = {"true box": first["true_box"].sel(sample=sample).values}
        ious = []
        for m, p in preds.items():
            boxes[m] = p["pred_box"].sel(sample=sample).values
            ious.append(f"{m} {float(p['iou'].sel(sample=sample)):.2f}")
        draw_plate(axes[row, 0], ds, boxes, colours)
        header = f"sample {sample} ({title}), crack {1e3 * float(ds['crack_size']):.1f} mm"
        axes[row, 0].set_title("\n".join([header, *textwrap.wrap("IoU: " + ", ".join(ious), 48)]),
                               fontsize=9)
        draw_traces(axes[row, 1], ds)
    axes[0, 0].legend(fontsize=7, loc="upper right", framealpha=0.8)
    fig.suptitle("crackpoint: 9x9 sensor traces in, crack key-point boxes out "
                 f"(samples picked by {next(iter(preds))} IoU among {first.sizes['sample']} "
                 "evaluated)", fontsize=11)
    save_figure(fig, out, dpi=110)
    print(f"wrote {out}: samples {[s for _, s in picks]}")


if "snakemake" in globals():
    with open(snakemake.log[0], "w") as log:  # noqa: F821 (injected by snakemake)
        sys.stdout = sys.stderr = log
        overview([Path(p) for p in snakemake.input.shards],  # noqa: F821
                 {m: Path(p) for m, p in zip(snakemake.params.models,  # noqa: F821
                                             snakemake.input.predictions)},  # noqa: F821
                 Path(snakemake.output[0]))  # noqa: F821
