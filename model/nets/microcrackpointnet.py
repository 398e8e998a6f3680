"""MicroCrackPointNet: a wide (Inception-style) CNN that regresses a crack's bounding key points.

References
- the paper: "Deep learning for micro-scale crack detection on imbalanced datasets using key
  point localization" (MicroCrackPointNet), §3.2 architecture, §3.4 training procedure,
  Table 3 (1,228,760 parameters, 1,544 of them non-trainable);
- Inception blocks: Szegedy et al., "Going deeper with convolutions", CVPR 2015;
- Squeeze-and-Excitation: Hu, Shen, Sun, CVPR 2018 (the paper's §3.11 names its attention so);
- global-context attention: Cao et al., "GCNet", ICCV Workshops 2019.

Data flow for one sample (PyTorch layout `(B, C, T, S)`: channels, time, sensor):

    (2000, 81, 2) wavefield -> max-pool time x4 -> (500, 81)
    4 x [Inception(f) -> max-pool time x2 -> residual attention], f = 16, 32, 64, 128:
         time 500 -> 250 -> 125 -> 62 -> 31
    conv (31, 1) over the remaining time -> (C, 1, 81) -> sensor grid (C, 9, 9)
    conv 3x3 -> (7, 7) -> conv 4x4 -> (4, 4) -> flatten
    dense 128 -> 64 -> 32 -> 16 -> 8 (ReLU, dropout) -> dense 4 (linear or centre/size)

Choices the paper leaves open, and what we chose:
1. Inception convolutions act on the (time, sensor-index) plane with the two displacement
   components as input channels, "same" padding, no 1x1 reductions before 3x3/5x5 (the paper
   lists none). Each branch conv is followed by BatchNorm + ReLU; the conv has no bias (BN's
   shift replaces it).
2. The max-pool branch (3x3, stride 1) is followed by a 1x1 conv with f/4 filters, as in
   GoogLeNet's pool projection; a block therefore outputs f/4 + f/2 + f/4 + f/4 = 5f/4 channels.
3. Pooling after each block halves time only (the sensor axis stays at 81 so that the (31, 1)
   conv can produce one value per sensor); odd lengths are floored (125 -> 62).
4. Attention: full self-attention over 250 x 81 positions is infeasible, and §3.11 calls the
   mechanism "Squeeze and Excite". Default `attention="se"`: squeeze (mean over time and
   sensor), excite (C -> C/r -> C, ReLU, sigmoid), residual `x + x * s`, r = 4 (with 20
   channels in block 1, the SE paper's r = 16 would leave a 1-unit bottleneck).
   `attention="gc"` is a global-context block (softmax attention pooling over all positions,
   C -> C/r -> LayerNorm -> ReLU -> C, added back to every position), the closest cheap match
   to §3.2's "attention-weighted sum of the features added back to the input"; "none" drops it.
5. Widths of the three closing convs, which the paper does not give: (31, 1) -> 128 channels,
   3x3 -> 128, 4x4 -> 64, all "valid" (the paper says they reduce dimensionality), each with
   BatchNorm + ReLU. These widths bring the count to the paper's Table 3 (see docs/model.md):
   PyTorch parameters (= Keras "trainable") + BatchNorm running mean/variance (= Keras
   "non-trainable") is within 0.2 % of 1,228,760.
6. Dense widths halve from 128 down to 8 before the 4 outputs (§3.4: "reduced by half in each
   subsequent layer"); a dropout layer after each hidden dense layer, rate 0 by default (the
   paper names dropout layers but not their rate). Measured (docs/model.md, "Why
   MicroCrackPointNet did not learn"): a rate of 0.2 on layers of 16 and 8 units kept the
   network from fitting even its training set; `dropout` sets it.
7. The output layer is linear: the four outputs are the corners (`box_output="corners"`, the
   paper's). `box_output="centre_size"` reads them instead as a centre `sigmoid(a), sigmoid(b)`
   and a size `sigmoid(c), sigmoid(d)` in plate fractions and returns the corners
   `centre -+ size/2`: a valid box by construction (xmin <= xmax), never a collapse to an
   inverted box; same layers, same parameter count.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

ATTENTIONS = ("se", "gc", "none")
BOX_OUTPUTS = ("corners", "centre_size")


@dataclass(frozen=True)
class MicroCrackPointNetConfig:
    """Hyperparameters; the defaults reproduce the paper's network."""

    n_time: int = 2000                 # records per trace (paper §3.4)
    sensor_grid: tuple[int, int] = (9, 9)  # sensors, row-major (data contract)
    n_components: int = 2              # ux, uy
    input_pool: int = 4                # max-pool over time before the blocks: 2000 -> 500
    filters: tuple[int, ...] = (16, 32, 64, 128)  # Inception filters f per block
    block_pool: int = 2                # max-pool over time after each block
    attention: str = "se"              # "se" | "gc" | "none" (choice 4)
    attention_reduction: int = 4       # bottleneck ratio r of the attention MLP
    time_conv_channels: int = 128      # output channels of the (T', 1) conv (choice 5)
    grid_conv_channels: tuple[int, int] = (128, 64)  # 3x3 and 4x4 conv outputs (choice 5)
    dense_units: tuple[int, ...] = (128, 64, 32, 16, 8)  # hidden dense layers (choice 6)
    dropout: float = 0.0               # after each hidden dense layer (choice 6)
    n_outputs: int = 4                 # xmin, ymin, xmax, ymax
    box_output: str = "corners"        # "corners" (paper: linear) | "centre_size" (choice 7)

    def __post_init__(self):
        for name in ("sensor_grid", "filters", "grid_conv_channels", "dense_units"):
            object.__setattr__(self, name, tuple(getattr(self, name)))  # JSON gives lists

    @property
    def pooled_time(self) -> int:
        """Time length after the input pool and the per-block pools (31 for the defaults)."""
        length = self.n_time // self.input_pool
        for _ in self.filters:
            length //= self.block_pool
        return length

    def validate(self) -> None:
        """Raise ValueError on a configuration the network cannot be built from."""
        if self.box_output not in BOX_OUTPUTS:
            raise ValueError(f"box_output must be one of {BOX_OUTPUTS}, got {self.box_output!r}")
        if self.attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}, got {self.attention!r}")
        if any(f % 4 for f in self.filters):
            raise ValueError(f"Inception filters must be multiples of 4, got {self.filters}")
        if self.pooled_time < 1:
            raise ValueError(f"n_time={self.n_time} is too short for {len(self.filters)} blocks")
        if min(self.sensor_grid) < 6:
            raise ValueError("the 3x3 and 4x4 valid convs need a sensor grid of at least 6x6")


