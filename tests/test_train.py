"""Data pipeline, training (overfit, bit-exact resume) and the CLI end to end, on contract shards."""

import json

import numpy as np
import pytest
import torch
import xarray as xr

from model.checkpoint import load_checkpoint
from model.cli import main
from model.data import (ShardIndex, WavefieldDataset, load_labels, make_split, mean_wavefield,
                        normalisation_stats, read_reference, write_split)
from model.train import TrainConfig, train

pytestmark = pytest.mark.usefixtures("contract_single_thread")

TINY = {"filters": [4, 8, 8, 8], "time_conv_channels": 8, "grid_conv_channels": [8, 8],
        "dense_units": [32], "dropout": 0.0}


def _custom_split(contract_data, path, train_ids, val_ids):
    split = make_split(load_labels(contract_data["labels"]), seed=0)
    rest = set(split["train"] + split["val"] + split["test"]) - set(train_ids) - set(val_ids)
    split.update(train=train_ids, val=val_ids, test=sorted(rest))
    write_split(split, path)
    return path


def _train_args(contract_data, split):
    return ([str(p) for p in contract_data["shards"]], [str(p) for p in contract_data["labels"]],
            str(split))


# --- data -------------------------------------------------------------------------------------

def test_split_is_deterministic_and_covers_every_sample_once(contract_data):
    labels = load_labels(contract_data["labels"])
    a, b = make_split(labels, (0.5, 0.25, 0.25), seed=3), make_split(labels, (0.5, 0.25, 0.25), seed=3)
    assert a == b
    ids = a["train"] + a["val"] + a["test"]
    assert sorted(ids) == list(range(20)) and len(a["train"]) == 10 and len(a["val"]) == 5
    assert a["no_crack"] == [0, 10]
    assert make_split(labels, (0.5, 0.25, 0.25), seed=4)["train"] != a["train"]


def test_split_rejects_fractions_not_summing_to_one(contract_data):
    with pytest.raises(ValueError, match="sum"):
        make_split(load_labels(contract_data["labels"]), (0.5, 0.5, 0.5))


def test_normalisation_stats_match_numpy_on_the_training_samples(contract_data):
    index = ShardIndex.build(contract_data["shards"])
    reference = read_reference(contract_data["pristine"], index.wave_shape)
    ids = np.array([1, 4, 12, 17])
    fields = []
    for path in contract_data["shards"]:
        with xr.open_dataset(path) as ds:
            fields.append(ds["wavefield"].values)
    field = np.concatenate(fields)[ids].astype(np.float64) - reference  # shards hold 0..19
    stats = normalisation_stats(index, ids, reference, chunk_samples=3)
    np.testing.assert_allclose(stats["mean"], field.mean(axis=(0, 1, 2)), rtol=1e-9, atol=1e-20)
    np.testing.assert_allclose(stats["std"], field.std(axis=(0, 1, 2)), rtol=1e-9)


def test_reading_training_statistics_raises_no_chunk_warning(tmp_path, recwarn):
    """dlem stores every per-sample variable but `wavefield` in one chunk per shard; reading
    the statistics in chunks of fewer samples must not split those (xarray's "specified
    chunks separate the stored chunks" warning in every training log)."""
    from conftest import write_contract_shard

    ds = write_contract_shard(tmp_path / "plain.nc", list(range(8)), np.random.default_rng(0))
    encoding = {name: {"zlib": True} for name in ds.data_vars}
    encoding["wavefield"]["chunksizes"] = (1, *ds["wavefield"].shape[1:])
    ds.to_netcdf(tmp_path / "shard.nc", engine="netcdf4", encoding=encoding)
    index = ShardIndex.build([tmp_path / "shard.nc"])
    ids = np.arange(8)
    stats = normalisation_stats(index, ids, None, "sensor", chunk_samples=3)
    mean = mean_wavefield(index, ids, chunk_samples=3)
    field = ds["wavefield"].values.astype(np.float64)
    np.testing.assert_allclose(stats["mean"], field.mean(axis=(0, 1)), rtol=1e-9, atol=1e-20)
    np.testing.assert_allclose(mean, field.mean(axis=0), rtol=1e-6, atol=1e-20)
    assert not [str(w.message) for w in recwarn if "chunks" in str(w.message)]


