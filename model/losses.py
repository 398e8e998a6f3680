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

Crack-set loss: `crackset` (the only loss of `target = "cracks"` models, model/nets/crackset.py)
on raw maps `(B, 17, H, W)` against the per-crack targets `(B, C, 8)`, `crackset_loss`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F

from model.nets.crackset import dense_geometry

BOX_LOSSES = ("mse", "mae", "huber", "giou", "l1_giou")
MASK_LOSSES = ("bce_dice",)
CRACK_LOSSES = ("crackset",)
LOSSES = BOX_LOSSES + MASK_LOSSES + CRACK_LOSSES
# per model target (model.data.TARGETS); box: the paper's MSE, which also scored best in the
# ablation of docs/model.md ("Why MicroCrackPointNet did not learn") once the dropout was fixed
DEFAULT_LOSS = {"box": "mse", "mask": "bce_dice", "cracks": "crackset"}
_EPS = 1e-9
HEATMAP_SIGMA = 1.0           # crackset: Gaussian splat of each centre [cells]
FOCAL_ALPHA, FOCAL_BETA = 2.0, 4.0   # CenterNet's focal-loss exponents


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


def centre_heatmap(cracks: torch.Tensor, height: int, width: int,
                   sigma: float = HEATMAP_SIGMA) -> tuple[torch.Tensor, torch.Tensor]:
    """The centre heatmap `(B, H, W)` in [0, 1] of per-crack targets `(B, C, 8)` (box
    `xmin, ymin, xmax, ymax`, ends `x1, y1, x2, y2`, plate fractions, NaN rows: no crack) and
    each crack's centre cell `(B, C, 2)` long (row, column; -1 for a NaN row). A crack puts
    `exp(-d^2 / (2 sigma^2))` around its centre cell (`d` in cells), 1 on that cell;
    overlapping cracks take the maximum; an uncracked sample's heatmap is all zero."""
    valid = torch.isfinite(cracks).all(dim=-1)                                # (B, C)
    box = torch.nan_to_num(cracks[..., :4])
    cx = (box[..., 0] + box[..., 2]) / 2 * width
    cy = (box[..., 1] + box[..., 3]) / 2 * height
    col = cx.floor().long().clamp(0, width - 1)
    row = cy.floor().long().clamp(0, height - 1)
    rows = torch.arange(height, device=cracks.device).view(1, 1, height, 1)
    cols = torch.arange(width, device=cracks.device).view(1, 1, 1, width)
    d2 = (rows - row[..., None, None]) ** 2 + (cols - col[..., None, None]) ** 2  # (B, C, H, W)
    splat = torch.exp(-d2.to(cracks.dtype) / (2 * sigma**2)) * valid[..., None, None]
    heat = splat.amax(dim=1) if cracks.shape[1] else cracks.new_zeros(len(cracks), height, width)
    cell = torch.where(valid[..., None], torch.stack([row, col], dim=-1), -1)
    return heat, cell


def focal_heatmap_loss(logits: torch.Tensor, heat: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss of centre logits `(B, H, W)` against a splatted
    heatmap `(B, H, W)` (1 at centres): summed over cells, divided by the number of centres
    (at least 1, so a batch of uncracked plates only learns that nothing is there)."""
    log_p, log_not_p = F.logsigmoid(logits), F.logsigmoid(-logits)
    p = torch.sigmoid(logits)
    centre = heat >= 1.0
    pos = -((1 - p) ** FOCAL_ALPHA) * log_p
    neg = -((1 - heat) ** FOCAL_BETA) * p**FOCAL_ALPHA * log_not_p
    return torch.where(centre, pos, neg).sum() / centre.sum().clamp(min=1)


def gaussian_nll(true: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Elementwise Gaussian negative log-likelihood without its constant,
    `(logvar + (true - mean)^2 / exp(logvar)) / 2`, with the mean detached: the variance
    learns the mean's error, the mean learns from its own loss (Seitzer et al. 2022)."""
    return 0.5 * (logvar + (true - mean.detach()) ** 2 * torch.exp(-logvar))


def crackset_loss(raw: torch.Tensor, cracks: torch.Tensor) -> torch.Tensor:
    """The crack-set loss of raw maps `(B, 17, H, W)` (model/nets/crackset.py) against the
    per-crack targets `(B, C, 8)` (`centre_heatmap`): the focal heatmap loss, plus, at each
    true crack's centre cell, mean over cracks of (in cell units, summed over coordinates)
    L1 + Gaussian NLL of its box corners and of its two end points. The end points take the
    smaller loss of the two assignments (ends in given order, or swapped), so the loss is the
    same whichever end the labels list first. Cracks whose centres share a cell are all
    scored against that cell's one hypothesis."""
    _, _, height, width = raw.shape
    cracks = cracks.to(raw.dtype)
    heat, cell = centre_heatmap(cracks, height, width)
    geometry = dense_geometry(raw)
    loss = focal_heatmap_loss(geometry["heat"], heat)
    b, c = torch.nonzero(cell[..., 0] >= 0, as_tuple=True)
    if len(b) == 0:
        return loss
    i, j = cell[b, c, 0], cell[b, c, 1]
    scale = raw.new_tensor([width, height, width, height])
    true_box, true_ends = cracks[b, c, :4] * scale, cracks[b, c, 4:] * scale  # (M, 4) cells
    box, box_lv = geometry["box"][b, i, j], geometry["box_logvar"][b, i, j]
    ends, end_lv = geometry["ends"][b, i, j], geometry["end_logvar"][b, i, j]
    box_loss = ((box - true_box).abs() + gaussian_nll(true_box, box, box_lv)).sum(-1)

    def end_loss(target: torch.Tensor) -> torch.Tensor:
        return ((ends - target).abs() + gaussian_nll(target, ends, end_lv)).sum(-1)

    swapped = true_ends[:, [2, 3, 0, 1]]
    ends_loss = torch.minimum(end_loss(true_ends), end_loss(swapped))
    return loss + (box_loss + ends_loss).mean()


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
    if name == "crackset":
        return crackset_loss
    raise ValueError(f"unknown loss {name!r}; choose one of {LOSSES}")
