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


def parameter_groups(net: nn.Module, cfg: TrainConfig, backbone: set[str] | None = None) -> list[dict]:
    """Split trainable parameters into groups: weights (decayed), BN/bias (decayed only if asked),
    and backbone parameters (lr x backbone_lr_mult when fine-tuning). Each group keeps 'lr_mult'."""
    norm_params = {id(p) for m in net.modules() if isinstance(m, _NORM_TYPES) for p in m.parameters(recurse=False)}
    groups: dict[tuple, list] = {}
    for name, p in net.named_parameters():
        if not p.requires_grad and not (backbone and name in backbone):
            continue
        is_nb = id(p) in norm_params or name.endswith(".bias") or p.dim() <= 1
        in_backbone = bool(backbone) and name in backbone
        decay = cfg.weight_decay if (cfg.decay_norm_and_bias or not is_nb) else 0.0
        mult = (cfg.backbone_lr_mult if in_backbone else 1.0) * (cfg.bias_lr_mult if is_nb else 1.0)
        groups.setdefault((decay, mult), []).append(p)
    return [{"params": ps, "weight_decay": d, "lr_mult": m, "lr": cfg.lr * m} for (d, m), ps in groups.items()]


def build_optimizer(net: nn.Module, cfg: TrainConfig, backbone: set[str] | None = None) -> torch.optim.Optimizer:
    """SGD (momentum, Nesterov), Adam or AdamW over `parameter_groups`."""
    groups = parameter_groups(net, cfg, backbone)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr)
    return torch.optim.AdamW(groups, lr=cfg.lr)


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
    if s == "triangle":  # airbench: linear up over the first 23%, then linear down to ~0
        t = step / max(1, total)
        peak = 0.23
        return 0.2 + 0.8 * t / peak if t < peak else max(0.0, (1 - t) / (1 - peak))
    raise ValueError(s)


def set_lr(opt: torch.optim.Optimizer, cfg: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """Set every group's lr for this step; returns the base lr."""
    base = cfg.lr * lr_factor(step, cfg, steps_per_epoch)
    for g in opt.param_groups:
        g["lr"] = base * g.get("lr_mult", 1.0)
    return base
