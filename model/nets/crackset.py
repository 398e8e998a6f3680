"""CrackSet: a set predictor of several cracks per sample, each with a box, its two end
points, a confidence score and a standard deviation per coordinate (issue 10, items 2 and 4).

References
- CenterNet: Zhou, Wang, Krähenbühl, "Objects as points", arXiv:1904.07850, 2019 (centre
  heatmap with a penalty-reduced focal loss, size and sub-cell offset regressed at the centre
  cell, decoding by 3x3 max-pool peaks);
- Kendall, Gal, "What uncertainties do we need in Bayesian deep learning for computer
  vision?", NeurIPS 2017 (a log-variance head trained by the Gaussian negative log-likelihood);
- Seitzer et al., "On the pitfalls of heteroscedastic uncertainty estimation with
  probabilistic neural networks", ICLR 2022 (why the mean is not trained through the NLL).

Data flow for one sample: the densenet1d encoder (model/nets/densenet1d.py, its
`features`: a temporal dense network shared by the 81 traces, then 2D layers on the 9x9
sensor grid, upsampled to the label grid), beside it a learned delay-and-sum of the traces'
early features (model/nets/delay_and_sum.py, when the network has the plate's `geometry`,
which training reads from its shards), then a head on every cell of the 16x16 label grid
(with `time_gate` N, each trace is zeroed after its first N samples before all of it):

    (2000, 81, 2) wavefield -> stem + dense block 1 -> (81, 64, 250) per trace
      -> rest of densenet1d.features                            -> (64, 16, 16)
      -> 1x1 conv to 16, focused at 4 mode paths' times of flight -> (64, 16, 16)
         -> 1x1 conv                                               -> (32, 16, 16)
    concatenated (96, 16, 16) -> conv 3x3 + BN + ReLU -> (head_channels, 16, 16)
      -> conv 1x1 -> (17, 16, 16) raw maps

The 17 channels of cell (row i = y, column j = x), in cell units (one cell = 1/16 of the
plate width in x, of its height in y):

| channels | name | meaning |
|---|---|---|
| 0 | `HEAT` | centre heatmap logit: a crack's box centre lies in this cell |
| 1, 2 | `OFFSET` | the centre inside the cell, `(j + sigmoid, i + sigmoid)` |
| 3, 4 | `SIZE` | box width and height, `softplus` (a valid box by construction) |
| 5-8 | `ENDS` | the two end points minus the centre, `(dx1, dy1, dx2, dy2)` |
| 9-12 | `BOX_LOGVAR` | log-variance of `xmin, ymin, xmax, ymax` [cells^2] |
| 13-16 | `END_LOGVAR` | log-variance of `x1, y1, x2, y2` [cells^2] |

Choices, and why:
1. Heatmap, not query slots. The label grid is the natural resolution of the boxes (their
   edges lie on cell edges), one crack rarely has its centre in the same cell as another
   (clearance 4 mm, cells 6.25 mm), and an uncracked plate is simply an empty heatmap: no
   "no-object" class to balance, no matching in the loss.
2. End points are unordered. A crack's two ends have no natural first one, so the loss
   (`model.losses.crackset_loss`) takes the smaller of its values under the two
   assignments of predicted to true ends; it is exactly symmetric in their order. A
   prediction reports its ends in the order the network emits them.
3. Uncertainty. Each coordinate has its own Gaussian standard deviation
   `exp(logvar / 2)`, trained by the Gaussian negative log-likelihood with the mean held
   fixed (the mean learns by L1); its central interval at level `q` is
   `mean +- Phi^-1((1 + q)/2) sigma`.
4. Distance to training. `forward_embedded` also returns the features the head sees
   averaged over the label grid, one `(96,)` vector per plate (`(64,)` without the
   delay-and-sum branch); `model.novelty` measures how far a
   new plate's lies from the training plates' and withdraws the intervals of a plate
   beyond the validation plates' range (the standard deviations alone do not grow enough
   on shifted data, docs/model.md).
5. Delay-and-sum inside. Where a crack lies is written in when its scattered waves reach
   each sensor; the encoder's 2D layers see the 81 traces' summaries only through 3x3
   neighbourhoods, while delay-and-sum imaging of the scattered field (no training at all)
   was the best single-box localiser held out. The branch samples learned per-trace
   features at each cell's times of flight (P and S, in and out) and averages them over
   the sensors, a fixed linear map computed from the geometry. On 840 plates it raised the
   validation AP@0.5:0.95 by +0.037 [+0.008, +0.063] and the matched IoU by +0.022 [0.000,
   +0.043] (paired over the plates), the count not beyond noise (docs/model.md). A
   checkpoint without `geometry` (older ones, or `--arch-kwargs '{"geometry": null}'`)
   has no branch.
6. Decoding (`decode_cracks`): peaks of `sigmoid(heat)` (equal to their 3x3 max-pool),
   the `max_cracks` highest ones with a score of at least `min_score`; a detection
   threshold is applied later (evaluation chooses it on the validation subset), so AP sees
   low-score predictions too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from model.nets.delay_and_sum import LearnedDelayAndSum, check_geometry
from model.nets.densenet1d import DenseNet1DConfig, DenseNet1DSeg, conv2d_bn_relu

HEAT, OFFSET, SIZE, ENDS = 0, slice(1, 3), slice(3, 5), slice(5, 9)
BOX_LOGVAR, END_LOGVAR = slice(9, 13), slice(13, 17)
N_CHANNELS = 17
LOGVAR_RANGE = (-12.0, 6.0)   # log-variance clamp [cells^2]: sigma from 0.0025 to 20 cells
HEAT_PRIOR = 0.01             # initial centre probability of every cell (CenterNet's bias)


@dataclass(frozen=True)
class CrackSetConfig(DenseNet1DConfig):
    """densenet1d's encoder hyperparameters plus the head's (`--arch-kwargs`)."""

    head_channels: int = 32        # width of the shared 3x3 conv before the 1x1 output
    max_cracks: int = 5            # K: at most this many cracks decoded per sample
    min_score: float = 0.05        # peaks below this score are not reported at all
    geometry: dict | None = None   # plate, source, speeds, sensors, time axis (training shards'):
                                   # with it, the learned delay-and-sum branch; None: without
    das_channels: int = 16         # features per trace that the delay-and-sum branch focuses
    time_gate: int | None = None   # keep each trace's first N samples, zero the rest (the
                                   # cracks' interaction grows with time, docs/model.md); None: all

    def validate(self) -> None:
        super().validate()
        if self.das_channels < 1:
            raise ValueError(f"das_channels must be >= 1, got {self.das_channels}")
        if self.time_gate is not None and not 1 <= self.time_gate <= self.n_time:
            raise ValueError(f"time_gate must be None or 1..n_time={self.n_time} samples, got "
                             f"{self.time_gate}")
        if self.geometry is not None:
            check_geometry(self.geometry, self.sensor_grid[0] * self.sensor_grid[1])
        if self.head_channels < 1 or self.max_cracks < 1:
            raise ValueError("head_channels and max_cracks must be >= 1")
        if not 0 <= self.min_score < 1:
            raise ValueError(f"min_score must be in [0, 1), got {self.min_score}")


class CrackSet(DenseNet1DSeg):
    """Wavefield `(B, n_time, 81, 2)` [normalised] -> raw maps `(B, 17, 16, 16)` (module
    docstring); `decode_cracks` turns them into at most `max_cracks` cracks per sample."""

    target = "cracks"   # trained on the per-crack labels, scored by model.detection
    uses_geometry = True   # model.train passes the training shards' `geometry`

    def __init__(self, config: CrackSetConfig | None = None, **overrides):
        config = config or CrackSetConfig(**overrides)
        super().__init__(config)   # the densenet1d encoder (and its mask decoder, replaced)
        d0, d1 = config.decoder_channels
        self.focus = None
        if config.geometry is not None:   # trace_features' sampling, in seconds
            c, dt = config, config.geometry["dt"]
            first = c.geometry["t_first"] + c.stem_stride * (c.stem_pool - 1) / 2 * dt
            self.focus = LearnedDelayAndSum(c.trace_channels, c.das_channels, d1, c.geometry,
                                            first, c.stem_stride * c.stem_pool * dt,
                                            c.trace_time, c.label_grid)
            d0 += d1
        self.decoder = nn.Sequential(conv2d_bn_relu(d0, config.head_channels, 3),
                                     nn.Conv2d(config.head_channels, N_CHANNELS, 1))
        with torch.no_grad():
            out = self.decoder[-1]
            out.bias.zero_()
            out.bias[HEAT] = -float(np.log((1 - HEAT_PRIOR) / HEAT_PRIOR))

    def forward(self, wavefield: torch.Tensor) -> torch.Tensor:
        return self.forward_embedded(wavefield)[0]  # (B, 17, 16, 16)

    def forward_embedded(self, wavefield: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw maps `(B, 17, 16, 16)` and the plate's embedding `(B, D)`: the features the
        head sees (`(B, D, 16, 16)`: the encoder's d0, and with a geometry the d1 focused
        maps) averaged over the label grid (`model.novelty` measures distances on it). With
        `time_gate` N, the samples after each trace's first N are zeroed first."""
        gate = self.config.time_gate
        if gate is not None:
            late = torch.zeros_like(wavefield[:, gate:])
            wavefield = torch.cat([wavefield[:, :gate], late], dim=1)
        early = self.trace_features(wavefield)
        features = self.grid_features(early, len(wavefield))
        if self.focus is not None:
            features = torch.cat([features, self.focus(early, len(wavefield))], dim=1)
        return self.decoder(features), features.mean(dim=(2, 3))


