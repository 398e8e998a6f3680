"""Compare every evaluated model: one table (CSV + Markdown), IoU vs crack size, loss curves.

Called by the `compare` rule (`script:`), or by hand:

    python workflow/scripts/compare.py --eval-dirs results/eval/A results/eval/B \
        --model-dirs results/models/A results/models/B --out-dir results/compare

Reads what `python -m model evaluate` and `python -m model train` wrote; computes nothing
new but bins and averages: per-model Table 1 rows (`table1.csv`), scalar metrics
(`metrics.json`), per-sample IoU and crack size (`predictions.nc`), losses (`history.csv`).
"""


import argparse
import csv
import json
import math
import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

TABLE_METRICS = ("IoU", "Purity", "Integrity")
ERROR_METRICS = ("MAE", "MSE", "Huber")


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def as_float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def find_scalar(metrics: dict, name: str) -> float:
    """A scalar metric by case-insensitive name, at the top level or one level down."""
    for key, value in metrics.items():
        if key.lower() == name.lower() and not isinstance(value, (dict, list)):
            return as_float(value)
    for value in metrics.values():
        if isinstance(value, dict):
            found = find_scalar(value, name)
            if not math.isnan(found):
                return found
    return math.nan


def per_sample_iou(predictions: Path) -> tuple[np.ndarray, np.ndarray]:
    """`(crack_size [m], IoU)` per evaluated sample from a predictions file."""
    with xr.open_dataset(predictions) as ds:
        names = {name.lower(): name for name in ds.variables}
        if "iou" not in names or "crack_size" not in names:
            raise KeyError(
                f"{predictions} lacks per-sample `iou` and `crack_size` variables "
                f"(has {sorted(ds.variables)})"
            )
        size = np.asarray(ds[names["crack_size"]].values, dtype=float)
        iou = np.asarray(ds[names["iou"]].values, dtype=float)
    keep = np.isfinite(size) & np.isfinite(iou)
    return size[keep], iou[keep]


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def fmt(value: float, digits: int = 4) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def build_table(models: list[str], eval_dirs: list[Path]) -> tuple[list[dict], dict]:
    """Long rows (model, crack_size_gt_m, count, IoU, Purity, Integrity, MAE, MSE, Huber)."""
    rows, errors = [], {}
    for name, eval_dir in zip(models, eval_dirs):
        metrics = json.loads((eval_dir / "metrics.json").read_text())
        errors[name] = {m: find_scalar(metrics, m) for m in ERROR_METRICS}
        for row in read_csv(eval_dir / "table1.csv"):
            threshold = row.get("crack_size_gt_m", row.get("threshold"))
            out = {"model": name, "crack_size_gt_m": as_float(threshold)}
            out["count"] = int(as_float(row.get("count", "nan"))) if row.get("count") else 0
            out.update({m: as_float(row.get(m)) for m in TABLE_METRICS})
            out.update(errors[name])
            rows.append(out)
    return rows, errors


def markdown(models: list[str], rows: list[dict], errors: dict) -> str:
    thresholds = sorted({r["crack_size_gt_m"] for r in rows})
    lookup = {(r["model"], r["crack_size_gt_m"]): r for r in rows}
    lines = [
        "# Comparison of the models",
        "",
        "Mean IoU / Purity / Integrity of the predicted key-point boxes over the evaluated",
        "samples whose total crack length exceeds the threshold (paper Table 1 layout).",
        "",
    ]
    for metric in TABLE_METRICS:
        lines += [f"## {metric}", "", "| crack size > [m] | n | " + " | ".join(models) + " |",
                  "|---|---|" + "---|" * len(models)]
        for t in thresholds:
            counts = {lookup[(m, t)]["count"] for m in models if (m, t) in lookup}
            n = str(counts.pop()) if len(counts) == 1 else "/".join(map(str, sorted(counts)))
            cells = [fmt(lookup[(m, t)][metric]) if (m, t) in lookup else "n/a" for m in models]
            lines.append(f"| {t:g} | {n} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Box-coordinate errors (all evaluated samples)", "",
              "| model | " + " | ".join(ERROR_METRICS) + " |",
              "|---|" + "---|" * len(ERROR_METRICS)]
    for m in models:
        lines.append(f"| {m} | " + " | ".join(fmt(errors[m][e]) for e in ERROR_METRICS) + " |")
    return "\n".join(lines) + "\n"


