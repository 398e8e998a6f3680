"""CrackSet (several cracks per sample, issue 10): shapes, decoding against hand-built maps,
the loss (symmetric in the end points' order, empty for uncracked plates), training through
the shared loop, calibration against a known Gaussian, and evaluation end to end."""

import json

import numpy as np
import pytest
import torch
import xarray as xr
from scipy.stats import norm

from model.calibration import central_z, coverage_interval, interval_coverage
from model.cli import main
from model.crackset_scoring import scale_sigmas, sigma_scales, union_boxes
from model.losses import centre_heatmap, crackset_loss
from model.nets import build_model, model_target
from model.nets.crackset import (BOX_LOGVAR, END_LOGVAR, ENDS, HEAT, N_CHANNELS, OFFSET, SIZE,
                                 decode_cracks)
from model.train import TrainConfig, train

pytestmark = pytest.mark.usefixtures("contract_single_thread")

TINY = {"stem_channels": 4, "block_layers": [1, 1, 1], "growth": 4, "sensor_features": 8,
        "decoder_channels": [8, 8], "head_channels": 8}
GRID = 16


def _raw_with_cracks(cracks: list[dict], batch: int = 1) -> torch.Tensor:
    """Raw maps `(batch, 17, 16, 16)` of sample 0 holding `cracks`, each given in cells:
    centre cell (row, col), centre offset in the cell, box size, end offsets from the centre,
    box and end standard deviations, heat logit; every other cell is at heat logit -10."""
    raw = torch.zeros(batch, N_CHANNELS, GRID, GRID, dtype=torch.float64)
    raw[:, HEAT] = -10.0
    for c in cracks:
        i, j = c["cell"]
        raw[0, HEAT, i, j] = c["heat"]
        raw[0, OFFSET, i, j] = torch.logit(torch.tensor(c["offset"], dtype=torch.float64))
        size = torch.tensor(c["size"], dtype=torch.float64)
        raw[0, SIZE, i, j] = size + torch.log(-torch.expm1(-size))   # softplus^-1
        raw[0, ENDS, i, j] = torch.tensor(c["ends"], dtype=torch.float64)
        raw[0, BOX_LOGVAR, i, j] = 2 * np.log(c["box_sigma"])
        raw[0, END_LOGVAR, i, j] = 2 * np.log(c["end_sigma"])
    return raw


# A crack whose box spans cells x 4..9, y 5..10 (centre (6.5, 7.5) cells, in cell (7, 6)) and
# whose ends are at (5, 6) and (8, 9) cells; and one spanning x 10..12, y 1..4.
CRACK_A = {"cell": (7, 6), "offset": [0.5, 0.5], "size": [5.0, 5.0],
           "ends": [-1.5, -1.5, 1.5, 1.5], "box_sigma": 0.5, "end_sigma": 0.25, "heat": 3.0}
CRACK_B = {"cell": (2, 11), "offset": [0.0 + 0.25, 0.75], "size": [2.0, 3.0],
           "ends": [-1.0, -1.0, 0.5, 1.0], "box_sigma": 1.0, "end_sigma": 2.0, "heat": 1.0}


def test_maps_a_wavefield_batch_to_17_maps_on_the_label_grid():
    net = build_model("crackset", **TINY).eval()
    assert model_target(net) == "cracks"
    out = net(torch.randn(2, 2000, 81, 2))
    assert out.shape == (2, N_CHANNELS, GRID, GRID)
    decoded = decode_cracks(out.detach(), max_cracks=4, min_score=0.0)
    assert decoded["score"].shape == (2, 4) and decoded["box"].shape == (2, 4, 4)
    assert decoded["ends"].shape == (2, 4, 2, 2) and decoded["end_sigma"].shape == (2, 4, 2, 2)
    boxes = decoded["box"]
    assert (boxes[..., 2] > boxes[..., 0]).all() and (boxes[..., 3] > boxes[..., 1]).all()


