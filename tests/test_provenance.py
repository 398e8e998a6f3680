"""Provenance: shards carry the hash of their physical set-up, labels their shard's, checkpoints
the one they were trained on; files that do not belong together are refused, naming the odd
one out (docs/data-format.md, "Provenance")."""

from __future__ import annotations

import copy
import hashlib
import json

import netCDF4
import numpy as np
import pytest
import xarray as xr

from conftest import CONTRACT_SETUP, write_contract_shard
from model.data import ShardIndex, load_labels, read_reference
from model.io import DataError
from model.keypoints import write_labels

OTHER_SETUP = copy.deepcopy(CONTRACT_SETUP)
OTHER_SETUP["plate"]["youngs_modulus"] = 2.0e11          # steel instead of aluminium


@pytest.fixture(scope="module")
def other(tmp_path_factory):
    """A shard (samples 20-29) and its labels, simulated with another plate."""
    root = tmp_path_factory.mktemp("other")
    shard = root / "shard-other.nc"
    write_contract_shard(shard, list(range(20, 30)), np.random.default_rng(5), setup=OTHER_SETUP)
    return {"shard": shard, "labels": write_labels(shard, root / "labels-other.nc")}


# ------------------------------------------------------------------ the solver writes it

def test_set_up_hash_ignores_the_cracks_and_the_seed_but_not_the_plate():
    from dlem import config as config_mod
    from dlem import dataset
    from test_dlem_dataset import TINY

    cfg = config_mod.validate(copy.deepcopy(TINY))
    other_cracks = copy.deepcopy(cfg)
    other_cracks["seed"] = 99
    other_cracks["cracks"]["count"] = {"min": 2, "max": 2}
    other_plate = copy.deepcopy(cfg)
    other_plate["plate"]["thickness"] = 2e-3
    assert dataset.setup_hash(other_cracks) == dataset.setup_hash(cfg)
    assert dataset.setup_hash(other_plate) != dataset.setup_hash(cfg)
    assert set(json.loads(dataset.setup_json(cfg))) == {"plate", "lattice", "time", "sources",
                                                       "absorbing", "sensors", "labels"}


def test_a_shard_carries_its_set_up_and_the_hash_is_the_sha256_of_it(tmp_path):
    from dlem import config as config_mod
    from dlem import dataset
    from test_dlem_dataset import TINY

    cfg = config_mod.validate(copy.deepcopy(TINY))
    dataset.write_shard(cfg, tmp_path / "s.nc", 0, 1, progress=False)
    with xr.open_dataset(tmp_path / "s.nc") as ds:
        assert ds.attrs["setup_hash"] == hashlib.sha256(ds.attrs["setup"].encode()).hexdigest()
        assert json.loads(ds.attrs["setup"])["plate"] == cfg["plate"]
        assert "cracks" not in json.loads(ds.attrs["setup"])


# ------------------------------------------------------------------ readers check it

def test_shards_of_another_set_up_are_refused_naming_the_odd_one_and_the_section(contract_data,
                                                                                 other):
    with pytest.raises(DataError, match=r"shard-other\.nc has set-up .*differing sections: "
                                        r"plate$") as err:
        ShardIndex.build([*contract_data["shards"], other["shard"]])
    assert "\n" not in str(err.value)


def test_a_shard_without_the_set_up_hash_is_refused_asking_to_regenerate(contract_data,
                                                                        tmp_path):
    old = tmp_path / "old.nc"
    old.write_bytes(contract_data["shards"][0].read_bytes())
    with netCDF4.Dataset(old, "a") as nc:
        nc.delncattr("setup_hash")
    with pytest.raises(DataError, match=r"old\.nc has no global attribute 'setup_hash'.*"
                                        r"regenerate it with `python -m dlem simulate`"):
        ShardIndex.build([contract_data["shards"][1], old])


def test_labels_carry_their_shard_hash_and_file_name(contract_data):
    with xr.open_dataset(contract_data["labels"][0]) as labels, \
            xr.open_dataset(contract_data["shards"][0]) as shard:
        assert labels.attrs["setup_hash"] == shard.attrs["setup_hash"]
        assert labels.attrs["shard_name"] == contract_data["shards"][0].name


def test_labels_of_other_set_ups_are_refused_together_and_against_the_shards(contract_data,
                                                                            other):
    with pytest.raises(DataError, match=r"labels-other\.nc has set-up"):
        load_labels([*contract_data["labels"], other["labels"]])
    index = ShardIndex.build(contract_data["shards"])
    with pytest.raises(DataError, match=r"labels .*labels-other\.nc has set-up .* the shards"):
        index.check_labels(load_labels([other["labels"]]))
    index.check_labels(load_labels(contract_data["labels"]))       # the right ones pass


