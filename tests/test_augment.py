"""Training-time augmentation (model/augment.py) as a specification: it changes the training
inputs only, is reproducible for a seed and fresh in every epoch, adds noise at the requested
SNR (the definition of model/perturb.py's docstring, computed here by hand) and zeroes whole
sensors; off by default, bad values refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import model.train as train_module
from model.augment import Augmentation
from model.cli import main
from model.data import ShardIndex, WavefieldDataset, load_labels, normalisation_stats, read_reference
from model.train import TrainConfig, train

pytestmark = pytest.mark.usefixtures("contract_single_thread")

TINY = {"filters": [4, 8, 8, 8], "time_conv_channels": 8, "grid_conv_channels": [8, 8],
        "dense_units": [32], "dropout": 0.0}
TRAIN_IDS, VAL_IDS = [1, 2, 3, 4, 5, 6], [11, 12]


def _signal(n_time: int, samples: int = 4, sensors: int = 3) -> np.ndarray:
    """Sinusoids `(N, time, sensor, component)` float32 of amplitudes 1e-9..1e-7 m."""
    t = np.arange(n_time)[None, :, None, None]
    amplitude = np.logspace(-9, -7, samples * sensors * 2).reshape(samples, 1, sensors, 2)
    return (amplitude * np.sin(2 * np.pi * t / 37.0 + amplitude * 1e8)).astype(np.float32)


def _snr_db(clean: np.ndarray, noisy: np.ndarray) -> np.ndarray:
    """Per-trace SNR [dB] of the added noise: 10 log10(mean_t u^2 / mean_t n^2), `(N, sensor,
    component)`, the definition of model/perturb.py's docstring."""
    clean = clean.astype(np.float64)
    noise = noisy.astype(np.float64) - clean
    return 10 * np.log10(np.mean(clean ** 2, axis=1) / np.mean(noise ** 2, axis=1))


def _datasets(contract_data, augment, cache=False):
    """The training and validation datasets of TRAIN_IDS / VAL_IDS as `train` builds them
    (pristine subtracted, one scale per sensor), the training set with `augment`."""
    index = ShardIndex.build(contract_data["shards"])
    labels = load_labels(contract_data["labels"])
    reference = read_reference(contract_data["pristine"], index.wave_shape)
    stats = normalisation_stats(index, np.array(TRAIN_IDS), reference, "sensor")
    return (WavefieldDataset(index, TRAIN_IDS, labels, stats, reference, cache=cache,
                             augment=augment),
            WavefieldDataset(index, VAL_IDS, labels, stats, reference))


def _inputs(dataset) -> np.ndarray:
    return np.stack([dataset[i][0].numpy() for i in range(len(dataset))])


def _split(contract_data, path):
    from model.data import make_split, write_split

    split = make_split(load_labels(contract_data["labels"]), seed=0)
    rest = set(split["train"] + split["val"] + split["test"]) - set(TRAIN_IDS) - set(VAL_IDS)
    split.update(train=TRAIN_IDS, val=VAL_IDS, test=sorted(rest))
    write_split(split, path)
    return ([str(p) for p in contract_data["shards"]], [str(p) for p in contract_data["labels"]],
            str(path))


def test_augmentation_is_off_by_default():
    assert TrainConfig().augmentation() is None
    assert TrainConfig(augment_snr_db=[], augment_dead_sensors=0).augmentation() is None


@pytest.mark.parametrize("snr_db", [40.0, 20.0, 0.0])
def test_a_fixed_snr_is_the_measured_snr_of_every_trace(snr_db):
    """200,000-step traces: the noise power's sampling error is sqrt(2 / T) = 0.3 %, 0.014 dB."""
    clean = _signal(200_000)
    noisy = Augmentation(snr_db=(snr_db,), seed=3)(clean, np.arange(4), epoch=2)
    assert np.all(np.abs(_snr_db(clean, noisy) - snr_db) < 0.05)


def test_a_snr_range_draws_one_snr_per_sample_within_it():
    clean = _signal(200_000, samples=6)
    augment = Augmentation(snr_db=(10.0, 30.0), seed=0)
    samples = np.arange(100, 106)
    measured = _snr_db(clean, augment(clean, samples, epoch=1))          # (N, sensor, component)
    drawn = np.array([augment.draw(1, s).snr_db for s in samples])
    assert np.all((drawn >= 10) & (drawn <= 30)) and np.ptp(drawn) > 1  # not one value for all
    assert np.all(np.abs(measured - drawn[:, None, None]) < 0.05)


def test_dead_sensors_read_exactly_zero_and_the_others_are_untouched():
    rng = np.random.default_rng(0)
    fields = (1.0 + rng.random((60, 20, 81, 2))).astype(np.float32)  # never zero
    augment = Augmentation(dead_sensors=5, seed=1)
    out = augment(fields, np.arange(60), epoch=0)
    zero = np.all(out == 0, axis=(1, 3))                                 # (N, sensor)
    counts = zero.sum(axis=1)
    assert counts.tolist() == [augment.draw(0, s).dead_sensors for s in range(60)]
    assert set(counts.tolist()) == set(range(6))                         # 0 to 5, all drawn
    assert not np.any((out == 0) & ~zero[:, None, :, None])              # whole sensors only
    live = ~np.broadcast_to(zero[:, None, :, None], out.shape)
    np.testing.assert_array_equal(out[live], fields[live])


