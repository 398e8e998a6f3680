"""Data-scaling figure: test and held-out IoU against the number of training samples.

MicroCrackPointNet runs come from `bench/ablation.py run --out FILE` (the recipe on cached
pooled inputs, one JSON line per training-set size); densenet1d runs from `densenet` below,
which trains and scores it with the package itself (`model.train.train`, `model.evaluate.
evaluate`) on the same rows (`ablation.split_rows`: same validation, test, training and
held-out samples); the mean box is fitted on the same training samples. `figure` writes a
CSV and a PNG with the bootstrap 95 % intervals:

    for n in 150 400 800 3000; do
        python bench/ablation.py run --data-dir DIR --cache-dir CACHE --ntrain $n --epochs 6 \
            --cond sub_sensor --loss mse --box-output corners --dropout 0 --threads 1 \
            --out scaling.jsonl
        python bench/data_scaling.py densenet --data-dir DIR --cache-dir CACHE --ntrain $n \
            --epochs 6 --work-dir WORK --out scaling.jsonl
    done
    python bench/data_scaling.py figure --runs scaling.jsonl --cache-dir CACHE \
        --csv docs/figures/data_scaling.csv --png docs/figures/data_scaling.png

DIR holds shards and labels as `bench/ablation.py` describes, written by the current
`python -m dlem simulate` (the package checks their provenance attributes).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from ablation import split_rows  # noqa: E402
from model.metrics import bootstrap_ci, box_iou  # noqa: E402

PAPER_IOU = 0.511  # the paper's test IoU of MicroCrackPointNet (all crack sizes)
# densenet1d as the workflow's default.yaml trains it, for a fixed number of epochs
DENSENET = {"arch": "densenet1d", "batch_size": 8, "lr": 3e-3, "weight_decay": 1e-4,
            "scheduler": "cosine", "warmup_epochs": 0.0, "reference": "none",
            "scaling": "component", "seed": 0}


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


def _split_file(path: Path, ids: dict, labels: list[str]) -> Path:
    """A split JSON with the given sample ids per subset (every sample has a crack)."""
    from model.data import write_split

    write_split({"seed": 0, "labels": labels, **{k: sorted(map(int, v)) for k, v in ids.items()},
                 "no_crack": []}, path)
    return path


def _scores(predictions: Path) -> dict:
    """Mean box IoU, bootstrap interval and count of an evaluation's predictions.nc."""
    import xarray as xr

    with xr.open_dataset(predictions) as preds:
        iou = box_iou(preds["pred_box"].values, preds["true_box"].values)
    return {"iou": float(iou.mean()), "ci95": bootstrap_ci(iou), "n": int(len(iou))}


def densenet(args) -> dict:
    """Train densenet1d on `--ntrain` samples of the ablation split, score test and held-out,
    append one JSON line (bench/ablation.py's format, `options.arch` = densenet1d)."""
    import torch

    from model.evaluate import evaluate
    from model.train import TrainConfig, train

    torch.set_num_threads(args.threads)
    sample = np.load(args.cache_dir / "sample.npy")
    train_rows, val, test, held = split_rows(np.load(args.cache_dir / "box.npy"), sample,
                                             args.nval, args.ntrain, args.heldout_start)
    shards = sorted(str(p) for p in args.data_dir.glob("shard-*.nc"))
    labels = sorted(str(p) for p in args.data_dir.glob("labels-[0-9]*.nc"))
    work = args.work_dir / f"densenet1d-{args.ntrain}"
    work.mkdir(parents=True, exist_ok=True)
    split = _split_file(work / "split.json", {"train": sample[train_rows], "val": sample[val],
                                              "test": sample[test]}, labels)
    config = TrainConfig(**DENSENET, epochs=args.epochs, patience=args.epochs)
    tic = time.perf_counter()
    state = train(shards, labels, str(split), work / "run", config, progress=False)
    seconds = time.perf_counter() - tic
    checkpoint = work / "run" / "checkpoint.pt"
    evaluate(shards, labels, str(split), checkpoint, work / "test")
    held_split = _split_file(work / "heldout-split.json", {"train": [], "val": [],
                                                           "test": sample[held]},
                             [str(args.data_dir / "labels-heldout.nc")])
    evaluate([str(args.data_dir / "heldout.nc")], [str(args.data_dir / "labels-heldout.nc")],
             str(held_split), checkpoint, work / "heldout",
             from_metrics=work / "test" / "metrics.json")
    options = {"arch": "densenet1d", **DENSENET, "epochs": args.epochs, "ntrain": args.ntrain,
               "nval": args.nval, "heldout_start": args.heldout_start, "threads": args.threads,
               "data_dir": str(args.data_dir)}
    result = {"options": options, "training_seconds": seconds,
              "test": _scores(work / "test" / "predictions.nc"),
              "heldout": _scores(work / "heldout" / "predictions.nc"),
              "history": state["history"]}
    print(json.dumps({k: result[k] for k in ("training_seconds", "test", "heldout")}))
    with open(args.out, "a") as handle:
        handle.write(json.dumps(result) + "\n")
    return result


