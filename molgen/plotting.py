"""Small PNG figures for training runs and the demo.

Figures are built with matplotlib's object API on the Agg canvas (no pyplot), so plotting never
needs a display and never touches matplotlib's global backend.  Image grids are written pixel
for pixel with Pillow (matplotlib's dependency) instead: axes would resample the pixels.
"""
from __future__ import annotations

import math
import os
from typing import Callable, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from .data.images import to_uint8


def scatter_png(path: str | os.PathLike, samples: torch.Tensor, reference: torch.Tensor, *,
                log_density: Callable[[torch.Tensor], torch.Tensor] | None = None,
                title: str | None = None, labels: Sequence[str] = ("data", "samples")) -> None:
    """Two panels with shared axes, reference points left and samples right, each over the
    contours of log_density (the true distribution) when it is given."""
    points = [np.asarray(reference.detach().cpu(), dtype=float),
              np.asarray(samples.detach().cpu(), dtype=float)]
    lo, hi = _limits(np.concatenate(points))
    fig = Figure(figsize=(10, 5), layout="constrained")
    axes = fig.subplots(1, 2, sharex=True, sharey=True)
    for ax, pts, label in zip(axes, points, labels):
        if log_density is not None:
            _contours(ax, log_density, lo, hi)
        ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.4, linewidths=0)
        ax.set(title=f"{label} (n={len(pts)})", xlim=(lo, hi), ylim=(lo, hi), aspect="equal")
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=100)


def loss_png(path: str | os.PathLike, steps: Sequence[int], losses: Sequence[float]) -> None:
    """Per-step loss (faint) and its running mean over ~1 % of the run, on a log scale."""
    steps, losses = np.asarray(steps), np.asarray(losses, dtype=float)
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.subplots()
    ax.plot(steps, losses, lw=0.5, alpha=0.3, label="loss")
    window = max(1, len(losses) // 100)
    if window > 1:
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        ax.plot(steps[window - 1:], smooth, lw=1.5, label=f"mean of {window}")
    ax.set(xlabel="step", ylabel="loss", yscale="log" if (losses > 0).all() else "linear")
    ax.legend()
    fig.savefig(path, dpi=100)


def image_grid_png(path: str | os.PathLike, images: torch.Tensor, ncol: int | None = None, *,
                   pad: int = 2, min_tile: int = 32) -> None:
    """Images [N, C, H, W] in [-1, 1] (C = 1 or 3) as one PNG, ncol per row (at most N;
    default: a near-square grid) on a white background with `pad` pixels between tiles.
    Each image is enlarged by the smallest integer factor that makes it at least min_tile pixels wide,
    with nearest neighbours, so that 8×8 digits are visible and pixels stay pixels."""
    from PIL import Image

    n, c, h, w = images.shape
    scale = -(-min_tile // w)
    tiles = to_uint8(images.detach().cpu())
    tiles = tiles.repeat_interleave(scale, 2).repeat_interleave(scale, 3)
    ncol = min(ncol or math.ceil(math.sqrt(n)), n)
    (th, tw), nrow = tiles.shape[2:], math.ceil(n / ncol)
    grid = torch.full((c, pad + nrow * (th + pad), pad + ncol * (tw + pad)), 255, dtype=torch.uint8)
    for i, tile in enumerate(tiles):
        top, left = pad + (i // ncol) * (th + pad), pad + (i % ncol) * (tw + pad)
        grid[:, top:top + th, left:left + tw] = tile
    pixels = grid.permute(1, 2, 0).numpy()
    Image.fromarray(pixels[..., 0] if c == 1 else pixels).save(path, format="PNG")


def _limits(points: np.ndarray) -> tuple[float, float]:
    """Square axis limits around the central 99.8 % of the points (outliers do not zoom out)."""
    lo, hi = np.percentile(points, [0.1, 99.9])
    pad = 0.1 * (hi - lo)
    return float(lo - pad), float(hi + pad)


def _contours(ax, log_density, lo: float, hi: float, resolution: int = 150) -> None:
    grid = np.linspace(lo, hi, resolution)
    xx, yy = np.meshgrid(grid, grid)
    xy = torch.from_numpy(np.stack([xx.ravel(), yy.ravel()], 1))
    logp = log_density(xy).reshape(xx.shape).numpy()
    ax.contour(xx, yy, logp, levels=np.linspace(logp.max() - 8, logp.max(), 6),
               colors="0.6", linewidths=0.6, linestyles="solid")
