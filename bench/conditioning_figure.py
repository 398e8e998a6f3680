"""What MicroCrackPointNet sees: one sample's input under each input conditioning.

For one sample, draws the network input `(time, sensor)` of the uy component (as an image,
sensors on the vertical axis in row-major order, the colour scale clipped at the 99th
percentile of |x|) for each (reference, scaling) pair of `python -m model train`, after
the network's first max-pool over time (x4, what the first Inception block receives).
Statistics come from the training samples of the split, as in training.

    python bench/conditioning_figure.py --data results/data/shard-*.nc \
        --labels results/labels/shard-*.nc --split results/split/split.json \
        --pristine results/data/pristine.nc --sample 0 --out docs/figures/conditioning.png

Prints one JSON line: for each conditioning, the ratio of the largest to the median sensor
RMS of the input (how much a few sensors near the source dominate what the network sees).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from model.data import (ShardIndex, WavefieldDataset, load_labels, normalisation_stats,  # noqa: E402
                        read_split)
from model.train import training_reference  # noqa: E402

CONDITIONINGS = [("none", "component"), ("subtract", "component"), ("mean", "sensor"),
                 ("subtract", "sensor"), ("subtract", "trace")]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", nargs="+", required=True)
    parser.add_argument("--labels", nargs="+", required=True)
    parser.add_argument("--split", required=True)
    parser.add_argument("--pristine", required=True)
    parser.add_argument("--sample", type=int, default=0, help="global sample index to draw")
    parser.add_argument("--max-train", type=int, default=200,
                        help="training samples the statistics use (the first ones)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    labels = load_labels(args.labels)
    split = read_split(args.split, labels)
    index = ShardIndex.build(args.data)
    train_ids = np.asarray(split["train"], np.int64)[:args.max_train]
    fig, axes = plt.subplots(1, len(CONDITIONINGS), figsize=(3.2 * len(CONDITIONINGS), 3.6),
                             sharey=True, constrained_layout=True)
    summary = {}
    for ax, (reference_kind, scaling) in zip(axes, CONDITIONINGS):
        reference = training_reference(reference_kind, index, train_ids, args.pristine)
        stats = normalisation_stats(index, train_ids, reference, scaling)
        dataset = WavefieldDataset(index, np.array([args.sample]), labels, stats, reference)
        x = dataset[0][0].numpy()
        dataset.close()
        pooled = x.reshape(x.shape[0] // 4, 4, *x.shape[1:]).max(axis=1)[:, :, 1]  # (500, 81) uy
        limit = np.percentile(np.abs(pooled), 99) or 1.0
        ax.imshow(pooled.T, aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit,
                  interpolation="nearest")
        ax.set_title(f"reference {reference_kind}\nscaling {scaling}", fontsize=9)
        ax.set_xlabel("time record (after max-pool x4)")
        rms = np.sqrt(np.mean(x**2, axis=0)).sum(axis=1)  # (sensor,)
        summary[f"{reference_kind}/{scaling}"] = {
            "max_over_median_trace_rms": round(float(rms.max() / np.median(rms)), 2)}
    axes[0].set_ylabel("sensor (row-major on the 9x9 grid)")
    fig.suptitle(f"network input of sample {args.sample}, uy component", fontsize=10)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
