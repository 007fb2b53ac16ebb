"""Gradient attacks as thin choices over the shared core: logit/probability descent and ascent with
plain gradient steps, FGSM, BIM and PGD (L-inf and L2, random start, targeted or untargeted)."""
from __future__ import annotations

from collections.abc import Callable

import torch

from ..errors import CnnlabError
from ..models.classifier import Classifier, Target
from .core import LoopOutput, check_eps, check_steps, gradient_attack
from .prologue import setup_attack
from .registry import AttackSpec, register
from .result import AttackResult


def run_attack(method: str, model: Classifier | torch.nn.Module, x: torch.Tensor, *, y: Target = None,
               target: Target = None, loss: str = "ce", rule: str = "sign", norm: str | None = "linf",
               eps: float | None = None, steps: int = 10, step_size: float = 2 / 255,
               rand_init: bool = False, restarts: int = 1, early_stop: bool = True,
               record: bool | None = None, seed: int | None = 0, batch_size: int = 256,
               engine: Callable[..., LoopOutput] = gradient_attack, **engine_kw: object) -> AttackResult:
    """The shared prologue, batching and restarts around one attack engine (the core's loop or APGD's).

    `restarts` > 1 gives the images that resisted new random starts; `record` (default: for up to
    16 images) keeps the per-step trajectory."""
    eps = check_eps(eps, norm=norm)
    steps = check_steps(steps)
    if step_size is not None and not 0 < float(step_size) <= 10:
        raise CnnlabError(f"step size {step_size} must be positive (pixel units, e.g. 2/255).")
    with setup_attack(model, x, y=y, target=target, seed=seed, batch_size=batch_size) as s:
        record = len(s.x) <= 16 if record is None else record
        kw = dict(targeted=s.targeted, loss=loss, rule=rule, norm=norm, eps=eps, steps=steps, step_size=step_size,
                  rand_init=rand_init, early_stop=early_stop, generator=s.generator, **engine_kw)
        outs = []
        for i in range(0, len(s.x), batch_size):
            xb, cb = s.x[i:i + batch_size], s.cls[i:i + batch_size]
            out = engine(s.model, xb, cb, record=record, **kw)
            for _ in range(restarts - 1):  # new random starts for the images that resisted
                out = _restart(engine, s.model, xb, cb, out, **kw)
            outs.append(out)
    out = _cat(outs)
    params = {"loss": loss, "rule": rule, "norm": norm, "eps": eps, "steps": steps, "step_size": step_size,
              "random_start": rand_init, "restarts": restarts, "early_stop": early_stop, "seed": seed}
    return s.result(method, out.adv, out.probs, out.success, out.steps, out.passes, params,
                    first_success=out.first_success, trajectory=out.trajectory)


def _restart(engine: Callable[..., LoopOutput], model: Classifier, x: torch.Tensor, cls: torch.Tensor,
             prev: LoopOutput, **kw: object) -> LoopOutput:
    todo = (~prev.success).nonzero()[:, 0]
    if len(todo) == 0:
        return prev
    new = engine(model, x[todo], cls[todo], record=False, **kw)
    adv, probs = prev.adv.clone(), prev.probs.clone()
    success, steps, first = prev.success.clone(), prev.steps.clone(), prev.first_success.clone()
    won = new.success
    adv[todo[won]], probs[todo[won]] = new.adv[won], new.probs[won]
    success[todo[won]] = True
    steps[todo] += new.steps
    first[todo[won]] = new.first_success[won] + prev.steps[todo[won]]
    return LoopOutput(adv, success, steps, first, prev.passes + new.passes, probs, prev.trajectory)


def _cat(outs: list[LoopOutput]) -> LoopOutput:
    if len(outs) == 1:
        return outs[0]
    traj = None if outs[0].trajectory is None else [t for o in outs for t in o.trajectory]
    return LoopOutput(*(torch.cat([getattr(o, f) for o in outs]) for f in
                        ("adv", "success", "steps", "first_success")),
                      passes=sum(o.passes for o in outs), probs=torch.cat([o.probs for o in outs]), trajectory=traj)


# -- descent on the current class with plain gradient steps ------------------------------------------
def logit_descent(model: Classifier | torch.nn.Module, x: torch.Tensor, label: Target = None, *,
                  step_size: float = 0.1, steps: int = 100, early_stop: bool = True,
                  seed: int | None = 0) -> AttackResult:
    """Minimize the logit of the current (or given) class with raw-gradient steps x <- clip(x - eta*grad).

    Stops at the first label change unless `early_stop=False` (then the trajectory shows which
    classes appear as the descent goes on)."""
    return run_attack("logit-descent", model, x, y=label, loss="logit", rule="raw", norm=None,
                      steps=steps, step_size=step_size, early_stop=early_stop, record=True, seed=seed)


