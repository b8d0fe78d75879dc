"""The exponential moving average of a model's weights, and the optimizer."""
from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from .config import OptimConfig


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


