"""Training utilities shared by every task: typed hydra config, seeding, EMA, optimizer with
warm-up, atomic checkpoints with exact resume, DistributedDataParallel, and a `Trainer` that is
generic over a *task* (what the data and the network are).

Reproducibility contract.  Everything random in an optimizer step (data, diffusion times,
noise) is drawn from `step_generator(seed, step)`, a pure function of the seed and the step.
Hence
- a run stopped after a checkpoint and resumed draws exactly what an uninterrupted run draws;
- the *global* batch is the same whatever the number of DDP ranks or accumulation
  micro-batches: every rank draws it whole and keeps its slice, so 2 ranks × b samples equal
  1 process × 2b samples up to the order of float reductions.
The global RNGs (torch, CUDA, python, numpy) are still saved per rank and restored, for code
that uses them (dropout).

A task is an object with
    build_model() -> nn.Module
    batch(n, generator) -> (x0, space)   n training examples drawn from the generator only,
        as one state and its space (molgen.diffusion.spaces): a batch of molecules is one
        tensor whose graph index lives in its space, so every batch brings its own
    denoiser(net, schedule, prediction, space) -> Denoiser   the core's adapter for a batch
    evaluate(denoiser_for, sampler, n, seed, path, device, progress, atoms) -> dict
        metrics of n samples drawn with denoiser_for(space), which are written to `path`
    samples_file                         where evaluate writes in a run's out_dir
    state_dict() / load_state_dict(d)    what sampling needs besides the weights (plain
        tensors and lists, saved in the checkpoint's "task")
registered in TASKS with its config dataclass (`Task.Config`): `toy2d` (a 2-D mixture,
molgen.toy), `images` (a U-Net on an image dataset, optionally class-conditional,
molgen.image_task), `qm9` (molgen.molecules) and `conformers` (torsions of crystal ligands,
molgen.conformers.task).  Batches are divided among ranks and micro-batches by samples
(molecules, conformers; not rows) with `space.subset`.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import random
import sys
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List

import numpy as np
import torch
import torch.distributed as dist
from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch import nn
from tqdm.auto import tqdm

from . import plotting
from .conformers.task import ConformerTask
from .diffusion import PREDICTIONS, Denoiser, SamplerConfig, diffusion_loss, make_schedule
from .diffusion.losses import TARGETS, WEIGHTINGS
from .diffusion.schedules import SCHEDULES
from .image_task import ImageTask
from .molecules import QM9Task
from .toy import Toy2dTask

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
CHECKPOINT = "checkpoint.pt"
LOG = "log.jsonl"
CHECKPOINT_KEYS = ("step", "model", "ema", "optimizer", "scheduler", "rng", "config", "sampler",
                   "task")
MODEL_KEYS = ("step", "model", "config", "sampler", "task")
"""An exported model (`export_model`): a checkpoint's EMA weights as "model", nothing to resume."""


# -- configuration ---------------------------------------------------------------------------
# The dataclasses are the schema (types, docs); the values live in molgen/configs/*.yaml.
# Merging the composed yaml into the schema rejects unknown keys and ill-typed values.

@dataclass
class DiffusionConfig:
    schedule: str = MISSING        # a name in molgen.diffusion.schedules.SCHEDULES
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
    task: Any = MISSING            # the task's own config dataclass (TASKS[name].Config)
    seed: int = MISSING
    steps: int = MISSING           # optimizer steps in total (a resumed run continues to it)
    batch_size: int = MISSING      # global batch: split over DDP ranks, then micro-batches
    accum: int = MISSING           # micro-batches per rank and step (gradient accumulation)
    checkpoint_every: int = MISSING
    out_dir: str = MISSING
    resume: bool = MISSING         # continue from out_dir/checkpoint.pt when it exists
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
    task = TASKS.get(d.get("task", {}).get("name"))
    if task is None:
        raise ConfigError(f"unknown task {d.get('task', {}).get('name')!r}; "
                          f"choose one of {sorted(TASKS)}")
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
    try:  # SamplerConfig leaves these to sampling time, which is after training
        make_schedule(diff.schedule).timesteps(cfg.sampler.steps, cfg.sampler.spacing)
    except ValueError as exc:
        raise ConfigError(f"sampler: {exc}") from None


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


