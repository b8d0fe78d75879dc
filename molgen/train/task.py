"""The contract between the trainer and a task, and the registry of tasks by name.

A task says what the data and the network are: the trainer (molgen.train.trainer) and
`molgen sample` only ever call the methods of `Task`.  Tasks live above the trainer
(molgen.tasks, molgen.conformers.task) and are registered here by "module:Class" name,
imported on first use, so that the trainer imports no task and a toy run pays for neither
RDKit nor torch-geometric.
"""
from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Protocol

import torch
from torch import Tensor, nn

from ..diffusion import Denoiser, SamplerConfig, graph_denoiser

TASKS = {
    "toy2d": "molgen.tasks.toy:Toy2dTask",
    "images": "molgen.tasks.images:ImageTask",
    "qm9": "molgen.tasks.qm9:QM9Task",
    "conformers": "molgen.conformers.task:ConformerTask",
    "backbones": "molgen.proteins.task:BackboneTask",
    "docking": "molgen.docking.task:DockingTask",
}
"""Task name (the config's task.name) → "module:Class" of its implementation."""


@dataclass
class Batch:
    """A training batch: the clean states x0, their space (molecules: a space per batch) and
    each sample's condition cond [B, ...] (None for an unconditional model).  The loss gets
    cond= exactly as a sampler does."""

    x0: Tensor
    space: Any
    cond: Tensor | None = None

    def subset(self, start: int, stop: int) -> tuple["Batch", Any]:
        """Samples start … stop − 1 as a batch of their own, and the rows of x0 that hold them
        (a DDP rank's or a micro-batch's share: a batch is divided by samples)."""
        space, rows = self.space.subset(start, stop)
        cond = None if self.cond is None else self.cond[start:stop]
        return Batch(self.x0[rows], space, cond), rows


class Task(Protocol):
    """What every task implements (see molgen.tasks.toy for the smallest one).

    Config: its config dataclass (the `task:` section, merged over molgen/configs/task/).
    samples_file: the file `evaluate` writes in a run's out_dir (samples.png, samples.sdf).
    options: the names of the keyword options `evaluate` takes beyond the common ones
    (`molgen sample` passes only those; see `check_options`).
    Optional: `auxiliary_loss(x0_hat, x0, t, *, space, cond)` → [B], terms the trainer adds
    to the diffusion loss (`auxiliary_loss` below; cond: the batch's conditions as trained on,
    nulls included).
    """

    Config: ClassVar[type]
    samples_file: ClassVar[str]
    options: ClassVar[tuple[str, ...]]
    cfg: Any  # an instance of Config

    def __init__(self, cfg: Any) -> None: ...

    def build_model(self) -> nn.Module:
        """The network, freshly initialised."""

    def batch(self, n: int, generator: torch.Generator) -> Batch:
        """n training examples drawn from `generator` alone (resume and DDP rely on it)."""

    def denoiser(self, net: Callable, schedule, prediction: str, space) -> Denoiser:
        """The core's (x̂_0, ε̂) adapter around `net` for a batch in `space`."""

    def evaluate(self, denoiser_for: Callable[[Any], Denoiser], sampler: SamplerConfig, n: int,
                 *, seed: int, path=None, device="cpu", progress: bool = False,
                 **options) -> dict:
        """Metrics of n samples drawn with denoiser_for(space of a batch) and `sampler`; the
        samples are written to `path` unless it is None."""

    def state_dict(self) -> dict:
        """What sampling needs besides the weights (plain tensors and lists, kept in the
        checkpoint's "task")."""

    def load_state_dict(self, state: dict) -> None: ...


def auxiliary_loss(task: Task, space, cond=None) -> Callable | None:
    """The task's extra loss terms for a batch in `space` with conditions `cond`,
    (x̂_0, x_0, t) → [B], or None if it has none."""
    own = getattr(task, "auxiliary_loss", None)
    return None if own is None else functools.partial(own, space=space, cond=cond)


class GraphTask:
    """What a task whose batches are graphs and whose sampling needs nothing but the weights
    shares (the conformer and docking tasks): the core's graph denoiser, no task state."""

    def denoiser(self, net, schedule, prediction: str, space) -> Denoiser:
        return graph_denoiser(net, schedule, space, prediction)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def task_class(name: str) -> type[Task]:
    """The class registered as `name`; ValueError naming the known ones if there is none."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {sorted(TASKS)}")
    module, cls = TASKS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def make_task(cfg) -> Task:
    """The task of a TrainConfig, built from its task section."""
    return task_class(cfg.task.name)(cfg.task)


def check_options(task: Task, options: dict) -> None:
    """ValueError in one line if `options` holds one that the task's evaluate does not take."""
    unknown = sorted(set(options) - set(task.options))
    if unknown:
        takes = ", ".join(task.options) or "none"
        raise ValueError(f"a {task.cfg.name} model takes no option {', '.join(unknown)} "
                         f"(its options: {takes})")
