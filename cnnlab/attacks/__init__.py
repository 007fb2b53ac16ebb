"""Adversarial examples over one shared step/projection core.

    from cnnlab import attacks
    r = attacks.pgd(model, x, eps=8/255, steps=10)            # an AttackResult: data first
    r = attacks.logit_ascent(model, x, target="toaster")      # seed 000's forced class
    r.success, r.steps, r.linf, r.to_dict(); r.figure("adv.png")
    attacks.attack(model, x, "apgd", eps=8/255)               # any method by name
    attacks.attack_eval(model, "cifar10_test.npz", "pgd", eps=8/255, limit=500)
"""
from .apgd import apgd
from .core import attack_mode, gradient_attack, objective, project
from .evaluate import AttackEval, attack_eval
from .gradient import (bim, fgsm, logit_ascent, logit_descent, pgd, prob_ascent, prob_descent,
                       resolve_target, run_attack)
from .methods import attack, method_names
from .deepfool import deepfool, minimal_perturbation
from .fooling import fooling_evolve, fooling_gradient, fooling_images
from .patch import adversarial_patch
from .spatial import spatial_attack, spatial_eval
from .square import square
from .transfer import substitute_attack, train_substitute, transfer_attack
from .output import save_attack
from .result import AttackResult
from .tour import tour_section
from .training import make_adversary, robust_accuracy
from .transforms import TRANSFORMS, RobustnessTable, transform_robustness

__all__ = ["AttackEval", "AttackResult", "RobustnessTable", "TRANSFORMS", "apgd", "attack", "attack_eval",
           "attack_mode", "bim", "fgsm", "gradient_attack", "logit_ascent", "logit_descent", "make_adversary",
           "method_names", "objective", "pgd", "prob_ascent", "prob_descent", "project", "resolve_target",
           "robust_accuracy", "run_attack", "save_attack", "tour_section", "transform_robustness",
           "deepfool", "minimal_perturbation", "square", "spatial_attack", "spatial_eval", "adversarial_patch",
           "fooling_images", "fooling_gradient", "fooling_evolve", "transfer_attack", "train_substitute",
           "substitute_attack"]