def test_rebuilds_from_its_hyperparameters():
    net = build_model("crackset", **TINY)
    again = build_model("crackset", **net.hyperparameters())
    assert again.hyperparameters() == net.hyperparameters()
    with pytest.raises(ValueError, match="max_cracks"):
        build_model("crackset", max_cracks=0)


def test_a_time_gate_ignores_every_sample_after_it_and_only_those():
    """`time_gate` N: the maps depend on the first N samples of each trace, not on later
    ones, and equal the ungated network's maps of the wavefield zeroed after N."""
    torch.manual_seed(0)
    gated = build_model("crackset", **TINY, time_gate=700).eval()
    plain = build_model("crackset", **TINY).eval()
    plain.load_state_dict(gated.state_dict())
    x = torch.randn(2, 2000, 81, 2)
    late, early = x.clone(), x.clone()
    late[:, 700:] = torch.randn(2, 1300, 81, 2) * 10
    early[:, 699] += 1.0
    with torch.no_grad():
        out = gated(x)
        torch.testing.assert_close(gated(late), out)
        assert not torch.allclose(gated(early), out)
        zeroed = x.clone()
        zeroed[:, 700:] = 0
        torch.testing.assert_close(plain(zeroed), out)
    for bad in (0, 2001):
        with pytest.raises(ValueError, match="time_gate"):
            build_model("crackset", **TINY, time_gate=bad)


def test_decoding_recovers_hand_built_cracks_in_score_order():
    decoded = decode_cracks(_raw_with_cracks([CRACK_B, CRACK_A]), max_cracks=3, min_score=0.05)
    score = decoded["score"][0]
    np.testing.assert_allclose(score[:2], [1 / (1 + np.exp(-3.0)), 1 / (1 + np.exp(-1.0))])
    assert np.isnan(score[2]) and np.isnan(decoded["box"][0, 2]).all()   # no third peak
    # crack A: centre (6.5, 7.5) cells, 5 x 5 cells; ends (5, 6), (8, 9) cells
    np.testing.assert_allclose(decoded["box"][0, 0], np.array([4, 5, 9, 10]) / GRID, atol=1e-12)
    np.testing.assert_allclose(decoded["ends"][0, 0], np.array([[5, 6], [8, 9]]) / GRID,
                               atol=1e-12)
    np.testing.assert_allclose(decoded["box_sigma"][0, 0], 0.5 / GRID)
    np.testing.assert_allclose(decoded["end_sigma"][0, 0], 0.25 / GRID)
    # crack B: centre (11.25, 2.75) cells, 2 x 3 cells
    np.testing.assert_allclose(decoded["box"][0, 1], np.array([10.25, 1.25, 12.25, 4.25]) / GRID,
                               atol=1e-12)
    np.testing.assert_allclose(decoded["ends"][0, 1], np.array([[10.25, 1.75], [11.75, 3.75]])
                               / GRID, atol=1e-12)


def test_an_empty_heatmap_decodes_to_no_crack_and_no_box():
    decoded = decode_cracks(_raw_with_cracks([]), max_cracks=5, min_score=0.05)
    assert np.isnan(decoded["score"]).all() and np.isnan(decoded["box"]).all()
    np.testing.assert_array_equal(union_boxes(decoded, 0.5), np.zeros((1, 4)))


def test_uncracked_targets_give_an_empty_heatmap():
    heat, cell = centre_heatmap(torch.full((2, 3, 8), float("nan")), GRID, GRID)
    assert heat.shape == (2, GRID, GRID) and (heat == 0).all() and (cell == -1).all()


def test_centre_heatmap_is_one_at_the_centre_cell_and_gaussian_around_it():
    cracks = torch.full((1, 2, 8), float("nan"))
    cracks[0, 0] = torch.tensor([4, 5, 9, 10, 5, 6, 8, 9]) / GRID   # centre (6.5, 7.5) cells
    heat, cell = centre_heatmap(cracks, GRID, GRID, sigma=1.0)
    assert cell[0, 0].tolist() == [7, 6] and cell[0, 1].tolist() == [-1, -1]
    assert heat[0, 7, 6] == 1.0 and (heat == 1.0).sum() == 1
    np.testing.assert_allclose(heat[0, 7, 8].item(), np.exp(-4 / 2))   # two cells away


