"""DenseNet1DSeg: a 1D-DenseNet that segments the 16x16 crack mask from the sensor traces.

A baseline in the spirit of 1D-DenseNet200E (Moreh et al., Sci. Rep. 14:4439, 2024), the
predecessor that paper §3.6.2
compares MicroCrackPointNet with: a DenseNet backbone over each sensor's time series and a
pixel-wise crack probability map, scored by the IoU of the thresholded map. We do not copy
that network layer by layer (its exact widths are not in our reference material); we keep
its defining traits at a CPU-trainable size (190,193 parameters, 0.95 GFLOP a forward
pass per sample, against MicroCrackPointNet's 1.2 M and 2.2 GFLOP).

References
- DenseNet: Huang, Liu, van der Maaten, Weinberger, "Densely connected convolutional
  networks", CVPR 2017 (dense blocks, pre-activation BN-ReLU-conv, compressing transitions);
- U-Net-style decoders and the BCE + Dice loss: Milletari et al., "V-Net", 3DV 2016.

Data flow for one sample (the 81 sensors share the 1D backbone: they are its batch):

    (2000, 81, 2) wavefield -> 81 sequences (2, 2000)
    stem: conv k=9 stride 4 -> (16, 500) -> max-pool 2 -> (16, 250)
    3 x [dense block: 4 layers, growth 12, k=5 -> transition: 1x1 conv x0.5, avg-pool 2]
         time 250 -> 125 -> 62 -> 31, channels 16 -> 64 -> 32 -> 80 -> 40 -> 88 -> 44
    conv over the remaining time (k=31) -> 64 features per sensor
    sensor grid (64, 9, 9) -> conv 3x3 -> (64, 9, 9) -> bilinear up to (64, 16, 16)
    conv 3x3 -> (32, 16, 16) -> conv 1x1 -> (16, 16) logits (label grid: row = y, col = x)

Choices, and why:
1. Shared 1D backbone. Every sensor's two-component trace goes through the same dense
   blocks (weights shared over sensors, as a 1D network over one time series per sensor);
   spatial reasoning happens only after the features are placed on the 9x9 sensor grid
   (contract order `k = iy * 9 + ix`: grid row = iy, column = ix).
2. Time resolution. The traces are sampled 200 times per period of the 100 kHz burst; a
   stride-4 stem and a max-pool leave 25 samples a period, enough for a k=5 dense layer.
3. Time is kept to the end, as in MicroCrackPointNet's (31, 1) conv: arrival times carry
   the crack position, so the last 31 steps are mixed by one learned conv, not averaged.
4. Dense layers are pre-activation BN-ReLU-conv without the 1x1 bottleneck (the blocks are
   narrow, 16-88 channels, so a bottleneck would save nothing); transitions halve channels
   (compression 0.5) and time (average pool), as in DenseNet-BC.
5. Decoder. The 9x9 sensor grid spans the plate inside a 5 mm margin and the 16x16 label
   grid the whole plate: a 3x3 conv, a bilinear upsampling with aligned corners (sensor
   (0, 0) onto cell (0, 0), sensor (8, 8) onto cell (15, 15)) and two convs map one onto
   the other. The output is logits; `sigmoid(logits) >= threshold` is the predicted mask.
6. Loss: BCE + Dice (`--loss bce_dice`, weights `--bce-weight`, `--dice-weight`, 1 and 1
   by default; model.losses), because crack cells are a few percent of the plate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class DenseNet1DConfig:
    """Hyperparameters (`--arch-kwargs`); the defaults are the baseline of docs/model.md."""

    n_time: int = 2000                     # records per trace
    sensor_grid: tuple[int, int] = (9, 9)  # sensors, row-major (data contract)
    n_components: int = 2                  # ux, uy
    label_grid: tuple[int, int] = (16, 16)  # output mask (label_y, label_x)
    stem_channels: int = 16
    stem_kernel: int = 9
    stem_stride: int = 4                   # 2000 -> 500
    stem_pool: int = 2                     # max-pool after the stem: 500 -> 250
    block_layers: tuple[int, ...] = (4, 4, 4)  # dense layers per block
    growth: int = 12                       # channels each dense layer adds
    kernel: int = 5                        # time kernel of the dense layers
    compression: float = 0.5               # transition: channels x compression, time / 2
    sensor_features: int = 64              # per-sensor features after the time conv
    decoder_channels: tuple[int, int] = (64, 32)

    def __post_init__(self):
        for name in ("sensor_grid", "label_grid", "block_layers", "decoder_channels"):
            object.__setattr__(self, name, tuple(getattr(self, name)))  # JSON gives lists

    @property
    def trace_time(self) -> int:
        """Time length after the stem and its pool, kept by the first dense block (250)."""
        return (self.n_time + self.stem_stride - 1) // self.stem_stride // self.stem_pool

    @property
    def trace_channels(self) -> int:
        """Channels after the stem and the first dense block (64 by default)."""
        return self.stem_channels + self.block_layers[0] * self.growth

    @property
    def pooled_time(self) -> int:
        """Time length left after the stem, its pool and the transitions (31 by default)."""
        length = self.trace_time
        for _ in self.block_layers:
            length //= 2
        return length

    def validate(self) -> None:
        """Raise ValueError on a configuration the network cannot be built from."""
        if self.pooled_time < 1:
            raise ValueError(f"n_time={self.n_time} is too short for the stem and "
                             f"{len(self.block_layers)} transitions")
        if not 0 < self.compression <= 1:
            raise ValueError(f"compression must be in (0, 1], got {self.compression}")
        if self.kernel % 2 == 0 or self.stem_kernel % 2 == 0:
            raise ValueError("kernel and stem_kernel must be odd ('same' padding)")
        if min(self.growth, self.stem_channels, self.sensor_features, *self.block_layers,
               *self.decoder_channels) < 1:
            raise ValueError("widths and layer counts must be >= 1")


class DenseLayer(nn.Module):
    """BN -> ReLU -> Conv1d(k, 'same'); its output is concatenated to its input."""

    def __init__(self, c_in: int, growth: int, kernel: int):
        super().__init__()
        self.body = nn.Sequential(nn.BatchNorm1d(c_in), nn.ReLU(inplace=True),
                                  nn.Conv1d(c_in, growth, kernel, padding=kernel // 2, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.body(x)], dim=1)  # (N, C + growth, T)


def dense_block(c_in: int, layers: int, growth: int, kernel: int) -> tuple[nn.Sequential, int]:
    """`layers` dense layers; returns the block and its output channels."""
    block = [DenseLayer(c_in + i * growth, growth, kernel) for i in range(layers)]
    return nn.Sequential(*block), c_in + layers * growth


def transition(c_in: int, c_out: int) -> nn.Sequential:
    """BN -> ReLU -> 1x1 conv (compression) -> average-pool time by 2."""
    return nn.Sequential(nn.BatchNorm1d(c_in), nn.ReLU(inplace=True),
                         nn.Conv1d(c_in, c_out, 1, bias=False), nn.AvgPool1d(2))


def conv2d_bn_relu(c_in: int, c_out: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class DenseNet1DSeg(nn.Module):
    """Wavefield `(B, n_time, 81, 2)` [normalised] -> crack-mask logits `(B, 16, 16)`."""

    target = "mask"   # trained on crack_mask, scored by pixel IoU and by the mask's box

    def __init__(self, config: DenseNet1DConfig | None = None, **overrides):
        super().__init__()
        config = config or DenseNet1DConfig(**overrides)
        config.validate()
        self.config = config
        c = config.stem_channels
        self.stem = nn.Sequential(
            nn.Conv1d(config.n_components, c, config.stem_kernel, stride=config.stem_stride,
                      padding=config.stem_kernel // 2, bias=False),
            nn.BatchNorm1d(c), nn.ReLU(inplace=True), nn.MaxPool1d(config.stem_pool))
        stages = []
        for layers in config.block_layers:
            block, c = dense_block(c, layers, config.growth, config.kernel)
            c_out = max(1, int(c * config.compression))
            stages += [block, transition(c, c_out)]
            c = c_out
        self.backbone = nn.Sequential(*stages)
        self.time_conv = nn.Sequential(
            nn.BatchNorm1d(c), nn.ReLU(inplace=True),
            nn.Conv1d(c, config.sensor_features, config.pooled_time, bias=False),
            nn.BatchNorm1d(config.sensor_features), nn.ReLU(inplace=True))
        d0, d1 = config.decoder_channels
        self.grid_conv = conv2d_bn_relu(config.sensor_features, d0, 3)
        self.decoder = nn.Sequential(conv2d_bn_relu(d0, d1, 3), nn.Conv2d(d1, 1, 1))

    def forward(self, wavefield: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.features(wavefield)).squeeze(1)  # (B, 16, 16) logits

    def features(self, wavefield: torch.Tensor) -> torch.Tensor:
        """The encoder: wavefield `(B, n_time, 81, 2)` -> features `(B, d0, 16, 16)` on the
        label grid (everything before the mask decoder; crackset puts its heads there)."""
        return self.grid_features(self.trace_features(wavefield), len(wavefield))

    def trace_features(self, wavefield: torch.Tensor) -> torch.Tensor:
        """The encoder's first part, shared by the traces: wavefield `(B, n_time, 81, 2)` ->
        `(B*81, trace_channels, trace_time)` after the stem and the first dense block; sample
        `i` is centred on record `stem_stride * (stem_pool * i + (stem_pool - 1) / 2)`."""
        batch, n_time, n_sensor, n_comp = wavefield.shape
        x = wavefield.permute(0, 2, 3, 1).reshape(batch * n_sensor, n_comp, n_time)  # (B*S, 2, T)
        return self.backbone[0](self.stem(x))

    def grid_features(self, early: torch.Tensor, batch: int) -> torch.Tensor:
        """The rest of the encoder: `trace_features` `(B*S, C1, T1)` -> `(B, d0, 16, 16)`."""
        x = self.time_conv(self.backbone[1:](early))  # (B*S, F, 1)
        rows, cols = self.config.sensor_grid
        x = x.reshape(batch, rows * cols, -1).transpose(1, 2).reshape(batch, -1, rows, cols)
        x = self.grid_conv(x)  # (B, d0, 9, 9)
        return F.interpolate(x, size=self.config.label_grid, mode="bilinear",
                             align_corners=True)  # (B, d0, 16, 16)

    def hyperparameters(self) -> dict:
        """The config as a JSON-able dict (stored in checkpoints)."""
        return asdict(self.config)
