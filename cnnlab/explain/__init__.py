"""Seeing inside a classifier: feature maps, filters, attributions, feature visualization, top activations.

    from cnnlab import explain
    explain.attribute(model, x, method="gradcam")            # one call shape for every method
    explain.feature_maps(model, x, ["early", "middle", "late"], k=5).figure("maps.png")
    explain.visualize(model, explain.channel("_blocks.10", 5), steps=256)
"""
from __future__ import annotations

from .attribution import METHODS, Attribution, attribute, ig_alphas, input_gradients, mass_fraction

__all__ = ["METHODS", "Attribution", "attribute", "ig_alphas", "input_gradients", "mass_fraction"]
