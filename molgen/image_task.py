"""Image generation as a training task: a U-Net (molgen.unet) on images in [-1, 1] from
molgen.images, unconditional or class-conditional with classifier-free guidance."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List

import torch
from omegaconf import MISSING
from torch import Tensor, nn

from . import plotting
from .diffusion import Denoiser, SamplerConfig, drop_condition, sample
from .diffusion.spaces import EUCLIDEAN, EuclideanSpace
from .unet import UNet


@dataclass
class ImageConfig:
    name: str = MISSING
    dataset: str = MISSING         # digits | mnist | mnist28 | cifar10 (molgen.images.load_images)
    channels: int = MISSING        # U-Net width of the first level (molgen.unet.UNet)
    channel_mult: List[int] = MISSING  # width of each level, in units of `channels`
    blocks: int = MISSING          # ResBlocks per level
    attention_resolution: int = MISSING  # self-attention on feature maps at most this wide; 0: none
    heads: int = MISSING
    dropout: float = MISSING
    flip: bool = MISSING           # random horizontal flips of training images (not for digits)
    num_classes: int = MISSING     # 0: unconditional; else class-conditional, null class = num_classes
    cond_drop: float = MISSING     # probability of training on the null class (for guidance)
    sample_batch: int = MISSING    # images per sampling batch


class LabeledSpace(EuclideanSpace):
    """Dense images whose batch carries its class labels [B]: the Trainer divides a batch
    among ranks and micro-batches with `subset`, which takes the labels along, and
    ImageTask.denoiser hands them to the network."""

    def __init__(self, labels: Tensor):
        self.labels = labels

    def subset(self, start: int, stop: int) -> tuple["LabeledSpace", slice]:
        return LabeledSpace(self.labels[start:stop]), slice(start, stop)


class ImageTask:
    """A U-Net (molgen.unet) on images in [-1, 1] from molgen.images, unconditional or
    conditioned on the class with classifier-free guidance: labels are replaced by the null
    class with probability cond_drop in training, and sampling mixes the conditional and
    null predictions by the sampler's guidance_scale.

    Training images are drawn uniformly with replacement by the step's generator (see
    molgen.molecules for why).  The checkpoint keeps the image shape, so sampling needs no
    data.  Samples are written as a PNG grid of the first GRID_IMAGES, one class per column
    for a conditional model; the metrics are cheap pixel statistics (FID is molgen.fid's).
    """

    Config = ImageConfig
    samples_file = "samples.png"
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
            from .images import load_images  # PIL and the dataset readers: only for training

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

    def batch(self, n: int, generator: torch.Generator):
        images, labels = self.data
        idx = torch.randint(len(images), (n,), generator=generator)
        x = images[idx]
        if self.cfg.flip:
            x = torch.where(torch.rand(n, 1, 1, 1, generator=generator) < 0.5, x.flip(-1), x)
        if not self.cfg.num_classes:
            return x, EUCLIDEAN
        return x, LabeledSpace(drop_condition(labels[idx], self.cfg.num_classes,
                                              self.cfg.cond_drop, generator))

    def denoiser(self, net, schedule, prediction: str, space) -> Denoiser:
        """The training batch's labels go to the network from its LabeledSpace; at sampling
        time the space is EUCLIDEAN and the sampler passes the condition."""
        if isinstance(space, LabeledSpace):
            def labeled(x, t):
                return net(x, t, space.labels.to(x.device))
            return Denoiser(labeled, schedule, prediction)
        return Denoiser(net, schedule, prediction)

    def state_dict(self) -> dict:
        return {"shape": torch.tensor(self.image_shape())}

    def load_state_dict(self, state: dict) -> None:
        self.shape = state["shape"].tolist()

    def sample(self, denoiser_for, sampler: SamplerConfig, n: int, seed: int, device="cpu",
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
        on_device = torch.Generator(device).manual_seed(seed)
        images = []
        for start in range(0, n, self.cfg.sample_batch):
            m = min(self.cfg.sample_batch, n - start)
            x = torch.randn((m, *self.image_shape()), generator=on_device, device=device)
            cond = None if labels is None else labels[start:start + m].to(device)
            x = sample(denoiser_for(EUCLIDEAN), x, sampler, cond=cond, null_cond=classes or None,
                       generator=on_device, progress=progress)
            images.append(x.float().cpu())
        return torch.cat(images)

    def evaluate(self, denoiser_for, sampler: SamplerConfig, n: int, seed: int,
                 png: str | os.PathLike | None = None, device="cpu", progress: bool = False,
                 atoms: int | None = None, label: int | None = None) -> dict:
        """Sample n images, write a grid of the first GRID_IMAGES to `png`, and return the
        pixel mean and standard deviation and the fraction of pixels outside [-1, 1]."""
        if atoms is not None:
            raise ValueError("an image model samples images, not molecules: no atom count")
        images = self.sample(denoiser_for, sampler, n, seed, device, progress, label)
        if png is not None:
            one_class_per_column = self.cfg.num_classes if label is None else None
            plotting.image_grid_png(png, images[:self.GRID_IMAGES], ncol=one_class_per_column)
        return {"pixel_mean": float(images.mean()), "pixel_std": float(images.std()),
                "clipped": float((images.abs() > 1).float().mean())}
