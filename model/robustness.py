"""Every scored model on clean and perturbed data: one table and one figure.

    python -m model robustness --eval-dirs results/heldout/eval/A ... \
        results/robustness/COND/eval/A ... --out-dir results/compare

Reads what `python -m model evaluate` and `baseline` wrote (the folder name is the model's)
and computes nothing new but means, ratios and bootstrap intervals. The condition of a
folder is what its metrics.json records (`model.scoring.condition_info`): nothing (clean),
`perturbation` (noise at `snr_db` [dB] with its `seed`, `dead_sensors` with its `draw`;
model.perturb) or `setup_change` (a material change; when only `plate.youngs_modulus`
changed, the wave-speed shift `sqrt(E_scored / E_trained) - 1`, since every speed of the
plate scales with the square root of Young's modulus at fixed density and Poisson's ratio).
Each model needs exactly one clean folder, its reference.

Writes to `out_dir`:
- `robustness.csv`: one row per model and condition: `kind` (clean, noise, dead_sensors,
  speed, or other), `level` (dB, sensors, or the speed shift as a fraction), `repeat`
  (noise seed or dead-sensor draw), count, IoU with its 95 % bootstrap interval
  (`model.metrics.bootstrap_ci` over predictions.nc's `iou`), Purity, Integrity, the clean
  IoU, `IoU_retained` (IoU / clean IoU) and, where both were scored on the same samples,
  `IoU_minus_clean` with the paired bootstrap interval of the mean per-sample difference;
- `robustness.md`: the IoU table (a row per condition, a column per model) and the retained
  fraction with the paired difference;
- `robustness.png`: IoU against SNR, against the number of dead sensors (mean over draws,
  each draw a dot) and against the speed shift, the clean IoU drawn in each panel.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from model.compare import format_interval, markdown_grid, score_row, table_csv
from model.io import DataError, write_text_atomic
from model.metrics import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, bootstrap_ci
from model.plots import new_figure, save_figure

SPEED_KEY = "plate.youngs_modulus"
KIND_ORDER = ("clean", "noise", "dead_sensors", "speed", "other")
PANELS = {"noise": "SNR [dB]", "dead_sensors": "dead sensors", "speed": "wave-speed shift [%]"}


def condition_of(m: dict) -> dict:
    """`kind`, `level`, `repeat` and a readable `label` of the data a metrics.json `m` was
    scored on (module docstring)."""
    perturbation = m.get("perturbation") or {}
    changes = (m.get("setup_change") or {}).get("changes") or {}
    if not perturbation and not changes:
        return {"kind": "clean", "level": math.nan, "repeat": "", "label": "clean"}
    if set(changes) == {SPEED_KEY} and not perturbation:
        before, after = changes[SPEED_KEY]
        shift = math.sqrt(after / before) - 1
        return {"kind": "speed", "level": shift, "repeat": "",
                "label": f"speed {100 * shift:+.1f} % (E × {after / before:.4g})"}
    if set(perturbation) == {"snr_db", "seed"} and not changes:
        return {"kind": "noise", "level": float(perturbation["snr_db"]),
                "repeat": perturbation["seed"],
                "label": f"noise {perturbation['snr_db']:g} dB (seed {perturbation['seed']})"}
    if set(perturbation) == {"dead_sensors", "draw"} and not changes:
        return {"kind": "dead_sensors", "level": float(perturbation["dead_sensors"]),
                "repeat": perturbation["draw"],
                "label": f"{perturbation['dead_sensors']} dead (draw {perturbation['draw']})"}
    parts = [f"{k} {v}" for k, v in perturbation.items()]
    parts += [f"{k} {a} -> {b}" for k, (a, b) in changes.items()]
    return {"kind": "other", "level": math.nan, "repeat": "", "label": ", ".join(parts)}


def _order(row: dict) -> tuple:
    """Clean first, then noise from high to low SNR, dead sensors and speed shifts rising."""
    level = 0.0 if math.isnan(row["level"]) else row["level"]
    return (KIND_ORDER.index(row["kind"]), -level if row["kind"] == "noise" else level,
            str(row["repeat"]), row["label"])


def condition_row(eval_dir: Path) -> dict:
    """One folder's row: `model.compare.score_row` with its condition after the model."""
    row = score_row(eval_dir)
    return {"model": row["model"], **condition_of(row["_metrics"]), **row}


def add_clean_comparison(rows: list[dict]) -> None:
    """Add `IoU_clean`, `IoU_retained` and the paired `IoU_minus_clean` (`_lo`, `_hi`) to
    every row, from its model's clean row; DataError naming a model with no clean row or
    more than one."""
    clean = {}
    for r in rows:
        if r["kind"] == "clean":
            if r["model"] in clean:
                raise DataError(f"two clean evaluations of {r['model']}: {clean[r['model']]['_path']} "
                                f"and {r['_path']}")
            clean[r["model"]] = r
    missing = sorted({r["model"] for r in rows} - set(clean))
    if missing:
        raise DataError(f"no clean evaluation (metrics.json without perturbation or setup_change) "
                        f"of {missing} among the --eval-dirs")
    for r in rows:
        c = clean[r["model"]]
        r.update(IoU_clean=c["IoU"], IoU_retained=r["IoU"] / c["IoU"] if c["IoU"] > 0 else math.nan,
                 IoU_minus_clean=math.nan, IoU_minus_clean_lo=math.nan,
                 IoU_minus_clean_hi=math.nan)
        a, b = r["_scores"], c["_scores"]
        if r is not c and np.array_equal(np.sort(a["sample"]), np.sort(b["sample"])):
            diff = a["IoU"][np.argsort(a["sample"])] - b["IoU"][np.argsort(b["sample"])]
            lo, hi = bootstrap_ci(diff)
            r.update(IoU_minus_clean=float(diff.mean()), IoU_minus_clean_lo=lo,
                     IoU_minus_clean_hi=hi)


