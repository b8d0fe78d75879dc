"""Sampling many items in batches: the loop every task runs to draw its samples."""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .samplers import SamplerConfig, sample


def sample_in_batches(denoiser_for: Callable, items: Sequence, config: SamplerConfig, *,
                      layout: Callable, batch_size: int, seed: int, cond: Tensor | None = None,
                      null_cond=None, init: Callable | None = None,
                      readout: Callable | None = None, device="cpu", progress: bool = False,
                      desc: str = "sample", unit: str = "sample") -> list:
    """Draw one sample per item of `items` (atom counts, labels, conformers, ...), batch_size
    items at a time, and return the samples as a list in the order of the items.

    For each batch of items: layout(batch) gives its (space, state shape); the initial noise
    is space.noise of that shape from one generator on `device` seeded with `seed` (so the
    draws of a seed do not depend on the device the state lives on); the sampler runs with
    denoiser_for(space), the items' rows of cond [len(items), ...] and, when config.start < 1
    (SDEdit), init(space), the clean state it refines; readout(space, x) turns the final
    state into one result per item (default: space.unbatch of x on the CPU).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    generator = torch.Generator(device).manual_seed(seed)
    out = []
    with tqdm(total=len(items), desc=desc, unit=unit, disable=not progress) as bar:
        for start in range(0, len(items), batch_size):
            chunk = items[start:start + batch_size]
            space, shape = layout(chunk)
            x = space.noise(torch.empty(shape, device=device), generator)
            x = sample(denoiser_for(space), x, config,
                       init=init(space) if init is not None and config.start < 1 else None,
                       cond=None if cond is None else cond[start:start + batch_size].to(device),
                       null_cond=null_cond, generator=generator, progress=progress)
            out += readout(space, x) if readout is not None else space.unbatch(x.cpu())
            bar.update(len(chunk))
    return out