def dense_geometry(raw: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every cell's crack hypothesis from raw maps `(B, 17, H, W)`, in cell units, each
    `(B, H, W, 4)`: `box` (xmin, ymin, xmax, ymax), `ends` (x1, y1, x2, y2), and their
    clamped log-variances `box_logvar`, `end_logvar`; plus `heat` `(B, H, W)` logits."""
    _, _, height, width = raw.shape
    rows = torch.arange(height, dtype=raw.dtype, device=raw.device).view(1, height, 1)
    cols = torch.arange(width, dtype=raw.dtype, device=raw.device).view(1, 1, width)
    offset = torch.sigmoid(raw[:, OFFSET])
    cx, cy = cols + offset[:, 0], rows + offset[:, 1]                       # (B, H, W)
    size = F.softplus(raw[:, SIZE])
    box = torch.stack([cx - size[:, 0] / 2, cy - size[:, 1] / 2,
                       cx + size[:, 0] / 2, cy + size[:, 1] / 2], dim=-1)   # (B, H, W, 4)
    centre = torch.stack([cx, cy, cx, cy], dim=-1)
    ends = centre + raw[:, ENDS].permute(0, 2, 3, 1)                         # (B, H, W, 4)
    lo, hi = LOGVAR_RANGE
    return {"heat": raw[:, HEAT], "box": box, "ends": ends,
            "box_logvar": raw[:, BOX_LOGVAR].permute(0, 2, 3, 1).clamp(lo, hi),
            "end_logvar": raw[:, END_LOGVAR].permute(0, 2, 3, 1).clamp(lo, hi)}


@torch.no_grad()
def decode_cracks(raw: np.ndarray | torch.Tensor, max_cracks: int = 5,
                  min_score: float = 0.05) -> dict[str, np.ndarray]:
    """The predicted cracks of raw maps `(N, 17, H, W)`, as plate fractions, NaN-padded to
    `K = max_cracks` slots in decreasing score:

    `score` `(N, K)` in (0, 1); `box` `(N, K, 4)` (xmin, ymin, xmax, ymax); `ends`
    `(N, K, 2, 2)` (end point, x/y); `box_sigma` `(N, K, 4)` and `end_sigma` `(N, K, 2, 2)`
    the standard deviations of those coordinates. A slot is filled by a heatmap peak (a cell
    equal to the maximum of its 3x3 neighbourhood) whose score is at least `min_score`.
    """
    raw = torch.as_tensor(np.asarray(raw) if not torch.is_tensor(raw) else raw).double()
    n, _, height, width = raw.shape
    geometry = dense_geometry(raw)
    heat = torch.sigmoid(geometry["heat"])                                  # (N, H, W)
    peak = heat == F.max_pool2d(heat[:, None], 3, stride=1, padding=1)[:, 0]
    k = min(max_cracks, height * width)
    score, flat = torch.where(peak, heat, torch.zeros_like(heat)).flatten(1).topk(k, dim=1)
    scale = torch.tensor([width, height, width, height], dtype=raw.dtype)

    def at_peaks(name: str) -> torch.Tensor:                                # (N, K, 4)
        values = geometry[name].flatten(1, 2)
        return torch.gather(values, 1, flat[..., None].expand(-1, -1, 4))

    keep = (score >= min_score)[..., None]
    nan = torch.tensor(float("nan"), dtype=raw.dtype)

    def fractions(values: torch.Tensor) -> np.ndarray:
        return torch.where(keep, values / scale, nan).numpy()

    return {
        "score": torch.where(keep[..., 0], score, nan).numpy(),
        "box": fractions(at_peaks("box")),
        "ends": fractions(at_peaks("ends")).reshape(n, k, 2, 2),
        "box_sigma": fractions(torch.exp(0.5 * at_peaks("box_logvar"))),
        "end_sigma": fractions(torch.exp(0.5 * at_peaks("end_logvar"))).reshape(n, k, 2, 2),
    }