def test_dataset_yields_normalised_float32_samples(contract_data):
    index = ShardIndex.build(contract_data["shards"])
    labels = load_labels(contract_data["labels"])
    stats = {"mean": [0.0, 0.0], "std": [1e-9, 2e-9]}
    dataset = WavefieldDataset(index, np.array([3, 15]), labels, stats)
    x, y = dataset[1]
    dataset.close()
    assert x.shape == (2000, 81, 2) and x.dtype == torch.float32 and y.dtype == torch.float32
    with xr.open_dataset(contract_data["shards"][1]) as shard:
        raw = shard["wavefield"].sel(sample=15).values
        np.testing.assert_allclose(x.numpy(), raw / np.array([1e-9, 2e-9], np.float32), rtol=1e-5)
    np.testing.assert_allclose(y.numpy(), labels.box[15], rtol=1e-6)


# --- training ---------------------------------------------------------------------------------

def test_tiny_network_overfits_eight_samples(contract_data, tmp_path):
    split = _custom_split(contract_data, tmp_path / "split.json",
                          [1, 2, 3, 4, 5, 6, 7, 8], [11, 12])
    config = TrainConfig(arch_kwargs=TINY, epochs=20, batch_size=8, lr=3e-3, weight_decay=0.0,
                         patience=100, device="cpu", loss="mse", reference="none",
                         scaling="component", warmup_epochs=0.0)  # the loop, not the recipe
    state = train(*_train_args(contract_data, split), tmp_path / "run", config, progress=False)
    losses = [row["train_loss"] for row in state["history"]]
    print(f"train loss {losses[0]:.4g} -> {losses[-1]:.4g}")
    assert losses[0] / losses[-1] >= 10, losses


def test_resume_after_an_interruption_gives_the_same_weights(contract_data, tmp_path):
    split = _custom_split(contract_data, tmp_path / "split.json", [1, 2, 3, 4, 5, 6], [11, 12])
    config = TrainConfig(arch_kwargs={**TINY, "dropout": 0.3}, epochs=4, batch_size=4,
                         patience=100, device="cpu", seed=5)
    args = _train_args(contract_data, split)
    straight = train(*args, tmp_path / "straight", config, progress=False)
    first = train(*args, tmp_path / "resumed", TrainConfig(**vars(config)), stop_after=2,
                  progress=False)
    assert first["epoch"] == 2 and not first["finished"]
    torch.manual_seed(999)  # a different global RNG state must not matter after resuming
    resumed = train(*args, tmp_path / "resumed", TrainConfig(**vars(config)), resume=True,
                    progress=False)
    assert resumed["epoch"] == 4 and resumed["finished"]
    for key in ("model", "best_model"):
        for name, tensor in straight[key].items():
            assert torch.equal(tensor, resumed[key][name]), (key, name)
    assert [r["train_loss"] for r in straight["history"]] == [r["train_loss"] for r in resumed["history"]]


def test_state_file_survives_a_killed_job_and_resumes_only_for_the_same_options(contract_data,
                                                                                 tmp_path):
    """A workflow keeps the per-epoch state outside its declared outputs: an interrupted run
    continues from it bit for bit; other options start afresh; success removes it."""
    split = _custom_split(contract_data, tmp_path / "split.json", [1, 2, 3, 4, 5, 6], [11, 12])
    config = TrainConfig(arch_kwargs=TINY, epochs=3, batch_size=4, patience=100, device="cpu")
    args = _train_args(contract_data, split)
    straight = train(*args, tmp_path / "straight", config, progress=False)
    out, state = tmp_path / "job", tmp_path / "job" / "training-state.pt"
    first = train(*args, out, TrainConfig(**vars(config)), stop_after=1, progress=False,
                  state_path=state)
    assert first["epoch"] == 1 and state.exists() and not (out / "checkpoint.pt").exists()
    resumed = train(*args, out, TrainConfig(**vars(config)), progress=False, state_path=state)
    assert resumed["epoch"] == 3 and not state.exists()
    final = load_checkpoint(out / "checkpoint.pt")
    for name, tensor in straight["model"].items():
        assert torch.equal(tensor, final["model"][name]), name
    train(*args, out, TrainConfig(**vars(config)), stop_after=1, progress=False, state_path=state)
    other = train(*args, out, TrainConfig(**{**vars(config), "lr": 0.5 * config.lr}),
                  stop_after=2, progress=False, state_path=state)
    assert [r["epoch"] for r in other["history"]] == [1, 2]     # started afresh
    mean = train(*args, tmp_path / "mean", TrainConfig(arch="meanbox"), progress=False,
                 state_path=tmp_path / "mean" / "training-state.pt")
    assert mean["finished"] and (tmp_path / "mean" / "checkpoint.pt").exists()


