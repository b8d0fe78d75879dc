"""Image generation as a training task: a U-Net (molgen.nn.unet) on images in [-1, 1] from
molgen.data.images, unconditional or class-conditional with classifier-free guidance."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List

import torch
from omegaconf import MISSING
from torch import Tensor, nn

from .. import plotting
from ..diffusion import Denoiser, SamplerConfig, drop_condition, sample_in_batches
from ..diffusion.spaces import EUCLIDEAN
from ..nn.unet import UNet
from ..train.task import Batch


@dataclass
class ImageConfig:
    name: str = MISSING
    dataset: str = MISSING         # digits | mnist | mnist28 | cifar10 (molgen.data.images.load_images)
    channels: int = MISSING        # U-Net width of the first level (molgen.nn.unet.UNet)
    channel_mult: List[int] = MISSING  # width of each level, in units of `channels`
    blocks: int = MISSING          # ResBlocks per level
    attention_resolution: int = MISSING  # self-attention on feature maps at most this wide; 0: none
    heads: int = MISSING
    dropout: float = MISSING
    flip: bool = MISSING           # random horizontal flips of training images (not for digits)
    num_classes: int = MISSING     # 0: unconditional; else class-conditional, null class = num_classes
    cond_drop: float = MISSING     # probability of training on the null class (for guidance)
    sample_batch: int = MISSING    # images per sampling batch


class ImageTask:
    """A U-Net (molgen.nn.unet) on images in [-1, 1] from molgen.data.images, unconditional or
    conditioned on the class with classifier-free guidance: labels are replaced by the null
    class with probability cond_drop in training, and sampling mixes the conditional and
    null predictions by the sampler's guidance_scale.

    Training images are drawn uniformly with replacement by the step's generator (see
    molgen.tasks.qm9 for why).  The checkpoint keeps the image shape, so sampling needs no
    data.  Samples are written as a PNG grid of the first GRID_IMAGES, one class per column
    for a conditional model; the metrics are cheap pixel statistics (FID is molgen.metrics.fid's).
    """

    Config = ImageConfig
    samples_file = "samples.png"
    options = ("label",)
    GRID_IMAGES = 100

    def __init__(self, cfg: ImageConfig):
        if cfg.sample_batch < 1 or cfg.num_classes < 0 or not 0 <= cfg.cond_drop <= 1:
            raise ValueError("task: sample_batch must be >= 1, num_classes >= 0 and "
                             "cond_drop in [0, 1]")
        self.cfg, self._data = cfg, None
        self.shape: list[int] | None = None  # [C, H, W] of the training images

    @property
    def data(self) -> tuple[Tensor, Tensor]:
        """(images [N, C, H, W], labels [N]), loaded on first use: sampling never needs them."""
        if self._data is None:
            from ..data.images import load_images

            images, labels = load_images(self.cfg.dataset)
            if self.cfg.num_classes and int(labels.max()) >= self.cfg.num_classes:
                raise ValueError(f"{self.cfg.dataset} has labels up to {int(labels.max())}, "
                                  f"more than task.num_classes={self.cfg.num_classes}")
            self._data = images, labels
        return self._data

    def image_shape(self) -> list[int]:
        """[C, H, W], from the data unless a checkpoint gave it."""
        if self.shape is None:
            self.shape = list(self.data[0].shape[1:])
        return self.shape

    def build_model(self) -> nn.Module:
        c, _, w = self.image_shape()
        cfg = self.cfg
        return UNet(c, w, channels=cfg.channels, channel_mult=cfg.channel_mult, blocks=cfg.blocks,
                    attention_resolution=cfg.attention_resolution, heads=cfg.heads,
                    dropout=cfg.dropout, num_classes=cfg.num_classes)

    def batch(self, n: int, generator: torch.Generator) -> Batch:
        images, labels = self.data
        idx = torch.randint(len(images), (n,), generator=generator)
        x = images[idx]
        if self.cfg.flip:
            x = torch.where(torch.rand(n, 1, 1, 1, generator=generator) < 0.5, x.flip(-1), x)
        if not self.cfg.num_classes:
            return Batch(x, EUCLIDEAN)
        return Batch(x, EUCLIDEAN, drop_condition(labels[idx], self.cfg.num_classes,
                                                  self.cfg.cond_drop, generator))

    def denoiser(self, net, schedule, prediction: str, space) -> Denoiser:
        return Denoiser(net, schedule, prediction, space)

    def state_dict(self) -> dict:
        return {"shape": torch.tensor(self.image_shape())}

    def load_state_dict(self, state: dict) -> None:
        self.shape = state["shape"].tolist()

    def sample(self, denoiser_for, sampler: SamplerConfig, n: int, *, seed: int, device="cpu",
               progress: bool = False, label: int | None = None) -> Tensor:
        """n images [n, C, H, W] on the CPU, sampled on `device` in batches of
        cfg.sample_batch.  A conditional model draws class `label`, or classes 0, 1, … in
        turn; guidance needs a conditional model."""
        classes = self.cfg.num_classes
        if n < 1:
            raise ValueError(f"the number of samples must be >= 1, got {n}")
        if (label is not None or sampler.guidance_scale) and not classes:
            raise ValueError("a class or guidance needs a class-conditional model "
                             "(this one was trained with task.num_classes=0)")
        if label is not None and not 0 <= label < classes:
            raise ValueError(f"class {label} is not one of the model's 0..{classes - 1}")
        labels = None
        if classes:
            labels = torch.full((n,), label) if label is not None else torch.arange(n) % classes
        shape = self.image_shape()
        images = sample_in_batches(
            denoiser_for, range(n), sampler, layout=lambda chunk: (EUCLIDEAN, (len(chunk), *shape)),
            batch_size=self.cfg.sample_batch, seed=seed, cond=labels, null_cond=classes or None,
            device=device, progress=progress, unit="image")
        return torch.stack(images).float()

    def evaluate(self, denoiser_for, sampler: SamplerConfig, n: int, *, seed: int,
                 path: str | os.PathLike | None = None, device="cpu", progress: bool = False,
                 label: int | None = None) -> dict:
        """Sample n images, write a grid of the first GRID_IMAGES to `path` (PNG), and return
        the pixel mean and standard deviation and the fraction of pixels outside [-1, 1]."""
        images = self.sample(denoiser_for, sampler, n, seed=seed, device=device,
                             progress=progress, label=label)
        if path is not None:
            one_class_per_column = self.cfg.num_classes if label is None else None
            plotting.image_grid_png(path, images[:self.GRID_IMAGES], ncol=one_class_per_column)
        return {"pixel_mean": float(images.mean()), "pixel_std": float(images.std()),
                "clipped": float((images.abs() > 1).float().mean())}
