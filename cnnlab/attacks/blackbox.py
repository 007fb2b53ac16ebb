"""Black-box attacks through another model: adversarial examples made on one model, tried on another.

`transfer_attack(source, target, x, y)`: plain transfer between two models.
`train_substitute(oracle, seeds)`: Papernot et al. 2017 -- label a small seed set with the target's
answers (outputs only), train a substitute, grow the set by Jacobian-based augmentation
x + lambda * sign(grad of the substitute's logit for the oracle's label), repeat.
`substitute_attack(oracle, x)`: train a substitute on x, attack it with PGD, measure transfer."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CnnlabError
from ..models.classifier import Classifier, Target
from ..models.wrap import as_classifier, wrap
from ..results import Result, percent
from .core import make_generator
from .gradient import pgd
from .prologue import check_labels, clean_probs, setup_attack
from .registry import AttackSpec, attack, attack_spec, register
from .result import AttackResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class SmallCNN(nn.Module):
    """The substitute: a small CNN on [0,1] images (conv32-conv32-pool-conv64-conv64-pool-fc256)."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(64 * 16, 256), nn.ReLU(), nn.Linear(256, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x - 0.5)


@torch.no_grad()
def oracle_labels(oracle: Classifier, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """The target model's top-1 answers: the only thing the substitute learns from."""
    return clean_probs(oracle, x, batch_size).argmax(1)


@dataclass
class Substitute:
    """A trained substitute and what it cost: oracle queries, its agreement with the oracle per round."""

    model: Classifier
    queries: int
    rounds: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"queries": self.queries, "rounds": self.rounds}


def _fit(model: Classifier, x: torch.Tensor, y: torch.Tensor, epochs: int, gen: torch.Generator,
         batch_size: int = 32, lr: float = 1e-3, min_updates: int = 150) -> None:
    """Adam on cross-entropy for `epochs` passes, and at least `min_updates` updates (tiny seed sets)."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    per_epoch = (len(x) + batch_size - 1) // batch_size
    for _ in range(max(epochs, -(-min_updates // per_epoch))):
        order = torch.randperm(len(x), generator=gen).to(x.device)
        for i in range(0, len(x), batch_size):
            b = order[i:i + batch_size]
            loss = F.cross_entropy(model(x[b]), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()


def train_substitute(oracle: Classifier | torch.nn.Module, seeds: torch.Tensor, *, rounds: int = 4, lam: float = 0.1,
                     epochs: int = 10, substitute: torch.nn.Module | None = None, seed: int = 0,
                     max_size: int = 4096, min_updates: int = 150) -> Substitute:
    """Papernot et al.'s substitute training from `seeds` images (the attacker's own small set): each
    round labels the set with the oracle, trains the substitute (`epochs` passes, at least
    `min_updates` optimizer updates), and adds x + lam * sign(dF_y/dx) for every x (lam's sign
    alternates every 3 rounds, as in the paper), up to `max_size` images."""
    oracle = as_classifier(oracle)
    seeds = oracle.check_images(seeds)
    gen = make_generator(seed, torch.device("cpu"))
    torch.manual_seed(seed)
    sub = substitute if isinstance(substitute, Classifier) else wrap(
        substitute or SmallCNN(oracle.num_classes), labels=oracle.labels, input_size=oracle.input_size,
        normalize="none", name="substitute")
    sub = sub.to(seeds.device)
    data = seeds.clone()
    queries, log = 0, []
    with oracle.frozen():
        labels = oracle_labels(oracle, data)
        queries += len(data)
        for r in range(int(rounds)):
            _fit(sub, data, labels, epochs, gen, min_updates=min_updates)
            with torch.no_grad():
                agree = float((sub(seeds).argmax(1) == oracle_labels(oracle, seeds)).float().mean())
            log.append({"round": r, "set_size": len(data), "agreement_on_seeds": agree, "queries": queries})
            if r == rounds - 1 or len(data) >= max_size:
                break
            xa = data.clone().requires_grad_(True)
            g, = torch.autograd.grad(sub(xa).gather(1, labels[:, None]).sum(), xa)
            step = lam * (-1 if (r // 3) % 2 else 1)
            new = (data + step * g.sign()).clamp(0, 1)[: max_size - len(data)]
            new_labels = oracle_labels(oracle, new)
            queries += len(new)
            data, labels = torch.cat([data, new]), torch.cat([labels, new_labels])
    return Substitute(sub, queries, log)


@dataclass(repr=False)
class TransferAttackResult(Result):
    """Adversarial examples crafted on `source`, judged on `target`: how often they fool each."""

    method: str
    n: int
    source_success: float
    target_top1: float
    target_robust_top1: float
    transfer_rate: float
    params: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def summary_rows(self) -> list[tuple[str, object]]:
        return [("method", self.method), ("source", self.params.get("source")), ("target", self.params.get("target")),
                ("n", self.n), ("source_success", percent(self.source_success)),
                ("target_top1", percent(self.target_top1)), ("target_robust_top1", percent(self.target_robust_top1)),
                ("transfer_rate", percent(self.transfer_rate))]

    def figure(self, path: str | Path | None = None) -> "Figure | Path":
        """How often the examples fool the source, the target's accuracy before and after, the transfer rate."""
        from ..figures import bars_figure, finish
        return finish(bars_figure([(f"{self.params.get('source')} -> {self.params.get('target')}",
                                    ["fools the source", "target top-1 clean", "target top-1 adversarial",
                                     "transfer rate"],
                                    [self.source_success, self.target_top1, self.target_robust_top1,
                                     self.transfer_rate])]), path)

    def lines(self) -> list[str]:
        return [f"{self.method} on {self.params.get('source')} -> {self.params.get('target')} ({self.n} images)",
                f"fools the source        {self.source_success:7.2%}",
                f"target accuracy clean   {self.target_top1:7.2%}",
                f"target accuracy adv     {self.target_robust_top1:7.2%}",
                f"transfer rate           {self.transfer_rate:7.2%}  (of source-successful examples on images "
                "the target got right)"]


