"""Gradient attacks as thin choices over the shared core: logit/probability descent and ascent (seed
000/001), FGSM, BIM and PGD (L-inf and L2, random start, targeted or untargeted)."""
from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from ..errors import CnnlabError
from .core import (LoopOutput, attack_mode, check_eps, check_images, check_steps, gradient_attack,
                   make_generator)
from .result import AttackResult

Target = int | str | Sequence[int] | torch.Tensor | None

TARGET_WORDS = ("least-likely", "random")


@torch.no_grad()
def clean_probs(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Softmax of the model on x, batched, in whatever mode the caller set."""
    return torch.cat([torch.softmax(model(x[i:i + batch_size]).float(), 1) for i in range(0, len(x), batch_size)])


def resolve_target(model: torch.nn.Module, target: Target, probs: torch.Tensor,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Per-image target classes from a class name/index, 'least-likely', 'random' or a tensor/list."""
    n, c = probs.shape
    if isinstance(target, torch.Tensor) or (isinstance(target, Sequence) and not isinstance(target, str)):
        t = torch.as_tensor(target, dtype=torch.long, device=probs.device).flatten()
        if len(t) == 1:
            t = t.expand(n).clone()
        if len(t) != n or t.min() < 0 or t.max() >= c:
            raise CnnlabError(f"Targets must be {n} class indices in 0..{c - 1}; got {t.tolist()[:10]}.")
        return t
    if isinstance(target, str) and target.strip().lower() in ("least-likely", "least_likely", "ll"):
        return probs.argmin(1)
    if isinstance(target, str) and target.strip().lower() == "random":
        pred = probs.argmax(1)
        r = torch.randint(0, c - 1, (n,), generator=generator, device=generator.device if generator else None)
        r = r.to(probs.device)
        return r + (r >= pred).long()  # uniform over the classes other than the current one
    if hasattr(model, "class_index"):
        idx = model.class_index(target)
    else:
        idx = int(target)
        if not 0 <= idx < c:
            raise CnnlabError(f"Class index {idx} is out of range 0..{c - 1}.")
    return torch.full((n,), idx, dtype=torch.long, device=probs.device)


def _labels(model: torch.nn.Module, c: int) -> list[str]:
    labels = list(getattr(model, "labels", []) or [])
    return labels if len(labels) == c else [str(i) for i in range(c)]


def run_attack(method: str, model: torch.nn.Module, x: torch.Tensor, *, y: torch.Tensor | None = None,
               target: Target = None, loss: str = "ce", rule: str = "sign", norm: str | None = "linf",
               eps: float | None = None, steps: int = 10, step_size: float = 2 / 255,
               rand_init: bool = False, restarts: int = 1, stop_on_success: bool = True,
               record: bool | None = None, seed: int | None = 0, batch_size: int = 256,
               eval_mode: bool = True, engine=gradient_attack, **engine_kw) -> AttackResult:  # noqa: ANN001
    """Checks, eval mode, targets, batching and the result object around one attack engine."""
    x = check_images(model, x)
    eps = check_eps(eps, norm=norm)
    steps = check_steps(steps)
    if step_size is not None and not 0 < float(step_size) <= 10:
        raise CnnlabError(f"step size {step_size} must be positive (pixel units, e.g. 2/255).")
    gen = make_generator(seed, x.device)
    t0 = time.perf_counter()
    with attack_mode(model, eval_mode):
        probs0 = clean_probs(model, x, batch_size)
        pred0 = probs0.argmax(1)
        labels = _labels(model, probs0.shape[1])
        targeted = target is not None
        if targeted:
            cls = resolve_target(model, target, probs0, gen)
            already = cls == pred0
            if bool(already.all()):
                name = labels[int(cls[0])]
                raise CnnlabError(f"The {'image is' if len(x) == 1 else 'images are'} already classified as "
                                  f"'{name}' ({int(cls[0])}); choose a different target.")
        else:
            cls = pred0 if y is None else torch.as_tensor(y, dtype=torch.long, device=x.device).flatten()
            if len(cls) != len(x):
                raise CnnlabError(f"{len(x)} images but {len(cls)} labels were given.")
        record = len(x) <= 16 if record is None else record
        outs = []
        for i in range(0, len(x), batch_size):
            sl = slice(i, i + batch_size)
            out = engine(model, x[sl], cls[sl], targeted=targeted, loss=loss, rule=rule, norm=norm, eps=eps,
                         steps=steps, step_size=step_size, rand_init=rand_init, stop_on_success=stop_on_success,
                         record=record, generator=gen, **engine_kw)
            for _ in range(restarts - 1):  # new random starts for the images that resisted
                out = _restart(engine, model, x[sl], cls[sl], out, targeted=targeted, loss=loss, rule=rule,
                               norm=norm, eps=eps, steps=steps, step_size=step_size, rand_init=rand_init,
                               stop_on_success=stop_on_success, generator=gen, **engine_kw)
            outs.append(out)
    out = _cat(outs)
    final = out.probs
    params = {"loss": loss, "rule": rule, "norm": norm, "eps": eps, "steps": steps, "step_size": step_size,
              "random_start": rand_init, "restarts": restarts, "stop_on_success": stop_on_success, "seed": seed}
    return AttackResult(
        method=method, images=out.adv, originals=x, success=out.success.cpu(), steps=out.steps.cpu(),
        first_success=out.first_success.cpu(), original_class=pred0.cpu(),
        original_prob=probs0.gather(1, pred0[:, None])[:, 0].cpu(), final_class=final.argmax(1).cpu(),
        final_prob=final.amax(1).cpu(), labels=labels, target=cls.cpu() if targeted else None,
        label=None if targeted else cls.cpu(), passes=out.passes, params=params, trajectory=out.trajectory,
        seconds=time.perf_counter() - t0)


def _restart(engine, model, x, cls, prev: LoopOutput, **kw) -> LoopOutput:  # noqa: ANN001
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


# -- seed 000: descent on the current class, raw gradient steps ---------------------------------
def logit_descent(model: torch.nn.Module, x: torch.Tensor, label: Target = None, *, step_size: float = 0.1,
                  steps: int = 100, until_change: bool = True, seed: int | None = 0) -> AttackResult:
    """Minimize the logit of the current (or given) class with raw-gradient steps x <- clip(x - eta*grad).

    Stops at the first label change unless `until_change=False` (then the trajectory shows which
    classes appear as the descent goes on)."""
    y = _label_tensor(model, x, label)
    return run_attack("logit-descent", model, x, y=y, loss="logit", rule="raw", norm=None, steps=steps,
                      step_size=step_size, stop_on_success=until_change, record=True, seed=seed)


def prob_descent(model: torch.nn.Module, x: torch.Tensor, label: Target = None, *, step_size: float = 0.1,
                 steps: int = 100, until_change: bool = True, seed: int | None = 0) -> AttackResult:
    """The same descent on the softmax probability: its gradient p(1-p)*... vanishes when p is near 1,
    so the steps are tiny and the attack stalls (see the gradient norms in the trajectory)."""
    y = _label_tensor(model, x, label)
    return run_attack("prob-descent", model, x, y=y, loss="prob", rule="raw", norm=None, steps=steps,
                      step_size=step_size, stop_on_success=until_change, record=True, seed=seed)


def _label_tensor(model: torch.nn.Module, x: torch.Tensor, label: Target) -> torch.Tensor | None:
    if label is None:
        return None
    if isinstance(label, (int, str)):
        idx = model.class_index(label) if hasattr(model, "class_index") else int(label)
        return torch.full((len(x) if x.dim() == 4 else 1,), idx, dtype=torch.long)
    return torch.as_tensor(label, dtype=torch.long).flatten()


# -- seed 000 §5 / seed 001: ascent towards a target, optionally inside an eps-ball -------------
def logit_ascent(model: torch.nn.Module, x: torch.Tensor, target: Target, *, eps: float | None = None,
                 steps: int = 100, step_size: float | None = None, rule: str | None = None,
                 until_success: bool = True, seed: int | None = 0) -> AttackResult:
    """Gradient ascent on the target's logit. Without eps: raw steps of size 0.1 (seed 000);
    with eps: signed steps projected onto the L-inf ball ||x' - x|| <= eps (seed 001)."""
    return _ascent("logit-ascent", "logit", model, x, target, eps, steps, step_size, rule, until_success, seed)


def prob_ascent(model: torch.nn.Module, x: torch.Tensor, target: Target, *, eps: float | None = None,
                steps: int = 100, step_size: float | None = None, rule: str | None = None,
                until_success: bool = True, seed: int | None = 0) -> AttackResult:
    """Gradient ascent on P(target | x) (seed 001), raw or signed steps, optionally in an L-inf ball."""
    return _ascent("prob-ascent", "prob", model, x, target, eps, steps, step_size, rule, until_success, seed)


def _ascent(method, loss, model, x, target, eps, steps, step_size, rule, until_success, seed) -> AttackResult:  # noqa: ANN001
    if target is None:
        raise CnnlabError(f"{method} needs a target class (a name, an index, least-likely or random).")
    eps = check_eps(eps)
    rule = rule or ("raw" if eps is None else "sign")
    if step_size is None:
        step_size = 0.1 if rule == "raw" else max(eps / 10, 0.25 / 255)
    return run_attack(method, model, x, target=target, loss=loss, rule=rule, norm="linf", eps=eps, steps=steps,
                      step_size=step_size, stop_on_success=until_success, record=None, seed=seed)


# -- FGSM, BIM, PGD -----------------------------------------------------------------------------
def fgsm(model: torch.nn.Module, x: torch.Tensor, eps: float = 8 / 255, *, y: torch.Tensor | None = None,
         target: Target = None, seed: int | None = 0) -> AttackResult:
    """Fast gradient sign method (Goodfellow et al. 2015): one signed step of size eps on the CE loss."""
    return run_attack("fgsm", model, x, y=y, target=target, loss="ce", rule="sign", norm="linf", eps=eps,
                      steps=1, step_size=eps, stop_on_success=False, seed=seed, record=False)


def bim(model: torch.nn.Module, x: torch.Tensor, eps: float = 8 / 255, *, steps: int = 10,
        step_size: float | None = None, y: torch.Tensor | None = None, target: Target = None,
        early_stop: bool = False, seed: int | None = 0) -> AttackResult:
    """Basic iterative method (Kurakin et al. 2017): iterated FGSM from the image, kept in the L-inf ball."""
    eps = check_eps(eps)
    step_size = step_size if step_size is not None else eps / check_steps(steps) * 2.5
    return run_attack("bim", model, x, y=y, target=target, loss="ce", rule="sign", norm="linf", eps=eps,
                      steps=steps, step_size=step_size, stop_on_success=early_stop, seed=seed)


def pgd(model: torch.nn.Module, x: torch.Tensor, eps: float | None = None, *, steps: int = 10,
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
                      rand_init=random_start, restarts=restarts, stop_on_success=early_stop, seed=seed,
                      batch_size=batch_size)
