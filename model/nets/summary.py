"""Layer-by-layer summary of a network: output shapes and parameter counts.

Counts follow Keras' convention so they compare with the paper's Table 3: "trainable" are
the PyTorch parameters that require gradients; "non-trainable" are frozen parameters plus
BatchNorm running means and variances (Keras keeps those as non-trainable weights).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def _running_stats(module: nn.Module) -> int:
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
        return module.running_mean.numel() + module.running_var.numel()
    return 0


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """`{"trainable", "non_trainable", "total"}` parameter counts (Keras convention)."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    non_trainable = frozen + sum(_running_stats(m) for m in model.modules())
    return {"trainable": trainable, "non_trainable": non_trainable,
            "total": trainable + non_trainable}


def layer_summary(model: nn.Module, input_shape: Sequence[int]) -> list[dict]:
    """One row per leaf module in call order: name, type, output shape, params.

    Runs one forward pass (eval mode, no gradient) on zeros of `input_shape` (batch included).
    """
    rows: list[dict] = []
    hooks = []
    for name, module in model.named_modules():
        if next(module.children(), None) is not None:
            continue

        def record(mod, _inputs, output, name=name):
            rows.append({
                "name": name,
                "type": type(mod).__name__,
                "output_shape": tuple(output.shape[1:]),
                "params": sum(p.numel() for p in mod.parameters()) + _running_stats(mod),
            })
        hooks.append(module.register_forward_hook(record))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            device = next(iter(model.buffers()), torch.empty(0)).device
            model(torch.zeros(*input_shape, device=device))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return rows


def format_summary(model: nn.Module, input_shape: Sequence[int], markdown: bool = False) -> str:
    """The layer summary as an aligned text (or Markdown) table with the totals below it.

    Output shapes exclude the batch; PyTorch layout `(C, T, S)` inside the network.
    """
    rows = layer_summary(model, input_shape)
    counts = parameter_counts(model)
    header = ("layer", "type", "output shape", "params")
    body = [(r["name"], r["type"], str(r["output_shape"]), f"{r['params']:,}") for r in rows]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|---|---|---|---:|"]
        lines += ["| " + " | ".join(row) + " |" for row in body]
    else:
        widths = [max(len(row[i]) for row in [header, *body]) for i in range(4)]
        fmt = "  ".join(f"{{:{'>' if i == 3 else '<'}{w}}}" for i, w in enumerate(widths))
        lines = [fmt.format(*header), "-" * (sum(widths) + 6)]
        lines += [fmt.format(*row) for row in body]
    lines += ["", f"layers (leaf modules): {len(rows)}",
              f"trainable params: {counts['trainable']:,}",
              f"non-trainable params (BatchNorm running mean/var): {counts['non_trainable']:,}",
              f"total params: {counts['total']:,}"]
    return "\n".join(lines)
