"""Scoring on perturbed data and across a changed material without retraining or choosing
anything there: `evaluate`/`baseline --perturb` act on the raw wavefield exactly as data
recorded that way would, `--allow-setup-change` opens only the named set-up paths, and
`python -m model robustness` tabulates every model against its clean score."""

from __future__ import annotations

import copy
import csv
import json

import numpy as np
import pytest
import xarray as xr

from conftest import CONTRACT_SETUP, contract_setup_attrs, write_contract_shard
from model.cli import main
from model.data import ShardIndex, WavefieldDataset, load_labels
from model.keypoints import write_labels
from model.perturb import Perturbation

pytestmark = pytest.mark.usefixtures("contract_single_thread")

SEG_TINY = {"stem_channels": 4, "block_layers": [1, 1, 1], "growth": 4, "sensor_features": 8,
            "decoder_channels": [8, 8]}
NOISE = Perturbation(snr_db=0.0, seed=3)
SHIFTED_SETUP = copy.deepcopy(CONTRACT_SETUP)
SHIFTED_SETUP["plate"]["youngs_modulus"] *= 1.02 ** 2      # every wave speed +2 %
E = CONTRACT_SETUP["plate"]["youngs_modulus"]


def _data(shards, labels, split):
    return ["--data", *map(str, shards), "--labels", *map(str, labels), "--split", str(split)]


def _metrics(folder):
    return json.loads((folder / "metrics.json").read_text())


def _recorded_with(perturbation, shards, root):
    """Copies of `shards` whose wavefields are what `perturbation` delivers (and their
    labels): data a noisy sensor array would have recorded."""
    out, labels = [], []
    for shard in shards:
        with xr.open_dataset(shard) as ds:
            ds = ds.load()
        ds["wavefield"].values = perturbation(ds["wavefield"].values, ds["sample"].values)
        path = root / f"recorded-{shard.name}"
        ds.to_netcdf(path, engine="netcdf4")
        out.append(path)
        labels.append(write_labels(path, root / f"recorded-labels-{shard.name}"))
    return out, labels


@pytest.fixture(scope="module")
def runs(contract_data, tmp_path_factory):
    """meanbox and a one-epoch densenet1d trained and evaluated on the contract split,
    delay-and-sum searched on it; the same samples recorded with noise, and simulated
    (here: written) on a plate with +4.04 % Young's modulus."""
    root = tmp_path_factory.mktemp("robustness")
    clean = _data(contract_data["shards"], contract_data["labels"], contract_data["split"])
    for arch, extra in [("meanbox", []),
                        ("densenet1d", ["--epochs", "1", "--batch-size", "4",
                                        "--arch-kwargs", json.dumps(SEG_TINY)])]:
        assert main(["train", *clean, "--arch", arch, "--out-dir", str(root / "models" / arch),
                     "--no-progress", *extra]) == 0
        assert main(["evaluate", *clean, "--checkpoint",
                     str(root / "models" / arch / "checkpoint.pt"),
                     "--out-dir", str(root / "clean" / arch)]) == 0
    assert main(["baseline", "das", *clean, "--pristine", str(contract_data["pristine"]),
                 "--out-dir", str(root / "clean" / "das"),
                 "--grid", json.dumps({"t_max": [4e-5, 1e-4], "alpha": [0.5, 0.9]})]) == 0
    recorded = _recorded_with(NOISE, contract_data["shards"], root)
    shifted, shifted_labels = [], []
    for i, ids in enumerate([range(0, 10), range(10, 20)]):
        shard = root / f"shifted-{i:04d}.nc"
        write_contract_shard(shard, list(ids), np.random.default_rng(i), pristine_every=10,
                             setup=SHIFTED_SETUP)
        shifted.append(shard)
        shifted_labels.append(write_labels(shard, root / f"shifted-labels-{i:04d}.nc"))
    return {"root": root, "clean": clean, "recorded": recorded,
            "shifted": (shifted, shifted_labels)}


def _score(runs, name, data, out, *extra, baseline=False, pristine=None):
    root = runs["root"]
    if baseline:
        args = ["baseline", name, *data, "--pristine", str(pristine)]
    else:
        args = ["evaluate", *data, "--checkpoint", str(root / "models" / name / "checkpoint.pt")]
    return main([*args, "--out-dir", str(out), *extra])


