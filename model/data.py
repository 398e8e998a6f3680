"""NetCDF shards and labels -> splits, normalisation statistics and a lazy torch Dataset.

Shapes and units (docs/data-format.md): a wavefield is `(time, sensor, component)` =
`(2000, 81, 2)` float32 displacements in metres; a box is `(xmin, ymin, xmax, ymax)` in plate
fractions. Samples are addressed everywhere by their global `sample` index.

Memory: labels (a few numbers per sample) are loaded whole; wavefields never are. Statistics
stream over dask chunks of `sample`, and the Dataset reads one sample at a time through a
netCDF4 handle that each worker process opens once per shard.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import netCDF4
import numpy as np
import torch
import xarray as xr
from torch.utils.data import Dataset

from model.io import (LABEL_VARIABLES, SHARD_VARIABLES, DataError, check_finite,
                      check_same_setup, check_setup_matches, open_checked, reading, setup_of,
                      write_text_atomic)
from model.keypoints import BOX_RULE_ATTR, DEFAULT_BOX_RULE, common_box_rule

SUBSETS = ("train", "val", "test")
# netCDF-C gives every variable of every open file a chunk cache (64 MiB by default); with all
# shards open (the Dataset, and xarray while computing statistics) memory would grow with the
# shard count. Three one-sample chunks of (2000, 81, 2) float32 suffice for reading a sample
# at a time. Set for the process, before any file is opened by this package.
CHUNK_CACHE_BYTES = 4 * 2**20
netCDF4.set_chunk_cache(CHUNK_CACHE_BYTES)
# what is subtracted before scaling (see condition); auto = subtract with a pristine file, else mean
REFERENCES = ("auto", "none", "subtract", "mean")
SCALINGS = ("component", "sensor", "trace")     # how the difference is scaled (see condition)
# what a model predicts: key-point boxes, the 16x16 crack mask, or a set of cracks
TARGETS = ("box", "mask", "cracks")
# dimensions each scaling's mean and standard deviation are taken over (trace: none, see condition)
STAT_DIMS = {"component": ("sample", "time", "sensor"), "sensor": ("sample", "time")}


@dataclass
class Labels:
    """Key-point labels of many shards, sorted by `sample` (all arrays have length N)."""

    sample: np.ndarray      # (N,) int64 global sample index
    box: np.ndarray         # (N, 4) float64, NaN where there is no crack
    has_crack: np.ndarray   # (N,) bool
    crack_size: np.ndarray  # (N,) float64, m
    n_cracks: np.ndarray    # (N,) int32
    paths: list[str]        # the label files, in the order given
    setup_hash: str | None = None  # their shards' set-up hash (model.io.setup_of)
    box_rule: str = DEFAULT_BOX_RULE  # how their boxes were drawn (model.keypoints.BOX_RULES)

    def rows(self, sample_ids: np.ndarray) -> np.ndarray:
        """Row positions of `sample_ids`; DataError naming any id that has no label."""
        sample_ids = np.asarray(sample_ids, dtype=np.int64)
        pos = np.searchsorted(self.sample, sample_ids)
        pos_ok = np.minimum(pos, len(self.sample) - 1)
        unknown = sample_ids[(pos >= len(self.sample)) | (self.sample[pos_ok] != sample_ids)]
        if unknown.size:
            raise DataError(f"{unknown.size} sample(s) have no label in {self.paths}: "
                            f"{unknown[:10].tolist()}{' ...' if unknown.size > 10 else ''}")
        return pos


def load_labels(paths: Sequence[str | os.PathLike]) -> Labels:
    """Read and concatenate label files written by `python -m model labels`; DataError when
    they come from shards of different set-ups, repeat a sample or mix box rules."""
    parts, setups, rules = [], [], {}
    for path in paths:
        with open_checked(path, LABEL_VARIABLES, "labels") as ds:
            part = {name: ds[name].values for name in LABEL_VARIABLES}
            setups.append((f"labels file {path}", *setup_of(ds.attrs, path, "labels")))
            rules[str(path)] = ds.attrs.get(BOX_RULE_ATTR)
        check_finite(part["crack_size"], path, "crack_size", part["sample"])
        has = part["has_crack"].astype(bool)
        check_finite(part["box"][has], path, "box", part["sample"][has])
        parts.append(part)
    if not parts:
        raise DataError("no label files given")
    digest, _ = check_same_setup(setups, "label files")
    box_rule = common_box_rule(rules)
    merged = {name: np.concatenate([p[name] for p in parts]) for name in LABEL_VARIABLES}
    order = np.argsort(merged["sample"], kind="stable")
    merged = {name: values[order] for name, values in merged.items()}
    repeated = merged["sample"][1:][np.diff(merged["sample"]) == 0]
    if repeated.size:
        raise DataError(f"sample(s) {np.unique(repeated)[:10].tolist()} appear in more than "
                        f"one label file among {list(map(str, paths))}")
    return Labels(sample=merged["sample"].astype(np.int64),
                  box=merged["box"].astype(np.float64),
                  has_crack=merged["has_crack"].astype(bool),
                  crack_size=merged["crack_size"].astype(np.float64),
                  n_cracks=merged["n_cracks"].astype(np.int32),
                  paths=[str(p) for p in paths], setup_hash=digest, box_rule=box_rule)


# --- split -------------------------------------------------------------------------------------

def make_split(labels: Labels, fractions: Sequence[float] = (0.7, 0.15, 0.15),
               seed: int = 0) -> dict:
    """Deterministic train/val/test split of all labelled samples by global `sample` index.

    The sorted sample ids are permuted with `numpy.random.default_rng(seed)`; the first
    `round(f_train N)` go to train, the next `round(f_val N)` to val, the rest to test.
    Samples without a crack stay in their subset (counted) and are listed under `no_crack`;
    box training and evaluation skip them.
    """
    fractions = [float(f) for f in fractions]
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")
    ids = labels.sample
    perm = np.random.default_rng(seed).permutation(ids)
    n_train = round(fractions[0] * len(ids))
    n_val = min(round(fractions[1] * len(ids)), len(ids) - n_train)
    parts = dict(zip(SUBSETS, np.split(perm, [n_train, n_train + n_val])))
    no_crack = set(ids[~labels.has_crack].tolist())
    split = {
        "seed": seed,
        "fractions": dict(zip(SUBSETS, fractions)),
        "labels": labels.paths,
        "n_samples": int(len(ids)),
        "counts": {name: {"total": len(part),
                          "with_crack": len(part) - len(no_crack.intersection(part.tolist()))}
                   for name, part in parts.items()},
        "no_crack": sorted(no_crack),
    }
    split.update({name: np.sort(part).tolist() for name, part in parts.items()})
    return split


def write_split(split: dict, path: str | os.PathLike) -> None:
    """Write the split as JSON (one top-level key per line), atomically."""
    body = ",\n".join(f" {json.dumps(key)}: {json.dumps(value)}" for key, value in split.items())
    write_text_atomic("{\n" + body + "\n}\n", path)


def read_split(path: str | os.PathLike, labels: Labels | None = None) -> dict:
    """Read a split JSON; with `labels`, check that every sample it names is labelled."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"split file not found: {path}")
    try:
        split = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DataError(f"split file {path} is not valid JSON: {err}") from err
    missing = [name for name in (*SUBSETS, "no_crack") if name not in split]
    if missing:
        raise DataError(f"split file {path} lacks the key(s) {missing}")
    if labels is not None:
        for name in SUBSETS:
            try:
                labels.rows(np.asarray(split[name], dtype=np.int64))
            except DataError as err:
                raise DataError(f"split {path} subset {name!r} names unknown samples: {err}") from err
    return split


