"""Seeing inside a classifier: feature maps, filters, attributions, feature visualization, top activations.

Every function takes a Classifier, or any nn.Module (wrapped with `cnnlab.wrap`'s defaults):

    from cnnlab import explain
    explain.attribute(model, x, method="gradcam")          # gradient | smoothgrad | ig | guided | gradcam | deconvnet
    explain.feature_maps(model, x, ["early", "middle", "late"], k=5).figure("maps.png")
    explain.filters(model).figure("filters.png")            # first-layer filters as one titled grid
    explain.visualize(model, explain.channel("middle", 5) * 2 + explain.channel("middle", 16))
    explain.top_activations(model, images, "late", 3, k=9).figure("top.png")
"""
from __future__ import annotations

from .attribution import (METHODS, REGISTRY, Attribution, AttributionMethod, attribute, attributions_figure, ig_alphas,
                          input_gradients, mass_fraction, method_spec, saliency_and_gradcam)
from .featmaps import FeatureMaps, feature_maps, maps_from_activations
from .featvis import (PRESETS, REGULARIZERS, Visualization, compare_regularization, objective_value,
                      parse_regularizers, visualize)
from .filters import Filters, filters, first_layer
from .objectives import (Objective, channel, channels, class_logit, direction, layer_energy, neuron,
                         parse_objective)
from .top_activations import TopActivations, receptive_boxes, top_activations

dream = visualize

__all__ = ["METHODS", "PRESETS", "REGISTRY", "REGULARIZERS", "Attribution", "AttributionMethod", "FeatureMaps",
           "Filters", "Objective", "TopActivations", "Visualization", "attribute", "attributions_figure", "channel", "channels",
           "class_logit", "compare_regularization", "direction", "dream", "feature_maps", "filters",
           "first_layer", "ig_alphas", "input_gradients", "layer_energy", "maps_from_activations",
           "mass_fraction", "method_spec", "neuron", "objective_value", "parse_objective",
           "parse_regularizers", "receptive_boxes", "saliency_and_gradcam", "top_activations", "visualize"]