def _targets():
    cracks = torch.full((3, 3, 8), float("nan"), dtype=torch.float64)
    cracks[0, 0] = torch.tensor([0.25, 0.25, 0.5, 0.5, 0.3, 0.3, 0.45, 0.45])
    cracks[1, 0] = torch.tensor([0.5, 0.5, 0.75, 0.8, 0.55, 0.55, 0.7, 0.75])
    cracks[1, 1] = torch.tensor([0.0, 0.0, 0.2, 0.2, 0.05, 0.15, 0.15, 0.05])
    return cracks   # sample 2 is uncracked


def test_loss_is_symmetric_in_the_order_of_the_end_points():
    generator = torch.Generator().manual_seed(0)
    raw = torch.randn(3, N_CHANNELS, GRID, GRID, dtype=torch.float64, generator=generator)
    cracks = _targets()
    swapped = cracks.clone()
    swapped[..., 4:] = cracks[..., [6, 7, 4, 5]]
    assert not torch.equal(torch.nan_to_num(swapped), torch.nan_to_num(cracks))
    assert torch.equal(crackset_loss(raw, cracks), crackset_loss(raw, swapped))


def test_loss_of_an_uncracked_sample_is_the_heatmap_loss_only():
    raw = _raw_with_cracks([])
    empty = torch.full((1, 2, 8), float("nan"), dtype=torch.float64)
    loss = crackset_loss(raw, empty)
    p = torch.sigmoid(torch.tensor(-10.0, dtype=torch.float64))
    expected = GRID * GRID * p**2 * -torch.log1p(-p)   # every cell a negative, 1 centre floor
    np.testing.assert_allclose(loss.item(), expected.item(), rtol=1e-9)
    # and the loss is smaller for the right answer than for a false alarm
    assert crackset_loss(_raw_with_cracks([CRACK_A]), empty) > loss


def test_a_few_optimiser_steps_lower_the_loss_on_a_tiny_synthetic_set():
    torch.manual_seed(0)
    net = build_model("crackset", n_time=200, **TINY)
    x = torch.randn(3, 200, 81, 2)
    cracks = _targets().float()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        loss = crackset_loss(net(x), cracks)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    print(f"loss {losses[0]:.4g} -> {losses[-1]:.4g}")
    assert losses[-1] < 0.5 * losses[0]


def test_gaussian_draws_cover_their_nominal_central_intervals():
    rng = np.random.default_rng(0)
    n = 40_000
    sigma = rng.uniform(0.1, 3.0, (n, 2))
    mean = rng.normal(0, 5, (n, 2))
    truth = mean + sigma * rng.standard_normal((n, 2))
    coverage = interval_coverage(mean - truth, sigma, (0.5, 0.9))
    tolerance = 4 * np.sqrt(0.25 / n)   # 4 binomial standard errors at worst
    np.testing.assert_allclose(coverage, [[0.5, 0.5], [0.9, 0.9]], atol=tolerance)
    # intervals half as wide as they should be cover P(|Z| <= z / 2)
    narrow = interval_coverage(mean - truth, sigma / 2, (0.9,))
    np.testing.assert_allclose(narrow, 2 * norm.cdf(central_z(0.9) / 2) - 1, atol=tolerance)
    assert central_z(0.5) == pytest.approx(0.6745, abs=1e-4)