def prob_descent(model: Classifier | torch.nn.Module, x: torch.Tensor, label: Target = None, *,
                 step_size: float = 0.1, steps: int = 100, early_stop: bool = True,
                 seed: int | None = 0) -> AttackResult:
    """The same descent on the softmax probability: its gradient p(1-p)*... vanishes when p is near 1,
    so the steps are tiny and the attack stalls (see the gradient norms in the trajectory)."""
    return run_attack("prob-descent", model, x, y=label, loss="prob", rule="raw", norm=None,
                      steps=steps, step_size=step_size, early_stop=early_stop, record=True, seed=seed)


# -- ascent towards a target, optionally inside an eps-ball ---------------------------------------
def logit_ascent(model: Classifier | torch.nn.Module, x: torch.Tensor, target: Target, *,
                 eps: float | None = None, steps: int = 100, step_size: float | None = None,
                 rule: str | None = None, early_stop: bool = True, seed: int | None = 0) -> AttackResult:
    """Gradient ascent on the target's logit. Without eps: raw gradient steps of size 0.1; with eps:
    signed steps projected onto the L-inf ball ||x' - x|| <= eps."""
    return _ascent("logit-ascent", "logit", model, x, target, eps, steps, step_size, rule, early_stop, seed)


def prob_ascent(model: Classifier | torch.nn.Module, x: torch.Tensor, target: Target, *,
                eps: float | None = None, steps: int = 100, step_size: float | None = None,
                rule: str | None = None, early_stop: bool = True, seed: int | None = 0) -> AttackResult:
    """Gradient ascent on P(target | x), raw or signed steps, optionally in an L-inf ball."""
    return _ascent("prob-ascent", "prob", model, x, target, eps, steps, step_size, rule, early_stop, seed)


def _ascent(method: str, loss: str, model: Classifier | torch.nn.Module, x: torch.Tensor, target: Target,
            eps: float | None, steps: int, step_size: float | None, rule: str | None, early_stop: bool,
            seed: int | None) -> AttackResult:
    if target is None:
        raise CnnlabError(f"{method} needs a target class (a name, an index, least-likely or random).")
    eps = check_eps(eps)
    rule = rule or ("raw" if eps is None else "sign")
    if step_size is None:
        step_size = 0.1 if rule == "raw" else max(eps / 10, 0.25 / 255)
    return run_attack(method, model, x, target=target, loss=loss, rule=rule, norm="linf", eps=eps, steps=steps,
                      step_size=step_size, early_stop=early_stop, record=None, seed=seed)


# -- FGSM, BIM, PGD -----------------------------------------------------------------------------
def fgsm(model: Classifier | torch.nn.Module, x: torch.Tensor, eps: float = 8 / 255, *,
         y: torch.Tensor | None = None, target: Target = None, seed: int | None = 0) -> AttackResult:
    """Fast gradient sign method (Goodfellow et al. 2015): one signed step of size eps on the CE loss."""
    return run_attack("fgsm", model, x, y=y, target=target, loss="ce", rule="sign", norm="linf", eps=eps,
                      steps=1, step_size=eps, early_stop=False, seed=seed, record=False)


def bim(model: Classifier | torch.nn.Module, x: torch.Tensor, eps: float = 8 / 255, *, steps: int = 10,
        step_size: float | None = None, y: torch.Tensor | None = None, target: Target = None,
        early_stop: bool = False, seed: int | None = 0) -> AttackResult:
    """Basic iterative method (Kurakin et al. 2017): iterated FGSM from the image, kept in the L-inf ball."""
    eps = check_eps(eps)
    step_size = step_size if step_size is not None else eps / check_steps(steps) * 2.5
    return run_attack("bim", model, x, y=y, target=target, loss="ce", rule="sign", norm="linf", eps=eps,
                      steps=steps, step_size=step_size, early_stop=early_stop, seed=seed)


