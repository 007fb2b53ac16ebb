"""Every attack by name, declared once in its own module: what it is, what it takes, its defaults.

    from cnnlab.attacks import ATTACKS, attack
    ATTACKS["pgd"]                    # AttackSpec: target rule, norm, kind, defaults, description
    attack(model, x, "pgd", eps=4/255, target="toaster")     # unset options take the method's defaults

`attack()`, `attack_eval()`, the CLI's `--method` and the explorer all read this table, so a new
attack is offered everywhere once its module calls `register`.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from ..errors import CnnlabError, unknown
from ..models.classifier import Classifier, Target
from .core import check_steps
from .result import AttackResult

#: Which target a method takes: it needs one, refuses one (untargeted only), or allows either.
TargetRule = Literal["needs", "refuses", "allows"]
#: What kind of attack it is; the kind says what its cost counts (see COST_UNITS).
Kind = Literal["gradient", "minimal-perturbation", "query-black-box", "spatial", "substitute"]
#: The options `attack()` passes to every method; each method declares which of them it uses.
OPTIONS = ("eps", "steps", "step_size", "early_stop")

#: What one unit of `AttackResult.passes` is, per kind: gradient methods differentiate the model,
#: the others only read its outputs (a "query").
COST_UNITS: dict[str, str] = {
    "gradient": "forward+backward passes", "minimal-perturbation": "forward+backward passes",
    "query-black-box": "queries", "spatial": "queries", "substitute": "queries"}


@dataclass(frozen=True)
class Options:
    """What `attack()` hands a method, the method's defaults filled in."""

    y: torch.Tensor | None
    target: Target
    eps: float | None
    steps: int | None
    step_size: float | None
    seed: int | None
    early_stop: bool | None


@dataclass(frozen=True)
class AttackSpec:
    """One registered attack.

    `run(model, x, options, **method_options)` calls the attack function. `eps`, `steps`,
    `step_size` and `early_stop` are the defaults of the options in `options` (None where the
    method chooses itself: `step_rule` says how). `steps` is a query budget for query-based methods.
    """

    name: str
    kind: Kind
    norm: str | None
    target: TargetRule
    description: str
    run: Callable[..., AttackResult] = field(repr=False, compare=False)
    options: tuple[str, ...] = ()
    eps: float | None = None
    steps: int | None = None
    step_size: float | None = None
    step_rule: str = ""
    early_stop: bool | None = None
    evaluable: bool = True

    @property
    def cost_unit(self) -> str:
        return COST_UNITS[self.kind]

    @property
    def steps_unit(self) -> str:
        """What `AttackResult.steps` counts for this method: gradient steps, or model queries."""
        return "queries" if self.kind in ("query-black-box", "spatial") else "steps"

    def summary(self) -> str:
        """One line for help texts: the description, target rule, norm and defaults."""
        target = {"needs": "needs --target", "refuses": "untargeted", "allows": "--target optional"}[self.target]
        parts = [self.description, target]
        if self.norm:
            parts.append(_norm_name(self.norm))
        parts.append(f"default {self.budget()}")
        if self.step_size is not None or self.step_rule:
            parts.append(f"step {self.step_size:g}" if self.step_size is not None else f"step {self.step_rule}")
        if self.early_stop is not None:
            parts.append(f"early stop {'on' if self.early_stop else 'off'}")
        return "; ".join(parts) + "."

    def takes(self, option: str) -> bool:
        return option in self.options

    def budget(self, eps: float | None = None, steps: int | None = None) -> str:
        """A short phrase for reports, e.g. 'eps 8/255, 10 steps' or 'minimal L2 perturbation, up to 50 steps'."""
        eps = eps if self.takes("eps") or self.kind == "minimal-perturbation" else None
        eps = self.eps if eps is None else eps
        steps = self.steps if steps is None or not self.takes("steps") else steps
        parts = []
        if self.kind == "minimal-perturbation":
            parts.append(f"minimal {_norm_name(self.norm)} perturbation" if eps is None
                         else f"{_norm_name(self.norm)} eps {format_eps(eps, self.norm)}")
        elif self.takes("eps") and eps is not None:
            parts.append(f"eps {format_eps(eps, self.norm)}")
        elif self.takes("eps"):
            parts.append("no eps bound")
        if self.kind == "spatial":
            parts.append("worst rotation and shift on a grid")
        elif steps is not None:
            unit = self.steps_unit if steps != 1 else self.steps_unit[:-1]
            upto = "up to " if self.kind in ("minimal-perturbation", "query-black-box") else ""
            parts.append(f"{upto}{steps} {unit}" + (" on the substitute" if self.kind == "substitute" else ""))
        return ", ".join(parts)

    def to_dict(self) -> dict:
        """JSON-able: everything but the function (what the explorer and the docs show)."""
        return {"name": self.name, "kind": self.kind, "norm": self.norm, "target": self.target,
                "needs_target": self.target == "needs", "takes_target": self.target != "refuses",
                "options": list(self.options), "eps": self.eps, "steps": self.steps, "steps_unit": self.steps_unit,
                "step_size": self.step_size, "step_rule": self.step_rule, "early_stop": self.early_stop,
                "evaluable": self.evaluable, "cost_unit": self.cost_unit, "description": self.description}