def test_coverage_interval_matches_the_binomial_one_and_draws_whole_plates():
    # 400 plates, one coordinate each, 360 of them covered at every level: the percentile
    # bootstrap of a proportion approaches p +- 1.96 sqrt(p (1 - p) / n).
    plates = np.arange(400)
    error = np.where(plates < 360, 0.0, 10.0)[:, None]
    sigma = np.ones_like(error)
    interval = coverage_interval(error, sigma, plates, (0.5, 0.9))
    half = 1.96 * np.sqrt(0.9 * 0.1 / 400)
    np.testing.assert_allclose(interval, [[0.9 - half, 0.9 + half]] * 2, atol=0.005)
    # Four identical coordinates on two rows per plate carry no more information than one:
    # drawn by plate the interval is the same (drawn by row or coordinate it would shrink).
    repeated = coverage_interval(np.repeat(np.repeat(error, 4, axis=1), 2, axis=0),
                                 np.ones((800, 4)), np.repeat(plates, 2), (0.5, 0.9))
    np.testing.assert_allclose(repeated, interval, rtol=1e-12)
    with pytest.raises(ValueError, match="plates"):
        coverage_interval(error, sigma, plates[:-1])


def test_coverage_refuses_a_non_positive_sigma():
    with pytest.raises(ValueError, match="sigma"):
        interval_coverage(np.zeros((2, 1)), np.zeros((2, 1)))


