"""Training checkpoints: atomic save, checked load, and rebuilding the model they hold.

A checkpoint is a dict of tensors and plain Python values (loadable with
`torch.load(weights_only=True)`): `config` (training options), `arch`, `target` ("box" or
"mask"; absent in checkpoints from before mask models, meaning "box"), `hyperparameters`,
`stats` (normalisation mean/std per component, m), `reference` (pristine wavefield or None),
`model`, `best_model`, `optimizer`, `scheduler`, `rng`, `epoch` (completed), `history`,
`early_stopping`, `finished`, `params`, `inputs` (path, size, mtime of each input file),
`setup_hash` and `setup` (the set-up hash and canonical set-up JSON of the shards it was
trained on, docs/data-format.md; absent in checkpoints from before provenance), and for a
crack-set model `novelty` (`mean` `(D,)`, `precision` `(D, D)` of its training plates'
embeddings and their number `plates`, `model.novelty`; absent in older checkpoints, whose
evaluations then report no distance).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from model.io import DataError, allowed_changes, atomic_path, setup_difference
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


def training_mismatch(state: dict, config: dict, stamp: list[list]) -> str | None:
    """What differs between a saved training `state` and a run asked for with options
    `config` (a dict) and input stamp `stamp` (`model.train.input_stamp`), one line; None
    when they match. Names the options (saved -> asked) and the input files (another file,
    or the same path with another size or time)."""
    saved_cfg = state.get("config") or {}
    options = [f"{k}: {saved_cfg.get(k)!r} -> {config.get(k)!r}"
               for k in sorted(set(saved_cfg) | set(config)) if saved_cfg.get(k) != config.get(k)]
    saved = [list(s) for s in state.get("inputs") or []]
    inputs = []
    if saved != [list(s) for s in stamp]:
        old = {s[0]: s[1:] for s in saved}
        new = {s[0]: s[1:] for s in stamp}
        inputs += [f"{p} not given now" for p in old if p not in new]
        inputs += [f"{p} not used before" for p in new if p not in old]
        inputs += [f"{p} changed (size or time)" for p in new if p in old and old[p] != new[p]]
        inputs = inputs or ["the input files are given in another order"]
    parts = ([f"options differ ({'; '.join(options)})"] if options else []) + \
            ([f"inputs differ ({'; '.join(inputs)})"] if inputs else [])
    return ", ".join(parts) or None


def check_setup(state: dict, setup_hash: str, setup: str | None, data: str,
                source: str | os.PathLike = "checkpoint",
                allow: Sequence[str] = ()) -> dict[str, list]:
    """DataError unless the checkpoint `state` was trained on shards of set-up `setup_hash`
    (those of `data`, named in the message): the differing set-up sections are named; a
    checkpoint from before provenance (no `setup_hash`) is refused, asking for retraining.

    `allow`: set-up paths (`plate.youngs_modulus`, model.io.allowed_changes) that may differ,
    e.g. to score a model on a plate whose material has changed; returns the differences
    `{path: [trained value, scored value]}` ({} for the same set-up). Anything else that
    differs is still refused."""
    if not isinstance(state.get("setup_hash"), str):
        raise DataError(f"{source} does not record the set-up it was trained on (written "
                        "before provenance); train it again with `python -m model train`")
    if state["setup_hash"] == setup_hash:
        return {}
    changes, note = allowed_changes(state.get("setup"), setup, allow)
    if changes is not None:
        return changes
    raise DataError(f"{data} has set-up {setup_hash[:12]}, {source} was trained on "
                    f"{state['setup_hash'][:12]}: the model does not apply (differing "
                    f"sections: {setup_difference(setup, state.get('setup'))}){note}")


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
