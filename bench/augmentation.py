"""Training-time augmentation, measured: MicroCrackPointNet with and without noise and dead
sensors drawn per training sample (`--augment-snr-db`, `--augment-dead-sensors`), scored clean
and perturbed (docs/robustness.md, "Training-time augmentation").

`splits` writes the split files of bench/ablation.py's rows (`split_rows`: the same validation,
test, training and held-out samples as the data-scaling runs) from the label files of DIR;
training uses the package's CLI (`python -m model train`, here the workflow's
MicroCrackPointNet recipe of workflow/config/default.yaml with 6 epochs); `score` runs
`python -m model evaluate` (with `--perturb`) of one run on the validation, test and
held-out samples, clean, at 20 and 10 dB SNR and with 5 dead sensors; `table` prints the IoU
with bootstrap 95 % intervals, the share of the clean IoU kept and the paired change from
the first run:

    python bench/augmentation.py splits --data-dir DIR --ntrain 400 --work-dir WORK
    python -m model train --data DIR/shard-*.nc --labels DIR/labels-0*.nc \
        --split WORK/split.json --pristine DIR/pristine.nc --out-dir WORK/RUN \
        --arch microcrackpointnet --arch-kwargs '{"dropout": 0.0}' --epochs 6 --batch-size 16 \
        --lr 0.002 --warmup-epochs 1.0 --weight-decay 1.0e-4 --loss mse --scheduler cosine \
        --seed 0 --reference subtract --scaling sensor [--augment-snr-db 10 30 ...]
    python bench/augmentation.py score --data-dir DIR --work-dir WORK --run RUN
    python bench/augmentation.py table --work-dir WORK --runs BASE RUN ...

DIR holds `shard-*.nc`, `labels-0*.nc`, `heldout.nc`, `labels-heldout.nc` and `pristine.nc`
(bench/ablation.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from ablation import split_rows  # noqa: E402
from model.data import load_labels, write_split  # noqa: E402
from model.metrics import bootstrap_ci, box_iou  # noqa: E402


def splits(args) -> None:
    """split.json (train / val / test), val-split.json (the validation samples as `test`, to
    choose on) and heldout-split.json (the held-out samples as `test`) in `--work-dir`."""
    main = sorted(str(p) for p in args.data_dir.glob("labels-0*.nc"))
    held = [str(args.data_dir / "labels-heldout.nc")]
    labels = load_labels(main + held)
    box = np.where(labels.has_crack[:, None], labels.box, np.nan)
    train, val, test, heldout = split_rows(box, labels.sample, args.nval, args.ntrain,
                                           args.heldout_start)
    ids = {name: sorted(labels.sample[rows].tolist())
           for name, rows in (("train", train), ("val", val), ("test", test), ("heldout", heldout))}
    args.work_dir.mkdir(parents=True, exist_ok=True)
    for name, files, subsets in (
            ("split", main, {"train": ids["train"], "val": ids["val"], "test": ids["test"]}),
            ("val-split", main, {"train": [], "val": [], "test": ids["val"]}),
            ("heldout-split", held, {"train": [], "val": [], "test": ids["heldout"]})):
        write_split({"seed": 0, "labels": files, **subsets, "no_crack": []},
                    args.work_dir / f"{name}.json")
    print(json.dumps({name: len(v) for name, v in ids.items()}))


CONDITIONS = {"clean": None, "snr20": '{"snr_db": 20, "seed": 0}',
              "snr10": '{"snr_db": 10, "seed": 0}', "dead5": '{"dead_sensors": 5, "draw": 0}'}
SUBSETS = ("val", "test", "heldout")


def score(args) -> None:
    """`python -m model evaluate` of WORK/RUN/checkpoint.pt on each subset (val and test of
    split.json through val-split.json and split.json; heldout through heldout-split.json) and
    condition, into WORK/RUN/eval/SUBSET-CONDITION; prints each command."""
    from model.cli import main as model_cli

    run = args.work_dir / args.run
    main_data = sorted(str(p) for p in args.data_dir.glob("shard-*.nc"))
    main_labels = sorted(str(p) for p in args.data_dir.glob("labels-0*.nc"))
    inputs = {"val": (main_data, main_labels, "val-split.json"),
              "test": (main_data, main_labels, "split.json"),
              "heldout": ([str(args.data_dir / "heldout.nc")],
                          [str(args.data_dir / "labels-heldout.nc")], "heldout-split.json")}
    for subset in args.subsets:
        data, labels, split = inputs[subset]
        for condition in args.conditions:
            out = run / "eval" / f"{subset}-{condition}"
            argv = ["evaluate", "--data", *data, "--labels", *labels,
                    "--split", str(args.work_dir / split), "--checkpoint",
                    str(run / "checkpoint.pt"), "--out-dir", str(out), "--device", "cpu"]
            if CONDITIONS[condition] is not None:
                argv += ["--perturb", CONDITIONS[condition]]
            print("python -m model " + " ".join(argv), flush=True)
            if model_cli(argv) != 0:
                raise SystemExit(f"evaluate failed: {out}")


def _iou(folder: Path) -> np.ndarray:
    """Per-sample box IoU `(N,)` of an evaluation's predictions.nc, in its sample order."""
    import xarray as xr

    with xr.open_dataset(folder / "predictions.nc") as preds:
        return box_iou(preds["pred_box"].values, preds["true_box"].values)


