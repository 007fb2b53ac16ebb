"""Exponential moving average of a network's weights (and BN statistics) for evaluation."""
from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """Keep `shadow = decay * shadow + (1 - decay) * weights` after each step (warmed up so that
    early averages are not dominated by the random initialization); evaluate with `ema.model`."""

    def __init__(self, net: nn.Module, decay: float = 0.999) -> None:
        self.decay = decay
        self.model = copy.deepcopy(net).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.updates = 0

    @torch.no_grad()
    def update(self, net: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        floats, news = [], []
        for (_, e), (_, v) in zip(self.model.state_dict().items(), net.state_dict().items()):
            if e.dtype.is_floating_point:
                floats.append(e)
                news.append(v.detach())
            else:
                e.copy_(v)
        # the same arithmetic as e.mul_(d).add_(v, alpha=1 - d) per tensor; on a GPU a few fused launches
        torch._foreach_mul_(floats, d)
        torch._foreach_add_(floats, news, alpha=1 - d)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "state_dict": self.model.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.decay, self.updates = float(state["decay"]), int(state["updates"])
        self.model.load_state_dict(state["state_dict"])
