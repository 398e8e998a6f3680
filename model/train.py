"""Training loop: AdamW + LR schedule, early stopping, per-epoch checkpoints, bit-exact resume.

Reproducibility: torch is seeded once from `seed`; epoch `e` shuffles with its own generator
seeded `seed + e`; deterministic algorithms are requested; the global torch (and CUDA) RNG
state, optimizer, scheduler and early-stopping state are checkpointed after every epoch, so
`resume=True` continues to the same final weights as an uninterrupted run on the same
machine and thread count. The data pipeline draws no torch random numbers: the training-set
augmentation (`augment_snr_db`, `augment_dead_sensors`; model.augment) is seeded by
`(seed, epoch, sample)`.

Box models (`target = "box"`) learn the key-point boxes; mask models (`target = "mask"`,
e.g. densenet1d) learn the 16x16 `crack_mask` with a mask loss. One loop serves both: the
dataset yields the model's target, and validation always reports the box IoU (for a mask
model, of the box around its mask thresholded at 0.5) so the history compares across models.
Crack-set models (`target = "cracks"`, e.g. crackset) learn every crack of a sample from the
per-crack labels, uncracked plates included; their `val_iou` is the mean matched IoU of the
true cracks (`model.crackset_scoring.matched_iou`). When such a training finishes, the
embeddings of its training plates under the best weights are summarised as a Gaussian
(`model.novelty.fit_distribution`) and stored as the checkpoint's `novelty`: evaluation
measures how far a new plate lies from them.

Outputs in `out_dir`: `checkpoint.pt` (see model.checkpoint), `history.csv` (epoch,
train_loss, val_loss, val_iou, lr, seconds), `summary.txt` (layer summary).
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from model.augment import Augmentation, augmentation
from model.baselines.imaging import imaging_geometry
from model.checkpoint import (load_checkpoint, model_from_checkpoint, save_checkpoint,
                              training_mismatch)
from model.data import (SCALINGS, ShardIndex, WavefieldDataset, load_labels, mean_wavefield,
                        normalisation_stats, read_reference, read_split, target_samples)
from model.inference import make_loader, predict, predict_embedded, resolve_device
from model.io import DataError, write_text_atomic
from model.keypoints import predicted_mask_boxes
from model.losses import BOX_LOSSES, CRACK_LOSSES, DEFAULT_LOSS, MASK_LOSSES, make_loss
from model.metrics import box_iou
from model.nets import ARCHITECTURES, build_model, model_target
from model.nets.summary import format_summary, parameter_counts
from model.novelty import fit_distribution

SCHEDULERS = ("cosine", "plateau")
HISTORY_FIELDS = ("epoch", "train_loss", "val_loss", "val_iou", "lr", "seconds")
IDENTITY_STATS = {"mean": [0.0, 0.0], "std": [1.0, 1.0], "scaling": "component"}


@dataclass
class TrainConfig:
    """Training options (stored in the checkpoint)."""

    arch: str = "microcrackpointnet"
    arch_kwargs: dict = field(default_factory=dict)
    epochs: int = 200              # paper §3.12
    batch_size: int = 16           # the measured recipe (docs/model.md), from here to warm-up
    lr: float = 2e-3               # AdamW learning rate
    weight_decay: float = 1e-4     # AdamW decoupled weight decay
    loss: str = "auto"             # auto (model.losses.DEFAULT_LOSS per target) | LOSSES
    huber_delta: float = 1.0
    bce_weight: float = 1.0        # bce_dice: weight of the binary cross-entropy
    dice_weight: float = 1.0       # bce_dice: weight of 1 - soft Dice
    scheduler: str = "cosine"      # cosine (to 0 over `epochs`) | plateau (x0.5)
    patience: int = 20             # epochs without a better val loss before stopping
    seed: int = 0
    device: str = "auto"
    workers: int = 0               # DataLoader worker processes
    reference: str = "auto"        # none | subtract (pristine) | mean (training mean) | auto
    scaling: str = "sensor"        # component | sensor | trace (model.data.condition)
    warmup_epochs: float = 1.0     # linear LR warm-up (cosine schedule), in epochs
    cache: bool = True             # keep conditioned inputs in memory after the first epoch
    augment_snr_db: list[float] = field(default_factory=list)  # [] off | [S] | [low, high] dB
    augment_dead_sensors: int = 0  # training samples: 0 to this many sensors zeroed per epoch

    def validate(self, target: str = "box") -> None:
        """ValueError naming the first bad option (`target`: what the model predicts)."""
        allowed = {"box": BOX_LOSSES, "mask": MASK_LOSSES, "cracks": CRACK_LOSSES}[target]
        if self.loss != "auto" and self.loss not in allowed:
            raise ValueError(f"loss {self.loss!r} does not fit a {target} model ({self.arch}); "
                             f"choose one of {allowed}")
        if self.scaling not in SCALINGS:
            raise ValueError(f"scaling must be one of {SCALINGS}, got {self.scaling!r}")
        if self.warmup_epochs < 0 or (self.warmup_epochs and self.scheduler != "cosine"):
            raise ValueError(f"warmup_epochs must be >= 0, and 0 with the plateau scheduler "
                             f"(got {self.warmup_epochs} with {self.scheduler!r}: pass "
                             f"--warmup-epochs 0)")
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler must be one of {SCHEDULERS}, got {self.scheduler!r}")
        for name in ("epochs", "batch_size", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.weight_decay < 0 or self.workers < 0:
            raise ValueError("lr must be > 0, weight_decay and workers >= 0")
        self.augmentation()
        self.loss_fn(target)

    def augmentation(self) -> Augmentation | None:
        """The training-set augmentation of `augment_*` (model.augment), None when off;
        ValueError naming a bad value."""
        return augmentation(self.augment_snr_db, self.augment_dead_sensors, self.seed)

    def loss_fn(self, target: str = "box"):
        """The training loss for a model predicting `target` ("auto" -> DEFAULT_LOSS)."""
        name = DEFAULT_LOSS[target] if self.loss == "auto" else self.loss
        return make_loss(name, self.huber_delta, self.bce_weight, self.dice_weight)


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA) and ask for deterministic kernels."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def write_history(history: list[dict], path: Path) -> None:
    """The per-epoch log as CSV (atomic rewrite)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=HISTORY_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    write_text_atomic(buffer.getvalue(), path)


