"""Registry of models: architecture name -> class.

Every class takes keyword hyperparameters (`--arch-kwargs` JSON), maps a wavefield batch
`(B, n_time, 81, 2)` to its prediction, and reports its constructor arguments through
`hyperparameters()` so a checkpoint can rebuild it. The class attribute `target` says what
it predicts: `"box"` (the default when absent) -> boxes `(B, 4)`; `"mask"` -> crack-mask
logits `(B, 16, 16)`, trained on `crack_mask` and scored through the mask's box
(`model.keypoints.masks_to_boxes`) and by pixel IoU; `"cracks"` -> raw maps decoded into
several cracks per sample (`model.nets.crackset`), trained on the per-crack labels and scored
by `model.detection`. A model with a `fit_boxes(boxes)`
method and no trainable parameters is fitted from the training labels instead of by
gradient descent.
"""

from __future__ import annotations

from torch import nn

from model.nets.crackset import CrackSet
from model.nets.densenet1d import DenseNet1DSeg
from model.nets.meanbox import MeanBox
from model.nets.microcrackpointnet import MicroCrackPointNet

ARCHITECTURES: dict[str, type[nn.Module]] = {
    "microcrackpointnet": MicroCrackPointNet,
    "meanbox": MeanBox,
    "densenet1d": DenseNet1DSeg,
    "crackset": CrackSet,
}


def model_target(model: nn.Module | type) -> str:
    """What a model (instance or class) predicts: "box", "mask" or "cracks" (model.data.TARGETS)."""
    return getattr(model, "target", "box")


def build_model(arch: str, **kwargs) -> nn.Module:
    """Instantiate the registered architecture `arch` with hyperparameters `kwargs`."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; registered: {sorted(ARCHITECTURES)}")
    try:
        return ARCHITECTURES[arch](**kwargs)
    except TypeError as err:  # an unknown or misspelt hyperparameter
        raise ValueError(f"bad hyperparameters for {arch!r} ({err}); "
                         f"given {sorted(kwargs)}") from err
