"""Peeling (crackpoint.peeling, `python -m crackpoint peel`): the solver's field of found cracks
taken out of the measurement, checked against the solver itself (linearity: a plate minus
its exactly subtracted cracks is the uncracked plate), against a perfect first pass (whose
scores theory knows), and against brute force for the merge."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml

from crackpoint.cli import main as crackpoint_main
from crackpoint.fitting import cracks_field, early_setup, fit_ends, straight
from crackpoint.peeling import merge
from dlem import config as config_mod
from dlem import dataset as dlem_dataset
from dlem.cracks import Segment
from model.cli import main as model_main
from model.crackset_scoring import boxes_of_ends
from model.keypoints import write_labels
from test_dlem_dataset import TINY

pytestmark = pytest.mark.usefixtures("contract_single_thread")

ROOT = Path(__file__).resolve().parents[1]
TINY_NET = {"stem_channels": 4, "block_layers": [1, 1, 1], "growth": 4, "sensor_features": 8,
            "decoder_channels": [8, 8]}
# test_dlem_dataset's small plate and short record with one straight crack, for the
# solver-only tests
SMALL = {**TINY, "seed": 5,
         "cracks": {"count": {"min": 1, "max": 1},
                    "families": [{"geometry": "segment", "length": [0.008, 0.012]}]}}


def small_config() -> dict:
    return config_mod.validate(copy.deepcopy(SMALL))


def segment_ends(crack: Segment) -> np.ndarray:
    return np.asarray(crack.vertices, np.float64)[[0, -1]]


# ------------------------------------------------------------------ the solver side

def test_the_early_set_up_records_the_first_samples_of_the_full_record():
    cfg = small_config()
    _, drawn = dlem_dataset.scenario(cfg, 0)
    cracks = [c for _, c in drawn]
    full = dlem_dataset.sensor_records(dlem_dataset.setup(cfg), cracks)
    early, samples = early_setup(cfg, 10.0)
    assert samples == 60
    np.testing.assert_array_equal(dlem_dataset.sensor_records(early, cracks), full[:samples])


def test_subtracting_a_plates_own_cracks_leaves_the_uncracked_plate():
    """Linearity: measured - (field with the found cracks - uncracked field) is the uncracked
    field when the found cracks are the plate's own (a straight crack between a segment's end
    points cuts what the segment cuts)."""
    cfg = small_config()
    setup = dlem_dataset.setup(cfg)
    pristine = cracks_field(setup, np.zeros((0, 2, 2)))
    for index in range(3):
        _, drawn = dlem_dataset.scenario(cfg, index)
        crack = drawn[0][1]
        measured = dlem_dataset.sensor_records(setup, [crack]).astype(np.float64)
        scattered = cracks_field(setup, segment_ends(crack)[None]) - pristine
        assert np.abs(measured - pristine).max() > 1e-3 * np.abs(pristine).max()  # a signal
        np.testing.assert_allclose(measured - scattered, pristine, rtol=0,
                                   atol=1e-6 * np.abs(pristine).max())


def test_fitting_moves_displaced_end_points_back_onto_the_crack():
    cfg = small_config()
    early, samples = early_setup(cfg, 15.0)
    _, drawn = dlem_dataset.scenario(cfg, 1)
    truth = segment_ends(drawn[0][1])
    measured = dlem_dataset.sensor_records(early, [drawn[0][1]]).astype(np.float64)
    start = truth + np.array([[3e-3, 0.0], [0.0, -3e-3]])

    def misfit(ends):
        return float(np.sum((measured - cracks_field(early, ends[None])) ** 2))

    assert misfit(start) > 0
    fitted = fit_ends(start[None], measured, early, sweeps=3, steps=(3e-3, 1e-3))[0][0]
    assert misfit(fitted) == 0.0                 # cuts exactly the bonds the crack cuts
    assert np.abs(fitted - truth).max() <= 1.5e-3   # within a lattice spacing (1.7 mm)


def test_a_crack_shorter_than_a_tenth_of_a_millimetre_is_not_cut():
    assert straight(np.array([[0.01, 0.01], [0.01, 0.01 + 5e-5]])) is None
    assert straight(np.array([[0.01, 0.01], [0.01, 0.02]])) is not None


@pytest.mark.parametrize("rule", ["edges", "indices"])
def test_the_box_of_a_pair_of_end_points_boxes_the_cells_its_segment_crosses(rule):
    """Brute force: 2,001 points along each straight crack, the cells they fall in, their
    span widened by one cell and boxed by the rule (`edges`: from the lowest cell's lower
    edge to the highest cell's upper edge; `indices`: cell indices as coordinates,
    model/keypoints.py). The plate is 0.1 m x 0.08 m under 16 x 10 cells; no end lies on a
    cell edge, where the closed-cell convention would decide."""
    rng = np.random.default_rng(1)
    plate, grid = (0.1, 0.08), (16, 10)
    ends = rng.uniform([0.0, 0.0], plate, size=(50, 2, 2))
    boxes = boxes_of_ends(ends, plate, grid, rule)
    t = np.linspace(0, 1, 2001)[:, None]
    upper = 2 if rule == "edges" else 1
    for (a, b), box in zip(ends, boxes):
        cells = np.floor((a + t * (b - a)) / np.divide(plate, grid)).astype(int)
        lo, hi = cells.min(axis=0), cells.max(axis=0)
        expected = [max(lo[0] - 1, 0) / grid[0], max(lo[1] - 1, 0) / grid[1],
                    min(hi[0] + upper, grid[0]) / grid[0], min(hi[1] + upper, grid[1]) / grid[1]]
        np.testing.assert_allclose(box, expected, atol=1e-12)
    nan = boxes_of_ends(np.full((1, 2, 2), np.nan), plate, grid, rule)
    assert np.isnan(nan).all()


# ------------------------------------------------------------------ merging the passes

def _decoded(boxes, scores):
    boxes, scores = np.asarray(boxes, float), np.asarray(scores, float)
    n, k = scores.shape
    return {"score": scores, "box": boxes, "box_sigma": np.full((n, k, 4), 0.01),
            "ends": np.stack([boxes[..., :2], boxes[..., 2:]], axis=2),
            "end_sigma": np.full((n, k, 2, 2), 0.02)}


def _box(cx, cy, half=0.02):
    return [cx - half, cy - half, cx + half, cy + half]


def test_merge_adds_exactly_the_second_pass_detections_away_from_the_first():
    rng = np.random.default_rng(0)
    n, k, grid, separation, threshold = 40, 3, (16, 16), 2.0, 0.4
    centres = rng.uniform(0.1, 0.9, (2, n, k, 2))
    scores = rng.uniform(0, 1, (2, n, k))
    scores[0, ::7] = np.nan                                   # empty first-pass slots too
    first = _decoded([[_box(*c) for c in row] for row in centres[0]], scores[0])
    second = _decoded([[_box(*c) for c in row] for row in centres[1]], scores[1])
    merged, source = merge(first, second, threshold, separation, grid)
    for i in range(n):   # brute force, one pair of slots at a time, in cells
        for j in range(k):
            far = all(np.hypot(*((centres[1, i, j] - centres[0, i, m]) * 16)) > separation
                      for m in range(k) if scores[0, i, m] >= threshold)
            added = scores[1, i, j] >= threshold and far
            assert source[i, k + j] == (2 if added else 0)
            for name in first:
                expected = second[name][i, j] if added else np.full_like(second[name][i, j],
                                                                         np.nan)
                np.testing.assert_array_equal(merged[name][i, k + j], expected)
        for name in first:   # the first pass keeps its slots
            np.testing.assert_array_equal(merged[name][i, :k], first[name][i])
        np.testing.assert_array_equal(source[i, :k], np.isfinite(scores[0, i]).astype(int))


# ------------------------------------------------------------------ the command

@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """A tiny crack-set model trained and evaluated on solver shards of the default plate
    (coarse lattice) with one or two straight cracks per plate; its evaluation folder and a
    copy whose first pass is perfect (every true crack detected with its own box and ends)."""
    root = tmp_path_factory.mktemp("peeling")
    cfg = yaml.safe_load((ROOT / "workflow/config/default.yaml").read_text())["simulation"]
    cfg["lattice"]["nodes_x"] = 24
    cfg["cracks"] = {"count": {"min": 1, "max": 2}, "clearance": 0.004,
                     "families": [{"name": "straight", "geometry": "segment",
                                   "length": [0.008, 0.02], "angle": [0, 180]}]}
    cfg = config_mod.validate(cfg)
    shards, labels = [], []
    for i, (start, stop) in enumerate([(0, 8), (8, 16)]):
        shard = root / f"shard-{i}.nc"
        dlem_dataset.write_shard(cfg, shard, start, stop, progress=False)
        shards.append(str(shard))
        labels.append(str(write_labels(shard, root / f"labels-{i}.nc")))
    pristine = root / "pristine.nc"
    dlem_dataset.write_shard(cfg, pristine, 0, 1, pristine=True, progress=False)
    split = root / "split.json"
    data = ["--data", *shards, "--labels", *labels, "--split", str(split)]
    assert model_main(["split", "--labels", *labels, "--fractions", "0.5", "0.25", "0.25",
                       "--out", str(split)]) == 0
    assert model_main(["train", *data, "--arch", "crackset", "--arch-kwargs",
                       json.dumps(TINY_NET), "--epochs", "1", "--batch-size", "4",
                       "--pristine", str(pristine), "--reference", "subtract",
                       "--scaling", "sensor", "--device", "cpu", "--no-progress",
                       "--out-dir", str(root / "model")]) == 0
    checkpoint = str(root / "model" / "checkpoint.pt")
    assert model_main(["evaluate", *data, "--checkpoint", checkpoint, "--device", "cpu",
                       "--out-dir", str(root / "eval")]) == 0
    perfect = root / "perfect"
    perfect.mkdir()
    metrics = json.loads((root / "eval" / "metrics.json").read_text())
    (perfect / "metrics.json").write_text(json.dumps(metrics))
    with xr.open_dataset(root / "eval" / "crack_predictions.nc") as ds:
        ds = ds.load()
    true = np.isfinite(ds["true_box"].values).all(axis=-1)                    # (N, C)
    k = ds.sizes["slot"]
    for name, truth in (("pred_box", "true_box"), ("pred_ends", "true_ends")):
        values = np.full_like(ds[name].values, np.nan)
        values[:, :true.shape[1]] = ds[truth].values
        ds[name].values = values
    for name, sigma in (("pred_box_sigma", 0.01), ("pred_ends_sigma", 1e-3)):
        values = np.full_like(ds[name].values, np.nan)
        values[:, :true.shape[1]][true] = sigma
        ds[name].values = values
    score = np.full((ds.sizes["sample"], k), np.nan)
    score[:, :true.shape[1]] = np.where(true, 0.99, np.nan)
    ds["score"].values = score
    ds["detected"].values = np.isfinite(score)
    ds.to_netcdf(perfect / "crack_predictions.nc")
    half = root / "half"   # the same, blind to every second crack
    half.mkdir()
    (half / "metrics.json").write_text(json.dumps(metrics))
    for name in ("score", "pred_box", "pred_ends", "pred_box_sigma", "pred_ends_sigma"):
        ds[name].values[:, 1:] = np.nan
    ds["detected"].values = np.isfinite(ds["score"].values)
    ds.to_netcdf(half / "crack_predictions.nc")
    return {"data": shards, "labels": labels, "checkpoint": checkpoint, "root": root,
            "eval": root / "eval", "perfect": perfect, "half": half, "true": true}


def _peel(run, evaluation, out, *extra):
    return crackpoint_main(["peel", "--data", *run["data"], "--labels", *run["labels"],
                            "--checkpoint", run["checkpoint"], "--evaluation", str(evaluation),
                            "--out-dir", str(out), "--no-progress", *extra])


@pytest.mark.parametrize("mode", ["detected", "fitted"])
def test_peeling_a_perfect_first_pass_keeps_its_perfect_scores(evaluated, tmp_path, mode):
    """Nothing may be added (separation beyond the plate): the merged set is the first pass,
    every true crack found with its own box and end points, so theory gives every score; a
    fit starting on the true cracks has no misfit to lower, so it moves nothing."""
    out = tmp_path / "peeled"
    assert _peel(evaluated, evaluated["perfect"], out, "--separation", "1000", "--subtract",
                 mode, "--fit-us", "30") == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["peeling"]["median_end_moved_m"] == (0.0 if mode == "fitted" else None)
    n = len(evaluated["true"])
    assert metrics["samples_scored"] == n
    assert metrics["peeling"]["plates_subtracted"] == n and metrics["peeling"]["added"] == 0
    detection = metrics["detection"]
    for name in ("AP50", "AP50_95", "matched_IoU", "count_accuracy", "precision50", "recall50"):
        assert detection[name] == pytest.approx(1.0), name
    assert detection["endpoint_error_m"] == pytest.approx(0.0, abs=1e-7)   # float32 labels
    for row in metrics["paired"]:   # the same detections before and after
        assert row["difference"] in (None, pytest.approx(0.0, abs=1e-12)), row
    with xr.open_dataset(out / "crack_predictions.nc") as ds:
        assert ds.attrs["source"] == "python -m crackpoint peel"
        passes = ds["peeling_pass"].values
    np.testing.assert_array_equal(passes[:, :evaluated["true"].shape[1]], evaluated["true"])
    assert (passes[:, evaluated["true"].shape[1]:] != 2).all()
    assert "Peeled minus first pass" in (out / "detection.md").read_text()
    assert (out / "figures" / "reliability.png").is_file()


def test_the_interval_rescaling_is_chosen_on_the_plates_peeled_or_taken_from_metrics(
        evaluated, tmp_path):
    """Without --from-metrics the factors make the 90 % intervals cover 90 % of the matched
    pairs of the plates peeled (split-conformal: for validation plates); with it, a later
    run takes them as they are."""
    chosen, taken = tmp_path / "chosen", tmp_path / "taken"
    assert _peel(evaluated, evaluated["half"], chosen, "--boxes", "network") == 0
    rescale = json.loads((chosen / "metrics.json").read_text())["peeling"]["sigma_rescale"]
    assert rescale["chosen_on"] == "these plates" and rescale["pairs"] > 0
    with xr.open_dataset(evaluated["half"] / "crack_predictions.nc") as first, \
            xr.open_dataset(chosen / "crack_predictions.nc") as peeled:
        k = first.sizes["slot"]
        np.testing.assert_allclose(peeled["pred_box_sigma"].values[:, :k],
                                   first["pred_box_sigma"].values * rescale["box"])
    assert _peel(evaluated, evaluated["perfect"], taken, "--from-metrics",
                 str(chosen / "metrics.json")) == 0
    again = json.loads((taken / "metrics.json").read_text())["peeling"]["sigma_rescale"]
    assert again["chosen_on"] == "from_metrics"
    assert (again["box"], again["ends"]) == (rescale["box"], rescale["ends"])


def test_peeling_keeps_the_first_pass_and_adds_only_second_pass_detections(evaluated,
                                                                          tmp_path):
    out = tmp_path / "peeled"
    assert _peel(evaluated, evaluated["half"], out, "--separation", "0", "--workers", "2") == 0
    metrics = json.loads((out / "metrics.json").read_text())
    with xr.open_dataset(evaluated["half"] / "crack_predictions.nc") as first, \
            xr.open_dataset(out / "crack_predictions.nc") as peeled:
        k = first.sizes["slot"]
        detected = first["detected"].values
        assert metrics["peeling"]["plates_subtracted"] == detected.any(axis=1).sum()
        for name in ("score", "pred_box", "pred_ends"):   # detected mode: the first pass kept
            np.testing.assert_array_equal(peeled[name].values[:, :k], first[name].values)
        added = peeled["peeling_pass"].values[:, k:] == 2
        assert metrics["peeling"]["added"] == added.sum()
        assert (peeled["score"].values[:, k:][added] >= metrics["score_threshold"]).all()


@pytest.mark.parametrize("option,value,message", [
    ("--evaluation", lambda run, tmp: [str(tmp)], "crack_predictions.nc not found"),
    ("--labels", lambda run, tmp: run["labels"][:1], "sample"),
    ("--checkpoint", lambda run, tmp: [str(tmp / "none.pt")], "none.pt"),
])
def test_bad_input_ends_in_one_line_and_writes_nothing(evaluated, tmp_path, capsys, option,
                                                       value, message):
    args = {"--data": evaluated["data"], "--labels": evaluated["labels"],
            "--checkpoint": [evaluated["checkpoint"]], "--evaluation": [str(evaluated["eval"])],
            "--out-dir": [str(tmp_path / "out")], option: value(evaluated, tmp_path)}
    argv = ["peel", "--no-progress", *(v for key, values in args.items() for v in (key, *values))]
    assert crackpoint_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_a_non_positive_fit_length_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exit_info:
        crackpoint_main(["peel", "--data", "a.nc", "--labels", "b.nc", "--checkpoint", "c.pt",
                         "--evaluation", "d", "--out-dir", "e", "--fit-us", "0"])
    assert exit_info.value.code == 2 and "must be positive" in capsys.readouterr().err


def test_the_solver_check_finds_the_cracks_a_first_pass_missed(evaluated, tmp_path, capsys):
    """The half first pass misses every second crack. The solver check, its gain threshold
    chosen on these plates, must count (nearly) every plate right, and every crack it adds
    must lie on a true crack: end points within two lattice spacings (the coarse lattice's
    ~4.3 mm) of a true crack's (a crack placed at random is some 40 mm off). What the tiny network's second pass adds and the
    record does not hold is pruned."""
    out = tmp_path / "checked"
    assert _peel(evaluated, evaluated["half"], out, "--check", "--fit-us", "30",
                 "--workers", "2") == 0
    metrics = json.loads((out / "metrics.json").read_text())
    check = metrics["peeling"]["check"]
    assert check["chosen_on"] == "these plates" and check["added"] >= 1
    true = evaluated["true"]
    half = np.mean(true.sum(axis=1) == 1)     # the first pass's count accuracy
    assert metrics["detection"]["count_accuracy"] >= 0.8 > half
    with xr.open_dataset(out / "crack_predictions.nc") as ds:
        added = ds["peeling_pass"].values == 3
        assert added.sum() == check["added"]
        assert (ds["score"].values[added] == metrics["score_threshold"]).all()
        assert (ds["misfit_left"].values >= 0).all()
        for i, slot in zip(*np.nonzero(added)):
            ends, truth = ds["pred_ends"].values[i, slot], ds["true_ends"].values[i]
            error = np.nanmin([min(np.abs(ends - t).max(), np.abs(ends[::-1] - t).max())
                               for t in truth])
            assert error <= 8.7e-3, (i, error)
    taken = tmp_path / "taken"
    assert _peel(evaluated, evaluated["half"], taken, "--check", "--fit-us", "30",
                 "--from-metrics", str(out / "metrics.json")) == 0
    again = json.loads((taken / "metrics.json").read_text())["peeling"]["check"]
    assert (again["chosen_on"], again["add_gain"]) == ("from_metrics", check["add_gain"])
    unchecked = tmp_path / "unchecked.json"   # a peel's metrics without the check's
    unchecked.write_text(json.dumps({**metrics, "peeling": {**metrics["peeling"], "check": None}}))
    assert _peel(evaluated, evaluated["half"], tmp_path / "refused", "--check",
                 "--from-metrics", str(unchecked)) == 2
    assert "peeling.check.add_gain" in capsys.readouterr().err
    assert not (tmp_path / "refused").exists()