def box_samples(split: dict, subset: str, labels: Labels) -> np.ndarray:
    """Sample ids of `subset` that have a crack (box training / evaluation set), sorted."""
    if subset not in SUBSETS:
        raise ValueError(f"subset must be one of {SUBSETS}, got {subset!r}")
    ids = np.asarray(split[subset], dtype=np.int64)
    return ids[labels.has_crack[labels.rows(ids)]]


def target_samples(split: dict, subset: str, labels: Labels, target: str) -> np.ndarray:
    """Sample ids a model predicting `target` trains and is scored on, sorted: every sample
    of `subset` for a crack-set model (an uncracked plate is a sample with no crack to
    find), those with a crack (`box_samples`) for box and mask models."""
    if target != "cracks":
        return box_samples(split, subset, labels)
    if subset not in SUBSETS:
        raise ValueError(f"subset must be one of {SUBSETS}, got {subset!r}")
    ids = np.sort(np.asarray(split[subset], dtype=np.int64))
    labels.rows(ids)  # DataError naming unlabelled ids
    return ids


# --- shards ------------------------------------------------------------------------------------

@dataclass
class ShardIndex:
    """Where each sample's wavefield lives: shard file and position inside it."""

    paths: list[str]
    wave_shape: tuple[int, int, int]   # (time, sensor, component)
    sample: np.ndarray                 # (M,) int64, sorted
    shard: np.ndarray                  # (M,) index into `paths`
    local: np.ndarray                  # (M,) position inside that shard
    setup_hash: str | None = None      # the shards' common set-up hash (model.io.setup_of)
    setup: str | None = None           # and its canonical JSON

    @classmethod
    def build(cls, paths: Sequence[str | os.PathLike]) -> ShardIndex:
        """Index the shards (reads only coordinates and metadata); DataError naming a shard
        whose set-up hash differs from the others'."""
        samples, shards, locals_, shapes, setups = [], [], [], set(), []
        for i, path in enumerate(paths):
            with open_checked(path, SHARD_VARIABLES, "shard") as ds:
                ids = ds["sample"].values.astype(np.int64)
                shapes.add(tuple(ds["wavefield"].shape[1:]))
                setups.append((f"shard {path}", *setup_of(ds.attrs, path, "shard")))
            samples.append(ids)
            shards.append(np.full(len(ids), i))
            locals_.append(np.arange(len(ids)))
        if not samples:
            raise DataError("no shard files given")
        digest, setup = check_same_setup(setups, "shards")
        if len(shapes) != 1:
            raise DataError(f"shards disagree on the wavefield shape (time, sensor, component): {shapes}")
        sample = np.concatenate(samples)
        order = np.argsort(sample, kind="stable")
        if np.any(np.diff(sample[order]) == 0):
            raise DataError(f"a sample index appears in more than one shard among {list(map(str, paths))}")
        return cls([str(p) for p in paths], shapes.pop(), sample[order],
                   np.concatenate(shards)[order], np.concatenate(locals_)[order], digest, setup)

    def check_labels(self, labels: Labels) -> None:
        """DataError when `labels` were made from shards of another set-up."""
        check_setup_matches(f"labels {_first(labels.paths)}", labels.setup_hash, None,
                            self.setup_hash, self.setup, f"the shards {_first(self.paths)}")

    def locate(self, sample_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(shard, local) positions of `sample_ids`; DataError naming ids in no shard."""
        sample_ids = np.asarray(sample_ids, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self.sample, sample_ids), len(self.sample) - 1)
        unknown = sample_ids[self.sample[pos] != sample_ids]
        if unknown.size:
            raise DataError(f"{unknown.size} sample(s) are in no shard of {self.paths}: "
                            f"{unknown[:10].tolist()}{' ...' if unknown.size > 10 else ''}")
        return self.shard[pos], self.local[pos]


def _first(paths: Sequence[str]) -> str:
    """`paths[0]`, plus how many more there are (for one-line messages)."""
    return str(paths[0]) + (f" (and {len(paths) - 1} more)" if len(paths) > 1 else "")


def read_reference(path: str | os.PathLike, wave_shape: tuple[int, int, int],
                   index: ShardIndex | None = None) -> np.ndarray:
    """The pristine reference wavefield `(time, sensor, component)` float32 [m]; with
    `index`, checked to have the shards' set-up."""
    with open_checked(path, SHARD_VARIABLES, "pristine reference") as ds:
        if index is not None:
            check_setup_matches(f"pristine reference {path}",
                                *setup_of(ds.attrs, path, "pristine reference"),
                                index.setup_hash, index.setup, f"the shards {_first(index.paths)}")
        if ds.sizes["sample"] != 1 or int(ds["n_cracks"].values[0]) != 0:
            raise DataError(f"pristine reference {path} must hold exactly one sample with "
                            f"n_cracks = 0 (has {ds.sizes['sample']} sample(s))")
        with reading(path, "wavefield"):
            reference = check_finite(ds["wavefield"].values[0], path, "wavefield").astype(np.float32)
    if reference.shape != tuple(wave_shape):
        raise DataError(f"pristine reference {path} has wavefield shape {reference.shape}, "
                        f"the shards have {tuple(wave_shape)}")
    return reference


def normalisation_stats(index: ShardIndex, sample_ids: np.ndarray,
                        reference: np.ndarray | None = None, scaling: str = "component",
                        chunk_samples: int = 16) -> dict:
    """Mean and standard deviation [m] of the (reference-subtracted) wavefield for `scaling`.

    `component`: one value per displacement component, over `sample_ids` (the training
    split), all times and sensors -> lists of length 2. `sensor`: one value per sensor and
    component, over the samples and times -> `(sensor, component)` nested lists. `trace`:
    no statistics (each trace is scaled by its own RMS in `condition`), mean 0 and std 1
    per component. Streamed with dask in chunks of `chunk_samples` samples; a zero standard
    deviation is replaced by 1. The synchronous scheduler keeps every HDF5 call on this
    thread: HDF5 is not thread-safe and the Dataset's own netCDF4 handles do not take
    xarray's lock. The result records `scaling`.
    """
    if scaling not in SCALINGS:
        raise ValueError(f"scaling must be one of {SCALINGS}, got {scaling!r}")
    if scaling == "trace":
        return {"mean": [0.0, 0.0], "std": [1.0, 1.0], "scaling": "trace"}
    with _training_wavefield(index, sample_ids, chunk_samples) as field:
        if reference is not None:
            field = field - xr.DataArray(reference, dims=("time", "sensor", "component"))
        dims = STAT_DIMS[scaling]
        stats = xr.Dataset({"mean": field.mean(dims), "std": field.std(dims),
                            "finite": np.isfinite(field).all(("time", "sensor", "component"))})
        with reading(index.paths, "the training wavefields"):
            stats = stats.compute(scheduler="synchronous")
    bad = stats["sample"].values[~stats["finite"].values]
    if bad.size:
        raise DataError(f"{sorted({index.paths[s] for s in index.locate(bad)[0]})}: wavefield "
                        f"of training sample(s) {bad[:5].tolist()} holds NaN or inf")
    std = stats["std"].values
    return {"mean": stats["mean"].values.tolist(), "std": np.where(std > 0, std, 1.0).tolist(),
            "scaling": scaling}


@contextmanager
def _training_wavefield(index: ShardIndex, sample_ids: np.ndarray, chunk_samples: int):
    """The lazy float64 `wavefield` of `sample_ids` (sorted), dask-chunked by sample.

    Only `wavefield` (and the dimension coordinates) is opened: its stored chunks are one
    sample each `(1, time, sensor, component)`, so `chunk_samples` samples with the other
    dimensions whole never split a stored chunk. The shard's other per-sample variables are
    stored in one chunk per shard, which dask chunks of `chunk_samples` would split (xarray's
    "specified chunks separate the stored chunks" warning)."""
    with netCDF4.Dataset(index.paths[0]) as nc:
        others = [name for name in nc.variables if name != "wavefield" and name not in nc.dimensions]
    dataset = xr.open_mfdataset(
        index.paths, combine="nested", concat_dim="sample",
        chunks={"sample": chunk_samples, "time": -1, "sensor": -1, "component": -1},
        drop_variables=others, data_vars="minimal", coords="minimal", compat="override",
        engine="netcdf4",
    )
    with dataset:  # closes every shard, also after a read fault (a DataArray taken from the
        wavefield = dataset["wavefield"]  # dataset would leave them in xarray's file cache)
        yield wavefield.sel(sample=np.sort(np.asarray(sample_ids, np.int64))).astype(np.float64)


def mean_wavefield(index: ShardIndex, sample_ids: np.ndarray, chunk_samples: int = 16) -> np.ndarray:
    """The mean wavefield `(time, sensor, component)` float32 [m] over `sample_ids` (the
    training split): the part of every sample that does not depend on the crack, a
    reference that needs no pristine plate (`reference = "mean"`)."""
    with _training_wavefield(index, sample_ids, chunk_samples) as field:
        with reading(index.paths, "the training wavefields"):
            mean = field.mean("sample").compute(scheduler="synchronous")
    return mean.values.astype(np.float32)


def condition(field: np.ndarray, offset: np.ndarray, inv_std: np.ndarray,
              scaling: str) -> np.ndarray:
    """The network input from one wavefield `(time, sensor, component)` [m], float32.

    `(field - offset) * inv_std`, where `offset` (the reference wavefield plus the mean)
    and `inv_std` broadcast against the field; with `scaling = "trace"` each
    `(sensor, component)` trace is then divided by its own root mean square over time, so
    every trace has unit RMS whatever its distance from the source (an all-zero trace stays
    zero).
    """
    x = (field.astype(np.float32) - offset) * inv_std
    if scaling == "trace":
        rms = np.sqrt(np.mean(np.square(x, dtype=np.float64), axis=0))
        x = x / np.where(rms > 0, rms, 1.0).astype(np.float32)
    return x.astype(np.float32, copy=False)


def read_samples(index: ShardIndex, sample_ids: np.ndarray, variable: str) -> np.ndarray:
    """`variable[sample]` of every id in `sample_ids`, in that order, stacked (e.g.
    `crack_mask` -> (N, 16, 16) uint8, `wavefield` -> (N, time, sensor, component) float32 [m]).

    Reads shard by shard with netCDF4; meant for small variables or a few samples at a time.
    """
    sample_ids = np.asarray(sample_ids)
    shard, local = index.locate(sample_ids)
    out = None
    for s in np.unique(shard):
        where = np.flatnonzero(shard == s)
        with reading(index.paths[s], f"{variable} of samples {sample_ids[where][:5].tolist()}"), \
                netCDF4.Dataset(index.paths[s], "r") as handle:
            handle.set_auto_mask(False)
            var = handle[variable]
            values = np.stack([np.asarray(var[int(i)]) for i in local[where]])
        if values.dtype.kind == "f":
            check_finite(values, index.paths[s], variable, sample_ids[where])
        if out is None:
            out = np.empty((len(shard), *values.shape[1:]), values.dtype)
        out[where] = values
    if out is None:
        raise DataError(f"no samples to read {variable!r} from")
    return out


class WavefieldDataset(Dataset):
    """Lazy samples: `(wavefield float32 (time, sensor, component), target)`.

    The wavefield is conditioned by `condition`: `(x - reference - mean) / std` with the
    statistics' `scaling` (reference optional; trace scaling also divides each trace by
    its RMS).
    The target is the box float32 `(4,)` in plate fractions (`target="box"`), the crack
    mask float32 `(16, 16)` of 0/1 (`target="mask"`, read once at construction; `masks`
    holds them), or the per-crack targets float32 `(C, 8)` (`target="cracks"`: box and end
    points as plate fractions, NaN rows beyond the sample's cracks,
    `model.crack_labels.crack_targets`; read once from the label files; `cracks` holds
    them). `boxes` are loaded for every target (validation and evaluation score
    boxes). Each worker process opens each shard once, on first use. With `cache`, each
    item's conditioned input is kept in memory after its first read (1.3 MB per sample of
    (2000, 81, 2)), so later epochs skip reading and decompressing it. `perturb`
    (e.g. a `model.perturb.Perturbation`), called as `perturb(fields (1, time, sensor,
    component), samples (1,))`, changes each raw wavefield before it is conditioned: what a
    noisy or partly failed sensor array would deliver. `augment` (a
    `model.augment.Augmentation`, training sets only) perturbs it anew in every epoch
    (`epoch`, set by the training loop): the cache then keeps the raw wavefield and each read
    augments and conditions it.
    """

    def __init__(self, index: ShardIndex, sample_ids: np.ndarray, labels: Labels,
                 stats: dict, reference: np.ndarray | None = None,
                 target: str = "box", cache: bool = False,
                 perturb: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
                 augment: Callable[[np.ndarray, np.ndarray, int], np.ndarray] | None = None):
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
        self.sample_ids = np.asarray(sample_ids, dtype=np.int64)
        self.paths = index.paths
        self.shard, self.local = index.locate(self.sample_ids)
        self.boxes = labels.box[labels.rows(self.sample_ids)].astype(np.float32)
        self.target = target
        self.masks = (read_samples(index, self.sample_ids, "crack_mask").astype(np.float32)
                      if target == "mask" else None)
        self.cracks = None
        if target == "cracks":
            from model.crack_labels import crack_targets, load_crack_labels, plate_size

            self.cracks = crack_targets(load_crack_labels(labels.paths), self.sample_ids,
                                        plate_size(index.paths[0]))
        mean = np.asarray(stats["mean"], dtype=np.float32)
        self.offset = mean if reference is None else (reference + mean).astype(np.float32)
        self.inv_std = (1.0 / np.asarray(stats["std"], dtype=np.float64)).astype(np.float32)
        self.scaling = stats.get("scaling", "component")  # checkpoints before scalings: component
        self._handles: dict[int, netCDF4.Dataset] = {}
        self._pid = os.getpid()
        self._cache: dict[int, np.ndarray] | None = {} if cache else None
        self.perturb = perturb
        self.augment, self.epoch = augment, 0

    def __len__(self) -> int:
        return len(self.sample_ids)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_handles"] = {}  # handles do not cross process boundaries
        return state

    def _handle(self, shard: int) -> netCDF4.Dataset:
        if self._pid != os.getpid():  # forked worker: never reuse the parent's HDF5 handles
            self._handles, self._pid = {}, os.getpid()
        if shard not in self._handles:
            handle = netCDF4.Dataset(self.paths[shard], "r")
            handle.set_auto_mask(False)
            self._handles[shard] = handle
        return self._handles[shard]

    def close(self) -> None:
        """Close this process's shard handles (they reopen on the next read)."""
        for handle in self._handles.values():
            handle.close()
        self._handles = {}

    def read_raw(self, i: int, variable: str = "wavefield") -> np.ndarray:
        """Unnormalised `variable[sample]` of item `i` (e.g. `crack_mask` for plots)."""
        path, sample = self.paths[int(self.shard[i])], self.sample_ids[i:i + 1]
        with reading(path, f"{variable} of sample {int(sample[0])}"):
            values = np.asarray(self._handle(int(self.shard[i]))[variable][int(self.local[i])])
        if values.dtype.kind == "f":
            check_finite(values[None], path, variable, sample)
        return values

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        field = None if self._cache is None else self._cache.get(i)
        if field is None:
            field = self.read_raw(i)
            if self.perturb is not None:
                field = self.perturb(field[None], self.sample_ids[i:i + 1])[0]
            if self.augment is None:
                field = condition(field, self.offset, self.inv_std, self.scaling)
            if self._cache is not None:
                self._cache[i] = field
        if self.augment is not None:  # a fresh draw of this epoch on the raw wavefield
            field = self.augment(field[None], self.sample_ids[i:i + 1], self.epoch)[0]
            field = condition(field, self.offset, self.inv_std, self.scaling)
        target = {"box": self.boxes, "mask": self.masks, "cracks": self.cracks}[self.target][i]
        return torch.from_numpy(field), torch.from_numpy(target)
