"""Data-scaling figure: test and held-out IoU against the number of training samples.

Reads the JSON lines that `bench/ablation.py run --out FILE` appends (one per training-set
size, same recipe), adds the mean box fitted on the same training samples (from the cache of
`bench/ablation.py cache`), and writes a CSV and a PNG with the bootstrap 95 % intervals:

    for n in 150 400 1000; do
        python bench/ablation.py run --data-dir DIR --cache-dir CACHE --ntrain $n --epochs 6 \\
            --cond sub_sensor --loss l1_giou --box-output centre_size --dropout 0 --out scaling.jsonl
    done
    python bench/data_scaling.py --runs scaling.jsonl --cache-dir CACHE \\
        --csv docs/figures/data_scaling.csv --png docs/figures/data_scaling.png
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from ablation import split_rows  # noqa: E402
from model.metrics import bootstrap_ci, box_iou  # noqa: E402


def mean_box_scores(cache: Path, options: dict) -> dict:
    """IoU of the training-mean box on the run's test and held-out rows (same split rule)."""
    box = np.load(cache / "box.npy")
    train, _, test, held = split_rows(box, np.load(cache / "sample.npy"), options["nval"],
                                      options["ntrain"], options["heldout_start"])
    mean = box[train].mean(axis=0)
    out = {}
    for name, rows in (("test", test), ("heldout", held)):
        iou = box_iou(np.repeat(mean[None], len(rows), axis=0), box[rows])
        out[name] = {"iou": float(iou.mean()), "ci95": bootstrap_ci(iou)}
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, required=True, help="JSON lines of bench/ablation.py")
    parser.add_argument("--cache-dir", type=Path, required=True)
    parser.add_argument("--csv", type=Path, required=True)
    parser.add_argument("--png", type=Path, required=True)
    args = parser.parse_args(argv)
    runs = sorted((json.loads(line) for line in args.runs.read_text().splitlines() if line),
                  key=lambda r: r["options"]["ntrain"])
    rows = []
    for run in runs:
        n = run["options"]["ntrain"]
        for model, scores in (("microcrackpointnet", run), ("meanbox", mean_box_scores(args.cache_dir, run["options"]))):
            for subset in ("test", "heldout"):
                s = scores[subset]
                rows.append({"model": model, "n_train": n, "subset": subset, "iou": round(s["iou"], 4),
                             "ci_lo": round(s["ci95"][0], 4), "ci_hi": round(s["ci95"][1], 4),
                             "epochs": run["options"]["epochs"]})
    args.csv.parent.mkdir(parents=True, exist_ok=True)
    with open(args.csv, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    fig = Figure(figsize=(5.5, 3.8), constrained_layout=True)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for (model, subset), style in {("microcrackpointnet", "test"): "o-", ("microcrackpointnet", "heldout"): "s--",
                                   ("meanbox", "test"): "o-", ("meanbox", "heldout"): "s--"}.items():
        pick = [r for r in rows if r["model"] == model and r["subset"] == subset]
        n = np.array([r["n_train"] for r in pick])
        iou = np.array([r["iou"] for r in pick])
        err = np.array([[r["iou"] - r["ci_lo"] for r in pick], [r["ci_hi"] - r["iou"] for r in pick]])
        ax.errorbar(n, iou, yerr=err, fmt=style, capsize=3, label=f"{model}, {subset}",
                    color="C0" if model == "microcrackpointnet" else "C7")
    ax.set_xscale("log")
    ax.set_xlabel("training samples")
    ax.set_ylabel("mean box IoU (95 % interval)")
    ax.set_ylim(0, None)
    ax.set_title(f"MicroCrackPointNet, measured recipe, {rows[0]['epochs']} epochs", fontsize=9)
    ax.legend(fontsize=7)
    fig.savefig(args.png, dpi=120)
    print(f"wrote {args.csv} and {args.png}")


if __name__ == "__main__":
    main()