def pgd(model: Classifier | torch.nn.Module, x: torch.Tensor, eps: float | None = None, *, steps: int = 10,
        step_size: float | None = None, norm: str = "linf", y: torch.Tensor | None = None, target: Target = None,
        random_start: bool = True, restarts: int = 1, loss: str = "ce", early_stop: bool = True,
        seed: int | None = 0, batch_size: int = 256) -> AttackResult:
    """Projected gradient descent (Madry et al. 2018) under L-inf (signed steps) or L2 (unit-L2 steps),
    from a random point of the ball. With `early_stop` (default) an image stops at its first success
    and keeps that iterate: same success as running on, fewer passes."""
    if norm not in ("linf", "l2"):
        raise CnnlabError(f"Unknown norm '{norm}'; choose linf or l2.")
    eps = check_eps(eps if eps is not None else (8 / 255 if norm == "linf" else 0.5), norm=norm)
    step_size = step_size if step_size is not None else 2.5 * eps / check_steps(steps)
    return run_attack("pgd" if norm == "linf" else "pgd-l2", model, x, y=y, target=target, loss=loss,
                      rule="sign" if norm == "linf" else "l2", norm=norm, eps=eps, steps=steps, step_size=step_size,
                      rand_init=random_start, restarts=restarts, early_stop=early_stop, seed=seed,
                      batch_size=batch_size)


# -- the registry entries -----------------------------------------------------------------------------
def _run_descent(fn: Callable[..., AttackResult]) -> Callable[..., AttackResult]:
    return lambda m, x, o, **kw: fn(m, x, o.y, step_size=o.step_size, steps=o.steps, early_stop=o.early_stop,
                                    seed=o.seed, **kw)


def _run_ascent(fn: Callable[..., AttackResult]) -> Callable[..., AttackResult]:
    return lambda m, x, o, **kw: fn(m, x, o.target, eps=o.eps, steps=o.steps, step_size=o.step_size,
                                    early_stop=o.early_stop, seed=o.seed, **kw)


def _run_iterated(fn: Callable[..., AttackResult], **fixed: object) -> Callable[..., AttackResult]:
    return lambda m, x, o, **kw: fn(m, x, o.eps, steps=o.steps, step_size=o.step_size, y=o.y, target=o.target,
                                    early_stop=o.early_stop, seed=o.seed, **fixed, **kw)


_BALL = ("eps", "steps", "step_size", "early_stop")
_DESCENT = dict(kind="gradient", norm=None, target="refuses", options=("steps", "step_size", "early_stop"),
                steps=100, step_size=0.1, early_stop=True, evaluable=False)
_ASCENT = dict(kind="gradient", norm="linf", target="needs", options=_BALL, steps=100, early_stop=True,
               step_rule="0.1 plain gradient steps, or with eps signed steps of max(eps/10, 0.25/255)",
               evaluable=False)
register(AttackSpec("logit-descent", **_DESCENT, run=_run_descent(logit_descent),
                    description="descent on the logit of the current class with plain gradient steps (no eps bound)"))
register(AttackSpec("prob-descent", **_DESCENT, run=_run_descent(prob_descent),
                    description="descent on the probability of the current class: stalls where the gradient "
                                "vanishes (p near 1)"))
register(AttackSpec("logit-ascent", **_ASCENT, run=_run_ascent(logit_ascent),
                    description="ascent on the target's logit; unbounded, or inside an L-inf ball with eps"))
register(AttackSpec("prob-ascent", **_ASCENT, run=_run_ascent(prob_ascent),
                    description="ascent on the target's probability; unbounded, or inside an L-inf ball with eps"))
register(AttackSpec(
    "fgsm", kind="gradient", norm="linf", target="allows", options=("eps",), eps=8 / 255, steps=1,
    step_rule="eps", description="fast gradient sign method: one signed step of size eps (Goodfellow et al. 2015)",
    run=lambda m, x, o, **kw: fgsm(m, x, o.eps, y=o.y, target=o.target, seed=o.seed, **kw)))
_ITERATED = dict(kind="gradient", target="allows", options=_BALL, steps=10, step_rule="2.5 * eps / steps")
register(AttackSpec("bim", **_ITERATED, norm="linf", eps=8 / 255, early_stop=False, run=_run_iterated(bim),
                    description="basic iterative method: iterated FGSM from the image (Kurakin et al. 2017)"))
register(AttackSpec("pgd", **_ITERATED, norm="linf", eps=8 / 255, early_stop=True, run=_run_iterated(pgd),
                    description="projected gradient descent from a random start in the L-inf ball "
                                "(Madry et al. 2018)"))
register(AttackSpec("pgd-l2", **_ITERATED, norm="l2", eps=0.5, early_stop=True, run=_run_iterated(pgd, norm="l2"),
                    description="projected gradient descent in the L2 ball, unit-L2 steps from a random start"))