def _norm_name(norm: str | None) -> str:
    return {"linf": "L-inf", "l2": "L2"}.get(norm or "", "pixel")


def format_eps(eps: float, norm: str | None = "linf") -> str:
    """eps as people write it: '8/255' for L-inf budgets, the plain number for L2 radii."""
    return f"{eps * 255:.3g}/255" if norm == "linf" else f"{eps:.3g}"


#: name -> AttackSpec, in registration order (the order of cnnlab.attacks' imports)
ATTACKS: dict[str, AttackSpec] = {}


def register(spec: AttackSpec) -> AttackSpec:
    """Add an attack to the registry (once: a second spec under the same name is a programming error)."""
    if spec.name in ATTACKS:
        raise ValueError(f"attack '{spec.name}' is registered twice")
    bad = [o for o in spec.options if o not in OPTIONS]
    if bad:
        raise ValueError(f"attack '{spec.name}' declares unknown options {bad}; known: {OPTIONS}")
    ATTACKS[spec.name] = spec
    return spec


def attack_spec(name: str) -> AttackSpec:
    """The registered attack called `name`, or one error naming the closest ones."""
    if name not in ATTACKS:
        raise unknown("attack method", name, ATTACKS)
    return ATTACKS[name]


def method_names(evaluable: bool = False) -> list[str]:
    """Registered attack names (only those `attack_eval` can run, with `evaluable=True`)."""
    return [n for n, s in ATTACKS.items() if s.evaluable or not evaluable]


def resolve_options(spec: AttackSpec, *, y: torch.Tensor | None = None, target: Target = None,
                    eps: float | None = None, steps: int | None = None, step_size: float | None = None,
                    seed: int | None = 0, early_stop: bool | None = None) -> Options:
    """The options a method runs with: checked against its target rule, unset ones from its defaults.
    Options a method does not take (eps for DeepFool, steps for FGSM) are ignored."""
    if spec.target == "needs" and target is None:
        raise CnnlabError(f"--method {spec.name} pushes the image towards a class: give --target "
                          "(a class name, an index, least-likely or random).")
    if spec.target == "refuses" and target is not None:
        targeted = ", ".join(n for n, s in ATTACKS.items() if s.target != "refuses")
        raise CnnlabError(f"--method {spec.name} is untargeted (it moves each image away from its class) and takes "
                          f"no --target; to push towards '{target}' use one of: {targeted}.")
    if steps is not None:
        check_steps(steps, "--steps")
    for name, value, positive in (("--eps", eps, False), ("--step-size", step_size, True)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value) or value < 0 or (positive and value == 0)):
            raise CnnlabError(f"{name} must be a finite number {'above' if positive else 'at least'} 0, got {value}.")
    if early_stop is not None and not spec.takes("early_stop"):
        raise CnnlabError(f"--method {spec.name} has no early-stop choice; drop --early-stop/--no-early-stop.")
    use = (lambda opt, given, default: (default if given is None else given) if spec.takes(opt) else default)
    return Options(y=y, target=target, eps=use("eps", eps, spec.eps), steps=use("steps", steps, spec.steps),
                   step_size=use("step_size", step_size, spec.step_size), seed=seed,
                   early_stop=use("early_stop", early_stop, spec.early_stop))


def attack(model: Classifier | torch.nn.Module, x: torch.Tensor, method: str = "pgd", *,
           y: torch.Tensor | None = None, target: Target = None, eps: float | None = None,
           steps: int | None = None, step_size: float | None = None, seed: int | None = 0,
           early_stop: bool | None = None, **method_options: Any) -> AttackResult:
    """Run the attack called `method` (see `ATTACKS`); unset options take that method's defaults.

    `early_stop` (where the method has the choice) stops each image at its first success; False
    runs every step, so a descent's trajectory shows which classes follow. `method_options` go to the
    attack function itself (e.g. `overshoot=` for DeepFool, `rotations=` for the spatial attack)."""
    spec = attack_spec(method)
    opts = resolve_options(spec, y=y, target=target, eps=eps, steps=steps, step_size=step_size, seed=seed,
                           early_stop=early_stop)
    return spec.run(model, x, opts, **method_options)