def plot_iou_vs_size(models: list[str], eval_dirs: list[Path], out: Path, bins: int = 6) -> None:
    per_model = {m: per_sample_iou(d / "predictions.nc") for m, d in zip(models, eval_dirs)}
    sizes = np.concatenate([s for s, _ in per_model.values()])
    fig, ax = plt.subplots(figsize=(6.4, 4.2), constrained_layout=True)
    if sizes.size:
        lo, hi = float(sizes.min()), float(sizes.max())
        edges = np.linspace(lo, hi if hi > lo else lo + 1e-9, bins + 1)
        centres = 0.5 * (edges[:-1] + edges[1:])
        for m, (size, iou) in per_model.items():
            which = np.clip(np.digitize(size, edges) - 1, 0, bins - 1)
            mean = np.array([iou[which == b].mean() if np.any(which == b) else np.nan
                             for b in range(bins)])
            ax.scatter(size * 1e3, iou, s=8, alpha=0.25)
            ax.plot(centres * 1e3, mean, marker="o", label=f"{m} (n={size.size})")
        # every model is evaluated on the same subset: the first one's sizes give the counts
        counts = np.histogram(next(iter(per_model.values()))[0], bins=edges)[0]
        for c, n in zip(centres, counts):
            ax.annotate(str(n), (c * 1e3, 0.98), ha="center", va="top", fontsize=7, color="0.4")
    ax.set_xlabel("crack size (total length) [mm]")
    ax.set_ylabel("IoU of the predicted box")
    ax.set_ylim(0, 1)
    ax.set_title("IoU against crack size (binned means; grey: samples per bin)")
    ax.legend(fontsize=8)
    fig.savefig(out.with_name(f".{out.stem}.tmp.png"), dpi=120)
    plt.close(fig)
    os.replace(out.with_name(f".{out.stem}.tmp.png"), out)


def plot_losses(models: list[str], model_dirs: list[Path], out: Path) -> None:
    """Train (solid) and validation (dashed) loss per epoch, one colour per model; a model
    fitted in one step (one history row, e.g. the mean box) is a horizontal line."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2), constrained_layout=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (m, d) in enumerate(zip(models, model_dirs)):
        rows = read_csv(d / "history.csv")
        if not rows:
            continue
        colour = colours[k % len(colours)]
        epochs = [as_float(r.get("epoch", i + 1)) for i, r in enumerate(rows)]
        for key, style in (("train_loss", "-"), ("val_loss", "--")):
            if key not in rows[0]:
                continue
            values = [as_float(r[key]) for r in rows]
            label = f"{m}: {key.replace('_', ' ')}"
            if len(rows) == 1:
                ax.axhline(values[0], color=colour, ls=style, lw=1, label=label + " (one fit)")
            else:
                ax.plot(epochs, values, style, color=colour, marker=".", label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.set_title("Training (solid) and validation (dashed) loss")
    ax.legend(fontsize=7)
    fig.savefig(out.with_name(f".{out.stem}.tmp.png"), dpi=120)
    plt.close(fig)
    os.replace(out.with_name(f".{out.stem}.tmp.png"), out)


def compare(models: list[str], eval_dirs: list[Path], model_dirs: list[Path],
            table_csv: Path, table_md: Path, iou_png: Path, loss_png: Path) -> None:
    rows, errors = build_table(models, eval_dirs)
    table_csv.parent.mkdir(parents=True, exist_ok=True)
    fields = ["model", "crack_size_gt_m", "count", *TABLE_METRICS, *ERROR_METRICS]
    tmp = table_csv.with_name(f".{table_csv.name}.tmp-{os.getpid()}")
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, table_csv)
    write_atomic(table_md, markdown(models, rows, errors))
    plot_iou_vs_size(models, eval_dirs, iou_png)
    plot_losses(models, model_dirs, loss_png)
    print(f"compared {len(models)} models: {table_csv}, {table_md}, {iou_png}, {loss_png}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval-dirs", nargs="+", type=Path, required=True)
    parser.add_argument("--model-dirs", nargs="+", type=Path, required=True)
    parser.add_argument("--out-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    models = [d.name for d in args.eval_dirs]
    out = args.out_dir
    compare(models, args.eval_dirs, args.model_dirs, out / "table.csv", out / "table.md",
            out / "iou_vs_crack_size.png", out / "loss_curves.png")


if "snakemake" in globals():
    with open(snakemake.log[0], "w") as log:  # noqa: F821 (injected by snakemake)
        sys.stdout = sys.stderr = log
        out = snakemake.output  # noqa: F821
        compare(
            list(snakemake.params.models),  # noqa: F821
            [Path(p).parent for p in snakemake.input.metrics],  # noqa: F821
            [Path(p).parent for p in snakemake.input.histories],  # noqa: F821
            Path(out.table_csv), Path(out.table_md), Path(out.iou_vs_size), Path(out.loss_curves),
        )
elif __name__ == "__main__":
    main()