def cosine_factor(step: int, total: int, warmup: int) -> float:
    """LR factor at optimiser step `step` (0-based): linear warm-up from 1/warmup to 1 over
    `warmup` steps, then half a cosine from 1 to 0 over the remaining `total - warmup`."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * min(step - warmup, total - warmup) / max(total - warmup, 1)))


def _make_scheduler(config: "TrainConfig", optimizer, steps_per_epoch: int):
    """cosine: stepped after every batch (with warm-up); plateau: after every epoch."""
    if config.scheduler == "cosine":
        total = config.epochs * steps_per_epoch
        warmup = round(config.warmup_epochs * steps_per_epoch)
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, partial(cosine_factor, total=total, warmup=warmup))
    return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5,
                                                      patience=max(1, config.patience // 3))


def _train_epoch(model, loader, loss_fn, optimizer, step_scheduler, device, desc: str,
                 progress: bool) -> float:
    """One pass over `loader`; `step_scheduler` (or None) is stepped after every batch."""
    model.train()
    total, count = 0.0, 0
    bar = tqdm(loader, desc=desc, leave=False, disable=None if progress else True, unit="batch")
    for batch, (x, y) in enumerate(bar, 1):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        if not torch.isfinite(loss):  # stop before a NaN reaches the weights
            raise DataError(f"{desc}, batch {batch}: the training loss is {loss.item()} "
                            "(diverged, or non-finite inputs); try a lower --lr")
        loss.backward()
        optimizer.step()
        if step_scheduler is not None:
            step_scheduler.step()
        total += loss.item() * len(x)
        count += len(x)
        bar.set_postfix(loss=f"{loss.item():.4g}")
    return total / count


def predicted_boxes(pred: np.ndarray, target: str, box_rule: str,
                    threshold: float = 0.5) -> np.ndarray:
    """Boxes `(N, 4)` from a model's raw output: box models' as they are; a mask model's
    logits `(N, H, W)` -> the box (by the labels' `box_rule`) of `sigmoid >= threshold`
    (zeros when the mask is empty)."""
    if target == "box":
        return pred
    return predicted_mask_boxes(1.0 / (1.0 + np.exp(-pred)) >= threshold, box_rule)


def _validate(model, loader, loss_fn, device, box_rule: str) -> tuple[float, float]:
    """(loss, mean box IoU of the predictions clipped to the plate) on a loader; a mask
    model's mask is boxed by the labels' `box_rule`; a crack-set model's IoU is the mean
    matched IoU of the true cracks."""
    dataset = loader.dataset
    pred = predict(model, loader, device)
    if dataset.target == "cracks":
        from model.crackset_scoring import matched_iou

        loss = loss_fn(torch.from_numpy(pred), torch.from_numpy(dataset.cracks.astype(np.float64)))
        return float(loss), matched_iou(model, pred, dataset.cracks)
    true = dataset.boxes if dataset.masks is None else dataset.masks
    loss = float(loss_fn(torch.from_numpy(pred), torch.from_numpy(np.asarray(true, np.float64))))
    boxes = predicted_boxes(pred, dataset.target, box_rule)
    return loss, float(box_iou(np.clip(boxes, 0, 1), np.asarray(dataset.boxes, np.float64)).mean())


def _fit_closed_form(model, train_set, val_set, loss_fn, base: dict) -> dict:
    """Fit a model with `fit_boxes` (e.g. MeanBox) from the training boxes; one history row."""
    start = time.perf_counter()
    model.fit_boxes(torch.from_numpy(train_set.boxes))
    rows = []
    for dataset in (train_set, val_set):
        true = torch.from_numpy(dataset.boxes).double()
        pred = model(torch.zeros(len(true), 1)).double()  # needs the batch size only
        rows.append((float(loss_fn(pred, true)),
                     float(box_iou(np.clip(pred.numpy(), 0, 1), true.numpy()).mean())))
    history = [{"epoch": 1, "train_loss": rows[0][0], "val_loss": rows[1][0],
                "val_iou": rows[1][1], "lr": 0.0, "seconds": time.perf_counter() - start}]
    weights = copy.deepcopy(model.state_dict())
    return {**base, "model": weights, "best_model": weights, "epoch": 1, "history": history,
            "finished": True}


def input_stamp(paths: list[str]) -> list[list]:
    """(path, size, mtime_ns) of each input file: a resumable state is only valid for them."""
    stamps = []
    for p in paths:
        st = os.stat(p) if os.path.exists(p) else None     # a missing file is reported later
        stamps.append([str(p), st and st.st_size, st and st.st_mtime_ns])
    return stamps


def matching_state(path: Path, config: TrainConfig, stamp: list[list]) -> dict | None:
    """The training state at `path` if it was written for the same options and inputs."""
    if not path.exists():
        return None
    try:
        state = load_checkpoint(path)
    except DataError as err:  # a cache: a damaged one is rebuilt
        print(f"warning: {err}; training from scratch", file=sys.stderr, flush=True)
        return None
    differs = training_mismatch(state, asdict(config), stamp)
    if differs is None:
        print(f"resuming from {path} after epoch {state['epoch']}", flush=True)
        return state
    print(f"{path} was written for other options or inputs ({differs}); training from scratch",
          flush=True)
    return None


def training_reference(kind: str, index: ShardIndex, train_ids: np.ndarray,
                       pristine: str | None) -> np.ndarray | None:
    """The wavefield subtracted from every input `(time, sensor, component)` [m], or None:
    the pristine plate (`subtract`) or the mean over the training samples (`mean`); `auto`
    is `subtract` when a pristine file is given, else `mean` (measured: the pristine plate
    is the better reference, docs/model.md)."""
    if kind == "auto":
        kind = "mean" if pristine is None else "subtract"
    if kind == "subtract":
        return read_reference(pristine, index.wave_shape, index)
    if kind == "mean":
        return mean_wavefield(index, train_ids)
    return None


def shard_geometry(arch: str, arch_kwargs: dict, index: ShardIndex) -> dict:
    """`{"geometry": ...}` of the first shard (`imaging_geometry`) for an architecture that
    focuses with it (`uses_geometry`) unless `arch_kwargs` gives one; else `{}`."""
    if not getattr(ARCHITECTURES.get(arch), "uses_geometry", False) or "geometry" in arch_kwargs:
        return {}
    return {"geometry": imaging_geometry(index.paths[0])}


def train(data: list[str], labels: list[str], split: str, out_dir: str | os.PathLike,
          config: TrainConfig, pristine: str | None = None, resume: bool = False,
          stop_after: int | None = None, progress: bool = True,
          state_path: str | os.PathLike | None = None) -> dict:
    """Train `config.arch` on the split's training samples; return the final checkpoint dict.

    `stop_after` ends this run after that many completed epochs (e.g. a job's time limit),
    leaving a checkpoint that `resume=True` continues from. With `state_path`, the per-epoch
    state goes there instead of `out_dir/checkpoint.pt` and a run continues from it when it
    was written for the same options and input files (a workflow can keep it while deleting
    a failed job's outputs); the final checkpoint is then copied to `out_dir`.
    """
    out_dir = Path(out_dir)
    ckpt_path = out_dir / "checkpoint.pt"
    stamp = input_stamp([*data, *labels, split] + ([pristine] if pristine else []))
    if state_path is not None:
        ckpt_path = Path(state_path)
        state = matching_state(ckpt_path, config, stamp)
    else:
        state = load_checkpoint(ckpt_path) if resume and ckpt_path.exists() else None
        differs = None if state is None else training_mismatch(state, asdict(config), stamp)
        if differs:
            raise DataError(f"--resume: {ckpt_path} was written for other options or inputs: "
                            f"{differs}; train into another --out-dir or repeat its options")
    if state is not None:
        config = TrainConfig(**state["config"])
    if config.reference == "subtract" and pristine is None and state is None:
        raise DataError("reference 'subtract' needs a pristine reference file (--pristine)")
    seed_everything(config.seed)
    device = resolve_device(config.device)
    index = ShardIndex.build(data)
    model = build_model(config.arch, **config.arch_kwargs,
                        **shard_geometry(config.arch, config.arch_kwargs, index)).to(device)
    target = model_target(model)
    config.validate(target)
    closed_form = hasattr(model, "fit_boxes")

    label_set = load_labels(labels)
    split_dict = read_split(split, label_set)
    index.check_labels(label_set)
    train_ids = target_samples(split_dict, "train", label_set, target)
    val_ids = target_samples(split_dict, "val", label_set, target)
    if len(train_ids) == 0 or len(val_ids) == 0:
        raise DataError(f"split {split}: training ({len(train_ids)}) and validation "
                        f"({len(val_ids)}) subsets both need samples with a crack")

    if state is not None:
        reference = None if state["reference"] is None else state["reference"].numpy()
        stats = state["stats"]
    else:
        all_train = np.asarray(split_dict["train"], dtype=np.int64)
        reference = None if closed_form else training_reference(config.reference, index,
                                                                 all_train, pristine)
        stats = (IDENTITY_STATS if closed_form else
                 normalisation_stats(index, all_train, reference, config.scaling))
    augment = config.augmentation()
    if augment is not None:
        augment.check(index.wave_shape[1])
    train_set = WavefieldDataset(index, train_ids, label_set, stats, reference, target,
                                 config.cache, augment=augment)
    val_set = WavefieldDataset(index, val_ids, label_set, stats, reference, target, config.cache)
    loss_fn = config.loss_fn(target)

    out_dir.mkdir(parents=True, exist_ok=True)
    summary = format_summary(model, (1, *index.wave_shape))
    write_text_atomic(summary + "\n", out_dir / "summary.txt")
    if progress:
        print(summary, flush=True)
    base = {
        "config": asdict(config), "arch": config.arch, "target": target,
        "hyperparameters": model.hyperparameters(), "stats": stats,
        "reference": None if reference is None else torch.from_numpy(reference),
        "data": {"shards": index.paths, "labels": label_set.paths, "split": str(split)},
        "params": parameter_counts(model), "inputs": stamp,
        "setup_hash": index.setup_hash, "setup": index.setup, "box_rule": label_set.box_rule,
    }

    try:
        if closed_form:
            state = _fit_closed_form(model, train_set, val_set, loss_fn, base)
            save_checkpoint(state, out_dir / "checkpoint.pt")
            write_history(state["history"], out_dir / "history.csv")
        else:
            state = _fit_gradient(model, train_set, val_set, loss_fn, config, device, base,
                                  state, out_dir, ckpt_path, stop_after, progress)
            if state["finished"] and hasattr(model, "forward_embedded") and "novelty" not in state:
                train_set.close()
                val_set.close()
                if progress:
                    print(f"distance to training: embedding the {len(train_ids)} training "
                          "plates (model.novelty)", flush=True)
                plain = WavefieldDataset(index, train_ids, label_set, stats, reference, target)
                state["novelty"] = training_distribution(state, plain, config, device)
                save_checkpoint(state, ckpt_path)
            if ckpt_path != out_dir / "checkpoint.pt" and state["finished"]:
                save_checkpoint(state, out_dir / "checkpoint.pt")
                ckpt_path.unlink()
    finally:
        train_set.close()
        val_set.close()
    return state


def training_distribution(state: dict, train_set: WavefieldDataset, config: TrainConfig,
                          device) -> dict:
    """The checkpoint's `novelty`: `model.novelty.fit_distribution` of the embeddings of
    `train_set`'s samples (a dataset without augmentation; closed here) under `state`'s
    best weights, as tensors (`mean` `(D,)`, `precision` `(D, D)`) and `plates`."""
    model = model_from_checkpoint(state).to(device)
    try:
        loader = make_loader(train_set, config.batch_size, config.workers, device)
        _, embedding = predict_embedded(model, loader, device)
    finally:
        train_set.close()
    fit = fit_distribution(embedding)
    return {"mean": torch.from_numpy(fit["mean"]), "precision": torch.from_numpy(fit["precision"]),
            "plates": fit["plates"]}


def _fit_gradient(model, train_set, val_set, loss_fn, config: TrainConfig, device, base: dict,
                  state: dict | None, out_dir: Path, ckpt_path: Path, stop_after: int | None,
                  progress: bool) -> dict:
    """Epoch loop with AdamW, schedule and early stopping, from scratch or from `state`."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = _make_scheduler(config, optimizer, math.ceil(len(train_set) / config.batch_size))
    per_batch = scheduler if config.scheduler == "cosine" else None
    history: list[dict] = []
    stopping = {"best_val": float("inf"), "best_epoch": 0, "bad_epochs": 0}
    best_model = copy.deepcopy(model.state_dict())
    start_epoch, finished = 0, False
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"])
        history, stopping = state["history"], state["early_stopping"]
        best_model, start_epoch, finished = state["best_model"], state["epoch"], state["finished"]

    for epoch in range(start_epoch, config.epochs):
        if finished or (stop_after is not None and epoch >= stop_after):
            break
        tic = time.perf_counter()
        generator = torch.Generator().manual_seed(config.seed + epoch)
        train_set.epoch = epoch  # the augmentation's draw (model.augment); read by workers too
        train_loader = make_loader(train_set, config.batch_size, config.workers, device, generator)
        val_loader = make_loader(val_set, config.batch_size, config.workers, device)
        lr = optimizer.param_groups[0]["lr"]
        train_loss = _train_epoch(model, train_loader, loss_fn, optimizer, per_batch, device,
                                  f"epoch {epoch + 1}/{config.epochs}", progress)
        val_loss, val_iou = _validate(model, val_loader, loss_fn, device, base["box_rule"])
        if per_batch is None:
            scheduler.step(val_loss)
        history.append({"epoch": epoch + 1, "train_loss": train_loss, "val_loss": val_loss,
                        "val_iou": val_iou, "lr": lr, "seconds": time.perf_counter() - tic})
        if val_loss < stopping["best_val"]:
            stopping = {"best_val": val_loss, "best_epoch": epoch + 1, "bad_epochs": 0}
            best_model = copy.deepcopy(model.state_dict())
        else:
            stopping["bad_epochs"] += 1
        finished = stopping["bad_epochs"] >= config.patience or epoch + 1 == config.epochs
        if progress:
            tqdm.write(json.dumps({k: round(v, 6) for k, v in history[-1].items()}))
        state = {**base, "model": model.state_dict(), "best_model": best_model,
                 "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                 "rng": _rng_state(), "epoch": epoch + 1, "history": history,
                 "early_stopping": stopping, "finished": finished}
        save_checkpoint(state, ckpt_path)
        write_history(history, out_dir / "history.csv")
    return state