def table(args) -> None:
    """A markdown table: per subset and condition, each run's IoU [95 % interval], the share of
    its clean IoU on the same samples it keeps, and (for every run after the first) the
    paired change from the first run's IoU on the same samples [95 % interval]."""
    base = args.runs[0]
    print("| subset | condition | " + " | ".join(f"{run} IoU (kept)" for run in args.runs)
          + "".join(f" | {run} - {base}" for run in args.runs[1:]) + " |")
    print("|---|---|" + "---:|" * (2 * len(args.runs) - 1))
    for subset in args.subsets:
        for condition in args.conditions:
            cells, iou = [], {}
            for run in args.runs:
                folder = args.work_dir / run / "eval" / f"{subset}-{condition}"
                iou[run] = _iou(folder)
                clean = _iou(args.work_dir / run / "eval" / f"{subset}-clean").mean()
                lo, hi = bootstrap_ci(iou[run])
                cells.append(f"{iou[run].mean():.3f} [{lo:.2f}, {hi:.2f}] "
                             f"({iou[run].mean() / clean:.0%})")
            for run in args.runs[1:]:
                change = iou[run] - iou[base]
                lo, hi = bootstrap_ci(change)
                cells.append(f"{change.mean():+.3f} [{lo:+.2f}, {hi:+.2f}]")
            print(f"| {subset} (n = {len(iou[base])}) | {condition} | " + " | ".join(cells) + " |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("splits", help="the split files of the ablation rows")
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--work-dir", type=Path, required=True)
    p.add_argument("--ntrain", type=int, required=True)
    p.add_argument("--nval", type=int, default=200)
    p.add_argument("--heldout-start", type=int, default=1_000_000)
    p = sub.add_parser("score", help="evaluate one run on every subset and condition")
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--work-dir", type=Path, required=True)
    p.add_argument("--run", required=True, help="WORK/RUN holds checkpoint.pt")
    p.add_argument("--subsets", nargs="+", choices=SUBSETS, default=list(SUBSETS))
    p.add_argument("--conditions", nargs="+", choices=list(CONDITIONS), default=list(CONDITIONS))
    p = sub.add_parser("table", help="markdown table of scored runs (the first is the reference)")
    p.add_argument("--work-dir", type=Path, required=True)
    p.add_argument("--runs", nargs="+", required=True)
    p.add_argument("--subsets", nargs="+", choices=SUBSETS, default=list(SUBSETS))
    p.add_argument("--conditions", nargs="+", choices=list(CONDITIONS), default=list(CONDITIONS))
    args = parser.parse_args(argv)
    {"splits": splits, "score": score, "table": table}[args.command](args)


if __name__ == "__main__":
    main()