def test_the_draw_is_reproducible_for_a_seed_and_fresh_in_every_epoch():
    clean = _signal(500)
    augment = Augmentation(snr_db=(5.0, 25.0), dead_sensors=2, seed=7)
    samples = np.array([3, 8, 9, 40])
    first = augment(clean, samples, epoch=0)
    np.testing.assert_array_equal(first, Augmentation((5.0, 25.0), 2, 7)(clean, samples, 0))
    np.testing.assert_array_equal(first[1:2], augment(clean[1:2], samples[1:2], 0))  # batch-free
    for other in (augment(clean, samples, epoch=1), Augmentation((5.0, 25.0), 2, 8)(clean, samples, 0)):
        assert all(not np.array_equal(a, b) for a, b in zip(first, other))


def test_only_training_inputs_change_and_the_noise_is_added_before_conditioning(contract_data):
    """The validation set built with the augmented training set yields the unaugmented
    inputs; each augmented training input is the conditioned raw wavefield plus noise whose
    SNR, measured on the raw scale, is the requested 20 dB (mean noise power over the
    sample's 162 traces: 0.25 % sampling error, 0.011 dB)."""
    plain_train, plain_val = _datasets(contract_data, None)
    train_set, val_set = _datasets(contract_data, Augmentation(snr_db=(20.0,), seed=0))
    np.testing.assert_array_equal(_inputs(val_set), _inputs(plain_val))
    clean, noisy = _inputs(plain_train), _inputs(train_set)
    raw = np.stack([train_set.read_raw(i) for i in range(len(train_set))]).astype(np.float64)
    noise = (noisy.astype(np.float64) - clean) / train_set.inv_std     # back to metres
    ratio = np.mean(noise ** 2, axis=1) / np.mean(raw ** 2, axis=1)    # (N, sensor, component)
    assert np.all(np.abs(10 * np.log10(1 / ratio.mean(axis=(1, 2))) - 20.0) < 0.05)


def test_the_cached_training_set_is_augmented_anew_in_every_epoch(contract_data):
    train_set, _ = _datasets(contract_data, Augmentation(snr_db=(10.0,), seed=0), cache=True)
    epoch0 = _inputs(train_set)
    np.testing.assert_array_equal(_inputs(train_set), epoch0)          # from the cache, same draw
    train_set.epoch = 1
    assert all(not np.array_equal(a, b) for a, b in zip(_inputs(train_set), epoch0))


def test_train_augments_the_training_set_only(contract_data, tmp_path, monkeypatch):
    built = []

    class Recording(WavefieldDataset):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            built.append(self)

    monkeypatch.setattr(train_module, "WavefieldDataset", Recording)
    config = TrainConfig(arch_kwargs=TINY, epochs=1, batch_size=4, device="cpu",
                         augment_snr_db=[10.0, 30.0], augment_dead_sensors=3)
    train(*_split(contract_data, tmp_path / "split.json"), tmp_path / "run", config,
          pristine=str(contract_data["pristine"]), progress=False)
    train_set, val_set = built
    assert train_set.augment == Augmentation((10.0, 30.0), 3, 0) and val_set.augment is None


def test_an_augmented_run_resumes_to_the_same_weights(contract_data, tmp_path):
    args = _split(contract_data, tmp_path / "split.json")
    config = TrainConfig(arch_kwargs=TINY, epochs=3, batch_size=4, patience=100, device="cpu",
                         reference="none", augment_snr_db=[0.0, 20.0], augment_dead_sensors=4)
    straight = train(*args, tmp_path / "straight", config, progress=False)
    train(*args, tmp_path / "resumed", TrainConfig(**vars(config)), stop_after=1, progress=False)
    torch.manual_seed(999)
    resumed = train(*args, tmp_path / "resumed", TrainConfig(**vars(config)), resume=True,
                    progress=False)
    for name, tensor in straight["model"].items():
        assert torch.equal(tensor, resumed["model"][name]), name
    plain = train(*args, tmp_path / "plain", TrainConfig(**{**vars(config), "augment_snr_db": [],
                                                          "augment_dead_sensors": 0}),
                  progress=False)
    assert plain["history"][0]["train_loss"] != straight["history"][0]["train_loss"]
    assert plain["history"][0]["val_loss"] != straight["history"][0]["val_loss"]  # other weights


@pytest.mark.parametrize("snr, dead, message", [
    ([30.0, 10.0], 0, "low <= high"), ([1.0, 2.0, 3.0], 0, "[S] or [low, high]"),
    ([float("nan")], 0, "finite dB"), ([], -1, "integer >= 0")])
def test_bad_augmentation_options_are_refused(snr, dead, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        TrainConfig(augment_snr_db=snr, augment_dead_sensors=dead).validate()


def test_more_dead_sensors_than_sensors_is_refused_in_one_line(contract_data, tmp_path, capsys):
    data, labels, split = _split(contract_data, tmp_path / "split.json")
    code = main(["train", "--data", *data, "--labels", *labels, "--split", split,
                 "--out-dir", str(tmp_path / "run"), "--reference", "none", "--epochs", "1",
                 "--device", "cpu", "--augment-dead-sensors", "82", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "augment_dead_sensors" in err and "81 sensors" in err
