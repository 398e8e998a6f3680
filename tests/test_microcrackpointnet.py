"""MicroCrackPointNet: shapes, parameter count against the paper, sensor-grid orientation,
registry, MeanBox."""

import copy

import numpy as np
import pytest
import torch
import xarray as xr
from torch import nn

from model.nets import ARCHITECTURES, build_model
from model.nets.meanbox import MeanBox
from model.nets.microcrackpointnet import MicroCrackPointNet, MicroCrackPointNetConfig
from model.nets.summary import format_summary, layer_summary, parameter_counts

pytestmark = pytest.mark.usefixtures("contract_single_thread")

PAPER_TOTAL = 1_228_760  # Table 3
# ours (docs/model.md): PyTorch parameters + BatchNorm running mean and variance
TRAINABLE, BN_RUNNING = 1_225_819, 1_240


@pytest.fixture(scope="module")
def paper_net():
    torch.manual_seed(0)
    return MicroCrackPointNet()


def test_full_size_input_maps_to_four_box_coordinates(paper_net):
    paper_net.eval()
    with torch.no_grad():
        out = paper_net(torch.randn(2, 2000, 81, 2))
    assert out.shape == (2, 4)
    assert torch.isfinite(out).all()


def test_parameter_count_is_the_documented_one_within_0_2_percent_of_the_paper(paper_net):
    # by hand: BatchNorm channels are 5f/4 per Inception block (f = 16, 32, 64, 128) and
    # 128 + 128 + 64 in the closing convs, each with a running mean and a running variance
    assert 2 * (5 * (16 + 32 + 64 + 128) // 4 + 128 + 128 + 64) == BN_RUNNING
    weights = sum(p.numel() for p in paper_net.parameters())
    running = sum(m.running_mean.numel() + m.running_var.numel()
                  for m in paper_net.modules() if isinstance(m, nn.BatchNorm2d))
    assert (weights, running, weights + running) == (TRAINABLE, BN_RUNNING, 1_227_059)
    assert parameter_counts(paper_net) == {"trainable": TRAINABLE, "non_trainable": BN_RUNNING,
                                           "total": 1_227_059}
    assert abs(1_227_059 - PAPER_TOTAL) / PAPER_TOTAL < 0.002


def test_sensor_k_is_grid_cell_iy_ix_in_the_shard_and_in_the_network(tmp_path):
    """The shard puts sensor k = iy * 9 + ix at (x_ix, y_iy); the network's reshape after
    the time conv must put feature k at row iy, column ix of its 9x9 grid."""
    from dlem import config as config_mod
    from dlem import dataset
    from test_dlem_dataset import TINY

    shard = tmp_path / "pristine.nc"
    dataset.write_shard(config_mod.validate(copy.deepcopy(TINY)), shard, 0, 1, pristine=True,
                        progress=False)
    with xr.open_dataset(shard) as ds:
        sx, sy = ds["sensor_x"].values, ds["sensor_y"].values
    xs, ys = np.unique(sx), np.unique(sy)                 # 9 columns, 9 rows, ascending
    iy, ix = 2, 6                                         # low y, high x: no symmetry
    (k,) = np.flatnonzero((sx == xs[ix]) & (sy == ys[iy]))
    assert len(xs) == len(ys) == 9 and k == 24

    torch.manual_seed(0)
    net = MicroCrackPointNet(n_time=400, filters=(4, 8, 8, 8), time_conv_channels=8,
                             grid_conv_channels=(8, 8), dense_units=(8,)).eval()
    seen = {}

    def only_sensor_k(module, inputs, out):              # (B, C, 1, 81) -> one-hot at k
        one_hot = torch.zeros_like(out)
        one_hot[:, :, 0, k] = 1.0
        return one_hot

    net.time_conv.register_forward_hook(only_sensor_k)
    net.grid_convs.register_forward_pre_hook(lambda module, args: seen.update(grid=args[0]))
    with torch.no_grad():
        net(torch.randn(1, 400, 81, 2))
    grid = seen["grid"][0].abs().sum(0)                  # (9, 9)
    assert grid.shape == (9, 9)
    assert torch.nonzero(grid).tolist() == [[iy, ix]]


def test_defaults_are_the_papers_architecture():
    config = MicroCrackPointNetConfig()
    assert config.filters == (16, 32, 64, 128)
    assert config.input_pool == 4 and config.pooled_time == 31
    assert config.dense_units[:2] == (128, 64) and config.n_outputs == 4


def test_time_axis_shrinks_as_in_the_paper(paper_net):
    rows = layer_summary(paper_net, (1, 2000, 81, 2))
    pooled = [r["output_shape"] for r in rows if r["type"] == "MaxPool2d" and r["name"].endswith(".1")]
    assert [shape[1] for shape in pooled] == [250, 125, 62, 31]
    assert [shape[0] for shape in pooled] == [20, 40, 80, 160]
    by_name = {r["name"]: r["output_shape"] for r in rows}
    assert by_name["input_pool"] == (2, 500, 81)
    assert by_name["time_conv.0"] == (128, 1, 81)
    assert by_name["grid_convs.1.0"] == (64, 4, 4)


def test_summary_lists_layers_and_totals(paper_net):
    text = format_summary(paper_net, (1, 2000, 81, 2))
    assert "Conv2d" in text and f"{parameter_counts(paper_net)['total']:,}" in text


@pytest.mark.parametrize("attention", ["se", "gc", "none"])
def test_every_attention_type_runs_and_trains(attention):
    torch.manual_seed(0)
    net = MicroCrackPointNet(n_time=400, filters=(4, 8, 8, 8), attention=attention,
                             time_conv_channels=8, grid_conv_channels=(8, 8), dense_units=(8,))
    out = net(torch.randn(3, 400, 81, 2))
    out.sum().backward()
    assert out.shape == (3, 4)
    assert all(p.grad is not None for p in net.parameters())


def test_bad_config_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="attention"):
        MicroCrackPointNet(attention="transformer")
    with pytest.raises(ValueError, match="multiples of 4"):
        MicroCrackPointNet(filters=(6, 8, 8, 8))


def test_registry_builds_from_json_like_kwargs():
    net = build_model("microcrackpointnet", filters=[4, 8, 8, 8], n_time=400)
    assert net.config.filters == (4, 8, 8, 8)
    rebuilt = build_model("microcrackpointnet", **net.hyperparameters())
    assert rebuilt.config == net.config
    assert set(ARCHITECTURES) >= {"microcrackpointnet", "meanbox"}
    with pytest.raises(ValueError, match="registered"):
        build_model("yolo")


def test_meanbox_predicts_the_training_mean_for_any_input():
    model = MeanBox()
    model.fit_boxes(torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]]))
    out = model(torch.randn(3, 2000, 81, 2))
    torch.testing.assert_close(out, torch.tensor([[0.25, 0.25, 0.75, 0.75]] * 3))
    assert parameter_counts(model)["trainable"] == 0
