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
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise DataError(f"checkpoint {path} is not a readable torch checkpoint: {first}") from err
    if not isinstance(state, dict):
        raise DataError(f"checkpoint {path} holds a {type(state).__name__}, not a dict")
    missing = [key for key in REQUIRED_KEYS if key not in state]
    if missing:
        raise DataError(f"checkpoint {path} lacks {missing}; was it written by model.train?")
    return state


def weights_mismatch(expected: dict, given: dict) -> str | None:
    """What keeps `given` weights from loading into a model whose state dict is `expected`
    (names -> tensors): missing, unexpected and reshaped entries, one line; None if they fit."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    reshaped = [k for k in expected if k in given
                and tuple(expected[k].shape) != tuple(getattr(given[k], "shape", ()))]
    parts = [f"{len(missing)} missing (e.g. {missing[0]!r})" if missing else "",
             f"{len(unexpected)} unexpected (e.g. {unexpected[0]!r})" if unexpected else "",
             f"{len(reshaped)} of another shape (e.g. {reshaped[0]!r}: "
             f"{tuple(given[reshaped[0]].shape)}, the model has "
             f"{tuple(expected[reshaped[0]].shape)})" if reshaped else ""]
    return ", ".join(p for p in parts if p) or None


def model_from_checkpoint(state: dict, weights: str = "best_model",
                          source: str | os.PathLike = "checkpoint") -> nn.Module:
    """Rebuild the checkpoint's network with `weights` ("best_model" or "model"), in eval mode;
    DataError naming `source` (the file) when its architecture and weights disagree."""
    try:
        model = build_model(state["arch"], **state["hyperparameters"])
    except (TypeError, ValueError) as err:
        raise DataError(f"{source}: cannot build {state['arch']!r} from its hyperparameters: "
                        f"{err}") from err
    problem = weights_mismatch(model.state_dict(), state[weights])
    if problem:
        raise DataError(f"{source}: its {weights!r} weights do not fit the {state['arch']!r} "
                        f"its hyperparameters build: {problem}")
    model.load_state_dict(state[weights])
    return model.eval()
