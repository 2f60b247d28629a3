"""A PNG of a few trajectories of a data set: velocity model and snapshots."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .._io import atomic_write
from .data import WaveData

__all__ = ["plot_preview"]


def plot_preview(data: WaveData, path: str | os.PathLike, trajectories: int = 3, frames: int = 5) -> Path:
    """Write a grid of images: one row per trajectory, the velocity then ``frames`` snapshots.

    Snapshots share a symmetric colour scale per row; written atomically.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    rows = min(trajectories, len(data))
    T = data.frames_per_trajectory
    times = np.unique(np.linspace(0, T - 1, frames).round().astype(int))
    fig, axes = plt.subplots(rows, len(times) + 1, figsize=(2.2 * (len(times) + 1), 2.2 * rows), squeeze=False)
    dt = data.snapshot_dt
    for r in range(rows):
        vel = np.asarray(data.velocity(r))
        im = axes[r, 0].imshow(vel, origin="lower", cmap="viridis")
        fig.colorbar(im, ax=axes[r, 0], fraction=0.046, pad=0.04)
        axes[r, 0].set_title(f"c, trajectory {r}", fontsize=8)
        snaps = np.asarray(data.frames(r))[times]
        lim = float(np.abs(snaps).max()) or 1.0
        for j, t in enumerate(times):
            ax = axes[r, j + 1]
            ax.imshow(snaps[j], origin="lower", cmap="RdBu_r", vmin=-lim, vmax=lim)
            ax.set_title(f"t = {t * dt:.3f}", fontsize=8)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    try:
        atomic_write(path, lambda f: fig.savefig(f, dpi=110, format="png"))
    finally:
        plt.close(fig)
    return path
