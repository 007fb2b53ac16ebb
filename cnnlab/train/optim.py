"""Optimizers with sensible parameter groups, and learning-rate schedules as plain functions of the step.

The schedule is a pure function `lr_factor(step, cfg, steps_per_epoch)`, so its whole state is the
step counter: a resumed run gets exactly the learning rates an uninterrupted one does.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .config import TrainConfig

_NORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm2d)


#: Newton-Schulz iterations per Muon step: the record's 3 (torch's default is 5) orthogonalize well enough.
MUON_NS_STEPS = 3


def is_filter(name: str, p: torch.Tensor) -> bool:
    """A convolution filter bank [out, in, kh, kw] that trains: what Muon updates."""
    return p.dim() == 4 and p.requires_grad


def parameter_groups(net: nn.Module, cfg: TrainConfig, backbone: set[str] | None = None) -> list[dict]:
    """Split trainable parameters into groups: weights (decayed), BN/bias (decayed only if asked),
    backbone parameters (lr x backbone_lr_mult when fine-tuning), parameters frozen after some epochs
    (`stop_epoch`) and, with Muon, the convolution filters (`muon`). Each group keeps 'lr_mult'."""
    norm_params = {id(p) for m in net.modules() if isinstance(m, _NORM_TYPES) for p in m.parameters(recurse=False)}
    names = dict(net.named_parameters())
    unknown_names = [n for n in cfg.freeze_after if n not in names]
    if unknown_names:
        from ..errors import unknown
        raise unknown("parameter (--freeze-after)", unknown_names[0], [n for n, p in names.items() if p.requires_grad])
    groups: dict[tuple, list] = {}
    for name, p in names.items():
        if not p.requires_grad and not (backbone and name in backbone):
            continue
        muon = cfg.optimizer == "muon" and is_filter(name, p)
        is_nb = id(p) in norm_params or name.endswith(".bias") or p.dim() <= 1
        in_backbone = bool(backbone) and name in backbone
        decay = 0.0 if muon else cfg.weight_decay if (cfg.decay_norm_and_bias or not is_nb) else 0.0
        mult = (cfg.backbone_lr_mult if in_backbone else 1.0) * (
            cfg.muon_lr / cfg.lr if muon else cfg.bias_lr_mult if is_nb else 1.0)
        groups.setdefault((decay, mult, cfg.freeze_after.get(name), muon), []).append(p)
    return [{"params": ps, "weight_decay": d, "lr_mult": m, "lr": cfg.lr * m, "stop_epoch": stop, "muon": muon}
            for (d, m, stop, muon), ps in groups.items()]


def build_optimizer(net: nn.Module, cfg: TrainConfig, backbone: set[str] | None = None
                    ) -> torch.optim.Optimizer | Optimizers:
    """SGD (momentum, Nesterov), Adam or AdamW over `parameter_groups`; for "muon", Muon over the
    convolution filters and Nesterov SGD over the rest."""
    groups = parameter_groups(net, cfg, backbone)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    rest = [g for g in groups if not g["muon"]]
    filters = [g for g in groups if g["muon"]]
    opts: list[torch.optim.Optimizer] = []
    if rest:
        opts.append(torch.optim.SGD(rest, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0))
    if filters:
        opts.append(FilterMuon(filters, momentum=cfg.muon_momentum))
    return Optimizers(opts)


def _matrix(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """`t` [out, in, kh, kw] as a matrix [out, in*kh*kw] whose columns follow `like`'s memory order: a
    view of `like` itself (contiguous or channels_last). Muon's orthogonalization does not depend on the
    order of the columns, so either order gives the same update."""
    if like.is_contiguous():
        return t.reshape(len(t), -1)
    if like.is_contiguous(memory_format=torch.channels_last):
        return t.permute(0, 2, 3, 1).reshape(len(t), -1)
    raise ValueError("a convolution filter bank must be contiguous or channels_last for Muon")


def orthogonalize(g: torch.Tensor, coefficients: tuple[float, float, float], steps: int, eps: float) -> torch.Tensor:
    """Muon's Newton-Schulz iteration: `g` with its singular values pushed towards 1 (its direction kept).
    In bfloat16 on a GPU, as torch.optim.Muon does everywhere; in float32 on a CPU, where bfloat16 matmuls
    without hardware support took a quarter of an airbench training step (float32: under 1%)."""
    a, b, c = coefficients
    x = g.to(torch.bfloat16 if g.is_cuda else torch.float32)
    tall = x.size(0) > x.size(1)
    if tall:
        x = x.T
    x = x / x.norm().clamp(min=eps)
    for _ in range(steps):
        gram = x @ x.T
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.T if tall else x


class FilterMuon(torch.optim.Muon):
    """torch.optim.Muon over convolution filter banks, each seen as an [out, in*kh*kw] matrix (a view of
    the parameter, so updates land in the filters). Before each step every filter bank is scaled back to
    the norm sqrt(out) (airbench94_muon's normalization: the update then changes its direction, not its
    size), and no weight decay applies. The step is torch's (Nesterov momentum, then `orthogonalize`, its
    state dict too) with the orthogonalization in float32 on a CPU."""

    def __init__(self, groups: list[dict], momentum: float) -> None:
        self.filters = [p for g in groups for p in g["params"]]
        self._views = {id(p): _matrix(p.detach(), p) for p in self.filters}
        matrix_groups = [{**g, "params": [self._views[id(p)] for p in g["params"]]} for g in groups]
        super().__init__(matrix_groups, lr=groups[0]["lr"], weight_decay=0.0, momentum=momentum, nesterov=True,
                         ns_steps=MUON_NS_STEPS)

    @torch.no_grad()
    def step(self, closure: None = None) -> None:
        for p in self.filters:
            v = self._views[id(p)]
            v.grad = None if p.grad is None else _matrix(p.grad, p)
            if p.grad is not None:
                p.mul_(len(p) ** 0.5 / p.norm().clamp_min(1e-12))
        for group in self.param_groups:
            momentum = group["momentum"]
            for v in group["params"]:
                if v.grad is None:
                    continue
                buf = self.state[v].setdefault("momentum_buffer", torch.zeros_like(v.grad))
                buf.lerp_(v.grad, 1 - momentum)
                update = v.grad.lerp(buf, momentum) if group["nesterov"] else buf
                update = orthogonalize(update, group["ns_coefficients"], group["ns_steps"], group["eps"])
                v.add_(update.to(v.dtype), alpha=-group["lr"] * max(1.0, v.size(0) / v.size(1)) ** 0.5)
        for v in self._views.values():
            v.grad = None

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the filters' own gradients (the matrices are views that hold none between steps)."""
        for p in self.filters:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()