def test_labels_without_the_hash_are_refused_asking_to_relabel(contract_data, tmp_path):
    old = tmp_path / "labels-old.nc"
    old.write_bytes(contract_data["labels"][0].read_bytes())
    with netCDF4.Dataset(old, "a") as nc:
        nc.delncattr("setup_hash")
    with pytest.raises(DataError, match=r"labels-old\.nc has no .*`python -m model labels`"):
        load_labels([old])


def test_a_pristine_reference_of_another_set_up_is_refused(contract_data, tmp_path):
    pristine = tmp_path / "pristine-other.nc"
    write_contract_shard(pristine, [0], np.random.default_rng(0), pristine_every=1,
                         setup=OTHER_SETUP)
    index = ShardIndex.build(contract_data["shards"])
    with pytest.raises(DataError, match=r"pristine reference .*pristine-other\.nc has set-up"
                                        r".*differing sections: plate"):
        read_reference(pristine, index.wave_shape, index)
    assert read_reference(contract_data["pristine"], index.wave_shape, index).shape == \
        index.wave_shape


# ------------------------------------------------------------------ checkpoints

@pytest.fixture(scope="module")
def meanbox(contract_data, tmp_path_factory):
    """A mean-box checkpoint trained on the contract shards (closed form: instant)."""
    from model.train import TrainConfig, train

    out = tmp_path_factory.mktemp("meanbox")
    train(list(map(str, contract_data["shards"])), list(map(str, contract_data["labels"])),
          str(contract_data["split"]), out, TrainConfig(arch="meanbox", epochs=1),
          progress=False)
    return out / "checkpoint.pt"


def test_a_checkpoint_carries_the_set_up_it_was_trained_on(contract_data, meanbox):
    from model.checkpoint import load_checkpoint

    state = load_checkpoint(meanbox)
    with xr.open_dataset(contract_data["shards"][0]) as shard:
        assert state["setup_hash"] == shard.attrs["setup_hash"]
        assert state["setup"] == shard.attrs["setup"]


def test_evaluate_refuses_shards_of_another_set_up_than_the_checkpoint(meanbox, other,
                                                                       tmp_path, capsys):
    from model.cli import main
    from model.data import make_split, write_split

    split = tmp_path / "split.json"
    write_split(make_split(load_labels([other["labels"]]), (0.4, 0.3, 0.3)), split)
    code = main(["evaluate", "--data", str(other["shard"]), "--labels", str(other["labels"]),
                 "--split", str(split), "--checkpoint", str(meanbox),
                 "--out-dir", str(tmp_path / "eval")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "shard-other.nc has set-up" in err and "differing sections: plate" in err
    assert not (tmp_path / "eval" / "metrics.json").exists()


def test_evaluate_refuses_a_checkpoint_from_before_provenance(contract_data, meanbox, tmp_path,
                                                               capsys):
    import torch

    from model.cli import main

    state = torch.load(meanbox, weights_only=True)
    del state["setup_hash"], state["setup"]
    old = tmp_path / "old.pt"
    torch.save(state, old)
    code = main(["evaluate", "--data", *map(str, contract_data["shards"]),
                 "--labels", *map(str, contract_data["labels"]),
                 "--split", str(contract_data["split"]), "--checkpoint", str(old),
                 "--out-dir", str(tmp_path / "eval")])
    assert code == 2 and "does not record the set-up" in capsys.readouterr().err


# ------------------------------------------------------------------ train --resume

def test_resume_refuses_other_options_naming_them(contract_data, meanbox):
    from model.train import TrainConfig, train

    args = (list(map(str, contract_data["shards"])), list(map(str, contract_data["labels"])),
            str(contract_data["split"]), meanbox.parent)
    with pytest.raises(DataError, match=r"--resume: .*options differ \(epochs: 1 -> 3\)"):
        train(*args, TrainConfig(arch="meanbox", epochs=3), resume=True, progress=False)


def test_resume_refuses_changed_inputs_naming_them(contract_data, meanbox, tmp_path):
    from model.train import TrainConfig, train

    shards = [tmp_path / p.name for p in contract_data["shards"]]
    for copy_, original in zip(shards, contract_data["shards"]):
        copy_.write_bytes(original.read_bytes())
    with pytest.raises(DataError, match=r"inputs differ \(.*shard-0000\.nc not given now"):
        train(list(map(str, shards)), list(map(str, contract_data["labels"])),
              str(contract_data["split"]), meanbox.parent,
              TrainConfig(arch="meanbox", epochs=1), resume=True, progress=False)
