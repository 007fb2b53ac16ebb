"""Averages of a network's weights (and BN statistics): an EMA kept aside for evaluation, and
airbench94's lookahead, which pulls the training weights themselves back to their average."""
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


class Lookahead:
    """Every `every` steps: average <- lerp(average, weights, 1 - decay), then weights <- average, with
    decay = 0.95^every x progress^3 (airbench94): hardly any pull early, a strong one late. The last
    step ends on the average. Its state is the average itself (the schedule is a function of the step)."""

    def __init__(self, net: nn.Module, every: int = 5) -> None:
        self.every = every
        self.average = {k: v.detach().clone() for k, v in net.state_dict().items() if v.dtype.is_floating_point}

    def decay(self, step: int, total: int) -> float:
        return 0.95 ** self.every * (step / max(1, total)) ** 3

    @torch.no_grad()
    def update(self, net: nn.Module, step: int, total: int) -> None:
        """Called after optimizer step number `step` (1-based) of `total`."""
        if step % self.every and step < total:
            return
        decay = 1.0 if step >= total else self.decay(step, total)
        state = net.state_dict()
        for k, avg in self.average.items():
            avg.lerp_(state[k].detach(), 1 - decay)
            state[k].copy_(avg)

    def state_dict(self) -> dict:
        return {"every": self.every, "average": self.average}

    def load_state_dict(self, state: dict) -> None:
        self.every = int(state["every"])
        for k, v in state["average"].items():
            self.average[k].copy_(v)