class Optimizers:
    """Several optimizers stepped as one (Muon for the filters, SGD for the rest): the interface the
    training loop uses, with one state dict holding each optimizer's."""

    def __init__(self, optimizers: list[torch.optim.Optimizer]) -> None:
        self.optimizers = optimizers

    @property
    def param_groups(self) -> list[dict]:
        return [g for o in self.optimizers for g in o.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.optimizers:
            o.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for o in self.optimizers:
            o.step()

    def state_dict(self) -> dict:
        return {"optimizers": [o.state_dict() for o in self.optimizers]}

    def load_state_dict(self, state: dict) -> None:
        if len(state.get("optimizers", ())) != len(self.optimizers):
            raise ValueError(f"{len(self.optimizers)} optimizers here, the state holds "
                             f"{len(state.get('optimizers', ()))}")
        for o, s in zip(self.optimizers, state["optimizers"]):
            o.load_state_dict(s)


def lr_factor(step: int, cfg: TrainConfig, steps_per_epoch: int) -> float:
    """Multiplier of the base lr at optimizer step `step` (0-based): warm-up, then the schedule."""
    total = cfg.epochs * steps_per_epoch
    warm = int(round(cfg.warmup_epochs * steps_per_epoch))
    if warm and step < warm:
        return (step + 1) / warm
    epoch = step / steps_per_epoch  # fractional epoch
    s = cfg.schedule
    if s == "constant":
        return 1.0
    if s == "step":
        return cfg.gamma ** int(epoch // max(1, cfg.step_every))
    if s == "multistep":
        return cfg.gamma ** sum(epoch >= m for m in cfg.milestones)
    if s == "exponential":
        return cfg.gamma ** int(epoch)
    t = (step - warm) / max(1, total - warm)  # progress after warm-up, 0..1
    if s == "cosine":
        return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
    if s == "onecycle":  # 30% cosine ramp up from lr/25, then cosine down to lr/1e4 (Smith & Topin)
        if warm:
            return 0.5 * (1 + math.cos(math.pi * min(1.0, t))) * (1 - 1e-4) + 1e-4
        up = 0.3
        t = step / max(1, total)
        if t < up:
            return 1 / 25 + (1 - 1 / 25) * 0.5 * (1 - math.cos(math.pi * t / up))
        return 1e-4 + (1 - 1e-4) * 0.5 * (1 + math.cos(math.pi * (t - up) / (1 - up)))
    end = cfg.lr_end
    if s == "triangle":  # airbench: linear up from 0.2 over the first 23%, then linear down to lr_end
        t = step / max(1, total)
        peak = 0.23
        return 0.2 + 0.8 * t / peak if t < peak else max(end, 1 - (1 - end) * (t - peak) / (1 - peak))
    if s == "linear":  # airbench94_muon: from the peak straight down to lr_end, no warm-up
        return 1 - (1 - end) * min(1.0, step / max(1, total))
    raise ValueError(s)


def set_lr(opt: torch.optim.Optimizer | Optimizers, cfg: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """Set every group's lr for this step; returns the base lr. A group that stops at an epoch
    (`stop_epoch`) has its lr fall linearly to 0 there."""
    base = cfg.lr * lr_factor(step, cfg, steps_per_epoch)
    for g in opt.param_groups:
        stop = g.get("stop_epoch")
        fade = max(0.0, 1 - step / (stop * steps_per_epoch)) if stop else 1.0
        g["lr"] = base * g.get("lr_mult", 1.0) * fade
    return base


def frozen_names(cfg: TrainConfig, epoch: int) -> set[str]:
    """The parameters that `freeze_after` has stopped by the start of `epoch` (0-based)."""
    return {name for name, n in cfg.freeze_after.items() if epoch >= n}
