"""Learned delay-and-sum: per-sensor features focused on the label grid by the times of
flight of waves scattered there (crackset's physics-guided branch, docs/model.md).

Delay-and-sum imaging (model/baselines/das.py; Michaels & Michaels 2007) sums each sensor's
envelope at the time a wave from the source, scattered at point `x`, reaches that sensor:
`t_k(x) = onset + |x - source| / c_in + |x - sensor_k| / c_out`. Here the envelope is
replaced by features a network learns from each trace, and the focusing is a fixed linear
map: for each pair of speeds `(c_in, c_out)` of `SPEED_PAIRS` (P or S to the scatterer, P or
S back: the four mode paths) and each label cell, the mean over sensors and over
`sub x sub` points of the cell of the feature sampled (linear interpolation) at `t_k(x)`.
Sampling times outside the trace contribute nothing.

The geometry (`GEOMETRY_KEYS`, SI units) is read from the training shards
(`model.baselines.imaging.imaging_geometry`) and stored with the network's hyperparameters,
so a checkpoint focuses every later wavefield with its training plate's speeds.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from model.nets.densenet1d import conv2d_bn_relu

P_WAVE, S_WAVE = 0, 1
SPEED_PAIRS = ((P_WAVE, P_WAVE), (P_WAVE, S_WAVE), (S_WAVE, P_WAVE), (S_WAVE, S_WAVE))
SUB_POINTS = 2     # points per cell and axis at which the times of flight are evaluated
GEOMETRY_KEYS = ("plate", "source", "onset", "speeds", "sensors", "t_first", "dt")


def check_geometry(geometry: dict, n_sensors: int) -> None:
    """ValueError unless `geometry` has every key of `GEOMETRY_KEYS`: `plate` (width, height)
    [m] > 0, `source` (x, y) [m], `onset` [s], `speeds` (P, S) [m/s] > 0, `sensors`
    `n_sensors` x (x, y) [m], `t_first` [s] the first record's time, `dt` [s] > 0 its step."""
    missing = [k for k in GEOMETRY_KEYS if k not in geometry]
    if missing:
        raise ValueError(f"geometry lacks {missing}")
    shapes = {"plate": (2,), "source": (2,), "speeds": (2,), "sensors": (n_sensors, 2),
              "onset": (), "t_first": (), "dt": ()}
    for key, shape in shapes.items():
        value = np.asarray(geometry[key], dtype=np.float64)
        if value.shape != shape or not np.isfinite(value).all():
            raise ValueError(f"geometry {key} must be finite numbers of shape {shape}, got "
                             f"shape {value.shape}")
    if min(*geometry["plate"], *geometry["speeds"], geometry["dt"]) <= 0:
        raise ValueError("geometry plate, speeds and dt must be > 0")


def focusing_weights(geometry: dict, t_first: float, t_step: float, n_steps: int,
                     label_grid: tuple[int, int], sub: int = SUB_POINTS,
                     pairs: tuple[tuple[int, int], ...] = SPEED_PAIRS) -> np.ndarray:
    """float32 `(K, H*W, S*T)`, K = len(pairs): row `g` of map `k`, applied to features
    flattened sensor-major `(S*T,)` (`[s * T + t]`), is their mean over the S sensors and the
    `sub x sub` points of cell `g` (row-major from the lower left, row = y) of the feature
    linearly interpolated at the time of flight with the speeds `pairs[k]` (indices into
    `geometry["speeds"]`). The features are sampled at `t_first + i * t_step` [s],
    i = 0 .. n_steps - 1; a time outside that span adds nothing."""
    ny, nx = label_grid
    width, height = geometry["plate"]
    offsets = (np.arange(sub) + 0.5) / sub
    xs = (np.arange(nx)[:, None] + offsets).ravel() * width / nx                 # (nx*sub,)
    ys = (np.arange(ny)[:, None] + offsets).ravel() * height / ny
    px, py = np.meshgrid(xs, ys, indexing="xy")
    points = np.stack([px.ravel(), py.ravel()], axis=-1)                          # (P, 2)
    cell = ((np.arange(ny * sub)[:, None] // sub) * nx
            + np.arange(nx * sub)[None] // sub).ravel()                           # (P,)
    sensors = np.asarray(geometry["sensors"], np.float64)
    n_sensors = len(sensors)
    to_point = np.linalg.norm(points - np.asarray(geometry["source"]), axis=1)    # (P,)
    to_sensor = np.linalg.norm(points[None] - sensors[:, None], axis=2)          # (S, P)
    sensor = np.broadcast_to(np.arange(n_sensors)[:, None], to_sensor.shape)
    row = np.broadcast_to(cell[None], to_sensor.shape)
    weight = 1.0 / (n_sensors * sub * sub)
    maps = np.zeros((len(pairs), ny * nx, n_sensors * n_steps), np.float64)
    for k, (into, out) in enumerate(pairs):
        arrival = (geometry["onset"] + to_point[None] / geometry["speeds"][into]
                   + to_sensor / geometry["speeds"][out])                         # (S, P) s
        position = (arrival - t_first) / t_step
        before = np.floor(position).astype(np.int64)
        frac = position - before
        inside = (before >= 0) & (before + 1 < n_steps)
        column = sensor[inside] * n_steps + before[inside]
        np.add.at(maps[k], (row[inside], column), (1 - frac[inside]) * weight)
        np.add.at(maps[k], (row[inside], column + 1), frac[inside] * weight)
    return maps.astype(np.float32)


class LearnedDelayAndSum(nn.Module):
    """Per-sensor features `(B*S, c_in, T)` sampled at `t_first + i * t_step` -> focused
    maps `(B, out_channels, H, W)`: a 1x1 conv (BN, ReLU) to `channels` per sensor, the
    `focusing_weights` of every speed pair, and a 1x1 conv (BN, ReLU) over the
    `channels * K` images (channel-major: image `c * K + k`). The weights are recomputed
    from the geometry, not stored."""

    def __init__(self, c_in: int, channels: int, out_channels: int, geometry: dict,
                 t_first: float, t_step: float, n_steps: int, label_grid: tuple[int, int]):
        super().__init__()
        self.label_grid = tuple(label_grid)
        self.reduce = nn.Sequential(nn.Conv1d(c_in, channels, 1, bias=False),
                                    nn.BatchNorm1d(channels), nn.ReLU(inplace=True))
        self.mix = conv2d_bn_relu(len(SPEED_PAIRS) * channels, out_channels, 1)
        weights = focusing_weights(geometry, t_first, t_step, n_steps, self.label_grid)
        self.register_buffer("weights", torch.from_numpy(weights), persistent=False)

    def forward(self, features: torch.Tensor, batch: int) -> torch.Tensor:
        x = self.reduce(features)                                                 # (B*S, c, T)
        channels = x.shape[1]
        x = x.reshape(batch, -1, channels, x.shape[-1]).transpose(1, 2).reshape(
            batch * channels, -1)                                                 # (B*c, S*T)
        images = torch.stack([x @ w.T for w in self.weights], dim=1)             # (B*c, K, G)
        height, width = self.label_grid
        return self.mix(images.reshape(batch, -1, height, width))                # (B, out, H, W)