@pytest.mark.parametrize("name, baseline", [("densenet1d", False), ("das", True)])
def test_perturbing_equals_scoring_data_recorded_with_that_perturbation(
        runs, contract_data, tmp_path, name, baseline):
    """The perturbation acts on the raw wavefield, before the model's own conditioning, and
    the pristine reference stays clean: exactly what data recorded noisy would give."""
    root, split = runs["root"], contract_data["split"]
    chosen = ["--from-metrics", str(root / "clean" / name / "metrics.json")]
    kw = {"baseline": baseline, "pristine": contract_data["pristine"]}
    assert _score(runs, name, runs["clean"], tmp_path / "perturbed", *chosen,
                  "--perturb", json.dumps(NOISE.as_dict()), **kw) == 0
    assert _score(runs, name, _data(*runs["recorded"], split), tmp_path / "recorded",
                  *chosen, **kw) == 0
    with xr.open_dataset(tmp_path / "perturbed" / "predictions.nc") as a, \
            xr.open_dataset(tmp_path / "recorded" / "predictions.nc") as b, \
            xr.open_dataset(root / "clean" / name / "predictions.nc") as c:
        np.testing.assert_array_equal(a["pred_mask_prob"].values, b["pred_mask_prob"].values)
        np.testing.assert_array_equal(a["pred_box"].values, b["pred_box"].values)
        assert not np.array_equal(a["pred_mask_prob"].values, c["pred_mask_prob"].values)
    result, clean = _metrics(tmp_path / "perturbed"), _metrics(root / "clean" / name)
    assert result["perturbation"] == {"snr_db": 0.0, "seed": 3}
    assert "perturbation" not in _metrics(tmp_path / "recorded")
    for key in ("mask_threshold", "hyperparameters"):   # chosen on clean val, reused
        if key in clean:
            assert ({k: result[key][k] for k in ("box", "pixel")} == {
                k: clean[key][k] for k in ("box", "pixel")} if key == "mask_threshold"
                else result[key] == clean[key])


