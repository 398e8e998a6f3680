"""RAPID: Reconstruction Algorithm for Probabilistic Inspection of Damage.

Each source-sensor path gets a damage index from how much its signal changed against the
pristine reference; the index is spread over an ellipse around the path (foci at source and
sensor) and the ellipses are summed into a damage image (Zhao et al., Smart Mater. Struct. 16
(2007) 1208; Gao et al. 2005):

    DI_k   = 1 - rho(current_k, reference_k)                   (Pearson correlation)
    R_k(x) = (|x - tx_k| + |x - rx_k|) / |rx_k - tx_k|         (>= 1, 1 on the path)
    W_k(x) = max(0, (beta - R_k(x)) / (beta - 1))
    P(x)   = sum_k DI_k W_k(x)

``beta`` (> 1) sets the ellipse's size. No training: ``beta`` and the image threshold are
chosen on the validation split.

A path is a transmitter-receiver pair. The dataset has one transmitter (the source) and 81
receivers, so every ellipse has a focus at the source: the image localises the direction of
a crack seen from the source well and its distance poorly. With several transmitters (a
sparse array fired in turn) the ellipses cross at the damage; the algorithm is the same.
"""

from __future__ import annotations

import numpy as np


def damage_index(current: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``1 - correlation`` per sample and sensor, (N, S), both components of the traces taken
    together. ``current``: (N, time, S, 2) [m]; ``reference``: (time, S, 2) [m]."""
    cur = np.moveaxis(np.asarray(current, np.float64), 2, 1).reshape(len(current), current.shape[2], -1)
    ref = np.moveaxis(np.asarray(reference, np.float64), 1, 0).reshape(reference.shape[1], -1)
    cur = cur - cur.mean(-1, keepdims=True)
    ref = ref - ref.mean(-1, keepdims=True)
    num = (cur * ref).sum(-1)
    den = np.sqrt((cur**2).sum(-1) * (ref**2).sum(-1))
    rho = np.divide(num, den, out=np.ones_like(num), where=den > 0)
    return 1.0 - rho


def path_weights(grid: np.ndarray, tx: np.ndarray, rx: np.ndarray, beta: float) -> np.ndarray:
    """Elliptical weights (K, G) of K transmitter-receiver paths (``tx``, ``rx``: (K, 2) [m])
    at grid points (G, 2) [m]."""
    if beta <= 1:
        raise ValueError(f"RAPID shape factor beta={beta} must be > 1")
    d_tx = np.linalg.norm(grid[None] - tx[:, None], axis=2)                  # (K, G)
    d_rx = np.linalg.norm(grid[None] - rx[:, None], axis=2)                  # (K, G)
    direct = np.maximum(np.linalg.norm(rx - tx, axis=1), 1e-12)              # (K,)
    ratio = (d_tx + d_rx) / direct[:, None]
    return np.clip((beta - ratio) / (beta - 1), 0.0, None)


def rapid_images(current: np.ndarray, reference: np.ndarray, grid: np.ndarray,
                 source: np.ndarray, sensors: np.ndarray, beta: float) -> np.ndarray:
    """Damage images (N, G) on grid points (G, 2) [m] for one source (2,) and its sensors
    (S, 2): the paths are source -> each sensor."""
    tx = np.broadcast_to(source, sensors.shape)
    return damage_index(current, reference) @ path_weights(grid, tx, sensors, beta)