# --- command line -----------------------------------------------------------------------------

def test_cli_trains_and_evaluates_end_to_end(contract_data, tmp_path):
    data = [str(p) for p in contract_data["shards"]]
    labels = [str(p) for p in contract_data["labels"]]
    split = str(contract_data["split"])
    for arch, extra in [("meanbox", []),
                        ("microcrackpointnet",
                         ["--arch-kwargs", json.dumps(TINY), "--epochs", "2", "--reference",
                          "subtract", "--pristine", str(contract_data["pristine"])])]:
        model_dir, eval_dir = tmp_path / "models" / arch, tmp_path / "eval" / arch
        assert main(["train", "--data", *data, "--labels", *labels, "--split", split,
                     "--arch", arch, "--out-dir", str(model_dir), "--no-progress", *extra]) == 0
        assert {p.name for p in model_dir.iterdir()} == {"checkpoint.pt", "history.csv", "summary.txt"}
        assert main(["evaluate", "--data", *data, "--labels", *labels, "--split", split,
                     "--checkpoint", str(model_dir / "checkpoint.pt"),
                     "--out-dir", str(eval_dir), "--size-thresholds", "0", "0.005"]) == 0
        result = json.loads((eval_dir / "metrics.json").read_text())
        assert result["count"] == 4 and 0 <= result["IoU"] <= 1
        assert (eval_dir / "table1.csv").read_text().count("\n") == 3
        with xr.open_dataset(eval_dir / "predictions.nc") as preds:
            assert preds["pred_box"].shape == (4, 4)
        figures = {p.name for p in (eval_dir / "figures").iterdir()}
        assert {"boxes_best.png", "boxes_median.png", "boxes_worst.png", "loss_curves.png",
                "iou_vs_size.png"} <= figures
    state = load_checkpoint(tmp_path / "models" / "microcrackpointnet" / "checkpoint.pt")
    assert state["reference"].shape == (2000, 81, 2) and state["config"]["reference"] == "subtract"


def test_cli_names_a_split_with_unknown_samples(contract_data, tmp_path, capsys):
    split = json.loads(contract_data["split"].read_text())
    split["test"].append(9999)
    bad = tmp_path / "split.json"
    bad.write_text(json.dumps(split))
    code = main(["evaluate", "--data", *map(str, contract_data["shards"]),
                 "--labels", *map(str, contract_data["labels"]), "--split", str(bad),
                 "--checkpoint", str(tmp_path / "none.pt"), "--out-dir", str(tmp_path / "e")])
    assert code == 2
    assert "none.pt" in capsys.readouterr().err  # the checkpoint is checked first
    code = main(["train", "--data", *map(str, contract_data["shards"]),
                 "--labels", *map(str, contract_data["labels"]), "--split", str(bad),
                 "--arch", "meanbox", "--out-dir", str(tmp_path / "m")])
    assert code == 2
    err = capsys.readouterr().err
    assert "unknown samples" in err and "9999" in err


def test_cli_names_a_missing_shard(contract_data, tmp_path, capsys):
    code = main(["train", "--data", str(tmp_path / "missing.nc"),
                 "--labels", *map(str, contract_data["labels"]),
                 "--split", str(contract_data["split"]), "--arch", "meanbox",
                 "--out-dir", str(tmp_path / "m")])
    assert code == 2 and "missing.nc" in capsys.readouterr().err
