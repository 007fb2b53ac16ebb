"""Adversarial examples over one shared step/projection core, every attack registered by name.

    from cnnlab import attacks
    r = attacks.pgd(model, x, eps=8/255, steps=10)            # an AttackResult: data first
    r = attacks.logit_ascent(model, x, target="toaster")      # force a class by gradient ascent
    r.success, r.steps, r.linf, r.to_dict(); r.figure("adv.png")
    attacks.attack(model, x, "apgd", eps=8/255)               # any registered method by name
    attacks.ATTACKS["square"]                                 # its target rule, norm, kind, defaults
    attacks.attack_eval(model, "cifar10_test.npz", "pgd", eps=[2/255, 4/255, 8/255], limit=500)

`model` is a Classifier or any nn.Module (wrapped once by cnnlab.as_classifier).
"""
# The import order is the registry's order (what `cnnlab attack --help` and the explorer list).
from .registry import ATTACKS, AttackSpec, attack, attack_spec, method_names, register
from .core import gradient_attack, objective, project
from .gradient import bim, fgsm, logit_ascent, logit_descent, pgd, prob_ascent, prob_descent, run_attack
from .apgd import apgd
from .deepfool import deepfool, minimal_perturbation
from .square import square
from .spatial import spatial_attack, spatial_eval
from .blackbox import SubstituteAttack, TransferAttackResult, substitute_attack, train_substitute, transfer_attack
from .evaluate import AttackEval, RobustnessCurve, attack_eval
from .fooling import FoolingResult, fooling_evolve, fooling_gradient, fooling_images
from .output import save_attack
from .patch import PatchResult, adversarial_patch, patch_from_data
from .result import AttackResult
from .training import make_adversary, robust_accuracy
from .transforms import TRANSFORMS, RobustnessTable, transform_robustness

__all__ = ["ATTACKS", "AttackEval", "AttackResult", "AttackSpec", "FoolingResult", "PatchResult", "RobustnessCurve",
           "RobustnessTable", "SubstituteAttack", "TRANSFORMS", "TransferAttackResult", "adversarial_patch", "apgd",
           "attack", "attack_eval", "attack_spec", "bim", "deepfool", "fgsm", "fooling_evolve", "fooling_gradient",
           "fooling_images", "gradient_attack", "logit_ascent", "logit_descent", "make_adversary", "method_names",
           "minimal_perturbation", "objective", "patch_from_data", "pgd", "prob_ascent", "prob_descent", "project",
           "register", "robust_accuracy", "run_attack", "save_attack", "spatial_attack", "spatial_eval", "square",
           "substitute_attack", "train_substitute", "transfer_attack", "transform_robustness"]
