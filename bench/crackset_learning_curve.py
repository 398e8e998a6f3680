"""Learning curve of the crack-set model: its detection scores against the number of
training plates, read from `python -m model evaluate` outputs (crack_predictions.nc,
metrics.json).

    python bench/crackset_learning_curve.py --runs 168=DIR 420=DIR 840=DIR \
        --out docs/figures/crackset_learning_curve.png

Each DIR is one evaluation folder (e.g. the held-out one) of a model trained on that many
plates. Plotted with their 95 % bootstrap intervals, scored anew from the predictions
(`model.detection.detection_scores`, `detection_intervals`): AP@0.5, count accuracy on the
cracked plates (issue 10's target; beside it, without intervals, on the plates with exactly
1, 2 and 3 cracks, `model.detection.count_table`) and matched IoU; the end-point error [mm] of
the cracks longer than 8 mm without an interval (metrics.json's `detection_by_size`). Prints
one JSON line with the values.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from model.crackset_scoring import prediction_matches  # noqa: E402
from model.detection import count_table, detection_intervals, detection_scores  # noqa: E402
from model.plots import new_figure, save_figure  # noqa: E402

PANELS = {"AP50": ("AP@0.5", 0.70),
          "count_accuracy_cracked": ("count accuracy, 1-3 cracks", 0.90),
          "matched_IoU": ("matched IoU (all cracks)", None)}


def read(run_dir: Path) -> dict:
    matches = prediction_matches(run_dir)[1]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    long = [r for r in metrics["detection_by_size"] if abs(r["threshold"] - 0.008) < 1e-12]
    by_count = {row["n_cracks"]: row["count_accuracy"] for row in count_table(matches)
                if row["n_cracks"] > 0 and row["samples"] > 0}
    return {"detection": detection_scores(matches), "interval": detection_intervals(matches),
            "count_by_cracks": by_count,
            "endpoint_8mm": long[0]["endpoint_error_m"] if long else None}


def run_arg(text: str) -> tuple[int, Path]:
    """`N=DIR` -> (N, DIR), DIR holding an evaluation's metrics.json."""
    n, sep, folder = text.partition("=")
    if not (sep and n.isdigit() and int(n) > 0):
        raise argparse.ArgumentTypeError(f"--runs takes N=DIR with N > 0 plates, got {text!r}")
    for name in ("metrics.json", "crack_predictions.nc"):
        if not (Path(folder) / name).is_file():
            raise argparse.ArgumentTypeError(f"{folder}/{name} not found (a crack-set "
                                             "evaluate folder)")
    return int(n), Path(folder)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", nargs="+", required=True, type=run_arg, metavar="N=DIR")
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument("--title", default="crackset on the held-out plates")
    args = p.parse_args(argv)
    runs = sorted((n, read(folder)) for n, folder in args.runs)
    sizes = [n for n, _ in runs]
    fig = new_figure(figsize=(12, 3.4), layout="constrained")
    axes = fig.subplots(1, len(PANELS) + 1)
    for ax, (key, (label, target)) in zip(axes, PANELS.items()):
        mean = [r["detection"][key] for _, r in runs]
        lo = [m - r["interval"][key][0] for m, (_, r) in zip(mean, runs)]
        hi = [r["interval"][key][1] - m for m, (_, r) in zip(mean, runs)]
        ax.errorbar(sizes, mean, yerr=[lo, hi], fmt="o-", capsize=3,
                    label="1-3 cracks" if key == "count_accuracy_cracked" else None)
        if key == "count_accuracy_cracked":
            for n, style in zip((1, 2, 3), (":", "--", "-.")):
                ax.plot(sizes, [r["count_by_cracks"].get(n, float("nan")) for _, r in runs],
                        linestyle=style, marker=".", color="0.4", label=f"{n} crack{'s' * (n > 1)}")
        if target is not None:
            ax.axhline(target, color="tab:red", linestyle="--", linewidth=1,
                       label=f"issue 10 target {target:g}")
            ax.legend(fontsize=7, loc="lower right")
        ax.set(xscale="log", xlabel="training plates", title=label, ylim=(0, 1))
        ax.set_xticks(sizes, [str(n) for n in sizes])
        ax.minorticks_off()
    ends = [1e3 * r["endpoint_8mm"] for _, r in runs]
    axes[-1].plot(sizes, ends, "o-", color="tab:purple")
    axes[-1].axhline(6.25, color="tab:red", linestyle="--", linewidth=1, label="one label cell")
    axes[-1].legend(fontsize=7)
    axes[-1].set(xscale="log", xlabel="training plates", ylabel="mm", ylim=(0, 7.5),
                 title="end-point error, cracks > 8 mm")
    axes[-1].set_xticks(sizes, [str(n) for n in sizes])
    axes[-1].minorticks_off()
    fig.suptitle(args.title)
    save_figure(fig, args.out, dpi=120)
    summary = {n: {**{k: r["detection"][k] for k in PANELS}, "endpoint_8mm_m": r["endpoint_8mm"],
                   "count_accuracy_by_cracks": r["count_by_cracks"]} for n, r in runs}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
