"""The solver check (issue 10): keep the detections a plate's record needs and add the cracks
it still needs, judged by the solver's misfit.

The *misfit* of a set of straight cracks is the squared difference between the measured
record and the solver's record of the plate with those cracks, over the record's first
microseconds (the `setup` given: peeling's early set-up), as a fraction of the plate's
scattered energy there (the measured record minus the uncracked plate's): 1 with no crack,
0 when the cracks explain the record exactly. A crack's *gain* is the drop in misfit it
brings.

- **prune**: while some crack's removal lowers the misfit or raises it by less than
  `prune_gain`, the one raising it least is removed (a duplicate, a crack the record does
  not hold, or one a later addition explains better); first the detections given, then
  after every addition;
- **search**: the residual (measured minus the solver's record of the kept cracks) is
  matched against a dictionary of single-crack fields (`crack_dictionary`: a straight crack
  of `ATOM_LENGTH_M` at every label-cell centre in each of `ATOM_ANGLES_DEG`, simulated
  alone, its scattered field at every `ATOM_EVERY`-th sample): an atom's matched-filter
  gain is the residual energy the best multiple of it explains, (r·a)²/(a·a). The `TRIES`
  atoms of most gain, placed more than `separation` label cells apart and from every kept
  crack, are each fitted (`crackpoint.fitting.fit_ends`, the kept cracks in the plate and
  fixed); the one leaving the least misfit is the step's candidate, its gain the misfit's
  drop. Up to `MAX_ADDED` steps, greedily, each on the cracks present after the last,
  stopping after a gain below `min_gain`;
- **decide**: the plate's cracks are those present after the last step before the first
  gain below `add_gain`. The steps do not depend on `add_gain` (only where they stop), so
  one search serves every threshold: `choose_add_gain` picks it on validation plates.

The dictionary is first order (each atom alone in the uncracked plate: it proposes where to
look); the fit and the gains are not (every crack of the plate is simulated together).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from crackpoint.fitting import cracks_field, fit_ends, squared_misfit

ATOM_LENGTH_M = 8e-3                     # the dictionary's crack length [m]
ATOM_ANGLES_DEG = (0.0, 45.0, 90.0, 135.0)
ATOM_EVERY = 10                          # time samples between the matched filter's samples
TRIES = 3                                # atoms fitted per search step
MAX_ADDED = 3                            # search steps per plate
SEARCH_STEPS_M = (2e-3, 1e-3, 5e-4)      # compass-search steps of a candidate's fit
SEARCH_SWEEPS = 3
PRUNE_GAIN = 0.002                       # a detection explaining less is removed
ADD_GAINS = (0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1)   # choose_add_gain's grid


@dataclass(frozen=True)
class Dictionary:
    """Single-crack fields: `ends` `(k, 2, 2)` [m], `atoms` `(k, D)` float32 [m] (scattered
    field, every `ATOM_EVERY`-th sample, flattened), `norms` `(k,)` their squared norms."""
    ends: np.ndarray
    atoms: np.ndarray
    norms: np.ndarray


@dataclass(frozen=True)
class PlateCheck:
    """One plate's check. `candidates` `(m, 2, 2)` [m]: the search's cracks in the order
    found, `gains` `(m,)` theirs; `states`: `m + 1` int arrays, the cracks present after the
    first pruning and after each search step's addition and pruning, as origins (`i < n`:
    the i-th of the n detections given, `n + j`: candidate j); `misfits` `(m + 1,)` the
    misfit each state leaves (all 0 for a record that is the uncracked plate's)."""
    n_given: int
    candidates: np.ndarray
    gains: np.ndarray
    states: list
    misfits: np.ndarray

    def state(self, add_gain: float) -> np.ndarray:
        """The origins of the cracks present once the candidates are added up to the first
        whose gain is below `add_gain`."""
        return self.states[added_count(self.gains, add_gain)]


def atom_ends(plate: Sequence[float], grid: Sequence[int], length: float = ATOM_LENGTH_M,
              angles_deg: Sequence[float] = ATOM_ANGLES_DEG) -> np.ndarray:
    """End points `(cells × angles, 2, 2)` [m] of straight cracks of `length` [m] centred
    on every label cell (`grid` = cells along x, y of a `plate` = (width, height) [m]) at
    each angle [degrees from the x axis]."""
    plate, grid = np.asarray(plate, np.float64), np.asarray(grid)
    cx = (np.arange(grid[0]) + 0.5) * plate[0] / grid[0]
    cy = (np.arange(grid[1]) + 0.5) * plate[1] / grid[1]
    centres = np.stack(np.meshgrid(cx, cy, indexing="ij"), -1).reshape(-1, 1, 2)
    angles = np.deg2rad(np.asarray(angles_deg, np.float64))
    half = 0.5 * length * np.stack([np.cos(angles), np.sin(angles)], -1)        # (a, 2)
    ends = np.stack([centres - half, centres + half], axis=2)                   # (c, a, 2, 2)
    return ends.reshape(-1, 2, 2)


def decimated(record: np.ndarray) -> np.ndarray:
    """A record `(T, sensor, 2)` at every `ATOM_EVERY`-th sample, flattened."""
    return np.asarray(record)[::ATOM_EVERY].reshape(-1)


def atom(job) -> np.ndarray:
    """Worker: the decimated scattered field float32 of one crack; `job` = (set-up, the
    uncracked record, its end points `(2, 2)` [m])."""
    setup, pristine, ends = job
    return decimated(cracks_field(setup, ends[None]) - pristine).astype(np.float32)


def crack_dictionary(ends: np.ndarray, fields: Sequence[np.ndarray]) -> Dictionary:
    """The `Dictionary` of cracks `ends` `(k, 2, 2)` [m] and their `atom` fields."""
    atoms = np.stack(fields).astype(np.float32)
    return Dictionary(np.asarray(ends, np.float64), atoms,
                      np.einsum("kd,kd->k", atoms, atoms, dtype=np.float64))


def misfit(measured: np.ndarray, setup, ends: np.ndarray, energy: float) -> float:
    """The misfit (module docstring) of cracks `ends` `(n, 2, 2)` [m] to `measured`
    `(T, sensor, 2)` [m], `energy` [m²] the plate's scattered energy."""
    return squared_misfit(measured, setup, ends) / energy


def prune(ends: np.ndarray, measured: np.ndarray, setup, energy: float,
          prune_gain: float) -> tuple[np.ndarray, float]:
    """Backward elimination (module docstring) of cracks `ends` `(n, 2, 2)` [m]: the kept
    mask `(n,)` and the misfit left."""
    kept = np.ones(len(ends), bool)
    current = misfit(measured, setup, ends, energy)
    while kept.any():
        rows = np.flatnonzero(kept)
        gains = [misfit(measured, setup, ends[np.setdiff1d(rows, [r])], energy) - current
                 for r in rows]
        weakest = int(np.argmin(gains))
        if gains[weakest] >= prune_gain:
            break
        kept[rows[weakest]] = False
        current += gains[weakest]
    return kept, current


def search(ends: np.ndarray, measured: np.ndarray, setup, energy: float,
           dictionary: Dictionary, cell: np.ndarray, separation: float, prune_gain: float,
           min_gain: float) -> PlateCheck:
    """Prune the detections `ends` `(n, 2, 2)` [m], then search (module docstring), pruning
    again after each addition; `cell` = a label cell's (width, height) [m], `separation` in
    cells; the steps stop after a gain below `min_gain`."""
    n = len(ends)
    kept, current = prune(ends, measured, setup, energy, prune_gain)
    origins, present = np.flatnonzero(kept), ends[kept]
    states, misfits, candidates, gains = [origins], [current], [], []
    atom_centres = dictionary.ends.mean(axis=1) / cell
    for _ in range(MAX_ADDED):
        residual = decimated(measured - cracks_field(setup, present)).astype(np.float32)
        matched = (dictionary.atoms @ residual).astype(np.float64) ** 2 / dictionary.norms
        places = present.mean(axis=1) / cell
        best, tried = None, 0
        for a in np.argsort(-matched):
            if places.size and np.linalg.norm(places - atom_centres[a], axis=1).min() <= separation:
                continue
            fitted, left = fit_ends(dictionary.ends[a][None], measured, setup, SEARCH_SWEEPS,
                                    SEARCH_STEPS_M, fixed=present)
            if best is None or left / energy < best[1]:
                best = (fitted[0], left / energy)
            places = np.concatenate([places, atom_centres[a][None]])
            tried += 1
            if tried == TRIES:
                break
        if best is None:
            break
        candidates.append(best[0])
        gains.append(current - best[1])
        present = np.concatenate([present, best[0][None]])
        origins = np.append(origins, n + len(candidates) - 1)
        kept, current = prune(present, measured, setup, energy, prune_gain)
        origins, present = origins[kept], present[kept]
        states.append(origins)
        misfits.append(current)
        if gains[-1] < min_gain:
            break
    return PlateCheck(n, np.asarray(candidates, np.float64).reshape(-1, 2, 2),
                      np.asarray(gains, np.float64), states, np.asarray(misfits))


def check_plate(job) -> PlateCheck:
    """Worker: `search` one plate; `job` = (its detections' end points `(n, 2, 2)` [m], its
    record `(T, sensor, 2)` [m], set-up, the uncracked record, `Dictionary`, label cell [m],
    separation [cells], prune_gain, min_gain). A plate whose record is the uncracked one
    keeps its detections and gets no candidate."""
    ends, measured, setup, pristine, dictionary, cell, separation, prune_gain, min_gain = job
    ends = np.asarray(ends, np.float64).reshape(-1, 2, 2)
    energy = float(np.sum((measured - pristine) ** 2))
    if energy == 0.0:
        return PlateCheck(len(ends), np.zeros((0, 2, 2)), np.zeros(0), [np.arange(len(ends))],
                          np.zeros(1))
    return search(ends, measured, setup, energy, dictionary, cell, separation, prune_gain,
                  min_gain)


def added_count(gains: np.ndarray, add_gain: float) -> int:
    """How many of a plate's candidates (their `gains` in the order found) are added: those
    before the first gain below `add_gain`."""
    below = np.flatnonzero(np.asarray(gains) < add_gain)
    return int(below[0]) if below.size else len(gains)


def choose_add_gain(checks: Sequence[PlateCheck], true_count: np.ndarray,
                    grid: Sequence[float] = ADD_GAINS) -> tuple[float, dict]:
    """The `add_gain` of `grid` whose counts (the cracks present) are right on most plates
    (`true_count` `(N,)`), ties to the larger gain; and the accuracy at every gain."""
    accuracy = {float(g): float(np.mean(np.array([len(c.state(g)) for c in checks])
                                        == true_count)) for g in grid}
    best = max(sorted(accuracy, reverse=True), key=lambda g: accuracy[g])
    return best, accuracy
