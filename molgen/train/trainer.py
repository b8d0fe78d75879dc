"""The `Trainer`: trains a task's network with the core's diffusion loss, generic over the
task (molgen.train.task: what the data and the network are).

Reproducibility contract.  Everything random in an optimizer step (data, diffusion times,
noise) is drawn from `step_generator(seed, step)` (molgen.train.checkpoint), a pure function
of the seed and the step.  Hence
- a run stopped after a checkpoint and resumed draws exactly what an uninterrupted run draws;
- the *global* batch is the same whatever the number of DDP ranks or accumulation
  micro-batches: every rank draws it whole and keeps its slice, so 2 ranks × b samples equal
  1 process × 2b samples up to the order of float reductions.
The global RNGs (torch, CUDA, python, numpy) are still saved per rank and restored, for code
that uses them (dropout).  Batches are divided among ranks and micro-batches by samples
(molecules, conformers; not rows) with `Batch.subset`.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.distributed as dist
from omegaconf import OmegaConf
from torch import nn
from tqdm.auto import tqdm

from .. import plotting
from ..diffusion import Denoiser, diffusion_loss
from .checkpoint import (CHECKPOINT, LOG, RESUME_KEYS, load_checkpoint, read_log, rng_state,
                         save_checkpoint, seed_everything, set_rng_state, step_generator)
from .config import ConfigError, TrainConfig, build_schedule
from .distributed import DistEnv, init_distributed
from .ema import EMA, make_optimizer
from .task import auxiliary_loss, make_task
from .trained import load_trained


class TrainingDiverged(RuntimeError):
    """The loss or the gradient stopped being finite; its message is one line."""


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
        self.schedule = build_schedule(cfg.diffusion)
        self.model = self.task.build_model().to(env.device)
        self.ema = EMA(self.model, cfg.ema_decay)
        self.optimizer, self.lr_schedule = make_optimizer(self.model, cfg.optim)
        self.step = self.saved_step = 0
        if cfg.resume and (self.out / CHECKPOINT).exists():
            self._restore(load_checkpoint(self.out / CHECKPOINT, RESUME_KEYS))
        elif cfg.init:
            self._initialize(cfg.init)
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
        samples: whole molecules, by `Batch.subset`), clip, update, and update the EMA.
        Returns the record logged for the step."""
        cfg, env = self.cfg, self.env
        batch, t, noise = self._global_batch(step)
        local = cfg.batch_size // env.world_size
        micro = local // cfg.accum
        self.optimizer.zero_grad(set_to_none=True)
        loss_sum = torch.zeros((), device=env.device)
        for i in range(cfg.accum):
            start = env.rank * local + i * micro
            part, rows = batch.subset(start, start + micro)
            xb, nb, tb = (v.to(env.device) for v in (part.x0, noise[rows], t[start:start + micro]))
            cond = None if part.cond is None else part.cond.to(env.device)
            last = i == cfg.accum - 1
            sync = nullcontext() if last or env.world_size == 1 else self.train_net.no_sync()
            with sync:
                with self._autocast():
                    losses = diffusion_loss(self.denoiser(self.train_net, part.space), xb, cond=cond,
                                            t=tb, noise=nb,
                                            target=cfg.diffusion.target,
                                            weighting=cfg.diffusion.weighting,
                                            gamma=cfg.diffusion.min_snr_gamma,
                                            auxiliary=auxiliary_loss(self.task, part.space, cond))
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
        batch = self.task.batch(self.cfg.batch_size, g)
        t = self.schedule.sample_t(batch.space.batch_size(batch.x0), g)
        return batch, t, batch.space.noise(batch.x0, g)

    def _autocast(self):
        on = self.env.device.type == "cuda" and self.cfg.bf16
        return torch.autocast(self.env.device.type, dtype=torch.bfloat16, enabled=on)

    # -- the loop --------------------------------------------------------------------------
    def fit(self) -> dict:
        """Train to cfg.steps, then evaluate the EMA weights.  Returns the metrics (empty on
        ranks other than 0)."""
        self.train()
        return self.evaluate() if self.env.is_main else {}

    def train(self, seconds: float = math.inf, clock=time.perf_counter) -> None:
        """Train to cfg.steps, or for `seconds` by `clock` if that ends first, checkpointing
        every cfg.checkpoint_every steps and at the end.  The clock is wall time (a lent GPU's
        budget) unless given, e.g. time.process_time: CPU time, which other jobs on a shared
        machine do not eat into."""
        cfg, main = self.cfg, self.env.is_main
        if seconds < math.inf and self.env.world_size > 1:
            raise ConfigError("a wall-time limit needs a single process: ranks would stop apart")
        self.model.train()
        stop = clock() + seconds
        bar = tqdm(range(self.step + 1, cfg.steps + 1), initial=self.step, total=cfg.steps,
                   desc="train", disable=not (main and cfg.progress), dynamic_ncols=True)
        with (self._open_log() if main else nullcontext()) as log:
            for step in bar:
                if clock() > stop:
                    break
                record = self.train_step(step)
                if not (math.isfinite(record["loss"]) and math.isfinite(record["grad_norm"])):
                    bar.close()
                    raise TrainingDiverged(self._diverged(record))
                self.step = step
                if main:
                    log.write(json.dumps(record) + "\n")
                    bar.set_postfix(loss=f"{record['loss']:.4f}", refresh=False)
                if step % cfg.checkpoint_every == 0:
                    self.save()
        bar.close()
        if self.saved_step != self.step:
            self.save()

    def _diverged(self, record: dict) -> str:
        kept = (f"{self.out / CHECKPOINT} still holds step {self.saved_step}" if self.saved_step
                else "no checkpoint was written")
        return (f"training diverged at step {record['step']} (loss {record['loss']}, gradient "
                f"norm {record['grad_norm']}): stopped, {kept}; try a lower optim.lr")

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
                                         self.cfg.sampler, n, seed=self.cfg.seed, path=path,
                                         device=self.env.device)
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
        """Continue from a checkpoint; a rank beyond the saved ones reuses a saved RNG state.
        A setting that shapes the training (RESUMABLE lists the others) must not change: a
        resumed run with another learning rate would silently keep the saved one."""
        changed = _changed_settings(ckpt["config"], dataclasses.asdict(self.cfg))
        if changed:
            raise ConfigError(f"{self.out / CHECKPOINT} was trained with other settings "
                              f"({'; '.join(changed)}); use another out_dir, or resume=false "
                              "to start afresh")
        try:
            self.model.load_state_dict(ckpt["model"])
        except RuntimeError:
            raise ConfigError(f"{self.out / CHECKPOINT} holds another model than this config "
                              "builds; use another out_dir, or resume=false to overwrite it") from None
        self.ema.load_state_dict(ckpt["ema"])
        self.task.load_state_dict(ckpt["task"])
        warm = bool(ckpt.get("warm_restart"))
        if not warm:
            missing = [key for key in ("optimizer", "scheduler") if key not in ckpt]
            if missing:
                raise ValueError(f"{self.out / CHECKPOINT} is not a molgen checkpoint: it lacks "
                                 f"{', '.join(missing)}")
            self.optimizer.load_state_dict(ckpt["optimizer"])
            self.lr_schedule.load_state_dict(ckpt["scheduler"])
        self.step = self.saved_step = int(ckpt["step"])
        set_rng_state(ckpt["rng"][self.env.rank % len(ckpt["rng"])], self.env.device)
        if self.env.is_main:
            how = (" with a fresh optimizer (a carry checkpoint: Adam's moments restart and the "
                   "learning rate warms up again)" if warm else "")
            print(f"molgen: resuming from {self.out / CHECKPOINT} at step {self.step}{how}",
                  file=sys.stderr)

    def _initialize(self, path: str) -> None:
        """Fine-tuning: the weights of a checkpoint (its EMA) or exported model at `path`, and
        its step, so that the run goes on counting (and drawing each step's data) where that
        one stopped; the optimizer starts afresh and warms up, the EMA starts at the weights."""
        trained = load_trained(path)
        try:
            self.model.load_state_dict(trained.model.state_dict())
        except RuntimeError:
            raise ConfigError(f"init={path} holds another model than this config builds") from None
        self.task.load_state_dict(trained.task.state_dict())
        self.step = self.saved_step = trained.step
        self.ema = EMA(self.model, self.cfg.ema_decay)
        self.ema.updates = self.step
        if self.env.is_main:
            print(f"molgen: starting from the weights of {path} at step {self.step}", file=sys.stderr)

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


RESUMABLE = {"steps", "checkpoint_every", "eval_samples", "preview_samples", "progress", "device",
             "out_dir", "resume", "sampler"}
"""Top-level settings a resumed run may change: how long it runs, what it writes, where it
runs, and how its model samples."""


def _changed_settings(saved: dict, asked: dict, prefix: str = "") -> list[str]:
    """'key: saved → asked' for each training setting that differs between two configs (keys
    a checkpoint predates took their defaults then)."""
    out = []
    for key in sorted(saved):
        if not prefix and key in RESUMABLE:
            continue
        a, b = saved.get(key), asked.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _changed_settings(a, b, f"{prefix}{key}.")
        elif a != b and not (isinstance(a, (int, float)) and isinstance(b, (int, float)) and float(a) == float(b)):
            out.append(f"{prefix}{key}: {a} → {b}")
    return out
