"""DenseNet1DSeg (the 1D-DenseNet segmentation baseline): shapes, loss, registry, and training
on crack masks through the shared loop."""

import numpy as np
import pytest
import torch

from model.losses import bce_dice_loss
from model.nets import build_model, model_target
from model.nets.densenet1d import DenseNet1DConfig, DenseNet1DSeg
from model.train import TrainConfig, train

pytestmark = pytest.mark.usefixtures("contract_single_thread")

TINY = {"stem_channels": 4, "block_layers": [2, 2, 2], "growth": 4, "sensor_features": 32,
        "decoder_channels": [32, 32]}


def test_maps_a_wavefield_batch_to_mask_logits():
    net = build_model("densenet1d", **TINY).eval()
    with torch.no_grad():
        out = net(torch.randn(3, 2000, 81, 2))
    assert out.shape == (3, 16, 16) and out.dtype == torch.float32
    assert model_target(net) == "mask" and model_target(build_model("meanbox")) == "box"


def test_default_size_is_cpu_trainable_and_time_is_pooled_to_31():
    assert DenseNet1DConfig().pooled_time == 31
    params = sum(p.numel() for p in DenseNet1DSeg().parameters())
    assert 1e5 <= params <= 1e6, params


def test_rebuilds_from_its_hyperparameters():
    net = build_model("densenet1d", **TINY)
    assert DenseNet1DSeg(**net.hyperparameters()).config == net.config


def test_bad_config_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="odd"):
        DenseNet1DSeg(kernel=4)
    with pytest.raises(ValueError, match="too short"):
        DenseNet1DSeg(n_time=16)


def test_bce_dice_is_small_for_a_confident_right_mask_and_weighted():
    mask = torch.zeros(2, 16, 16)
    mask[:, 5:7, 3:9] = 1
    right, wrong = 20 * (2 * mask - 1), -20 * (2 * mask - 1)
    assert bce_dice_loss(right, mask) < 1e-3 < 1.0 < bce_dice_loss(wrong, mask)
    only_bce = bce_dice_loss(wrong, mask, bce_weight=1.0, dice_weight=0.0)
    assert torch.isclose(only_bce, torch.nn.functional.binary_cross_entropy_with_logits(wrong, mask))


def test_a_box_loss_is_refused_for_a_mask_model():
    with pytest.raises(ValueError, match="does not fit a mask model"):
        TrainConfig(arch="densenet1d", loss="mse").validate("mask")


def test_tiny_network_overfits_eight_masks(contract_data, tmp_path):
    from model.data import load_labels, make_split, write_split

    split = make_split(load_labels(contract_data["labels"]), seed=0)
    rest = sorted(set(split["train"] + split["val"] + split["test"]) - set(range(1, 9)) - {11, 12})
    split.update(train=list(range(1, 9)), val=[11, 12], test=rest)
    write_split(split, tmp_path / "split.json")
    config = TrainConfig(arch="densenet1d", arch_kwargs=TINY, epochs=20, batch_size=2, lr=1e-2,
                         weight_decay=0.0, scheduler="plateau", patience=100, device="cpu",
                         warmup_epochs=0.0, reference="none", scaling="component")
    state = train([str(p) for p in contract_data["shards"]],
                  [str(p) for p in contract_data["labels"]], str(tmp_path / "split.json"),
                  tmp_path / "run", config, progress=False)
    losses = [row["train_loss"] for row in state["history"]]
    print(f"train loss {losses[0]:.4g} -> {losses[-1]:.4g}")
    assert state["target"] == "mask" and state["config"]["loss"] == "auto"
    assert losses[0] / losses[-1] >= 10, losses
    assert np.isfinite([row["val_iou"] for row in state["history"]]).all()
