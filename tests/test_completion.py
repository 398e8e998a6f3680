"""The solver check (crackpoint.completion): the dictionary's geometry and the gain threshold's
choice against brute force; pruning and the search against the solver itself (a record made
by known cracks is explained exactly by them and by nothing else)."""

from __future__ import annotations

import numpy as np
import pytest

from crackpoint.completion import (ATOM_ANGLES_DEG, ATOM_LENGTH_M, PRUNE_GAIN, PlateCheck,
                                   added_count, atom, atom_ends, check_plate, choose_add_gain,
                                   crack_dictionary, misfit, prune, search)
from crackpoint.fitting import cracks_field
from dlem import dataset as dlem_dataset
from test_peeling import segment_ends, small_config

pytestmark = pytest.mark.usefixtures("contract_single_thread")

GRID = (8, 8)   # label cells of the small plate's dictionary (40 mm / 8 = 5 mm)


def test_the_dictionary_holds_a_crack_of_the_atom_length_at_every_cell_centre_and_angle():
    plate, grid = (0.1, 0.08), (16, 10)
    ends = atom_ends(plate, grid)
    assert ends.shape == (16 * 10 * len(ATOM_ANGLES_DEG), 2, 2)
    expected = set()
    for ix in range(16):          # brute force: every cell, every angle
        for iy in range(10):
            for angle in ATOM_ANGLES_DEG:
                expected.add((round((ix + 0.5) * 0.1 / 16, 9), round((iy + 0.5) * 0.08 / 10, 9),
                              round(angle % 180, 6)))
    got = set()
    for a, b in ends:
        centre, d = (a + b) / 2, b - a
        assert np.hypot(*d) == pytest.approx(ATOM_LENGTH_M)
        got.add((round(centre[0], 9), round(centre[1], 9),
                 round(np.degrees(np.arctan2(d[1], d[0])) % 180, 6)))
    assert got == expected


def test_candidates_are_added_up_to_the_first_gain_below_the_threshold():
    gains = np.array([0.3, 0.05, 0.2, 0.001])
    assert [added_count(gains, g) for g in (0.5, 0.3, 0.1, 0.04, 0.001, 0.0)] == [0, 1, 1, 3, 4, 4]
    assert added_count(np.zeros(0), 0.01) == 0


def test_the_gain_threshold_is_the_one_that_counts_most_plates_right():
    """Brute force over the grid on random plates (each step's state a random set of
    cracks): a plate's count at a threshold is its state after the last step before the
    first gain below it; ties go to the larger gain."""
    rng = np.random.default_rng(2)
    checks, true = [], rng.integers(0, 4, 60)
    for _ in range(60):
        m = int(rng.integers(0, 4))
        gains = rng.uniform(0, 0.1, m)
        states = [np.arange(int(rng.integers(0, 5))) for _ in range(m + 1)]
        checks.append(PlateCheck(2, np.zeros((m, 2, 2)), gains, states, np.zeros(m + 1)))
    grid = (0.01, 0.02, 0.03, 0.05, 0.08)
    chosen, accuracy = choose_add_gain(checks, true, grid)
    for g in grid:
        right = 0
        for check, t in zip(checks, true):
            steps = 0
            while steps < len(check.gains) and check.gains[steps] >= g:
                steps += 1
            right += len(check.states[steps]) == t
        assert accuracy[g] == pytest.approx(right / len(checks))
    best = max(accuracy.values())
    assert chosen == max(g for g in grid if accuracy[g] == best)


@pytest.fixture(scope="module")
def plate():
    """The small plate's set-up, its uncracked record and one with a straight crack."""
    cfg = small_config()
    _, drawn = dlem_dataset.scenario(cfg, 1)
    setup = dlem_dataset.setup(cfg)
    truth = segment_ends(drawn[0][1])
    pristine = cracks_field(setup, np.zeros((0, 2, 2)))
    measured = dlem_dataset.sensor_records(setup, [drawn[0][1]]).astype(np.float64)
    size = np.array([cfg["plate"]["width"], cfg["plate"]["height"]])
    return {"setup": setup, "truth": truth, "pristine": pristine, "measured": measured,
            "energy": float(np.sum((measured - pristine) ** 2)), "size": size}


def test_pruning_keeps_the_true_crack_and_removes_a_crack_the_record_does_not_hold(plate):
    """The measured record is the true crack's, so with it the misfit is 0 (the solver cuts
    the same bonds) and a second, invented crack only adds misfit."""
    invented = np.array([[0.006, 0.032], [0.012, 0.034]])
    ends = np.stack([invented, plate["truth"], plate["truth"] + 2e-4])   # a duplicate too
    assert misfit(plate["measured"], plate["setup"], plate["truth"][None],
                  plate["energy"]) == 0.0
    kept, left = prune(ends, plate["measured"], plate["setup"], plate["energy"], PRUNE_GAIN)
    assert kept.sum() == 1 and (kept[1] or kept[2])
    assert left == pytest.approx(0.0, abs=1e-12)


def test_the_search_finds_a_missed_crack_and_fits_it_onto_the_true_one(plate):
    ends = atom_ends(plate["size"], GRID)
    dictionary = crack_dictionary(ends, [atom((plate["setup"], plate["pristine"], e))
                                         for e in ends])
    check = search(np.zeros((0, 2, 2)), plate["measured"], plate["setup"], plate["energy"],
                   dictionary, plate["size"] / GRID, 1.0, PRUNE_GAIN, 0.01)
    assert check.gains[0] > 0.9                   # it explains the record
    assert (check.gains[1:] < 0.01).all()         # nothing else does
    assert check.states[0].size == 0 and check.states[1].tolist() == [0]
    assert check.misfits[0] == 1.0 and check.misfits[1] < 0.1
    found = check.candidates[0]
    error = min(np.abs(found - plate["truth"]).max(), np.abs(found[::-1] - plate["truth"]).max())
    assert error <= 2e-3                          # about a lattice spacing (1.7 mm)


def test_an_uncracked_record_keeps_its_detections_and_gets_no_candidate(plate):
    detections = np.array([[[0.01, 0.01], [0.015, 0.012]]])
    check = check_plate((detections, plate["pristine"], plate["setup"], plate["pristine"],
                         None, plate["size"] / GRID, 1.0, PRUNE_GAIN, 0.01))
    assert check.state(0.0).tolist() == [0] and check.candidates.shape == (0, 2, 2)
    assert check.misfits.tolist() == [0.0]
