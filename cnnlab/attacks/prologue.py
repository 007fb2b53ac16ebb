"""What every attack does before and after its own algorithm (torchattacks' `Attack.__call__` idea).

Before: the model as a Classifier, frozen in eval mode; the images checked and on its device; the
clean probabilities; the seeded generator; the class each image is pushed towards (targeted) or
away from (untargeted: its label, or its predicted class). After: one AttackResult built the same
way for every attack, so all of them report the same fields.

    with setup_attack(model, x, y=y, target=target, seed=seed) as s:
        adv, final_probs, success, steps, passes = my_algorithm(s.model, s.x, s.cls, s.targeted, s.generator)
    return s.result("my-attack", adv, final_probs, success, steps, passes, params={...})
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from ..errors import CnnlabError
from ..models.classifier import Classifier, Target
from ..models.wrap import as_classifier
from .core import make_generator
from .result import AttackResult


@torch.no_grad()
def clean_probs(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Softmax of the model on x, batched, in whatever mode the caller set."""
    return torch.cat([torch.softmax(model(x[i:i + batch_size]).float(), 1) for i in range(0, len(x), batch_size)])


def check_labels(model: Classifier, x: torch.Tensor, y: int | str | Sequence[int | str] | torch.Tensor) -> torch.Tensor:
    """Labels as class indices [N] on the images' device: one class (index or name) for every image,
    or one per image; anything else is one clear error."""
    if isinstance(y, (int, str)):
        return torch.full((len(x),), model.class_index(y), dtype=torch.long, device=x.device)
    if not isinstance(y, torch.Tensor) and any(isinstance(v, str) for v in y):
        y = [model.class_index(v) for v in y]
    y = torch.as_tensor(y, dtype=torch.long, device=x.device).flatten()
    if len(y) != len(x):
        raise CnnlabError(f"{len(x)} images but {len(y)} labels were given.")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= model.num_classes):
        raise CnnlabError(f"Labels must be class indices 0..{model.num_classes - 1} of model '{model.name}'; "
                          f"got {int(y.min())}..{int(y.max())}.")
    return y


@dataclass
class AttackSetup:
    """The checked inputs of one attack: images, the class each is pushed towards or away from,
    the clean probabilities, the seeded generator and the start time."""

    model: Classifier
    x: torch.Tensor
    cls: torch.Tensor
    targeted: bool
    probs0: torch.Tensor
    generator: torch.Generator
    t0: float

    def result(self, method: str, adv: torch.Tensor, final_probs: torch.Tensor, success: torch.Tensor,
               steps: torch.Tensor, passes: int, params: dict, first_success: torch.Tensor | None = None,
               trajectory: list[list[dict]] | None = None) -> AttackResult:
        """The AttackResult of this attack: `final_probs` are the model's probabilities at `adv`;
        `first_success` defaults to `steps` where the attack succeeded (-1 elsewhere)."""
        pred0 = self.probs0.argmax(1)
        steps = steps.cpu()
        first = first_success if first_success is not None else torch.where(
            success.cpu(), steps, torch.full_like(steps, -1))
        return AttackResult(
            method=method, images=adv.detach(), originals=self.x, success=success.cpu(), steps=steps,
            first_success=first.cpu(), original_class=pred0.cpu(),
            original_prob=self.probs0.gather(1, pred0[:, None])[:, 0].cpu(), final_class=final_probs.argmax(1).cpu(),
            final_prob=final_probs.amax(1).cpu(), labels=list(self.model.labels),
            target=self.cls.cpu() if self.targeted else None, label=None if self.targeted else self.cls.cpu(),
            passes=int(passes), params=params, trajectory=trajectory, seconds=time.perf_counter() - self.t0)


@contextlib.contextmanager
def setup_attack(model: Classifier | torch.nn.Module, x: torch.Tensor, *, y: Target = None,
                 target: Target = None, seed: int | None = 0, batch_size: int = 256) -> Iterator[AttackSetup]:
    """Inside: the model frozen in eval mode (restored on exit) and the attack's checked inputs.

    Untargeted attacks move each image away from `y` (default: its predicted class); targeted ones
    push it towards `target` (a class, least-likely, random, or one per image), and a target every
    image already has is refused."""
    model = as_classifier(model)
    x = model.check_images(x)
    gen = make_generator(seed, x.device)
    t0 = time.perf_counter()
    with model.frozen(fast=True):  # the folded-BN twin where no module is hooked
        probs0 = clean_probs(model, x, batch_size)
        targeted = target is not None
        if targeted:
            cls = model.targets(target, probs0, gen)
            if bool((cls == probs0.argmax(1)).all()):
                raise CnnlabError(f"The {'image is' if len(x) == 1 else 'images are'} already classified as "
                                  f"'{model.label(int(cls[0]))}' ({int(cls[0])}); choose a different target.")
        else:
            cls = probs0.argmax(1) if y is None else check_labels(model, x, y)
        yield AttackSetup(model, x, cls, targeted, probs0, gen, t0)