def _unknown_key(key: str) -> str:
    return f"unknown config key '{key}' (`molgen train --show-config` lists the keys)"


# -- reproducibility -------------------------------------------------------------------------

def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices), for model initialisation and dropout."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def step_generator(seed: int, step: int) -> torch.Generator:
    """A CPU generator that depends only on (seed, step): the source of every random draw of
    an optimizer step, which makes resume exact and the batch independent of the ranks."""
    mixed = int(np.random.SeedSequence([seed, step]).generate_state(1)[0])
    return torch.Generator().manual_seed(mixed)


def rng_state(device: torch.device) -> dict:
    """The global RNG states as tensors and python scalars (loadable with weights_only)."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached_gaussian"]))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


# -- EMA and optimizer ---------------------------------------------------------------------

class EMA:
    """Exponential moving average of a model's weights, evaluated in place of the weights.

    The decay warms up as min(decay, (1 + n) / (10 + n)) after n updates, so early averages
    are not dominated by the random initialisation.  Integer buffers are copied, not averaged.
    """

    def __init__(self, model: nn.Module, decay: float):
        self.model, self.decay, self.updates = model, decay, 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def decay_at(self, updates: int) -> float:
        return min(self.decay, (1 + updates) / (10 + updates))

    @torch.no_grad()
    def update(self) -> None:
        d = self.decay_at(self.updates)
        for key, value in self.model.state_dict().items():
            avg = self.shadow[key]
            avg.lerp_(value, 1 - d) if avg.is_floating_point() else avg.copy_(value)
        self.updates += 1

    def copy_to(self) -> None:
        """Overwrite the model's weights with the averages (for a model only used to sample)."""
        self.model.load_state_dict(self.shadow)

    @contextmanager
    def swapped(self):
        """Within the block the model holds the EMA weights; its own come back afterwards."""
        backup = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.copy_to()
        try:
            yield self.model
        finally:
            self.model.load_state_dict(backup)

    def state_dict(self) -> dict:
        return {"updates": self.updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict) -> None:
        self.updates = int(state["updates"])
        for key, value in state["shadow"].items():
            self.shadow[key].copy_(value)


def make_optimizer(model: nn.Module, cfg: OptimConfig):
    """AdamW with a linear learning-rate warm-up over cfg.warmup_steps steps, then constant."""
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=tuple(cfg.betas),
                            weight_decay=cfg.weight_decay)
    warmup = max(cfg.warmup_steps, 1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / warmup))
    return opt, sched


# -- distributed -----------------------------------------------------------------------------

