"""Batched prediction with a model (boxes `(N, 4)` or mask logits `(N, H, W)`)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset


def resolve_device(name: str) -> torch.device:
    """"auto" -> CUDA when available, else CPU; "cpu"/"cuda" as given (cuda checked)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but no CUDA device is available")
    return torch.device(name)


def make_loader(dataset: Dataset, batch_size: int, workers: int, device: torch.device,
                generator: torch.Generator | None = None) -> DataLoader:
    """A DataLoader; shuffled (by `generator`) when a generator is given."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=generator is not None,
                      generator=generator, num_workers=workers,
                      pin_memory=device.type == "cuda")


@torch.no_grad()
def predict(model: nn.Module, loader: DataLoader, device: torch.device) -> np.ndarray:
    """The raw output float64 for every item of `loader`, in order (eval mode): boxes
    `(N, 4)` or, for a mask model, logits `(N, H, W)`."""
    model.eval()
    out = [model(x.to(device, non_blocking=True)).double().cpu() for x, _ in loader]
    return torch.cat(out).numpy() if out else np.zeros((0, 4))


@torch.no_grad()
def predict_embedded(model: nn.Module, loader: DataLoader,
                     device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """`predict` of a model with `forward_embedded` (a crack-set model): its raw output and
    its embeddings `(N, D)`, float64, in the order of `loader`."""
    model.eval()
    raw, embedding = [], []
    for x, _ in loader:
        out, emb = model.forward_embedded(x.to(device, non_blocking=True))
        raw.append(out.double().cpu())
        embedding.append(emb.double().cpu())
    if not raw:
        raise ValueError("nothing to predict: the loader is empty")
    return torch.cat(raw).numpy(), torch.cat(embedding).numpy()
