"""The toy2d training task: an MLP denoiser on a 2-D Gaussian mixture (molgen.data.toy), fast
enough for CPU tests and with a known data distribution to measure samples against."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from omegaconf import MISSING
from torch import nn

from .. import plotting
from ..data.toy import mixture_2d
from ..diffusion import Denoiser, SamplerConfig, sample_in_batches
from ..diffusion.spaces import EUCLIDEAN
from ..metrics.stats import mmd_rbf, sliced_wasserstein
from ..nn.layers import MLPDenoiser
from ..train.task import Batch

MMD_POINTS = 2000  # MMD is quadratic in time and memory: evaluate it on this many points


@dataclass
class Toy2dConfig:
    name: str = MISSING
    mixture: str = MISSING         # 'ring' | 'three' (molgen.data.toy.mixture_2d)
    hidden: int = MISSING
    layers: int = MISSING


class Toy2dTask:
    """An MLPDenoiser on a 2-D Gaussian mixture: fast enough for CPU tests, and with a known
    data distribution to measure samples against."""

    Config = Toy2dConfig
    samples_file = "samples.png"
    options = ()

    def __init__(self, cfg: Toy2dConfig):
        self.cfg, self.mixture = cfg, mixture_2d(cfg.mixture)

    def build_model(self) -> nn.Module:
        return MLPDenoiser(2, hidden=self.cfg.hidden, layers=self.cfg.layers)

    def batch(self, n: int, generator: torch.Generator) -> Batch:
        return Batch(self.mixture.sample(n, generator).float(), EUCLIDEAN)

    def denoiser(self, net, schedule, prediction: str, space) -> Denoiser:
        return Denoiser(net, schedule, prediction, space)

    def evaluate(self, denoiser_for, sampler: SamplerConfig, n: int, *, seed: int,
                 path: str | os.PathLike | None = None, device="cpu",
                 progress: bool = False) -> dict:
        """Sliced W1 and MMD of n samples to the mixture; the samples plotted to `path`."""
        return evaluate_2d(denoiser_for(EUCLIDEAN), self.mixture, sampler, n=n, seed=seed,
                           path=path, device=device, progress=progress)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def evaluate_2d(denoiser, mixture, sampler: SamplerConfig, *, n: int, seed: int,
                path: str | os.PathLike | None = None, device="cpu",
                progress: bool = False) -> dict:
    """Sample n points on `device`, measure sliced W1 and MMD (on the first MMD_POINTS, as it
    is quadratic in time and memory) against n fresh data points and, if a path is given, plot
    the samples next to the data over the true density (PNG)."""
    samples = torch.stack(sample_in_batches(
        lambda space: denoiser, range(n), sampler, batch_size=n, seed=seed, device=device,
        layout=lambda chunk: (EUCLIDEAN, (len(chunk), mixture.dim)), progress=progress)).float()
    cpu = torch.Generator().manual_seed(seed)
    data = mixture.sample(n, cpu).float()
    metrics = {"mmd": mmd_rbf(samples[:MMD_POINTS], data[:MMD_POINTS]),
               "sliced_w1": sliced_wasserstein(samples, data, generator=cpu)}
    if path is not None:
        plotting.scatter_png(path, samples, data, log_density=mixture.log_prob,
                             title=f"{sampler.kind}, {sampler.steps} steps: "
                                   f"MMD {metrics['mmd']:.2e}, sliced W1 {metrics['sliced_w1']:.3f}")
    return metrics
