"""MeanBox: the trivial baseline that predicts the training set's mean box for every sample.

It has no trainable parameters; `fit_boxes` sets the box from the training labels, and it
is checkpointed and scored by the same code as the networks.
"""

from __future__ import annotations

import torch
from torch import nn


class MeanBox(nn.Module):
    """Any input `(B, ...)` -> the stored mean box `(B, 4)` (plate fractions)."""

    def __init__(self, n_outputs: int = 4):
        super().__init__()
        self.register_buffer("box", torch.full((n_outputs,), 0.5))

    def fit_boxes(self, boxes: torch.Tensor) -> None:
        """Set the prediction to the mean of the training boxes `(N, 4)`."""
        self.box.copy_(boxes.to(self.box).mean(dim=0))

    def forward(self, wavefield: torch.Tensor) -> torch.Tensor:
        return self.box.expand(wavefield.shape[0], -1)

    def hyperparameters(self) -> dict:
        """Constructor arguments (stored in checkpoints)."""
        return {"n_outputs": self.box.numel()}
