"""Classical damage-imaging baselines (no training): RAPID and delay-and-sum.

`imaging` (grid, thresholds, geometry), `rapid`, `das`: pure functions; `run`: the grid search
on the validation subset and the scoring through `model.scoring.write_evaluation`.
"""

METHODS = ("rapid", "das")
