"""One table over every scored model: trained networks, the mean box, the classical baselines.

    python -m model compare --eval-dirs results/eval/A results/eval/B ... \
        --histories results/models/A/history.csv ... --out-dir results/compare

Reads what `python -m model evaluate` and `python -m model baseline` wrote (the folder name
is the model's name) and computes nothing new but averages, bins and bootstrap intervals:
- `table.csv`: one row per model: kind, count, IoU / Purity / Integrity overall and per
  Table-1 row (crack size > t: `IoU_gt_<t>` ...), MAE, MSE, pixel IoU (segmentation and
  imaging rows), parameters, training seconds, inference samples/s. A value that does not
  apply (pixel IoU of a box model) or does not exist (an empty size row) is left empty:
  the file never holds NaN.
- `table.md`: the same as Markdown, plus each model's chosen thresholds/hyperparameters.

Uncertainty: IoU, Purity and Integrity carry a 95 % percentile-bootstrap interval over the
scored samples (`model.metrics.bootstrap_ci` on predictions.nc's `iou`, `purity`,
`integrity`; 2000 resamples, seed 0): `IoU_lo`, `IoU_hi` ... in the CSV, `0.443 [0.38, 0.51]`
in the Markdown. The mean-box row (the floor: `arch` meanbox in metrics.json, else the row
named meanbox) is the reference: `IoU_overlaps_meanbox` (yes/no) says whether a model's IoU
interval overlaps the floor's (marked † in the Markdown), and where both were scored on the
same samples, `IoU_minus_meanbox` with `_lo`/`_hi` is the paired bootstrap interval of the
mean per-sample difference. Without a mean-box row these are left empty.
- `iou_vs_crack_size.png`: binned mean IoU against crack size, one line per model.
- `loss_curves.png`: training and validation loss of the trained models (`--histories`).
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib
import numpy as np

from model.io import DataError, open_checked, write_text_atomic
from model.metrics import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, bootstrap_ci
from model.plots import new_figure, save_figure
from model.scoring import read_chosen

BOX_METRICS = ("IoU", "Purity", "Integrity")
PER_SAMPLE = {"IoU": "iou", "Purity": "purity", "Integrity": "integrity"}  # predictions.nc
REQUIRED_KEYS = ("count", *BOX_METRICS)  # metrics.json keys a row cannot do without
FLOOR_ARCH = "meanbox"
MARK = "†"
KINDS = {"box": "key-point box", "mask": "segmentation (mask's box)",
         "image": "classical imaging (image's box)",
         "cracks": "crack set (box around its detections)"}
SIZE_BINS = 6


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        raise DataError(f"{path} not found; was it written by evaluate or baseline?")
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def read_metrics(eval_dir: Path) -> dict:
    """`eval_dir/metrics.json` as a dict; DataError naming the file and the first missing
    key of `REQUIRED_KEYS` (or what else is wrong with it)."""
    path = eval_dir / "metrics.json"
    if not path.is_file():
        raise DataError(f"{eval_dir} has no metrics.json; was it written by evaluate or baseline?")
    m = read_chosen(path)
    for key in REQUIRED_KEYS:
        if key not in m:
            raise DataError(f"{path} lacks the key {key!r} (written by `python -m model "
                            "evaluate` or `baseline`?)")
    return m


def per_sample_scores(eval_dir: Path) -> dict[str, np.ndarray]:
    """`sample` ids `(N,)` and IoU, Purity, Integrity `(N,)` per scored sample, from
    `eval_dir/predictions.nc`."""
    with open_checked(eval_dir / "predictions.nc", ("sample", *PER_SAMPLE.values()),
                      "predictions") as ds:
        out = {k: ds[v].values.astype(np.float64) for k, v in PER_SAMPLE.items()}
        out["sample"] = ds["sample"].values.astype(np.int64)
    return out


def score_row(eval_dir: Path) -> dict:
    """The box scores of one evaluation folder: `model` (the folder's name), `count`, IoU
    with its 95 % bootstrap interval (`IoU_lo`, `IoU_hi`), Purity, Integrity; `_metrics`
    (metrics.json), `_scores` (per-sample scores) and `_path` are not written to tables."""
    m = read_metrics(eval_dir)
    scores = per_sample_scores(eval_dir)
    lo, hi = bootstrap_ci(scores["IoU"])
    return {"model": eval_dir.name, "count": int(m["count"]), "IoU": float(m["IoU"]),
            "IoU_lo": lo, "IoU_hi": hi, "Purity": float(m["Purity"]),
            "Integrity": float(m["Integrity"]), "_metrics": m, "_scores": scores,
            "_path": str(eval_dir)}


def model_row(eval_dir: Path) -> dict:
    """The comparison row of one evaluation folder (NaN where a value does not apply).

    Keys starting with `_` are for the comparison itself (arch, target, per-sample scores)
    and are not written to the tables."""
    path = eval_dir / "metrics.json"
    m = read_metrics(eval_dir)
    target = m.get("target", "box")
    kind = "mean box (floor)" if m.get("arch") == FLOOR_ARCH else KINDS.get(target, target)
    scores = per_sample_scores(eval_dir)
    intervals = {}
    for k in BOX_METRICS:
        lo, hi = bootstrap_ci(scores[k])
        intervals.update({k: _float(m[k]), f"{k}_lo": lo, f"{k}_hi": hi})
    row = {"model": eval_dir.name, "kind": kind, "count": m["count"], **intervals,
           **{k: _float(m.get(k)) for k in ("MAE", "MSE")},
           "pixel_IoU": _float(m.get("pixel_IoU")),
           "pixel_mIoU_2class": _float(m.get("pixel_mIoU_2class")),
           "params": int(m.get("params", {}).get("total", 0)),
           "training_seconds": _float(m.get("training_seconds")),
           "inference_samples_per_s": _float(m.get("inference_samples_per_s"))}
    table1 = eval_dir / "table1.csv"
    for t in _read_csv(table1):
        try:
            key = f"{_float(t['crack_size_gt_m']):g}"
            row[f"count_gt_{key}"] = int(_float(t["count"]))
            row.update({f"{k}_gt_{key}": _float(t[k]) for k in BOX_METRICS})
        except (KeyError, ValueError) as err:
            raise DataError(f"{table1} lacks the column {err} (or holds no number there)") from err
    choice = m.get("hyperparameters") if target == "image" else m.get("mask_threshold")
    row["chosen"] = "" if not isinstance(choice, dict) else ", ".join(
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in choice.items())
    row.update(_arch=m.get("arch", ""), _target=target, _subset=m.get("subset", "?"),
               _split=m.get("split", ""), _scores=scores, _path=str(path))
    return row


def floor_index(rows: list[dict]) -> int | None:
    """Position of the mean-box row: the first whose metrics.json `arch` is meanbox (a
    trained model, not a baseline named so), else the first named meanbox; None if none."""
    for i, r in enumerate(rows):
        if r.get("_arch") == FLOOR_ARCH and r.get("_target") != "image":
            return i
    names = [r["model"] for r in rows]
    return names.index(FLOOR_ARCH) if FLOOR_ARCH in names else None


def intervals_overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether the closed intervals `a = (lo, hi)` and `b` share a point."""
    return a[0] <= b[1] and b[0] <= a[1]


def add_floor_comparison(rows: list[dict]) -> int | None:
    """Add `IoU_overlaps_meanbox` (yes/no) and the paired `IoU_minus_meanbox` interval to
    every row but the floor's (empty strings / NaN where it does not apply); return the
    floor's position. The paired difference needs the same sample ids in both rows."""
    floor = floor_index(rows)
    for i, r in enumerate(rows):
        r["IoU_overlaps_meanbox"] = ""
        r.update({k: math.nan for k in ("IoU_minus_meanbox", "IoU_minus_meanbox_lo",
                                        "IoU_minus_meanbox_hi")})
        if floor is None or i == floor:
            continue
        f = rows[floor]
        overlap = intervals_overlap((r["IoU_lo"], r["IoU_hi"]), (f["IoU_lo"], f["IoU_hi"]))
        r["IoU_overlaps_meanbox"] = "yes" if overlap else "no"
        a, b = r["_scores"], f["_scores"]
        if a["sample"].shape == b["sample"].shape and np.array_equal(
                np.sort(a["sample"]), np.sort(b["sample"])):
            diff = (a["IoU"][np.argsort(a["sample"])] - b["IoU"][np.argsort(b["sample"])])
            lo, hi = bootstrap_ci(diff)
            r.update(IoU_minus_meanbox=float(diff.mean()), IoU_minus_meanbox_lo=lo,
                     IoU_minus_meanbox_hi=hi)
    return floor


def _cell(value, digits: int = 4) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    return "" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def table_csv(rows: list[dict]) -> str:
    fields = list(dict.fromkeys(k for row in rows for k in row if not k.startswith("_")))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows([{k: _cell(row.get(k, math.nan), 6) for k in fields} for row in rows])
    return buffer.getvalue()


def _size_keys(rows: list[dict]) -> list[str]:
    keys = dict.fromkeys(k[len("count_gt_"):] for row in rows for k in row
                         if k.startswith("count_gt_"))
    return sorted(keys, key=float)


def format_interval(mean: float, lo: float, hi: float) -> str:
    """`0.443 [0.38, 0.51]`: a mean and its bootstrap interval ("–" if not a number, the
    mean alone if the interval is not)."""
    if math.isnan(mean):
        return "–"
    return f"{mean:.3f}" + ("" if math.isnan(lo) else f" [{lo:.2f}, {hi:.2f}]")


def _with_interval(row: dict, metric: str) -> str:
    """`row[metric]` with its `_lo`/`_hi` interval, by `format_interval`."""
    return format_interval(row[metric], row.get(f"{metric}_lo", math.nan),
                           row.get(f"{metric}_hi", math.nan))


def markdown_grid(corner: str, rows: Sequence[str], columns: Sequence[str],
                  cell: Callable[[str, str], str]) -> list[str]:
    """The lines of a Markdown table: a header `corner | columns...`, then one line per
    entry of `rows` holding `cell(row, column)` for each column (right-aligned)."""
    return (["| " + " | ".join([corner, *columns]) + " |", "|---|" + "---:|" * len(columns)]
            + [f"| {r} | " + " | ".join(cell(r, c) for c in columns) + " |" for r in rows])


def table_markdown(rows: list[dict], subset: str, floor: int | None = None,
                   split: str = "") -> str:
    """The comparison as Markdown; `floor` is the mean-box row's position (None: no marks),
    `split` the split file(s) the subset is from (named in the text when given)."""
    dash = lambda text: text or "–"  # noqa: E731
    counts = sorted({row["count"] for row in rows})
    n = "/".join(map(str, counts))
    lines = ["# Comparison of the models", "",
             f"Every model is scored on the same {subset} samples with a crack "
             f"(n = {n}{f', split {split}' if split else ''}) by the same code: IoU, Purity "
             "and Integrity "
             "of its box (for a segmentation or imaging model, the box of its thresholded "
             "mask by the label rule); pixel IoU = crack-class IoU of that mask (the "
             "1D-DenseNet paper's way, docs/model.md). Training time is the search time for "
             "the classical baselines; inference includes reading the test wavefields.", "",
             "| model | kind | IoU | Purity | Integrity | MAE | pixel IoU | params | "
             "training [s] | inference [samples/s] |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        iou = _with_interval(r, "IoU") + (f" {MARK}" if r.get("IoU_overlaps_meanbox") == "yes"
                                           else "")
        lines.append(f"| {r['model']} | {r['kind']} | {iou} | " + " | ".join(
            [_with_interval(r, k) for k in BOX_METRICS[1:]] +
            [dash(_cell(r[k])) for k in ("MAE", "pixel_IoU")]) +
            f" | {r['params']:,} | {dash(_cell(r['training_seconds'], 1))} | "
            f"{dash(_cell(r['inference_samples_per_s'], 1))} |")
    lines += ["", "In brackets: 95 % percentile-bootstrap intervals of each mean over the "
              f"scored samples ({BOOTSTRAP_RESAMPLES} resamples, seed {BOOTSTRAP_SEED}): with "
              f"n = {n} {subset} samples, differences between models smaller than about an "
              "interval's width are not resolved."]
    if floor is not None:
        lines[-1] += (f" {MARK} marks a model whose IoU interval overlaps the mean box's "
                      f"({rows[floor]['model']}, the floor): its IoU is not resolved from "
                      "predicting the mean training box.")
        paired = [r for r in rows if not math.isnan(r["IoU_minus_meanbox"])]
        if paired:
            lines += ["", f"## IoU minus the mean box's ({rows[floor]['model']}), paired by sample",
                      "", "Mean per-sample difference with its 95 % bootstrap interval "
                      "(both models' scores resampled together, so what the samples share "
                      "cancels: usually sharper than the overlap test above); an interval "
                      "above 0 means the model beats the floor on these samples.", "",
                      "| model | IoU − mean box |", "|---|---:|"]
            lines += [f"| {r['model']} | {_with_interval(r, 'IoU_minus_meanbox')} |"
                      for r in paired]
    sizes = _size_keys(rows)
    for metric in BOX_METRICS:
        lines += ["", f"## {metric} by crack size (samples with total crack length > t)", "",
                  "| model | " + " | ".join(
                      f"> {float(s) * 1e3:g} mm (n={rows[0].get(f'count_gt_{s}', 0)})"
                      for s in sizes) + " |",
                  "|---|" + "---:|" * len(sizes)]
        for r in rows:
            lines.append(f"| {r['model']} | " + " | ".join(
                dash(_cell(r.get(f"{metric}_gt_{s}", math.nan))) for s in sizes) + " |")
    chosen = [r for r in rows if r["chosen"]]
    if chosen:
        lines += ["", "## Chosen on the validation subset", "",
                  "| model | thresholds / hyperparameters |", "|---|---|"]
        lines += [f"| {r['model']} | {r['chosen']} |" for r in chosen]
    return "\n".join(lines) + "\n"


def _per_sample(predictions: Path) -> tuple[np.ndarray, np.ndarray]:
    """`(crack_size [m], IoU)` per evaluated sample."""
    with open_checked(predictions, ("crack_size", "iou"), "predictions") as ds:
        return ds["crack_size"].values.astype(float), ds["iou"].values.astype(float)


def plot_iou_vs_size(models: list[str], eval_dirs: list[Path], out: Path,
                     bins: int = SIZE_BINS) -> None:
    """Mean IoU per crack-size bin (equal widths over the evaluated sizes), one line a model."""
    per_model = {m: _per_sample(d / "predictions.nc") for m, d in zip(models, eval_dirs)}
    sizes = np.concatenate([s for s, _ in per_model.values()])
    fig = new_figure(figsize=(8.4, 4.4), layout="constrained")
    ax = fig.subplots()
    if sizes.size:
        lo, hi = float(sizes.min()), float(sizes.max())
        edges = np.linspace(lo, hi if hi > lo else lo + 1e-9, bins + 1)
        centres = 0.5 * (edges[:-1] + edges[1:])
        for m, (size, iou) in per_model.items():
            which = np.clip(np.digitize(size, edges) - 1, 0, bins - 1)
            mean = np.array([iou[which == b].mean() if np.any(which == b) else np.nan
                             for b in range(bins)])
            ax.plot(centres * 1e3, mean, marker="o", label=f"{m} (mean {iou.mean():.2f})")
        counts = np.histogram(next(iter(per_model.values()))[0], bins=edges)[0]
        for c, n in zip(centres, counts):
            ax.annotate(f"n={n}", (c * 1e3, 0.98), ha="center", va="top", fontsize=7, color="0.4")
    ax.set(xlabel="crack size (total length) [mm]", ylabel="mean IoU of the box", ylim=(0, 1),
           title="IoU against crack size (binned means, same test samples for every model)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    save_figure(fig, out, dpi=120)


def plot_losses(histories: Sequence[Path], out: Path) -> None:
    """Train (solid) and validation (dashed) loss per epoch, one colour per model; a model
    fitted in one step (one history row, the mean box) is a horizontal line. Losses differ
    between box and mask models (MSE vs BCE + Dice): compare shapes, not levels."""
    fig = new_figure(figsize=(6.8, 4.4), layout="constrained")
    ax = fig.subplots()
    colours = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, path in enumerate(histories):
        rows = _read_csv(path)
        if not rows:
            continue
        colour, name = colours[k % len(colours)], path.parent.name
        for key, style in (("train_loss", "-"), ("val_loss", "--")):
            values = [_float(r[key]) for r in rows]
            label = f"{name}: {key.replace('_', ' ')}"
            if len(rows) == 1:
                ax.axhline(values[0], color=colour, ls=style, lw=1, label=label + " (one fit)")
            else:
                ax.plot([int(r["epoch"]) for r in rows], values, style, color=colour,
                        marker=".", label=label)
    ax.set(xlabel="epoch", ylabel="loss", yscale="log",
           title="Training (solid) and validation (dashed) loss")
    if ax.get_legend_handles_labels()[0]:  # no history given: an empty plot, no legend
        ax.legend(fontsize=7)
    save_figure(fig, out, dpi=120)


def compare(eval_dirs: Sequence[str | os.PathLike], histories: Sequence[str | os.PathLike],
            out_dir: str | os.PathLike) -> list[Path]:
    """Write the four comparison files to `out_dir`; return their paths."""
    eval_dirs = [Path(d) for d in eval_dirs]
    names = [d.name for d in eval_dirs]
    if len(set(names)) != len(names):
        raise DataError(f"evaluation folders must have distinct names, got {names}")
    rows = [model_row(d) for d in eval_dirs]
    floor = add_floor_comparison(rows)
    subsets = {r["_subset"] for r in rows}
    splits = sorted({r["_split"] for r in rows if r["_split"]})
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / n for n in ("table.csv", "table.md", "iou_vs_crack_size.png",
                                   "loss_curves.png")]
    write_text_atomic(table_csv(rows), paths[0])
    write_text_atomic(table_markdown(rows, "/".join(sorted(subsets)), floor, ", ".join(splits)),
                      paths[1])
    plot_iou_vs_size(names, eval_dirs, paths[2])
    plot_losses([Path(h) for h in histories], paths[3])
    return paths
