"""Distance to training of a crack-set model on several data sets, read from `python -m model
evaluate` outputs (crack_predictions.nc, metrics.json; `model.novelty`).

    python bench/crackset_novelty.py --runs held-out=DIR long-cracks=DIR speed+5%=DIR \
        --out docs/figures/crackset_novelty.png

Each DIR is one evaluation folder of the same checkpoint. Left: the distribution of each
set's plate distances with the threshold chosen on validation. Right: the coverage of the
90 % intervals (box corners and end points pooled per group) as the network and the
validation rescaling give them, and with the intervals of novel plates withdrawn. Prints
one JSON line per set: the fraction of novel plates, the coverages, and the alarms raised
on uncracked plates that are not flagged.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from model.plots import new_figure, save_figure  # noqa: E402


def read(run_dir: Path) -> dict:
    """One evaluation's distances, novel flags, alarms and 90 % coverages."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    if not metrics.get("novelty"):
        raise SystemExit(f"{run_dir}/metrics.json has no novelty: its checkpoint holds no "
                         "training distribution (trained before model.novelty)")
    with xr.open_dataset(run_dir / "crack_predictions.nc") as ds:
        novel = ds["novel"].values.astype(bool)
        alarm = ds["detected"].values.any(axis=1)
        uncracked = ~np.isfinite(ds["true_box"].values[..., 0]).any(axis=1)
        distance = ds["distance"].values

    def cover(key: str) -> dict:
        return {part: metrics[key][part]["coverage"]["all"]["0.9"] for part in ("box", "ends")}

    def interval(key: str) -> dict:   # 95 % plate bootstrap; absent before coverage_interval
        return {part: metrics[key][part].get("interval_all", {}).get("0.9")
                for part in ("box", "ends")}

    return {"distance": distance, "threshold": metrics["novelty"]["threshold"]["value"],
            "summary": {"plates": int(distance.size), "novel_fraction": float(novel.mean()),
                        "median_distance": float(np.median(distance)),
                        "coverage90": cover("calibration"),
                        "coverage90_withdrawn": cover("calibration_novelty"),
                        "coverage90_interval": interval("calibration"),
                        "coverage90_withdrawn_interval": interval("calibration_novelty"),
                        "uncracked": int(uncracked.sum()),
                        "uncracked_alarms": int((alarm & uncracked).sum()),
                        "uncracked_alarms_not_novel": int((alarm & uncracked & ~novel).sum())}}


def run_arg(text: str) -> tuple[str, Path]:
    """`NAME=DIR` -> (NAME, DIR), DIR an evaluation folder."""
    name, sep, folder = text.partition("=")
    if not (sep and name):
        raise argparse.ArgumentTypeError(f"--runs takes NAME=DIR, got {text!r}")
    for file in ("metrics.json", "crack_predictions.nc"):
        if not (Path(folder) / file).is_file():
            raise argparse.ArgumentTypeError(f"{folder}/{file} not found (a crack-set "
                                             "evaluate folder)")
    return name, Path(folder)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", nargs="+", required=True, type=run_arg, metavar="NAME=DIR")
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument("--title", default="crackset: distance to the training plates")
    args = p.parse_args(argv)
    runs = {name: read(folder) for name, folder in args.runs}
    thresholds = {r["threshold"] for r in runs.values()}
    if len(thresholds) != 1:
        raise SystemExit(f"the runs use different thresholds {sorted(thresholds)}: evaluate "
                         "them with --from-metrics of one validation evaluation")
    threshold = thresholds.pop()
    fig = new_figure(figsize=(11, 3.6), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=[1.3, 1])
    top = max(r["distance"].max() for r in runs.values())
    bins = np.linspace(0, 1.05 * top, 40)
    for name, r in runs.items():
        s = r["summary"]
        left.hist(r["distance"], bins=bins, histtype="step", linewidth=1.5, density=True,
                  label=f"{name}: {s['novel_fraction']:.0%} of {s['plates']} novel")
    left.axvline(threshold, color="black", linestyle="--", linewidth=1,
                 label=f"threshold {threshold:.2f} (99 % of val)")
    left.set(xlabel="Mahalanobis distance of the plate's embedding", ylabel="density")
    left.legend(fontsize=7)
    names, width = list(runs), 0.2
    x = np.arange(len(names))
    for i, (key, part, label) in enumerate([
            ("coverage90", "box", "box, as predicted"), ("coverage90_withdrawn", "box",
                                                         "box, novel withdrawn"),
            ("coverage90", "ends", "ends, as predicted"), ("coverage90_withdrawn", "ends",
                                                           "ends, novel withdrawn")]):
        values = np.array([runs[n]["summary"][key][part] or 0.0 for n in names])
        bounds = np.array([runs[n]["summary"][f"{key}_interval"][part] or [v, v]
                           for n, v in zip(names, values)])                 # (runs, 2)
        right.bar(x + (i - 1.5) * width, values, width, label=label,
                  color=["tab:blue", "tab:cyan", "tab:orange", "gold"][i],
                  yerr=np.abs(bounds.T - values), capsize=2, ecolor="0.3")
    right.axhspan(0.85, 0.95, color="tab:green", alpha=0.15, label="target 85–95 %")
    right.set_xlabel("error bars: 95 % bootstrap interval over the plates", fontsize=8)
    right.set_xticks(x, names)
    right.set(ylim=(0, 1.32), ylabel="90 % intervals cover", title="coverage of the truth")
    right.set_yticks(np.linspace(0, 1, 6))
    right.legend(fontsize=7, loc="upper center", ncol=3)
    fig.suptitle(args.title)
    save_figure(fig, args.out, dpi=120)
    summary = {name: r["summary"] for name, r in runs.items()}
    for name, s in summary.items():
        print(json.dumps({"set": name, **s}))
    return summary


if __name__ == "__main__":
    main()
