"""Checkpoints, logs and random state: what makes a run resumable exactly.

Everything random in an optimizer step (data, diffusion times, noise) is drawn from
`step_generator(seed, step)`, a pure function of the seed and the step, so a run stopped
after a checkpoint and resumed draws exactly what an uninterrupted run draws.  The global
RNGs (torch, CUDA, python, numpy) are saved per rank too, for code that uses them (dropout).
Checkpoints hold plain containers and tensors only, and load with weights_only=True.
"""
from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import torch

CHECKPOINT = "checkpoint.pt"
LOG = "log.jsonl"
RESUME_KEYS = ("step", "model", "ema", "rng", "config", "sampler", "task")
"""What every checkpoint that training resumes from holds."""
CHECKPOINT_KEYS = RESUME_KEYS + ("optimizer", "scheduler")
MODEL_KEYS = ("step", "model", "config", "sampler", "task")
"""An exported model (`export_model`): a checkpoint's EMA weights as "model", nothing to resume."""


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


def carry_checkpoint(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Write the checkpoint at src as a carry checkpoint at dst, about a quarter of its size:
    the weights and their EMA in bfloat16, no optimizer state.  It moves a run between
    machines through a size limit (a lent GPU's 64 MiB).  Training resumed from it continues
    the same run at its step, with the same data, times and noise per step, but warm-restarts
    the optimizer: Adam's moments start from zero and the learning rate warms up again; the
    rounding to bfloat16 changes each weight by at most 2^-9 of its value."""
    ckpt = load_checkpoint(src)

    def half(state: dict) -> dict:
        return {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in state.items()}

    save_checkpoint({"step": ckpt["step"], "model": half(ckpt["model"]),
                     "ema": {**ckpt["ema"], "shadow": half(ckpt["ema"]["shadow"])},
                     "rng": ckpt["rng"], "config": ckpt["config"], "sampler": ckpt["sampler"],
                     "task": ckpt["task"], "warm_restart": True}, dst)


def read_log(path: str | os.PathLike) -> list[dict]:
    """The per-step records of a log.jsonl, skipping a line cut short by a killed process."""
    records = []
    for line in Path(path).read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


