"""Ablation of MicroCrackPointNet's training recipe: input conditioning, loss, output, optimiser.

Why a separate driver: an ablation trains the same network many times on the same samples,
so the inputs are conditioned once, max-pooled over time x4 (the network's own first layer)
and kept in memory; the network is then built with `input_pool=1, n_time=500`, which is the
same computation (max-pooling commutes with a positive per-trace scale, and the reference is
subtracted at full resolution before pooling) without re-reading 1.3 MB per sample per epoch.
The network, losses and metrics are the package's (`model.nets`, `model.losses`,
`model.metrics`).

Data: a folder with the shards `shard-*.nc` of samples 0..N-1 (equal sizes), their labels
`labels-*.nc` (`python -m model labels`), `pristine.nc`, and a held-out shard `heldout.nc`
from far sample indices with `labels-heldout.nc`. Split: the labelled samples with a crack
in 0..N-1 are permuted with `numpy.random.default_rng(0)`; the first `--nval` are validation,
the next `--nval` test, the first `--ntrain` of the rest training. The epoch with the best
validation IoU is kept (chosen on validation only); test and held-out are scored once, with it.

    python bench/ablation.py cache --data-dir DIR --cache-dir CACHE
    python bench/ablation.py run --data-dir DIR --cache-dir CACHE --cond sub_sensor \
        --loss l1_giou --box-output centre_size --ntrain 400 --epochs 6 --out results.jsonl

Conditionings (`--cond`): `raw` / `sub` / `mean` = nothing / the pristine plate / the
training samples' mean wavefield subtracted, then one mean and std per component
(`raw`, `sub`) or `_sensor` (per sensor and component RMS over the training samples) or
`_trace` (each trace to unit RMS); statistics are taken on the pooled inputs. The package's `python -m model train --reference {none,subtract,mean} --scaling
{component,sensor,trace}` does the same.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import netCDF4
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from model.losses import make_loss  # noqa: E402
from model.metrics import bootstrap_ci, box_iou  # noqa: E402
from model.nets.microcrackpointnet import MicroCrackPointNet  # noqa: E402

POOL = 4  # the network's input max-pool over time


def read_wavefields(path: Path, rows=None) -> np.ndarray:
    """`wavefield` (N, time, sensor, component) float32 of a shard (all or `rows`)."""
    with netCDF4.Dataset(path) as handle:
        handle.set_auto_mask(False)
        var = handle["wavefield"]
        if rows is None:
            return np.asarray(var[:], np.float32)
        return np.stack([np.asarray(var[int(r)], np.float32) for r in rows])


def pool_time(x: np.ndarray) -> np.ndarray:
    """Max over non-overlapping windows of POOL records: (N, T, S, C) -> (N, T/POOL, S, C)."""
    n, t, s, c = x.shape
    return x.reshape(n, t // POOL, POOL, s, c).max(axis=2)


def shard_files(data_dir: Path) -> list[Path]:
    return sorted(data_dir.glob("shard-*.nc")) + [data_dir / "heldout.nc"]


def build_cache(data_dir: Path, cache_dir: Path) -> None:
    """Labels and the pooled raw and pristine-subtracted inputs of every sample, as .npy."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    pristine = read_wavefields(data_dir / "pristine.nc")[0]
    labels = sorted(data_dir.glob("labels-0*.nc")) + [data_dir / "labels-heldout.nc"]
    parts = {"box": [], "sample": [], "crack_size": []}
    for path in labels:
        with netCDF4.Dataset(path) as handle:
            for name in parts:
                parts[name].append(np.asarray(handle[name][:]))
    for name, values in parts.items():
        np.save(cache_dir / f"{name}.npy", np.concatenate(values))
    raw, sub = [], []
    for path in shard_files(data_dir):
        field = read_wavefields(path)
        raw.append(pool_time(field))
        sub.append(pool_time(field - pristine))
        print(f"cached {path}", flush=True)
    np.save(cache_dir / "raw.npy", np.concatenate(raw))
    np.save(cache_dir / "sub.npy", np.concatenate(sub))


def full_resolution(data_dir: Path, rows: np.ndarray) -> np.ndarray:
    """Full-resolution wavefields of cache rows (shards in order, then the held-out file)."""
    files = shard_files(data_dir)
    sizes = []
    for path in files:
        with netCDF4.Dataset(path) as handle:
            sizes.append(handle.dimensions["sample"].size)
    starts = np.cumsum([0, *sizes])
    out = np.empty((len(rows), *read_wavefields(files[0], [0]).shape[1:]), np.float32)
    for k, row in enumerate(rows):
        f = int(np.searchsorted(starts, row, side="right") - 1)
        out[k] = read_wavefields(files[f], [row - starts[f]])[0]
    return out


def condition(kind: str, x: np.ndarray, n_train: int) -> np.ndarray:
    """Scale pooled inputs `x` (N, T, S, C) whose first `n_train` rows are the training set."""
    scaling = kind.split("_")[1] if "_" in kind else "component"
    if scaling == "component":
        mean = x[:n_train].mean(axis=(0, 1, 2), dtype=np.float64)
        std = x[:n_train].std(axis=(0, 1, 2), dtype=np.float64)
        return ((x - mean) / std).astype(np.float32)
    if scaling == "sensor":  # RMS about zero: the (full-resolution) difference has zero mean
        rms = np.sqrt(np.mean(np.square(x[:n_train], dtype=np.float64), axis=(0, 1)))
        return (x / rms).astype(np.float32)
    if scaling == "trace":
        rms = np.sqrt(np.mean(np.square(x, dtype=np.float64), axis=1, keepdims=True))
        return (x / np.where(rms > 0, rms, 1.0)).astype(np.float32)
    raise ValueError(f"unknown conditioning {kind!r}")