def figure(args) -> None:
    runs = sorted((json.loads(line) for line in args.runs.read_text().splitlines() if line),
                  key=lambda r: r["options"]["ntrain"])
    rows = []
    for run in runs:
        n = run["options"]["ntrain"]
        arch = run["options"].get("arch", "microcrackpointnet")
        pairs = [(arch, run)]
        if arch == "microcrackpointnet":  # one mean box per training set
            pairs.append(("meanbox", mean_box_scores(args.cache_dir, run["options"])))
        for model, scores in pairs:
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
    colours = {"microcrackpointnet": "C0", "densenet1d": "C1", "meanbox": "C7"}
    for model, subset in itertools.product(colours, ("test", "heldout")):
        pick = [r for r in rows if r["model"] == model and r["subset"] == subset]
        if not pick:
            continue
        n = np.array([r["n_train"] for r in pick])
        iou = np.array([r["iou"] for r in pick])
        err = np.array([[r["iou"] - r["ci_lo"] for r in pick], [r["ci_hi"] - r["iou"] for r in pick]])
        ax.errorbar(n, iou, yerr=err, fmt="o-" if subset == "test" else "s--", capsize=3,
                    label=f"{model}, {subset}", color=colours[model])
    ax.set_xscale("log")
    sizes = sorted({r["n_train"] for r in rows})
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.minorticks_off()
    ax.axhline(PAPER_IOU, color="k", lw=0.8, ls=":",
               label=f"paper's MicroCrackPointNet ({PAPER_IOU}; its own set-up, 200 epochs)")
    ax.set_xlabel("training samples")
    ax.set_ylabel("mean box IoU (95 % interval)")
    ax.set_ylim(0, None)
    ax.set_title(f"MicroCrackPointNet (measured recipe) and densenet1d, "
                 f"{rows[0]['epochs']} epochs", fontsize=9)
    ax.legend(fontsize=7, loc="lower right", bbox_to_anchor=(1.0, 0.1))
    fig.savefig(args.png, dpi=120)
    print(f"wrote {args.csv} and {args.png}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("densenet", help="train and score densenet1d on one training-set size")
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--cache-dir", type=Path, required=True, help="bench/ablation.py's cache")
    p.add_argument("--work-dir", type=Path, required=True, help="checkpoints and evaluations")
    p.add_argument("--ntrain", type=int, required=True)
    p.add_argument("--nval", type=int, default=200)
    p.add_argument("--heldout-start", type=int, default=1_000_000)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, required=True, help="append the result to these JSON lines")
    p = sub.add_parser("figure", help="CSV and PNG from the JSON lines")
    p.add_argument("--runs", type=Path, required=True, help="JSON lines of both drivers")
    p.add_argument("--cache-dir", type=Path, required=True)
    p.add_argument("--csv", type=Path, required=True)
    p.add_argument("--png", type=Path, required=True)
    args = parser.parse_args(argv)
    densenet(args) if args.command == "densenet" else figure(args)


if __name__ == "__main__":
    main()
