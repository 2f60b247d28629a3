"""Figures of a surrogate comparison (PNG, matplotlib, no display needed)."""
from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_nrmse(curves: Mapping[str, Sequence[float]], path: str | Path, title: str = "",
               dashed: Collection[str] = ()) -> Path:
    """nRMSE against rollout step, one line per model (log scale); the curves named
    in ``dashed`` (baselines) are drawn dashed."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for name, values in curves.items():
        steps = np.arange(1, len(values) + 1)
        style = dict(ls="--", marker="s", ms=2.5, lw=1.2) if name in dashed else dict(marker="o", ms=3)
        ax.plot(steps, values, label=name, **style)
    ax.set_yscale("log")
    ax.set_xlabel("rollout step (snapshot intervals)")
    ax.set_ylabel("nRMSE")
    ax.set_title(title or "Rollout error")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_snapshots(
    truth: np.ndarray,
    predictions: Mapping[str, np.ndarray],
    steps: Sequence[int],
    path: str | Path,
    velocity: np.ndarray | None = None,
) -> Path:
    """Rows: FE truth, then per model its prediction and its error; columns:
    the chosen rollout steps (1-based).  Arrays are (S, H, W) of one sample."""
    plt = _pyplot()
    rows = 1 + 2 * len(predictions)
    cols = len(steps) + (1 if velocity is not None else 0)
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.1 * rows), dpi=110, squeeze=False)
    vmax = float(np.abs(truth).max()) or 1.0
    emax = max((float(np.abs(p[np.array(steps) - 1] - truth[np.array(steps) - 1]).max())
                for p in predictions.values()), default=1.0) or 1.0
    labels = ["FE reference"]
    data = [truth]
    for name, pred in predictions.items():
        labels += [name, f"{name} error"]
        data += [pred, pred - truth]
    for r, (label, arr) in enumerate(zip(labels, data)):
        is_err = label.endswith("error")
        for c, s in enumerate(steps):
            ax = axes[r, c]
            lim = emax if is_err else vmax
            ax.imshow(arr[s - 1], cmap="RdBu_r", vmin=-lim, vmax=lim)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"step {s}", fontsize=9)
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
        if velocity is not None:
            ax = axes[r, -1]
            if r == 0:
                im = ax.imshow(velocity, cmap="viridis")
                ax.set_title("velocity", fontsize=9)
                fig.colorbar(im, ax=ax, fraction=0.046)
            else:
                ax.axis("off")
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
