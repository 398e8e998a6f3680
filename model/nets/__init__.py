"""Registry of box models: architecture name -> class.

Every class takes keyword hyperparameters (`--arch-kwargs` JSON), maps a wavefield batch
`(B, n_time, 81, 2)` to boxes `(B, 4)`, and reports its constructor arguments through
`hyperparameters()` so a checkpoint can rebuild it. A model with a `fit_boxes(boxes)` method
and no trainable parameters is fitted from the training labels instead of by gradient descent.
"""

from __future__ import annotations

from torch import nn

from model.nets.meanbox import MeanBox
from model.nets.microcrackpointnet import MicroCrackPointNet

ARCHITECTURES: dict[str, type[nn.Module]] = {
    "microcrackpointnet": MicroCrackPointNet,
    "meanbox": MeanBox,
}


def build_model(arch: str, **kwargs) -> nn.Module:
    """Instantiate the registered architecture `arch` with hyperparameters `kwargs`."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; registered: {sorted(ARCHITECTURES)}")
    try:
        return ARCHITECTURES[arch](**kwargs)
    except TypeError as err:  # an unknown or misspelt hyperparameter
        raise ValueError(f"bad hyperparameters for {arch!r} ({err}); "
                         f"given {sorted(kwargs)}") from err
