"""The solver's record of a plate with straight cracks between given end points, and those
end points fitted to a measured record (compass search): what peeling and the solver check
(`crackpoint.peeling`, `crackpoint.completion`) simulate."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dlem import dataset as dlem_dataset
from dlem.cracks import Polyline

MIN_CRACK_M = 1e-4           # a predicted crack shorter than this is not simulated
FIT_STEPS_M = (2e-3, 1e-3)   # compass-search steps of `fit_ends`


def straight(ends: np.ndarray) -> Polyline | None:
    """A straight solver crack between `ends` `(2, 2)` [m]; None when shorter than
    `MIN_CRACK_M` (no bond to cut)."""
    ends = np.asarray(ends, np.float64)
    return Polyline.from_params(points=ends) if np.linalg.norm(ends[1] - ends[0]) >= MIN_CRACK_M \
        else None


def solver_cracks(ends: np.ndarray) -> list[Polyline]:
    """Straight solver cracks of end points `(n, 2, 2)` [m], those under `MIN_CRACK_M` left
    out."""
    return [c for c in map(straight, ends) if c is not None]


def cracks_field(setup, ends: np.ndarray) -> np.ndarray:
    """The sensor wavefield `(T, sensor, 2)` float64 [m] of the plate of `setup`
    (`dlem.dataset.setup`) with straight cracks between `ends` `(n, 2, 2)` [m]."""
    return dlem_dataset.sensor_records(setup, solver_cracks(ends)).astype(np.float64)


def squared_misfit(measured: np.ndarray, setup, ends: np.ndarray) -> float:
    """Σ (measured − the record of `setup` with straight cracks `ends` `(n, 2, 2)` [m])² [m²];
    `measured` `(T, sensor, 2)` [m]."""
    return float(np.sum((measured - cracks_field(setup, ends)) ** 2))


def early_setup(config: dict, fit_us: float):
    """The solver set-up of the first `fit_us` microseconds of `config`'s record, and that
    many samples: its records are the first samples of the full ones (same time step)."""
    duration, n_time = config["time"]["duration"], config["time"]["n_time"]
    if not 0 < fit_us * 1e-6 <= duration:
        raise ValueError(f"fit_us must lie in (0, {duration * 1e6:g}] (the record), got {fit_us}")
    samples = int(round(fit_us * 1e-6 / duration * n_time))
    if samples < 1:
        raise ValueError(f"fit_us {fit_us} is shorter than one sample of the record")
    time = {**config["time"], "n_time": samples, "duration": samples * duration / n_time}
    return dlem_dataset.setup({**config, "time": time}), samples


def fit_ends(ends: np.ndarray, measured: np.ndarray, setup, sweeps: int = 2,
             steps: Sequence[float] = FIT_STEPS_M,
             fixed: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """End points `(n, 2, 2)` [m] moved to fit `measured` `(T', sensor, 2)` [m] (the records
    `setup` simulates), and the squared misfit they leave [m²]: a compass search on the
    squared misfit of the simulated field of these cracks and the `fixed` ones `(m, 2, 2)`
    [m] (in the plate, not moved), one coordinate at a time, first improving move taken, by
    each of `steps` [m] in turn, at most `sweeps` rounds per step (fewer once no move
    improves)."""
    theta = np.asarray(ends, np.float64).reshape(-1).copy()
    measured = np.asarray(measured, np.float64)
    fixed = np.zeros((0, 2, 2)) if fixed is None else np.asarray(fixed, np.float64)

    def misfit(values: np.ndarray) -> float:
        return squared_misfit(measured, setup, np.concatenate([fixed, values.reshape(-1, 2, 2)]))

    best = misfit(theta)
    for step in steps:
        for _ in range(sweeps):
            moved = False
            for j in range(theta.size):
                for sign in (1.0, -1.0):
                    trial = theta.copy()
                    trial[j] += sign * step
                    value = misfit(trial)
                    if value < best:
                        best, theta, moved = value, trial, True
                        break
            if not moved:
                break
    return theta.reshape(-1, 2, 2), best
