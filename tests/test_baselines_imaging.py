"""Classical damage imaging (RAPID, delay-and-sum) on synthetic cases with a known answer."""

from __future__ import annotations

import numpy as np
import pytest

from model.baselines.das import das_images
from model.baselines.imaging import image_to_box, image_to_mask, pixel_grid
from model.baselines.rapid import damage_index, path_weights

PLATE = 0.1
CELL = PLATE / 16


def sensor_grid():
    xs = np.linspace(0.005, 0.095, 9)
    gx, gy = np.meshgrid(xs, xs)
    return np.column_stack([gx.ravel(), gy.ravel()])


def test_damage_index_is_zero_for_unchanged_and_grows_with_change():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((200, 3, 2))
    cur = np.stack([ref, ref + 0.1 * rng.standard_normal(ref.shape), -ref])
    di = damage_index(cur, ref)
    assert np.allclose(di[0], 0, atol=1e-12)
    assert np.all((di[1] > 0) & (di[1] < 0.1))
    assert np.allclose(di[2], 2)


def test_rapid_places_the_maximum_where_the_changed_paths_cross():
    """Four transmitters at the plate's corners, 81 receivers: only the paths passing within
    1 mm of the damage point change; the image peaks within one label cell of it."""
    damage = np.array([0.063, 0.041])
    sensors = sensor_grid()
    corners = np.array([[0.0, 0.0], [PLATE, 0.0], [0.0, PLATE], [PLATE, PLATE]])
    tx = np.repeat(corners, len(sensors), axis=0)
    rx = np.tile(sensors, (4, 1))
    # distance from the damage point to each straight path
    d = rx - tx
    t = np.clip(((damage - tx) * d).sum(1) / (d * d).sum(1), 0, 1)
    dist = np.linalg.norm(tx + t[:, None] * d - damage, axis=1)
    di = np.where(dist < 0.001, 1.0, 0.0)
    assert di.sum() >= 4
    grid = pixel_grid(PLATE, PLATE)
    image = di @ path_weights(grid, tx, rx, beta=1.02)
    peak = grid[np.argmax(image)]
    assert np.all(np.abs(peak - damage) <= CELL)


def test_delay_and_sum_focuses_on_a_point_scatterer():
    """Scattered traces = a pulse at each sensor's source -> scatterer -> sensor travel time:
    the image peaks within one label cell of the scatterer, and its box contains it."""
    source, scatterer, c, onset = np.array([0.03, 0.04]), np.array([0.072, 0.067]), 3100.0, 15e-6
    sensors = sensor_grid()
    times = np.arange(2000) * 5e-8
    tof = onset + (np.linalg.norm(scatterer - source) + np.linalg.norm(sensors - scatterer, axis=1)) / c
    f0 = 1e5
    pulse = lambda tau: (1 - 2 * (np.pi * f0 * tau) ** 2) * np.exp(-((np.pi * f0 * tau) ** 2))
    scattered = pulse(times[:, None] - tof[None])                  # (T, S)
    reference = np.zeros((len(times), len(sensors), 2))
    current = np.stack([scattered, 0.5 * scattered], axis=-1)[None]
    grid = pixel_grid(PLATE, PLATE)
    image = das_images(current, reference, times, grid, source, sensors, c, onset)
    peak = grid[np.argmax(image[0])]
    assert np.all(np.abs(peak - scatterer) <= CELL)
    box = image_to_box(image, alpha=0.8)[0]
    assert box[0] <= scatterer[0] / PLATE <= box[2] and box[1] <= scatterer[1] / PLATE <= box[3]


def test_image_threshold_maps_pixels_onto_label_cells():
    images = np.zeros((2, 64 * 64))
    images[0, 64 * 10 + 20] = 1.0            # pixel row 10, col 20 -> cell (2, 5)
    mask = image_to_mask(images, 0.5)
    assert mask[0].sum() == 1 and mask[0, 2, 5] == 1
    assert mask[1].sum() == 0                 # an empty image marks nothing
    assert np.allclose(image_to_box(images, 0.5)[1], 0.0)


def test_beta_must_exceed_one():
    with pytest.raises(ValueError, match="beta"):
        path_weights(np.zeros((1, 2)), np.zeros((1, 2)), np.ones((1, 2)), 1.0)


def test_a_plane_strain_shard_is_imaged_with_plane_strain_speeds(tmp_path, monkeypatch):
    """The speeds come from the shard's contract attributes, which follow the plate's plane
    condition; checked against the textbook formulas (Graff, Wave Motion in Elastic Solids)."""
    import copy

    from dlem import config as config_mod
    from dlem import dataset
    from model.baselines import run
    from model.data import ShardIndex
    from test_dlem_dataset import TINY

    cfg = copy.deepcopy(TINY)
    cfg["plate"].update(plane="strain", poisson_ratio=0.25)
    cfg = config_mod.validate(cfg)
    dataset.write_shard(cfg, tmp_path / "shard.nc", 0, 1, progress=False)
    dataset.write_shard(cfg, tmp_path / "pristine.nc", 0, 1, pristine=True, progress=False)
    E, nu, rho = 7e10, 0.25, 2700.0
    c_p = np.sqrt(E * (1 - nu) / (rho * (1 + nu) * (1 - 2 * nu)))    # plane strain
    c_s = np.sqrt(E / (2 * rho * (1 + nu)))
    assert c_p > np.sqrt(E / (rho * (1 - nu**2))) * 1.01               # not the plane-stress one
    setup = run.read_setup(ShardIndex.build([tmp_path / "shard.nc"]), tmp_path / "pristine.nc")
    used = []
    monkeypatch.setattr(run, "das_images", lambda *args: used.append(args[6]) or np.zeros((1, 1)))
    current = np.zeros((1, *setup["reference"].shape), np.float32)
    for speed in ("p", "s"):
        run.images("das", current, setup, {"speed": speed, "t_max": 1e-5})
    np.testing.assert_allclose(used, [c_p, c_s], rtol=1e-12)
    np.testing.assert_allclose(setup["geometry"]["source"], [0.012, 0.008])
    assert setup["geometry"]["onset"] == pytest.approx(1.5 / 2e5)
    assert setup["geometry"]["plane"] == "strain"
