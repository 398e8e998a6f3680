"""Figures of a simulated sample: sensor traces with the crack label, wavefield snapshots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.tri import Triangulation

from .files import atomic_file
from .inspect import open_shard


def _figure(**kwargs) -> Figure:
    """A figure drawn by its own Agg canvas, outside pyplot (the caller's backend stays)."""
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, out: str | Path, dpi: int) -> None:
    """`fig` as a PNG at `out`, through a temporary file (`dlem.files.atomic_file`)."""
    with atomic_file(out) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)


def _crack_paths(ds, s: int) -> list[np.ndarray]:
    """Vertex arrays [mm] of the sample's cracks, closed for the area geometries."""
    families = json.loads(ds.attrs["crack_families"])
    paths = []
    for params, verts in zip(ds["crack_params"].values[s], ds["crack_vertices"].values[s]):
        v = verts[~np.isnan(verts[:, 0])] * 1e3
        if len(v):
            closed = families[int(params[0])] in ("rectangle", "ellipse")
            paths.append(np.vstack([v, v[:1]]) if closed else v)
    return paths


def _draw_plate(ax, ds, s: int) -> None:
    """Crack mask (cells), crack paths, sensors and sources on plate axes [mm]."""
    w, h = ds.attrs["plate_width"] * 1e3, ds.attrs["plate_height"] * 1e3
    mask = ds["crack_mask"].values[s]
    ax.imshow(mask, origin="lower", extent=(0, w, 0, h), cmap="Greys", vmin=0, vmax=2,
              interpolation="nearest")
    for path in _crack_paths(ds, s):
        ax.plot(*path.T, color="crimson", lw=1.5)
    ax.plot(ds["sensor_x"] * 1e3, ds["sensor_y"] * 1e3, "^", color="tab:blue", ms=3,
            label="sensors")
    cfg = json.loads(ds.attrs["config"])
    for src in cfg["sources"]:
        ax.plot(src["x"] * 1e3, src["y"] * 1e3, "*", color="orange", ms=10, label="source")
    ax.set(xlim=(0, w), ylim=(0, h), xlabel="x [mm]", ylabel="y [mm]", aspect="equal")


def plot_traces(ds, s: int, out: str | Path) -> Path:
    """Crack label and the ux / uy traces of the middle sensor row."""
    fig = _figure(figsize=(14, 4.6))
    axes = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1.3, 1.3]})
    _draw_plate(axes[0], ds, s)
    axes[0].set_title(f"sample {int(ds['sample'][s])}: crack_size "
                      f"{ds['crack_size'].values[s] * 1e3:.2f} mm")
    axes[0].legend(loc="upper right", fontsize=7)
    t = ds["time"].values * 1e6
    n = int(np.sqrt(ds.sizes["sensor"]))
    row = np.arange(n) + n * (n // 2)
    u = ds["wavefield"].values[s]
    scale = np.abs(u[:, row]).max() or 1.0
    for ax, comp in zip(axes[1:], ("ux", "uy")):
        c = 0 if comp == "ux" else 1
        for k, sensor in enumerate(row):
            ax.plot(t, u[:, sensor, c] / scale + k, lw=0.7, color="k")
        ax.set(xlabel="time [µs]", ylabel="sensor (middle row, offset)", title=f"{comp} / {scale:.2g} m")
    fig.tight_layout()
    _save(fig, out, dpi=120)
    return Path(out)


def plot_snapshots(ds, s: int, out: str | Path, times=None) -> Path:
    """Re-simulate sample ``s`` and draw |u| over the whole lattice at a few times."""
    from . import dataset

    cfg = json.loads(ds.attrs["config"])
    index = int(ds["sample"][s])
    pristine = bool(ds.attrs.get("pristine", 0))
    st = dataset.setup(cfg)
    _, drawn = dataset.scenario(cfg, index, pristine)
    sim = dataset.simulation(st, [c for _, c in drawn])
    duration = st.n_steps * st.dt
    times = sorted(times or np.linspace(0, duration, 6)[1:-1])
    frames = []
    for t in times:
        step = min(int(round(t / st.dt)), st.n_steps)
        sim.advance(step - sim.step)
        frames.append(np.linalg.norm(sim.displacement(), axis=1))
    pts = st.lattice.points * 1e3
    tri = Triangulation(pts[:, 0], pts[:, 1])
    vmax = max(float(np.percentile(f, 99.5)) for f in frames) or 1.0
    fig = _figure(figsize=(4 * len(frames), 4.2))
    axes = fig.subplots(1, len(frames))
    for ax, t, f in zip(np.atleast_1d(axes), times, frames):
        im = ax.tripcolor(tri, f, shading="gouraud", cmap="magma", vmin=0, vmax=vmax)
        for path in _crack_paths(ds, s):
            ax.plot(*path.T, color="cyan", lw=1.2)
        ax.set(title=f"|u| at t = {t * 1e6:.1f} µs", aspect="equal", xlabel="x [mm]")
    np.atleast_1d(axes)[0].set_ylabel("y [mm]")
    fig.colorbar(im, ax=axes, shrink=0.8, label="|u| [m]")
    _save(fig, out, dpi=110)
    return Path(out)


def plot_sample(shard, s: int, traces, snapshots=None, times=None) -> list[Path]:
    with open_shard(shard) as ds:
        if not 0 <= s < ds.sizes["sample"]:
            raise ValueError(f"--sample {s} is outside the shard's {ds.sizes['sample']} samples")
        ds = ds.load()
    out = [plot_traces(ds, s, traces)]
    if snapshots:
        out.append(plot_snapshots(ds, s, snapshots, times))
    return out