def conv_bn_relu(c_in: int, c_out: int, kernel: int | tuple[int, int], padding="same") -> nn.Sequential:
    """Conv2d (no bias) -> BatchNorm2d -> ReLU."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, padding=padding, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class InceptionBlock(nn.Module):
    """Four parallel branches concatenated: 1x1 (f/4), 3x3 (f/2), 5x5 (f/4), pool 3x3 + 1x1 (f/4)."""

    def __init__(self, c_in: int, filters: int):
        super().__init__()
        quarter = filters // 4
        self.branch1 = conv_bn_relu(c_in, quarter, 1)
        self.branch3 = conv_bn_relu(c_in, filters // 2, 3)
        self.branch5 = conv_bn_relu(c_in, quarter, 5)
        self.branch_pool = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1),
                                         conv_bn_relu(c_in, quarter, 1))
        self.out_channels = 3 * quarter + filters // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.branch1(x), self.branch3(x), self.branch5(x), self.branch_pool(x)]
        return torch.cat(branches, dim=1)  # (B, 5f/4, T, S)


class SqueezeExcite(nn.Module):
    """Residual squeeze-and-excitation: `x + x * sigmoid(W2 relu(W1 mean(x)))`."""

    def __init__(self, channels: int, reduction: int):
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.excite = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True),
                                    nn.Linear(hidden, channels), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.excite(x.mean(dim=(2, 3)))  # (B, C)
        return x + x * scale[:, :, None, None]


class GlobalContext(nn.Module):
    """Residual global-context attention: softmax-weighted sum over positions, transformed, added."""

    def __init__(self, channels: int, reduction: int):
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.score = nn.Conv2d(channels, 1, 1)
        self.transform = nn.Sequential(nn.Linear(channels, hidden), nn.LayerNorm(hidden),
                                       nn.ReLU(inplace=True), nn.Linear(hidden, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.score(x).flatten(2).softmax(dim=-1)  # (B, 1, T*S)
        context = (x.flatten(2) * weights).sum(dim=-1)  # (B, C)
        return x + self.transform(context)[:, :, None, None]


def make_attention(kind: str, channels: int, reduction: int) -> nn.Module:
    """The residual attention layer named `kind` (see ATTENTIONS)."""
    if kind == "se":
        return SqueezeExcite(channels, reduction)
    if kind == "gc":
        return GlobalContext(channels, reduction)
    return nn.Identity()


class MicroCrackPointNet(nn.Module):
    """Wavefield `(B, n_time, 81, 2)` [normalised] -> box `(B, 4)` (xmin, ymin, xmax, ymax)."""

    def __init__(self, config: MicroCrackPointNetConfig | None = None, **overrides):
        super().__init__()
        config = config or MicroCrackPointNetConfig(**overrides)
        config.validate()
        self.config = config
        self.input_pool = nn.MaxPool2d((config.input_pool, 1))
        blocks, channels = [], config.n_components
        for filters in config.filters:
            inception = InceptionBlock(channels, filters)
            channels = inception.out_channels
            blocks.append(nn.Sequential(
                inception,
                nn.MaxPool2d((config.block_pool, 1)),
                make_attention(config.attention, channels, config.attention_reduction),
            ))
        self.blocks = nn.Sequential(*blocks)
        c_time = config.time_conv_channels
        c_grid3, c_grid4 = config.grid_conv_channels
        self.time_conv = conv_bn_relu(channels, c_time, (config.pooled_time, 1), padding="valid")
        self.grid_convs = nn.Sequential(conv_bn_relu(c_time, c_grid3, 3, padding="valid"),
                                        conv_bn_relu(c_grid3, c_grid4, 4, padding="valid"))
        rows, cols = config.sensor_grid
        flat = c_grid4 * (rows - 5) * (cols - 5)
        dense: list[nn.Module] = []
        for units in config.dense_units:
            dense += [nn.Linear(flat, units), nn.ReLU(inplace=True), nn.Dropout(config.dropout)]
            flat = units
        dense.append(nn.Linear(flat, config.n_outputs))
        self.head = nn.Sequential(*dense)

    def forward(self, wavefield: torch.Tensor) -> torch.Tensor:
        x = wavefield.permute(0, 3, 1, 2)  # (B, T, S, C) -> (B, C, T, S)
        x = self.input_pool(x)  # (B, 2, T/4, S)
        x = self.blocks(x)  # (B, 160, 31, 81)
        x = self.time_conv(x)  # (B, 128, 1, 81)
        rows, cols = self.config.sensor_grid
        x = x.reshape(x.shape[0], x.shape[1], rows, cols)  # (B, 128, 9, 9): sensor k = iy*9 + ix
        x = self.grid_convs(x)  # (B, 64, 4, 4)
        out = self.head(x.flatten(1))  # (B, 1024) -> (B, 4)
        if self.config.box_output == "corners":
            return out
        centre, size = torch.sigmoid(out[:, :2]), torch.sigmoid(out[:, 2:])
        return torch.cat([centre - size / 2, centre + size / 2], dim=1)  # (B, 4) corners

    def hyperparameters(self) -> dict:
        """The config as a JSON-able dict (stored in checkpoints)."""
        return asdict(self.config)