def _iou(row: dict | None) -> str:
    return "–" if row is None else format_interval(row["IoU"], row["IoU_lo"], row["IoU_hi"])


def _retained(row: dict | None) -> str:
    """`83 % (-0.080 [-0.12, -0.04])`: IoU retained, then the paired change to clean."""
    if row is None or math.isnan(row["IoU_retained"]):
        return "–"
    return (f"{100 * row['IoU_retained']:.0f} % (" + format_interval(
        row["IoU_minus_clean"], row["IoU_minus_clean_lo"], row["IoU_minus_clean_hi"]) + ")")


def table_markdown(rows: list[dict]) -> str:
    """The IoU table and the retained-fraction table, a row per condition, a column per model."""
    models = list(dict.fromkeys(r["model"] for r in rows))
    conditions = list(dict.fromkeys(r["label"] for r in sorted(rows, key=_order)))
    cell = {(r["label"], r["model"]): r for r in rows}
    counts = "/".join(map(str, sorted({r["count"] for r in rows})))
    lines = ["# Robustness of the models", "",
             f"Every model and baseline scored on the same samples (n = {counts}), clean and "
             "perturbed, with nothing chosen on perturbed data: networks keep their "
             "checkpoints, mask thresholds and imaging hyperparameters come from the clean "
             "evaluation (docs/robustness.md). Noise and dead sensors change the recorded "
             "wavefield before any conditioning; a speed shift is a plate simulated with "
             "another Young's modulus, scored against the reference and wave speeds of the "
             "training plate.", "", "## IoU", "",
             *markdown_grid("condition", conditions, models,
                            lambda c, m: _iou(cell.get((c, m)))),
             "", "## Clean IoU retained, and the change paired by sample", "",
             "IoU / clean IoU, then the mean per-sample IoU difference to clean with its 95 % "
             "bootstrap interval (both scores resampled together).", "",
             *markdown_grid("condition", [c for c in conditions if c != "clean"], models,
                            lambda c, m: _retained(cell.get((c, m)))),
             "", f"In brackets: 95 % percentile-bootstrap intervals over the scored samples "
             f"({BOOTSTRAP_RESAMPLES} resamples, seed {BOOTSTRAP_SEED})."]
    return "\n".join(lines) + "\n"


def plot_robustness(rows: list[dict], out: Path) -> None:
    """IoU against each perturbation's level (module docstring), one colour per model."""
    kinds = [k for k in PANELS if any(r["kind"] == k for r in rows)] or ["noise"]
    fig = new_figure(figsize=(4.2 * len(kinds) + 1.8, 4.0), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(kinds), sharey=True))
    models = list(dict.fromkeys(r["model"] for r in rows))
    colours = [f"C{i % 10}" for i in range(len(models))]
    for ax, kind in zip(axes, kinds):
        for model, colour in zip(models, colours):
            clean = next(r for r in rows if r["model"] == model and r["kind"] == "clean")
            own = [r for r in rows if r["model"] == model and r["kind"] == kind]
            scale = 100.0 if kind == "speed" else 1.0
            levels = sorted({r["level"] for r in own})
            means = [np.mean([r["IoU"] for r in own if r["level"] == v]) for v in levels]
            if kind == "noise":
                ax.axhline(clean["IoU"], color=colour, ls=":", lw=1)
                ax.errorbar([r["level"] for r in own], [r["IoU"] for r in own],
                            yerr=[[r["IoU"] - r["IoU_lo"] for r in own],
                                  [r["IoU_hi"] - r["IoU"] for r in own]],
                            fmt="none", ecolor=colour, alpha=0.5, capsize=2)
            else:  # the clean IoU is level 0
                levels, means = [0.0, *levels], [clean["IoU"], *means]
                ax.scatter([scale * r["level"] for r in own], [r["IoU"] for r in own],
                           s=10, color=colour, alpha=0.6)
            ax.plot([scale * v for v in levels], means, "o-", color=colour, ms=4, label=model)
        ax.set(xlabel=PANELS[kind], ylim=(0, 1))
        if kind == "noise":
            ax.invert_xaxis()
            ax.set_title("noise (dotted: clean; bars: 95 % interval)", fontsize=9)
        elif kind == "dead_sensors":
            ax.set_title("dead sensors (line: mean over draws)", fontsize=9)
        else:
            ax.set_title("material: wave-speed shift", fontsize=9)
    axes[0].set_ylabel("mean IoU of the box")
    axes[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    save_figure(fig, out, dpi=120)


def robustness(eval_dirs: Sequence[str | os.PathLike], out_dir: str | os.PathLike) -> list[Path]:
    """Write robustness.csv, robustness.md and robustness.png to `out_dir`; return the paths."""
    rows = [condition_row(Path(d)) for d in eval_dirs]
    if not rows:
        raise DataError("no evaluation folders given")
    add_clean_comparison(rows)
    rows.sort(key=_order)  # stable: models keep the order given
    out_dir = Path(out_dir)
    paths = [out_dir / f"robustness.{ext}" for ext in ("csv", "md", "png")]
    write_text_atomic(table_csv(rows), paths[0])
    write_text_atomic(table_markdown(rows), paths[1])
    plot_robustness(rows, paths[2])
    return paths
