"""depthnet: the paper's stacked-hourglass network, RGB -> hand mask and relative depth."""

from depthnet.model import PRESETS, DepthNet, DepthNetConfig, DepthNetOutput, Prediction
from depthnet.targets import make_targets, relative_to_metric

__all__ = ["DepthNet", "DepthNetConfig", "DepthNetOutput", "Prediction", "PRESETS", "make_targets",
           "relative_to_metric"]
