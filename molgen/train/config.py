"""The training configuration: a typed schema (dataclasses) over the yaml files in
molgen/configs/, composed with hydra overrides and validated, with one-line errors.

The dataclasses are the schema (types, docs); the values live in molgen/configs/*.yaml.
Merging the composed yaml into the schema rejects unknown keys and ill-typed values.  The
task's own section is the Config dataclass of the task the config names (molgen.train.task).
"""
from __future__ import annotations

import math

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Dict, List

from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ..diffusion import PREDICTIONS, SamplerConfig, make_schedule
from ..diffusion.losses import TARGETS, WEIGHTINGS
from ..diffusion.samplers import LEGACY_OPTIONS
from ..diffusion.schedules import SCHEDULES
from .task import task_class

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


@dataclass
class DiffusionConfig:
    schedule: str = MISSING        # a name in molgen.diffusion.schedules.SCHEDULES
    # keyword arguments of the schedule's class (T, power, ...); defaulted, so that
    # checkpoints written before it existed still load
    schedule_params: Dict[str, Any] = field(default_factory=dict)
    prediction: str = MISSING      # what the network outputs: eps | x0 | v | score
    target: str = MISSING          # what the loss regresses: eps | x0 | v
    weighting: str = MISSING       # none | min_snr | vlb
    min_snr_gamma: float = MISSING


@dataclass
class OptimConfig:
    lr: float = MISSING
    betas: List[float] = MISSING
    weight_decay: float = MISSING
    warmup_steps: int = MISSING    # linear warm-up of the learning rate from lr / warmup_steps
    grad_clip: float = MISSING     # max global gradient norm; 0 disables clipping


@dataclass
class TrainConfig:
    task: Any = MISSING            # the task's own config dataclass (molgen.train.task.TASKS)
    seed: int = MISSING
    steps: int = MISSING           # optimizer steps in total (a resumed run continues to it)
    batch_size: int = MISSING      # global batch: split over DDP ranks, then micro-batches
    accum: int = MISSING           # micro-batches per rank and step (gradient accumulation)
    checkpoint_every: int = MISSING
    out_dir: str = MISSING
    resume: bool = MISSING         # continue from out_dir/checkpoint.pt when it exists
    init: Optional[str] = None     # start from this model's weights at its step (fine-tuning)
    device: str = MISSING          # auto | cpu | cuda
    bf16: bool = MISSING           # bf16 autocast; only ever enabled on CUDA
    progress: bool = MISSING
    eval_samples: int = MISSING
    preview_samples: int = MISSING  # samples drawn at every checkpoint into previews/; 0: none
    ema_decay: float = MISSING
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)  # default way to sample


class ConfigError(ValueError):
    """A configuration the user got wrong; its message is one line."""


def load_config(overrides: list[str] = (), config_name: str = "train") -> TrainConfig:
    """Compose molgen/configs/<config_name>.yaml with hydra command-line overrides
    ('steps=200', 'task=toy2d', 'optim.lr=3e-4') into a validated TrainConfig."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException

    try:
        with initialize_config_dir(str(CONFIG_DIR), version_base=None):
            raw = compose(config_name, overrides=list(overrides))
    except HydraException as exc:
        raise ConfigError(_hydra_message(exc)) from None
    return config_from_dict(OmegaConf.to_container(raw))


def config_from_dict(d: dict) -> TrainConfig:
    """A validated TrainConfig from a plain dict (a composed config or a checkpoint's)."""
    try:
        task = task_class(d.get("task", {}).get("name"))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if set(d.get("sampler", {})) & set(LEGACY_OPTIONS):  # a checkpoint's, from before options
        try:
            d = {**d, "sampler": SamplerConfig.from_dict(d["sampler"]).to_dict()}
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"sampler: {exc}") from None
    schema = OmegaConf.structured(TrainConfig)
    schema.task = OmegaConf.structured(task.Config)
    try:
        cfg = OmegaConf.to_object(OmegaConf.merge(schema, d))
    except OmegaConfBaseException as exc:
        raise ConfigError(_omegaconf_message(exc)) from None
    except ValueError as exc:  # a config dataclass's own check (SamplerConfig)
        raise ConfigError(str(exc)) from None
    _validate(cfg)
    return cfg


