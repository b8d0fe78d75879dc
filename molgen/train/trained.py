"""Using a trained model: rebuild it from a checkpoint for sampling, or export it."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..diffusion import Denoiser, SamplerConfig
from .checkpoint import MODEL_KEYS, load_checkpoint, save_checkpoint
from .config import TrainConfig, build_schedule, config_from_dict
from .ema import EMA
from .task import make_task


@dataclass
class Trained:
    """A checkpoint made usable: its config, task (with its stored state), network, noise
    schedule and default sampler."""
    cfg: TrainConfig
    task: Any
    model: nn.Module
    schedule: Any
    sampler: SamplerConfig
    step: int

    def denoiser(self, space) -> Denoiser:
        """The denoiser for a batch in `space` (molecules: a space per batch)."""
        return self.task.denoiser(self.model, self.schedule, self.cfg.diffusion.prediction, space)


def load_trained(path: str | os.PathLike, ema: bool = True, device="cpu", *,
                 task: str | None = None) -> Trained:
    """Rebuild the model of a checkpoint (with its EMA weights unless ema=False) or of an
    exported model (`export_model`) for sampling; with `task`, ValueError unless it is a
    model of that task."""
    ckpt = load_checkpoint(path, MODEL_KEYS)
    cfg = config_from_dict(ckpt["config"])
    if task is not None and cfg.task.name != task:
        raise ValueError(f"{path} holds a {cfg.task.name!r} model, not a {task!r} model")
    task = make_task(cfg)
    task.load_state_dict(ckpt["task"])
    model = task.build_model().to(device)
    model.load_state_dict(ckpt["model"])
    if ema and "ema" in ckpt:
        averaged = EMA(model, cfg.ema_decay)
        averaged.load_state_dict(ckpt["ema"])
        averaged.copy_to()
    model.eval()
    return Trained(cfg, task, model, build_schedule(cfg.diffusion),
                   SamplerConfig.from_dict(ckpt["sampler"]), int(ckpt["step"]))


def export_model(checkpoint: str | os.PathLike, path: str | os.PathLike, *,
                 sampler: SamplerConfig | None = None) -> None:
    """Write a checkpoint's model for sampling only: its EMA weights, config, default sampler
    (or `sampler`, one chosen after training) and task state (a few MB less than the
    checkpoint: no optimizer, no raw weights)."""
    trained = load_trained(checkpoint)
    ckpt = load_checkpoint(checkpoint)
    default = ckpt["sampler"] if sampler is None else sampler.to_dict()
    save_checkpoint({"step": ckpt["step"], "config": ckpt["config"], "sampler": default,
                     "task": ckpt["task"], "model": trained.model.state_dict()}, path)
