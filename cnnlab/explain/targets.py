"""Which class an explanation is about: None (the prediction), an index, a name, or one per image."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..errors import CnnlabError

Target = int | str | Sequence[int | str] | torch.Tensor | None


def resolve_targets(model: nn.Module, target: Target, logits: torch.Tensor) -> torch.Tensor:
    """Target spec -> LongTensor [N] of class indices (None: each image's top prediction)."""
    n = logits.shape[0]
    if target is None:
        return logits.detach().argmax(1)
    if isinstance(target, torch.Tensor):
        target = target.flatten().tolist() if target.numel() != 1 else target.item()
    if isinstance(target, (int, str)):
        return torch.full((n,), model.class_index(target), dtype=torch.long, device=logits.device)
    target = list(target)
    if len(target) != n:
        raise CnnlabError(f"{len(target)} targets were given for {n} images; give one target, or one per image.")
    return torch.tensor([model.class_index(t) for t in target], dtype=torch.long, device=logits.device)