@pytest.mark.parametrize("name, baseline", [("densenet1d", False), ("das", True)])
def test_perturbed_data_choose_nothing(runs, contract_data, tmp_path, capsys, name, baseline):
    code = _score(runs, name, runs["clean"], tmp_path / "e", "--perturb",
                  '{"dead_sensors": 3}', baseline=baseline, pristine=contract_data["pristine"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "nothing is chosen on perturbed data" in err and "--from-metrics" in err
    assert not (tmp_path / "e" / "metrics.json").exists()


def test_a_dead_sensor_reaches_the_network_as_minus_the_conditioned_reference(contract_data):
    """Zeroed before conditioning: the input at a dead sensor is (0 - reference - mean) / std."""
    index = ShardIndex.build(contract_data["shards"])
    labels = load_labels(contract_data["labels"])
    ids = labels.sample[labels.has_crack][:2]
    rng = np.random.default_rng(0)
    reference = (1e-9 * rng.standard_normal(index.wave_shape)).astype(np.float32)
    stats = {"mean": [1e-10, -2e-10], "std": [3e-9, 4e-9], "scaling": "component"}
    dead = Perturbation(dead_sensors=81)
    x, _ = WavefieldDataset(index, ids, labels, stats, reference, perturb=dead)[1]
    expected = (0.0 - reference - np.float32(stats["mean"])) / np.float32(stats["std"])
    np.testing.assert_allclose(x.numpy(), expected, rtol=1e-6)


def test_more_dead_sensors_than_sensors_is_refused_in_one_line(runs, tmp_path, capsys):
    code = _score(runs, "meanbox", runs["clean"], tmp_path / "e", "--perturb",
                  '{"dead_sensors": 82, "draw": 0}')
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "dead_sensors = 82 is not possible with 81 sensors" in err
    assert not (tmp_path / "e" / "metrics.json").exists()


def test_a_changed_material_is_scored_only_when_that_path_is_allowed(runs, contract_data,
                                                                     tmp_path, capsys):
    data = _data(*runs["shifted"], contract_data["split"])
    assert _score(runs, "meanbox", data, tmp_path / "refused") == 2
    assert "differing sections: plate" in capsys.readouterr().err
    assert _score(runs, "meanbox", data, tmp_path / "other",
                  "--allow-setup-change", "plate.density") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "--allow-setup-change plate.density does not cover plate.youngs_modulus" in err
    assert _score(runs, "meanbox", data, tmp_path / "allowed",
                  "--allow-setup-change", "plate.youngs_modulus") == 0
    change = _metrics(tmp_path / "allowed")["setup_change"]
    assert change["allowed"] == ["plate.youngs_modulus"]
    assert change["changes"] == {"plate.youngs_modulus": [E, E * 1.02 ** 2]}
    with xr.open_dataset(runs["shifted"][0][0]) as shard:
        assert change["setup_hash"] == shard.attrs["setup_hash"]


def test_a_change_outside_the_allowed_path_is_still_refused(runs, contract_data, tmp_path,
                                                            capsys):
    setup = copy.deepcopy(SHIFTED_SETUP)
    setup["sources"][0]["f0"] = 2.0e5
    shard = tmp_path / "shard.nc"
    write_contract_shard(shard, list(range(10)), np.random.default_rng(0), 10, setup=setup)
    labels = write_labels(shard, tmp_path / "labels.nc")
    from model.data import make_split, write_split
    split = tmp_path / "split.json"
    write_split(make_split(load_labels([labels]), (0, 0, 1)), split)
    assert _score(runs, "meanbox", _data([shard], [labels], split), tmp_path / "e",
                  "--allow-setup-change", "plate.youngs_modulus") == 2
    assert "does not cover sources.0.f0" in capsys.readouterr().err


def test_an_imaging_baseline_on_a_changed_material_keeps_the_reference_plate(
        runs, contract_data, tmp_path, capsys):
    """The wave speeds the imaging assumes are the pristine plate's, not the changed one's."""
    data = _data(*runs["shifted"], contract_data["split"])
    chosen = ["--from-metrics", str(runs["root"] / "clean" / "das" / "metrics.json")]
    kw = {"baseline": True, "pristine": contract_data["pristine"]}
    assert _score(runs, "das", data, tmp_path / "refused", *chosen, **kw) == 2
    assert "pristine reference" in capsys.readouterr().err
    assert _score(runs, "das", data, tmp_path / "e", *chosen, "--allow-setup-change",
                  "plate.youngs_modulus", **kw) == 0
    result = _metrics(tmp_path / "e")
    assert result["geometry"]["c_p"] == contract_setup_attrs(CONTRACT_SETUP)["wave_speed_p"]
    assert result["setup_change"]["changes"] == {"plate.youngs_modulus": [E, E * 1.02 ** 2]}


def test_the_robustness_table_compares_each_model_with_its_clean_score(runs, contract_data,
                                                                       tmp_path, capsys):
    root, folders = runs["root"], []
    conditions = {"noise-20": ["--perturb", '{"snr_db": 20}'],
                  "dead-5-draw-0": ["--perturb", '{"dead_sensors": 5, "draw": 0}'],
                  "dead-5-draw-1": ["--perturb", '{"dead_sensors": 5, "draw": 1}']}
    for name, extra in conditions.items():
        out = tmp_path / name / "meanbox"
        assert _score(runs, "meanbox", runs["clean"], out, *extra) == 0
        folders.append(out)
    out = tmp_path / "speed" / "meanbox"
    assert _score(runs, "meanbox", _data(*runs["shifted"], contract_data["split"]), out,
                  "--allow-setup-change", "plate.youngs_modulus") == 0
    folders.append(out)
    out = tmp_path / "noise-20" / "das"
    assert _score(runs, "das", runs["clean"], out, "--perturb", '{"snr_db": 20}',
                  "--from-metrics", str(root / "clean" / "das" / "metrics.json"),
                  baseline=True, pristine=contract_data["pristine"]) == 0
    folders.append(out)
    clean = [root / "clean" / "meanbox", root / "clean" / "das"]
    assert main(["robustness", "--eval-dirs", *map(str, clean + folders),
                 "--out-dir", str(tmp_path / "compare")]) == 0
    with open(tmp_path / "compare" / "robustness.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    by = {(r["model"], r["kind"], r["repeat"]): r for r in rows}
    assert len(rows) == 7 and by["meanbox", "clean", ""]["IoU_retained"] == "1.000000"
    # the mean box ignores its input: perturbed and clean IoU are the same, sample by sample
    for key in (("meanbox", "noise", "0"), ("meanbox", "dead_sensors", "1")):
        assert float(by[key]["IoU_retained"]) == 1.0 and float(by[key]["IoU_minus_clean"]) == 0
    assert float(by["meanbox", "speed", ""]["level"]) == pytest.approx(0.02, abs=1e-12)
    assert float(by["das", "noise", "0"]["IoU_lo"]) <= float(by["das", "noise", "0"]["IoU"])
    text = (tmp_path / "compare" / "robustness.md").read_text()
    assert "| condition | meanbox | das |" in text and "noise 20 dB (seed 0)" in text
    assert "speed +2.0 %" in text and "5 dead (draw 1)" in text
    assert (tmp_path / "compare" / "robustness.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    capsys.readouterr()
    assert main(["robustness", "--eval-dirs", *map(str, folders),
                 "--out-dir", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no clean evaluation" in err and "meanbox" in err
