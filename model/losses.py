"""Training losses: on `(B, 4)` boxes `(xmin, ymin, xmax, ymax)` in plate fractions (paper
§3.3), or on `(B, H, W)` crack-mask logits for segmentation models.

Box losses: `mse`, `mae` and `huber` are the paper's three regression losses (mean over batch
and coordinates; Huber is x^2/2 inside `delta`, `delta(|x| - delta/2)` outside). `giou` is the
generalised-IoU loss `1 - GIoU` (Rezatofighi et al., CVPR 2019) for later box models; it
treats an inverted predicted box as zero-area, like `model.metrics`. `l1_giou` is their sum
`MAE + (1 - GIoU)`, DETR's box loss with unit weights: L1 pulls every coordinate even when
the boxes do not overlap, GIoU scores the overlap the metrics reward.

Mask loss: `bce_dice` = `bce_weight * BCE(logits, mask) + dice_weight * (1 - soft Dice)`,
the usual pair for thin, rare foreground (a crack covers a few of 256 cells): BCE gives
every cell a gradient, Dice is insensitive to the cell imbalance. Soft Dice per sample,
`(2 sum(p m) + 1) / (sum p + sum m + 1)` with `p = sigmoid(logits)`, averaged over the batch.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F

BOX_LOSSES = ("mse", "mae", "huber", "giou", "l1_giou")
MASK_LOSSES = ("bce_dice",)
LOSSES = BOX_LOSSES + MASK_LOSSES
# per model target (model.data.TARGETS); box: the paper's MSE, which also scored best in the
# ablation of docs/model.md ("Why MicroCrackPointNet did not learn") once the dropout was fixed
DEFAULT_LOSS = {"box": "mse", "mask": "bce_dice"}
_EPS = 1e-9


def _area(boxes: torch.Tensor) -> torch.Tensor:
    return (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)


def giou_loss(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Mean `1 - GIoU` of row-paired `(B, 4)` boxes; in [0, 2]."""
    inter_lo = torch.maximum(pred[:, :2], true[:, :2])
    inter_hi = torch.minimum(pred[:, 2:], true[:, 2:])
    inter = _area(torch.cat([inter_lo, inter_hi], dim=1))
    union = _area(pred) + _area(true) - inter
    iou = inter / (union + _EPS)
    hull_lo = torch.minimum(pred[:, :2], true[:, :2])
    hull_hi = torch.maximum(pred[:, 2:], true[:, 2:])
    hull = _area(torch.cat([hull_lo, hull_hi], dim=1))
    giou = iou - (hull - union) / (hull + _EPS)
    return (1.0 - giou).mean()


def l1_giou_loss(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """`MAE + (1 - GIoU)` of row-paired `(B, 4)` boxes."""
    return F.l1_loss(pred, true) + giou_loss(pred, true)


def bce_dice_loss(logits: torch.Tensor, mask: torch.Tensor, bce_weight: float = 1.0,
                  dice_weight: float = 1.0) -> torch.Tensor:
    """`bce_weight * BCE + dice_weight * (1 - soft Dice)` of `(B, H, W)` logits vs 0/1 masks."""
    mask = mask.to(logits.dtype)
    bce = F.binary_cross_entropy_with_logits(logits, mask)
    prob = torch.sigmoid(logits).flatten(1)
    flat = mask.flatten(1)
    dice = (2 * (prob * flat).sum(1) + 1.0) / (prob.sum(1) + flat.sum(1) + 1.0)
    return bce_weight * bce + dice_weight * (1.0 - dice.mean())


def make_loss(name: str, huber_delta: float = 1.0, bce_weight: float = 1.0,
              dice_weight: float = 1.0) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The loss function `(pred, true) -> scalar` called `name` (one of LOSSES)."""
    if name == "mse":
        return F.mse_loss
    if name == "mae":
        return F.l1_loss
    if name == "huber":
        if huber_delta <= 0:
            raise ValueError(f"huber_delta must be > 0, got {huber_delta}")
        return partial(F.huber_loss, delta=huber_delta)
    if name == "giou":
        return giou_loss
    if name == "l1_giou":
        return l1_giou_loss
    if name == "bce_dice":
        if bce_weight < 0 or dice_weight < 0 or bce_weight + dice_weight == 0:
            raise ValueError(f"bce_weight and dice_weight must be >= 0 and not both 0, got "
                             f"{bce_weight}, {dice_weight}")
        return partial(bce_dice_loss, bce_weight=bce_weight, dice_weight=dice_weight)
    raise ValueError(f"unknown loss {name!r}; choose one of {LOSSES}")