def _validate(cfg: TrainConfig) -> None:
    diff = cfg.diffusion
    for what, value, options in [("noise schedule", diff.schedule, SCHEDULES),
                                 ("prediction", diff.prediction, PREDICTIONS),
                                 ("loss target", diff.target, TARGETS),
                                 ("loss weighting", diff.weighting, WEIGHTINGS),
                                 ("device", cfg.device, ("auto", "cpu", "cuda"))]:
        if value not in options:
            raise ConfigError(f"unknown {what} {value!r}; choose one of {sorted(options)}")
    for key in ("steps", "batch_size", "accum", "checkpoint_every", "eval_samples"):
        if getattr(cfg, key) < 1:
            raise ConfigError(f"{key} must be >= 1, got {getattr(cfg, key)}")
    if cfg.preview_samples < 0:
        raise ConfigError(f"preview_samples must be >= 0, got {cfg.preview_samples}")
    opt = cfg.optim
    finite = math.isfinite
    for what, value, ok in [
            ("optim.lr must be a finite number > 0", opt.lr, finite(opt.lr) and opt.lr > 0),
            ("optim.grad_clip must be a finite number >= 0 (0: no clipping)", opt.grad_clip,
             finite(opt.grad_clip) and opt.grad_clip >= 0),
            ("optim.warmup_steps must be >= 0", opt.warmup_steps, opt.warmup_steps >= 0),
            ("optim.weight_decay must be a finite number >= 0", opt.weight_decay,
             finite(opt.weight_decay) and opt.weight_decay >= 0),
            ("optim.betas must be two numbers in [0, 1)", list(opt.betas),
             len(opt.betas) == 2 and all(0 <= b < 1 for b in opt.betas)),
            ("ema_decay must be in [0, 1]", cfg.ema_decay, 0 <= cfg.ema_decay <= 1),
            ("diffusion.min_snr_gamma must be a finite number > 0", diff.min_snr_gamma,
             finite(diff.min_snr_gamma) and diff.min_snr_gamma > 0),
            ("out_dir must not be empty", cfg.out_dir, bool(str(cfg.out_dir).strip()))]:
        if not ok:
            raise ConfigError(f"{what}, got {value!r}")
    for key in ("hidden", "layers"):  # the width and depth every network task has
        value = getattr(cfg.task, key, None)
        if isinstance(value, int) and value < 1:
            raise ConfigError(f"task.{key} must be >= 1, got {value}")
    try:
        schedule = build_schedule(diff)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"diffusion: {exc}") from None
    try:  # SamplerConfig leaves these to sampling time, which is after training
        cfg.sampler.timesteps(schedule)
    except ValueError as exc:
        raise ConfigError(f"sampler: {exc}") from None


def build_schedule(diff: DiffusionConfig):
    """The noise schedule a config describes (kind and parameters; saved with the config in
    every checkpoint)."""
    return make_schedule(diff.schedule, **diff.schedule_params)


def _hydra_message(exc: Exception) -> str:
    """One line from a hydra composition error (they span several lines)."""
    cause = exc.__cause__
    if isinstance(cause, OmegaConfBaseException) and "not in struct" in str(cause):
        return _unknown_key(cause.full_key)
    lines = [line.strip() for line in str(exc).splitlines()
             if line.strip() and not line.startswith(("See https", "Error parsing override"))]
    if getattr(exc, "override", None) is not None:  # OverrideParseException: bad syntax
        return f"cannot parse override {exc.override!r}: {lines[0]}"
    if getattr(exc, "options", None) is not None:  # MissingConfigException: no such choice
        return f"{lines[0]}; options: {', '.join(exc.options)}"
    return ": ".join(lines[:2])


def _omegaconf_message(exc: OmegaConfBaseException) -> str:
    first, key = str(exc).splitlines()[0], getattr(exc, "full_key", None)
    if not key:
        return first
    return _unknown_key(key) if " not in " in first else f"config key '{key}': {first}"


OPEN_SECTIONS = ("sampler.options.", "diffusion.schedule_params.")
"""Sections whose keys are not in the yaml: they are added with a '+'."""


def _unknown_key(key: str) -> str:
    if key.startswith(OPEN_SECTIONS):
        return f"config key '{key}' is not set yet: add it with a '+', as +{key}=VALUE"
    return f"unknown config key '{key}' (`molgen train --show-config` lists the keys)"