def test_trains_with_uncracked_plates_and_evaluates_detection_and_coverage(contract_data,
                                                                            tmp_path):
    config = TrainConfig(arch="crackset", arch_kwargs=TINY, epochs=2, batch_size=4, lr=2e-3,
                         device="cpu", reference="none", scaling="component")
    data = [str(p) for p in contract_data["shards"]]
    labels = [str(p) for p in contract_data["labels"]]
    state = train(data, labels, str(contract_data["split"]), tmp_path / "run", config,
                  progress=False)
    split = json.loads(contract_data["split"].read_text())
    assert state["target"] == "cracks" and len(state["history"]) == 2
    assert np.isfinite([row["val_loss"] for row in state["history"]]).all()
    with xr.open_dataset(data[0]) as shard:   # the delay-and-sum branch focuses on this plate
        sensors = np.column_stack([shard["sensor_x"].values, shard["sensor_y"].values])
        speeds = [shard.attrs["wave_speed_p"], shard.attrs["wave_speed_s"]]
    geometry = state["hyperparameters"]["geometry"]
    np.testing.assert_array_equal(geometry["sensors"], sensors)
    assert geometry["speeds"] == speeds and "focus.reduce.0.weight" in state["best_model"]
    out = tmp_path / "eval"
    assert main(["evaluate", "--data", *data, "--labels", *labels, "--split",
                 str(contract_data["split"]), "--checkpoint", str(tmp_path / "run/checkpoint.pt"),
                 "--out-dir", str(out), "--device", "cpu"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["samples_scored"] == len(split["test"])
    assert metrics["score_threshold_choice"]["chosen_on"] == "val"
    assert {"AP50", "count_accuracy", "false_alarm_rate", "endpoint_error_m"} <= set(
        metrics["detection"])
    for name, (lo, hi) in metrics["detection_interval"].items():   # None: nothing to score
        point = metrics["detection"][name]
        assert point is None or lo <= point <= hi, (name, lo, point, hi)
    assert "95 % bootstrap intervals" in (out / "detection.md").read_text()
    assert set(metrics["calibration"]["box"]["coverage"]["xmin"]) == {"0.5", "0.9"}
    for part in ("box", "ends"):   # the pooled coverage lies in its plate-bootstrap interval
        report = metrics["calibration"][part]
        for level, interval in report["interval_all"].items():
            point = report["coverage"]["all"][level]
            assert (point is None) == (interval is None)
            assert point is None or interval[0] <= point <= interval[1], (part, level)
    assert metrics["sigma_scale"]["chosen_on"] == "val" and metrics["sigma_scale"]["box"] > 0
    assert set(metrics["calibration_unscaled"]) == {"box", "ends", "mean_sigma_m"}
    for name in ("crack_predictions.nc", "detection.md", "figures/reliability.png",
                 "figures/cracks_1.png", "predictions.nc", "table1.md"):
        assert (out / name).is_file(), name
    # distance to training: fitted on every training plate, threshold chosen on val
    assert state["novelty"]["plates"] == len(split["train"])
    assert metrics["novelty_threshold"]["chosen_on"] == "val"
    assert metrics["novelty"]["plates"] == len(split["test"])
    with xr.open_dataset(out / "crack_predictions.nc") as ds:
        distance, novel = ds["distance"].values, ds["novel"].values.astype(bool)
    np.testing.assert_array_equal(novel, distance > metrics["novelty_threshold"]["value"])
    assert metrics["novelty"]["novel"] == novel.sum()
    cover = metrics["calibration_novelty"]["box"]["coverage"]["all"]["0.9"]
    assert cover is None or cover >= metrics["calibration"]["box"]["coverage"]["all"]["0.9"]
    # plates drowned in noise 10 dB above the signal lie far from every training plate
    noisy = tmp_path / "noisy"
    assert main(["evaluate", "--data", *data, "--labels", *labels, "--split",
                 str(contract_data["split"]), "--checkpoint", str(tmp_path / "run/checkpoint.pt"),
                 "--out-dir", str(noisy), "--device", "cpu", "--from-metrics",
                 str(out / "metrics.json"), "--perturb", '{"snr_db": -10, "seed": 0}']) == 0
    far = json.loads((noisy / "metrics.json").read_text())["novelty"]
    assert far["threshold"]["chosen_on"] == "from_metrics"
    assert far["novel"] > metrics["novelty"]["novel"] and far["median_distance"] > distance.max()
    # predict: the box around the detections, at the threshold the evaluation chose
    pred = tmp_path / "pred.nc"
    assert main(["predict", "--checkpoint", str(tmp_path / "run/checkpoint.pt"), "--data",
                 *data, "--out", str(pred), "--from-metrics", str(out / "metrics.json"),
                 "--device", "cpu"]) == 0
    with xr.open_dataset(pred) as ds:
        assert ds.attrs["score_threshold"] == metrics["score_threshold"]
        assert ds.sizes["sample"] == 20 and ds.attrs["target"] == "cracks"
        # the same distances as the evaluation's, and the flag at its threshold
        on_test = ds.sel(sample=np.sort(split["test"]))
        np.testing.assert_allclose(on_test["distance"].values, distance, rtol=1e-6)
        np.testing.assert_array_equal(on_test["novel"].values.astype(bool), novel)
    header = pred.with_suffix(".csv").read_text().splitlines()[0]
    assert header.endswith(",detected,distance,novel")


def test_sigma_scales_make_the_90_percent_intervals_cover_90_percent():
    rng = np.random.default_rng(1)
    n = 4000
    targets = np.full((n, 1, 8), np.nan)
    targets[:, 0, :4] = [0.25, 0.25, 0.5, 0.5]
    targets[:, 0, 4:] = [0.3, 0.3, 0.45, 0.45]
    sigma = rng.uniform(0.002, 0.01, (n, 1, 1))
    decoded = {"score": np.ones((n, 1)),
               "box": targets[:, :, :4] + 3 * sigma * rng.standard_normal((n, 1, 4)),
               "ends": (targets[:, :, 4:] + 2 * sigma * rng.standard_normal((n, 1, 4))
                        ).reshape(n, 1, 2, 2),
               "box_sigma": np.repeat(sigma, 4, axis=2),
               "end_sigma": np.repeat(sigma, 4, axis=2).reshape(n, 1, 2, 2)}
    scales = sigma_scales(decoded, targets, 0.5)   # errors 3 and 2 times the claimed sigma
    assert scales["box"] == pytest.approx(3.0, rel=0.05)
    assert scales["ends"] == pytest.approx(2.0, rel=0.05)
    fixed = scale_sigmas(decoded, scales)
    error = (fixed["box"] - targets[:, :, :4]).reshape(-1, 4)
    assert interval_coverage(error, fixed["box_sigma"].reshape(-1, 4), (0.9,)).mean() == \
        pytest.approx(0.9, abs=0.01)