def inputs(args, rows: np.ndarray, n_train: int) -> np.ndarray:
    """Conditioned, pooled inputs of `rows` (training rows first)."""
    reference = args.cond.split("_")[0]
    if reference == "mean":
        full = full_resolution(args.data_dir, rows)
        mean = full[:n_train].mean(axis=0, dtype=np.float64).astype(np.float32)
        pooled = pool_time(full - mean)
    else:
        pooled = np.asarray(np.load(args.cache_dir / f"{reference}.npy", mmap_mode="r")[rows])
    return condition(args.cond, pooled, n_train)


def split_rows(box: np.ndarray, sample: np.ndarray, nval: int, ntrain: int,
               heldout_start: int) -> tuple[np.ndarray, ...]:
    """Cache rows (train sorted, val, test, held-out) of the samples with a crack: those below
    `heldout_start` permuted with `default_rng(0)`, the first `nval` val, the next `nval`
    test, the first `ntrain` of the rest train; those from `heldout_start` on held out."""
    cracked = ~np.isnan(box).any(axis=1)
    perm = np.random.default_rng(0).permutation(np.flatnonzero((sample < heldout_start) & cracked))
    held = np.flatnonzero((sample >= heldout_start) & cracked)
    return np.sort(perm[2 * nval:][:ntrain]), perm[:nval], perm[nval:2 * nval], held


@torch.no_grad()
def predict(model, x: np.ndarray, batch: int = 64) -> np.ndarray:
    model.eval()
    return torch.cat([model(torch.from_numpy(x[i:i + batch]))
                      for i in range(0, len(x), batch)]).double().numpy()


def run(args) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    box = np.load(args.cache_dir / "box.npy").astype(np.float32)
    train, val, test, held = split_rows(box, np.load(args.cache_dir / "sample.npy"), args.nval,
                                        args.ntrain, args.heldout_start)
    rows = np.concatenate([train, val, test, held])
    x = inputs(args, rows, len(train))
    part = np.split(np.arange(len(rows)), np.cumsum([len(train), len(val), len(test)]))
    x_train, x_val, x_test, x_held = (x[p] for p in part)
    del x

    model = MicroCrackPointNet(n_time=x_train.shape[1], input_pool=1, dropout=args.dropout,
                               box_output=args.box_output)
    loss_fn = make_loss(args.loss)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps = int(np.ceil(len(train) / args.batch_size))
    total, warmup = steps * args.epochs, round(steps * args.warmup)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: min(1.0, (k + 1) / max(warmup, 1))
                                                 * 0.5 * (1 + np.cos(np.pi * min(k, total) / total)))
    history, best = [], (-1.0, None, None)
    for epoch in range(args.epochs):
        tic = time.perf_counter()
        model.train()
        order = np.random.default_rng(args.seed * 1000 + epoch).permutation(len(train))
        total_loss = 0.0
        for i in range(0, len(order), args.batch_size):
            batch = order[i:i + args.batch_size]
            if len(batch) < 2:  # BatchNorm needs two samples
                continue
            loss = loss_fn(model(torch.from_numpy(x_train[batch])), torch.from_numpy(box[train[batch]]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total_loss += loss.item() * len(batch)
        pred = predict(model, x_val)
        val_iou = float(box_iou(np.clip(pred, 0, 1), box[val]).mean())
        history.append({"epoch": epoch + 1, "train_loss": total_loss / len(order),
                        "val_loss": float(loss_fn(torch.from_numpy(pred), torch.from_numpy(box[val].astype(np.float64)))),
                        "val_iou": val_iou, "seconds": time.perf_counter() - tic})
        print(json.dumps(history[-1]), flush=True)
        if val_iou > best[0]:
            best = (val_iou, epoch + 1, copy.deepcopy(model.state_dict()))
    model.load_state_dict(best[2])
    scores = {}
    for name, xs, ys in (("test", x_test, test), ("heldout", x_held, held)):
        iou = box_iou(np.clip(predict(model, xs), 0, 1), box[ys])
        scores[name] = {"iou": float(iou.mean()), "ci95": bootstrap_ci(iou), "n": int(len(iou))}
    options = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
               if k not in ("command", "out")}
    result = {"options": options, "best_epoch": best[1], "val_iou": best[0], **scores,
              "history": history}
    print(json.dumps({k: result[k] for k in ("best_epoch", "val_iou", "test", "heldout")}))
    if args.out:
        with open(args.out, "a") as handle:
            handle.write(json.dumps(result) + "\n")
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("cache", "run"))
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--cache-dir", type=Path, required=True)
    parser.add_argument("--cond", default="raw", help="raw|sub|mean, optionally _sensor|_trace")
    parser.add_argument("--loss", default="mse", help="a box loss of model.losses")
    parser.add_argument("--box-output", default="corners", choices=("corners", "centre_size"))
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up epochs")
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--ntrain", type=int, default=400)
    parser.add_argument("--nval", type=int, default=200)
    parser.add_argument("--heldout-start", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--out", help="append the result as one JSON line to this file")
    args = parser.parse_args(argv)
    if args.command == "cache":
        build_cache(args.data_dir, args.cache_dir)
    else:
        run(args)


if __name__ == "__main__":
    main()
