"""The learned delay-and-sum branch of crackset (model/nets/delay_and_sum.py): its focusing
maps against the delay-and-sum baseline's images and against interpolation done by hand."""

import numpy as np
import pytest
import torch

from model.baselines.das import das_images, envelopes
from model.baselines.imaging import pixel_grid
from model.nets import build_model
from model.nets.delay_and_sum import P_WAVE, S_WAVE, check_geometry, focusing_weights

N_TIME, DT = 2000, 5e-8
TIMES = np.arange(N_TIME) * DT


def _geometry(speeds=(5394.0, 3122.0)) -> dict:
    """The default config's plate: 100 mm square, source at (30, 40) mm, 9 x 9 sensors 5 mm
    inside the edges, 2,000 records of 0.05 us."""
    axis = np.linspace(0.005, 0.095, 9)
    sx, sy = np.meshgrid(axis, axis, indexing="xy")   # row-major: k = iy * 9 + ix
    return {"plate": [0.1, 0.1], "source": [0.03, 0.04], "onset": 1.5e-5,
            "speeds": list(speeds), "sensors": np.column_stack([sx.ravel(), sy.ravel()]).tolist(),
            "t_first": 0.0, "dt": DT}


def _envelopes(seed: int = 0) -> np.ndarray:
    """Envelopes `(2, T, 81)` of random scattered fields, and those fields `(2, T, 81, 2)`."""
    field = np.random.default_rng(seed).standard_normal((2, N_TIME, 81, 2))
    return envelopes(field), field


def test_one_speed_pair_at_cell_centres_is_the_delay_and_sum_image_over_the_sensors():
    geometry = _geometry()
    env, field = _envelopes()
    weights = focusing_weights(geometry, 0.0, DT, N_TIME, (16, 16), sub=1,
                               pairs=((S_WAVE, S_WAVE),))[0]                      # (256, S*T)
    focused = env.transpose(0, 2, 1).reshape(2, -1) @ weights.T.astype(np.float64)
    image = das_images(field, np.zeros(field.shape[1:]), TIMES,
                       pixel_grid(0.1, 0.1, (16, 16), oversample=1), np.array(geometry["source"]),
                       np.array(geometry["sensors"]), geometry["speeds"][S_WAVE],
                       geometry["onset"])
    np.testing.assert_allclose(focused, image / 81, rtol=1e-5)


def test_mixed_speeds_and_sub_points_match_interpolation_by_hand():
    geometry = _geometry()
    env, _ = _envelopes(1)
    weights = focusing_weights(geometry, 0.0, DT, N_TIME, (16, 16), sub=2,
                               pairs=((P_WAVE, S_WAVE),))[0]
    focused = env[0].T.reshape(-1) @ weights.T.astype(np.float64)                 # (256,)
    sensors, source = np.array(geometry["sensors"]), np.array(geometry["source"])
    c_in, c_out = geometry["speeds"]
    expected = np.zeros(256)
    for row in range(16):
        for col in range(16):
            for dy in (0.25, 0.75):
                for dx in (0.25, 0.75):
                    point = np.array([(col + dx) * 0.1 / 16, (row + dy) * 0.1 / 16])
                    arrival = (geometry["onset"] + np.linalg.norm(point - source) / c_in
                               + np.linalg.norm(sensors - point, axis=1) / c_out)
                    expected[row * 16 + col] += np.mean(
                        [np.interp(t, TIMES, env[0, :, s]) for s, t in enumerate(arrival)]) / 4
    np.testing.assert_allclose(focused, expected, rtol=1e-5)


def test_arrivals_after_the_last_record_add_nothing():
    slow = _geometry(speeds=(50.0, 50.0))            # every arrival ~ms after 0.1 ms of record
    assert not focusing_weights(slow, 0.0, DT, N_TIME, (4, 4)).any()


def test_geometry_is_checked_and_absent_geometry_means_no_branch():
    geometry = _geometry()
    with pytest.raises(ValueError, match="sensors"):
        check_geometry({**geometry, "sensors": geometry["sensors"][:80]}, 81)
    with pytest.raises(ValueError, match="lacks"):
        check_geometry({k: v for k, v in geometry.items() if k != "dt"}, 81)
    with pytest.raises(ValueError, match="> 0"):
        check_geometry({**geometry, "speeds": [5394.0, 0.0]}, 81)
    tiny = {"stem_channels": 4, "block_layers": [1, 1, 1], "growth": 4, "sensor_features": 8,
            "decoder_channels": [8, 8], "head_channels": 8}
    assert build_model("crackset", **tiny).focus is None
    net = build_model("crackset", geometry=geometry, das_channels=3, **tiny).eval()
    again = build_model("crackset", **net.hyperparameters())
    again.load_state_dict(net.state_dict())        # the focusing maps are rebuilt, not stored
    x = torch.randn(1, N_TIME, 81, 2)
    with torch.no_grad():
        torch.testing.assert_close(again.eval()(x), net(x))
    assert "focus.weights" not in net.state_dict()