def transfer_attack(source: Classifier | torch.nn.Module, target: Classifier | torch.nn.Module, x: torch.Tensor,
                    y: torch.Tensor, *, method: str = "pgd", eps: float | None = 8 / 255, steps: int | None = 10,
                    seed: int = 0) -> TransferAttackResult:
    """Attack `source` (white-box, any registered method; methods with the choice run every step,
    since stopping at the first success makes weak transfers) on (x, y) and feed the result to `target`."""
    source, target = as_classifier(source), as_classifier(target)
    x = target.check_images(x)
    y = check_labels(target, x, y)
    spec = attack_spec(method)
    r = attack(source, x, method, y=y, eps=eps, steps=steps, seed=seed,
               early_stop=False if spec.takes("early_stop") else None)
    with target.frozen(), torch.no_grad():
        clean = oracle_labels(target, x) == y
        adv = oracle_labels(target, r.images) == y
    src_ok = r.success.to(x.device)
    base = clean & src_ok
    return TransferAttackResult(
        method=method, n=len(x), source_success=float(src_ok.float().mean()),
        target_top1=float(clean.float().mean()), target_robust_top1=float(adv.float().mean()),
        transfer_rate=float((~adv[base]).float().mean()) if bool(base.any()) else 0.0,
        params={"eps": eps, "steps": steps, "seed": seed, "source": source.name, "target": target.name})


@dataclass
class SubstituteAttack:
    """A black-box attack through a substitute: the AttackResult on the oracle, and the substitute."""

    result: AttackResult
    substitute: Substitute
    substitute_success: float

    def to_dict(self) -> dict:
        return {**self.result.summary(), "substitute": self.substitute.to_dict(),
                "substitute_success": self.substitute_success}


def substitute_attack(oracle: Classifier | torch.nn.Module, x: torch.Tensor, *, y: torch.Tensor | None = None,
                      target: Target = None, eps: float = 8 / 255, steps: int = 10, rounds: int = 4,
                      lam: float = 0.1, epochs: int = 10, seeds: torch.Tensor | None = None, seed: int = 0,
                      min_updates: int = 150) -> SubstituteAttack:
    """Black-box: train a substitute on `seeds` (default: x itself) from the oracle's labels, run PGD
    (every step) on the substitute, and judge the adversarial images on the oracle. The oracle is only
    queried for labels (`result.passes` counts those queries; no gradient of it is taken)."""
    with setup_attack(oracle, x, y=y, target=target, seed=seed) as s:
        if len(s.x) < 2 and seeds is None:
            raise CnnlabError("A substitute needs at least 2 seed images; attack a batch or pass seeds=.")
        sub = train_substitute(s.model, s.x if seeds is None else seeds, rounds=rounds, lam=lam, epochs=epochs,
                               seed=seed, min_updates=min_updates)
        r = pgd(sub.model, s.x, eps, steps=steps, y=None if s.targeted else s.cls,
                target=s.cls if s.targeted else None, early_stop=False, seed=seed)
        final = clean_probs(s.model, r.images)
    ok = final.argmax(1) == s.cls if s.targeted else final.argmax(1) != s.cls
    queries = sub.queries + 2 * len(s.x)
    params = {"norm": "linf", "eps": eps, "steps": steps, "rounds": rounds, "lambda": lam, "epochs": epochs,
              "substitute": type(sub.model.net).__name__, "oracle_queries": queries, "seed": seed}
    res = s.result("transfer", r.images, final, ok, torch.full((len(s.x),), steps, dtype=torch.long), queries, params)
    return SubstituteAttack(res, sub, r.success_rate)


register(AttackSpec(
    "transfer", kind="substitute", norm="linf", target="allows", options=("eps", "steps"), eps=8 / 255, steps=10,
    step_rule="2.5 * eps / steps (PGD on the substitute)", evaluable=False,
    description="substitute attack: a small CNN trained on the model's labels only, attacked with PGD, the "
                "images then judged on the model (Papernot et al. 2017)",
    run=lambda m, x, o, **kw: substitute_attack(m, x, y=o.y, target=o.target, eps=o.eps, steps=o.steps,
                                                seed=o.seed, **kw).result))
