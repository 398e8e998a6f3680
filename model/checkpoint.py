"""Training checkpoints: atomic save, checked load, and rebuilding the model they hold.

A checkpoint is a dict of tensors and plain Python values (loadable with
`torch.load(weights_only=True)`): `config` (training options), `arch`, `target` ("box" or
"mask"; absent in checkpoints from before mask models, meaning "box"), `hyperparameters`,
`stats` (normalisation mean/std per component, m), `reference` (pristine wavefield or None),
`model`, `best_model`, `optimizer`, `scheduler`, `rng`, `epoch` (completed), `history`,
`early_stopping`, `finished`, `params`.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from model.io import DataError, atomic_path
from model.nets import build_model

REQUIRED_KEYS = ("config", "arch", "hyperparameters", "stats", "model", "best_model",
                 "epoch", "history")


def save_checkpoint(state: dict, path: str | os.PathLike) -> None:
    """torch.save through a temporary file and os.replace."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint on the CPU; DataError if missing, unreadable or incomplete."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise DataError(f"checkpoint {path} is not a readable torch checkpoint: {err}") from err
    missing = [key for key in REQUIRED_KEYS if key not in state]
    if missing:
        raise DataError(f"checkpoint {path} lacks {missing}; was it written by model.train?")
    return state


def model_from_checkpoint(state: dict, weights: str = "best_model") -> nn.Module:
    """Rebuild the checkpoint's network with `weights` ("best_model" or "model"), in eval mode."""
    model = build_model(state["arch"], **state["hyperparameters"])
    model.load_state_dict(state[weights])
    return model.eval()