@dataclass(frozen=True)
class DistEnv:
    """Where this process runs: its rank among world_size processes and its device."""
    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto") -> DistEnv:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1): NCCL with one GPU
    per rank on CUDA, gloo on CPU.  A single process gets a plain DistEnv."""
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda and not torch.cuda.is_available():
        raise ConfigError("device=cuda but no CUDA device is available")
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return DistEnv(device=torch.device("cuda" if use_cuda else "cpu"))
    local_rank = int(os.environ["LOCAL_RANK"])
    if use_cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if use_cuda else "gloo")
    dev = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    return DistEnv(dist.get_rank(), world_size, dev)


# -- checkpoints and logs --------------------------------------------------------------------

def save_checkpoint(state: dict, path: str | os.PathLike) -> None:
    """torch.save into a temporary file next to `path`, then rename it over `path`: a reader
    (or a resume after a crash) sees the old checkpoint or the new one, never a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | os.PathLike, keys=CHECKPOINT_KEYS) -> dict:
    """Load a checkpoint written by Trainer.save (or, with keys=MODEL_KEYS, a model written
    by `export_model`) onto the CPU with weights_only=True (plain containers and tensors, no
    pickled code).  load_state_dict moves the tensors to the modules' devices, and RNG states
    must stay on the CPU.  ValueError if it is none."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except OSError:
        raise
    except Exception as exc:  # garbage fails in the unpickler in many ways
        raise ValueError(f"{path} is not a molgen checkpoint (torch.load(weights_only=True) "
                         f"failed with {type(exc).__name__})") from exc
    missing = [k for k in keys if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise ValueError(f"{path} is not a molgen checkpoint: it lacks {', '.join(missing)}")
    return ckpt


def read_log(path: str | os.PathLike) -> list[dict]:
    """The per-step records of a log.jsonl, skipping a line cut short by a killed process."""
    records = []
    for line in Path(path).read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


# -- tasks -----------------------------------------------------------------------------------

# A task says what the data and the network are (see the module docstring); each lives with its
# domain: molgen.toy, molgen.image_task, molgen.molecules.
TASKS = {"toy2d": Toy2dTask, "images": ImageTask, "qm9": QM9Task, "conformers": ConformerTask}


def make_task(cfg: TrainConfig):
    return TASKS[cfg.task.name](cfg.task)


# -- the trainer ---------------------------------------------------------------------------

class Trainer:
    """Trains cfg.task's model with the core's diffusion_loss.  Resumes from
    out_dir/checkpoint.pt when cfg.resume; only rank 0 writes files.

    Output in out_dir: checkpoint.pt, log.jsonl (one record per step), loss.png,
    config.yaml, previews/ (if cfg.preview_samples) and, after `fit`, eval.json and the
    task's samples_file (samples.png, samples.sdf) drawn with the EMA weights and
    cfg.sampler.
    """

    def __init__(self, cfg: TrainConfig, env: DistEnv = DistEnv()):
        if cfg.batch_size % (env.world_size * cfg.accum):
            raise ConfigError(f"batch_size {cfg.batch_size} is not divisible by "
                              f"{env.world_size} ranks x accum {cfg.accum}")
        self.cfg, self.env, self.out = cfg, env, Path(cfg.out_dir)
        seed_everything(cfg.seed)
        self.task = make_task(cfg)
        self.schedule = make_schedule(cfg.diffusion.schedule)
        self.model = self.task.build_model().to(env.device)
        self.ema = EMA(self.model, cfg.ema_decay)
        self.optimizer, self.lr_schedule = make_optimizer(self.model, cfg.optim)
        self.step = self.saved_step = 0
        if cfg.resume and (self.out / CHECKPOINT).exists():
            self._restore(load_checkpoint(self.out / CHECKPOINT))
        self.train_net = self.model
        if env.world_size > 1:
            ids = [env.device.index] if env.device.type == "cuda" else None
            self.train_net = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)

    def denoiser(self, net, space) -> Denoiser:
        """The core's (x̂_0, ε̂) adapter around a network of this run, for one batch's space."""
        return self.task.denoiser(net, self.schedule, self.cfg.diffusion.prediction, space)

    # -- one step --------------------------------------------------------------------------
    def train_step(self, step: int) -> dict:
        """Optimizer step number `step` (1-based): draw the global batch from
        step_generator(seed, step), take this rank's slice in `accum` micro-batches (of
        samples: whole molecules, by `space.subset`), clip, update, and update the EMA.
        Returns the record logged for the step."""
        cfg, env = self.cfg, self.env
        x0, space, t, noise = self._global_batch(step)
        local = cfg.batch_size // env.world_size
        micro = local // cfg.accum
        self.optimizer.zero_grad(set_to_none=True)
        loss_sum = torch.zeros((), device=env.device)
        for i in range(cfg.accum):
            start = env.rank * local + i * micro
            part, rows = space.subset(start, start + micro)
            xb, nb, tb = (v.to(env.device) for v in (x0[rows], noise[rows], t[start:start + micro]))
            last = i == cfg.accum - 1
            sync = nullcontext() if last or env.world_size == 1 else self.train_net.no_sync()
            with sync:
                with self._autocast():
                    losses = diffusion_loss(self.denoiser(self.train_net, part), xb, t=tb, noise=nb,
                                            target=cfg.diffusion.target,
                                            weighting=cfg.diffusion.weighting,
                                            gamma=cfg.diffusion.min_snr_gamma)
                losses = losses.float()
                (losses.sum() / local).backward()
            loss_sum += losses.detach().sum()
        clip = cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else float("inf")
        grad_norm = nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.lr_schedule.step()
        self.ema.update()
        if env.world_size > 1:
            dist.all_reduce(loss_sum)
        return {"step": step, "loss": float(loss_sum) / cfg.batch_size,
                "grad_norm": float(grad_norm), "lr": lr}

    def _global_batch(self, step: int):
        g = step_generator(self.cfg.seed, step)
        x0, space = self.task.batch(self.cfg.batch_size, g)
        t = self.schedule.sample_t(space.batch_size(x0), g)
        return x0, space, t, space.noise(x0, g)

    def _autocast(self):
        on = self.env.device.type == "cuda" and self.cfg.bf16
        return torch.autocast(self.env.device.type, dtype=torch.bfloat16, enabled=on)

    # -- the loop --------------------------------------------------------------------------
    def fit(self) -> dict:
        """Train to cfg.steps, then evaluate the EMA weights.  Returns the metrics (empty on
        ranks other than 0)."""
        self.train()
        return self.evaluate() if self.env.is_main else {}

    def train(self, seconds: float = math.inf) -> None:
        """Train to cfg.steps, or for `seconds` of wall time (a lent GPU's budget) if that
        ends first, checkpointing every cfg.checkpoint_every steps and at the end."""
        cfg, main = self.cfg, self.env.is_main
        if seconds < math.inf and self.env.world_size > 1:
            raise ConfigError("a wall-time limit needs a single process: ranks would stop apart")
        self.model.train()
        stop = time.perf_counter() + seconds
        bar = tqdm(range(self.step + 1, cfg.steps + 1), initial=self.step, total=cfg.steps,
                   desc="train", disable=not (main and cfg.progress), dynamic_ncols=True)
        with (self._open_log() if main else nullcontext()) as log:
            for step in bar:
                if time.perf_counter() > stop:
                    break
                record = self.train_step(step)
                self.step = step
                if main:
                    log.write(json.dumps(record) + "\n")
                    bar.set_postfix(loss=f"{record['loss']:.4f}", refresh=False)
                if step % cfg.checkpoint_every == 0:
                    self.save()
        bar.close()
        if self.saved_step != self.step:
            self.save()

    def evaluate(self) -> dict:
        """Sample with the EMA weights and cfg.sampler; write the samples and eval.json."""
        metrics = {"step": self.step, **self._sample_ema(self.cfg.eval_samples,
                                                         self.out / self.task.samples_file)}
        (self.out / "eval.json").write_text(json.dumps(metrics, indent=1) + "\n")
        return metrics

    def _sample_ema(self, n: int, path: Path) -> dict:
        """The task's evaluation of n samples drawn with the EMA weights (in eval mode: no
        dropout, hence no draw from the global RNG that a resumed run would not repeat)."""
        self.model.eval()
        with self.ema.swapped():
            metrics = self.task.evaluate(functools.partial(self.denoiser, self.model),
                                         self.cfg.sampler, n, self.cfg.seed, path, self.env.device)
        self.model.train()
        return metrics

    # -- persistence -----------------------------------------------------------------------
    def state_dict(self, rng: list[dict]) -> dict:
        """The checkpoint: everything `_restore` needs, plus the config and default sampler."""
        return {"step": self.step, "model": self.model.state_dict(), "ema": self.ema.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.lr_schedule.state_dict(),
                "rng": rng, "config": dataclasses.asdict(self.cfg),
                "sampler": self.cfg.sampler.to_dict(), "task": self.task.state_dict()}

    def save(self) -> None:
        """Checkpoint (every rank contributes its RNG state; rank 0 writes), redraw the loss
        curve and, with cfg.preview_samples, write that many EMA samples to
        previews/step_<step> (the task's samples_file type) to watch a run's progress."""
        rng = [rng_state(self.env.device)]
        if self.env.world_size > 1:
            rng = [None] * self.env.world_size
            dist.all_gather_object(rng, rng_state(self.env.device))
        if self.env.is_main:
            save_checkpoint(self.state_dict(rng), self.out / CHECKPOINT)
            records = read_log(self.out / LOG)
            plotting.loss_png(self.out / "loss.png", [r["step"] for r in records],
                              [r["loss"] for r in records])
            if self.cfg.preview_samples:
                previews = self.out / "previews"
                previews.mkdir(exist_ok=True)
                suffix = Path(self.task.samples_file).suffix
                self._sample_ema(self.cfg.preview_samples,
                                 previews / f"step_{self.step:07d}{suffix}")
        self.saved_step = self.step

    def _restore(self, ckpt: dict) -> None:
        """Continue from a checkpoint; a rank beyond the saved ones reuses a saved RNG state."""
        try:
            self.model.load_state_dict(ckpt["model"])
        except RuntimeError:
            raise ConfigError(f"{self.out / CHECKPOINT} holds another model than this config "
                              "builds; use another out_dir, or resume=false to overwrite it") from None
        self.ema.load_state_dict(ckpt["ema"])
        self.task.load_state_dict(ckpt["task"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.lr_schedule.load_state_dict(ckpt["scheduler"])
        self.step = self.saved_step = int(ckpt["step"])
        set_rng_state(ckpt["rng"][self.env.rank % len(ckpt["rng"])], self.env.device)
        if self.env.is_main:
            print(f"molgen: resuming from {self.out / CHECKPOINT} at step {self.step}",
                  file=sys.stderr)

    def _open_log(self):
        """Write config.yaml and open log.jsonl for appending, dropping records after the
        restored step (written by a run that was stopped before its next checkpoint)."""
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.structured(self.cfg)))
        path = self.out / LOG
        kept = [r for r in read_log(path) if r["step"] <= self.step] if path.exists() else []
        path.write_text("".join(json.dumps(r) + "\n" for r in kept))
        return open(path, "a", buffering=1)


def train(cfg: TrainConfig) -> dict:
    """Train as configured, in this process or as one rank under torchrun; returns rank 0's
    evaluation metrics."""
    env = init_distributed(cfg.device)
    try:
        metrics = Trainer(cfg, env).fit()
        if env.world_size > 1:
            # rank 0 evaluates alone: the others wait, so that no rank tears its process group
            # down under a peer still using it (seen: SIGABRT of rank 1 at exit under load)
            dist.barrier()
        return metrics
    finally:
        if env.world_size > 1:
            dist.destroy_process_group()


# -- using a trained model -------------------------------------------------------------------

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


def load_trained(path: str | os.PathLike, ema: bool = True, device="cpu") -> Trained:
    """Rebuild the model of a checkpoint (with its EMA weights unless ema=False) or of an
    exported model (`export_model`) for sampling."""
    ckpt = load_checkpoint(path, MODEL_KEYS)
    cfg = config_from_dict(ckpt["config"])
    task = make_task(cfg)
    task.load_state_dict(ckpt["task"])
    model = task.build_model().to(device)
    model.load_state_dict(ckpt["model"])
    if ema and "ema" in ckpt:
        averaged = EMA(model, cfg.ema_decay)
        averaged.load_state_dict(ckpt["ema"])
        averaged.copy_to()
    model.eval()
    return Trained(cfg, task, model, make_schedule(cfg.diffusion.schedule),
                   SamplerConfig.from_dict(ckpt["sampler"]), int(ckpt["step"]))


def export_model(checkpoint: str | os.PathLike, path: str | os.PathLike) -> None:
    """Write a checkpoint's model for sampling only: its EMA weights, config, default sampler
    and task state (a few MB less than the checkpoint: no optimizer, no raw weights)."""
    trained = load_trained(checkpoint)
    ckpt = load_checkpoint(checkpoint)
    save_checkpoint({"step": ckpt["step"], "config": ckpt["config"], "sampler": ckpt["sampler"],
                     "task": ckpt["task"], "model": trained.model.state_dict()}, path)
