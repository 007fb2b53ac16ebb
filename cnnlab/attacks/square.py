"""Square Attack (Andriushchenko et al. 2020), L-inf: a black-box attack that uses only the model's
outputs. Random square patches of +-eps are tried one at a time and kept when they lower the margin;
the square shrinks on a fixed schedule. Every forward is a query; no gradient is ever taken."""
from __future__ import annotations

import math

import torch

from ..errors import CnnlabError
from ..models.classifier import Classifier, Target
from .core import check_eps, check_steps
from .prologue import setup_attack
from .registry import AttackSpec, register
from .result import AttackResult


def margin_loss(logits: torch.Tensor, cls: torch.Tensor, targeted: bool) -> torch.Tensor:
    """What Square Attack lowers; negative means success. Untargeted: logit_y - max_{k!=y} logit_k;
    targeted: max_{k!=t} logit_k - logit_t."""
    own = logits.gather(1, cls[:, None])[:, 0]
    other = logits.scatter(1, cls[:, None], float("-inf")).amax(1)
    return other - own if targeted else own - other


def square_size_fraction(p_init: float, it: int, budget: int) -> float:
    """The paper's schedule: the fraction p of pixels in the square halves at fixed iterations
    (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000 of a 10000-query run, rescaled to `budget`)."""
    i = int(it / budget * 10000) if budget != 10000 else it
    for k, mark in enumerate((10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)):
        if i <= mark:
            return p_init / 2 ** k
    return p_init / 2 ** 9


def square(model: Classifier | torch.nn.Module, x: torch.Tensor, eps: float = 8 / 255, *, queries: int = 1000,
           y: torch.Tensor | None = None, target: Target = None, p_init: float = 0.8, seed: int | None = 0,
           batch_size: int = 256) -> AttackResult:
    """Square Attack under the L-inf ball of radius eps with at most `queries` model calls per image.

    Starts from vertical stripes of +-eps (one query), then each iteration proposes, for every image
    not yet fooled, a random square whose channels are set to +-eps, and keeps it if the margin
    drops. `result.steps` is the number of queries each image used (counting the clean one);
    `result.params['queries_per_success']` is their mean over the fooled images."""
    eps = check_eps(eps)
    queries = check_steps(queries, "Square Attack's query budget")
    if not 0 < p_init <= 1:
        raise CnnlabError(f"p_init {p_init} must be in (0, 1].")
    with setup_attack(model, x, y=y, target=target, seed=seed, batch_size=batch_size) as s, torch.no_grad():
        parts = [_square_batch(s.model, s.x[i:i + batch_size], s.cls[i:i + batch_size], s.targeted, eps, queries,
                               p_init, s.generator) for i in range(0, len(s.x), batch_size)]
    adv, final, used, ok = (torch.cat([p[k] for p in parts]) for k in range(4))
    any_ok = bool(ok.any())
    params = {"norm": "linf", "eps": eps, "queries": queries, "p_init": p_init, "seed": seed,
              "queries_per_success": float(used[ok].float().mean()) if any_ok else None,
              "median_queries_per_success": float(used[ok].float().median()) if any_ok else None}
    if not any_ok:
        params["queries_per_success_null"] = "no image was fooled within the budget"
    return s.result("square", adv, final, ok, used, int(used.sum()), params)


def _square_batch(model: Classifier, x: torch.Tensor, cls: torch.Tensor, targeted: bool, eps: float, budget: int,
                  p_init: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    n, c, h, w = x.shape
    dev = x.device
    stripes = eps * (torch.randint(0, 2, (n, c, 1, w), generator=gen, device=dev) * 2 - 1).float()
    best = (x + stripes).clamp(0, 1)
    logits = model(best)
    loss = margin_loss(logits, cls, targeted)
    probs = torch.softmax(logits.float(), 1)
    used = torch.ones(n, dtype=torch.long, device=dev)
    for it in range(1, budget):
        idx = (loss >= 0).nonzero()[:, 0]
        if len(idx) == 0:
            break
        p = square_size_fraction(p_init, it, budget)
        s = min(max(int(round(math.sqrt(p * h * w))), 1), min(h, w) - 1)
        m = len(idx)
        top = torch.randint(0, h - s + 1, (m, 1, 1, 1), generator=gen, device=dev)
        left = torch.randint(0, w - s + 1, (m, 1, 1, 1), generator=gen, device=dev)
        rows = torch.arange(h, device=dev).view(1, 1, h, 1)
        cols = torch.arange(w, device=dev).view(1, 1, 1, w)
        window = (rows >= top) & (rows < top + s) & (cols >= left) & (cols < left + s)  # one square per image
        xs = x[idx]
        sign = eps * (torch.randint(0, 2, (m, c, 1, 1), generator=gen, device=dev) * 2 - 1).float()
        delta = torch.where(window, sign, best[idx] - xs)
        cand = (xs + delta).clamp(0, 1)
        out = model(cand)
        new = margin_loss(out, cls[idx], targeted)
        better = new < loss[idx]
        keep = idx[better]
        best[keep] = cand[better]
        loss[keep] = new[better]
        probs[keep] = torch.softmax(out[better].float(), 1)
        used[idx] += 1
    return best, probs, used.cpu(), (loss < 0).cpu()


register(AttackSpec(
    "square", kind="query-black-box", norm="linf", target="allows", options=("eps", "steps"), eps=8 / 255,
    steps=1000, step_rule="random squares of +-eps, shrinking on a fixed schedule",
    description="Square Attack: random +-eps squares kept when they lower the margin; outputs only, no "
                "gradient (Andriushchenko et al. 2020)",
    run=lambda m, x, o, **kw: square(m, x, o.eps, queries=o.steps, y=o.y, target=o.target, seed=o.seed, **kw)))
