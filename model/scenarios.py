"""Every scored model on crack scenarios it was not trained on: one table.

    python -m model scenarios --reference results/heldout/eval/A ... \
        --scenario two-cracks results/scenarios/two-cracks/eval/A ... \
        --scenario long results/scenarios/long/eval/A ... --out-dir results/compare

A scenario is a test set simulated with another `simulation.cracks` section (other
families, geometries, lengths or counts) on the training set-up, scored with the trained
models and the thresholds and hyperparameters chosen on the main validation subset
(docs/scenarios.md). The optional reference is the same models on held-out samples of the
training crack distribution. Reads what `python -m model evaluate` and `baseline` wrote (the
folder name is the model's) and computes nothing new but bootstrap intervals
(`model.compare.score_row`). Scenarios hold different samples, so no difference is paired.

Writes to `out_dir`:
- `scenarios.csv`: one row per model; per column group (`heldout` for the reference, then
  each scenario in the order given) `GROUP:count`, `GROUP:IoU`, `GROUP:IoU_lo`,
  `GROUP:IoU_hi`, `GROUP:Purity`, `GROUP:Integrity` (empty where the model was not scored);
- `scenarios.md`: IoU with its 95 % bootstrap interval, a row per model, a column per group.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

from model.compare import format_interval, markdown_grid, score_row, table_csv
from model.io import DataError, write_text_atomic
from model.metrics import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED

REFERENCE = "heldout"  # the reference's column group; no scenario may take the name
GROUP_KEYS = ("count", "IoU", "IoU_lo", "IoU_hi", "Purity", "Integrity")


def group_rows(name: str, eval_dirs: Sequence[str | os.PathLike]) -> dict[str, dict]:
    """`{model: score_row}` of one column group; DataError if it is empty or two of its
    folders have the same name (one per model)."""
    if not eval_dirs:
        raise DataError(f"scenario {name!r} has no evaluation folders")
    rows = [score_row(Path(d)) for d in eval_dirs]
    models = [r["model"] for r in rows]
    repeated = sorted({m for m in models if models.count(m) > 1})
    if repeated:
        raise DataError(f"scenario {name!r} holds two folders named {', '.join(repeated)} "
                        "(one evaluation folder per model)")
    return dict(zip(models, rows))


def scenario_table(groups: dict[str, dict[str, dict]]) -> list[dict]:
    """One row per model (in order of first appearance) with `GROUP:KEY` per group."""
    models = list(dict.fromkeys(m for rows in groups.values() for m in rows))
    return [{"model": m, **{f"{g}:{k}": rows[m][k] if m in rows else float("nan")
                            for g, rows in groups.items() for k in GROUP_KEYS}}
            for m in models]


def table_markdown(table: list[dict], groups: Sequence[str]) -> str:
    """IoU [95 % interval] per model (rows) and group (columns), the reference first."""
    cell = {r["model"]: r for r in table}

    def head(group: str) -> str:
        counts = sorted({r[f"{group}:count"] for r in table
                         if not math.isnan(r[f"{group}:count"])})
        name = "held-out, training cracks" if group == REFERENCE else group
        return f"{name} (n = {'/'.join(map(str, counts))})"

    heads = {head(g): g for g in groups}
    iou = markdown_grid("model", list(cell), list(heads), lambda m, h: format_interval(
        *(cell[m][f"{heads[h]}:{k}"] for k in ("IoU", "IoU_lo", "IoU_hi"))))
    lines = ["# The models on crack scenarios they were not trained on", "",
             "Every model and baseline scored on test sets simulated with another "
             "`simulation.cracks` section on the training set-up, choosing nothing there: "
             "networks keep their checkpoints, mask thresholds and imaging hyperparameters "
             "come from the main validation subset (docs/scenarios.md). Scenarios hold "
             "different samples: compare a model across columns by their intervals only.",
             "", "## IoU", "", *iou, "",
             f"In brackets: 95 % percentile-bootstrap intervals over each set's scored "
             f"samples ({BOOTSTRAP_RESAMPLES} resamples, seed {BOOTSTRAP_SEED}); n counts "
             "the samples with a crack."]
    return "\n".join(lines) + "\n"


def scenarios(scenario_dirs: dict[str, Sequence[str | os.PathLike]],
              out_dir: str | os.PathLike,
              reference: Sequence[str | os.PathLike] = ()) -> list[Path]:
    """Write scenarios.csv and scenarios.md to `out_dir` from `{scenario: eval folders}`
    and the optional reference folders; return the paths."""
    if not scenario_dirs:
        raise DataError("no scenario given")
    if REFERENCE in scenario_dirs:
        raise DataError(f"a scenario may not be named {REFERENCE!r} (the reference's columns)")
    groups = {REFERENCE: group_rows(REFERENCE, reference)} if reference else {}
    groups.update({name: group_rows(name, dirs) for name, dirs in scenario_dirs.items()})
    table = scenario_table(groups)
    out_dir = Path(out_dir)
    paths = [out_dir / f"scenarios.{ext}" for ext in ("csv", "md")]
    write_text_atomic(table_csv(table), paths[0])
    write_text_atomic(table_markdown(table, list(groups)), paths[1])
    return paths
