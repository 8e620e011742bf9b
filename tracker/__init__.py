"""tracker: the 27-parameter hand model (pose space, kinematics, 37 primitives, 38 with a
forearm) and the PSO tracker that fits it to depth (Oikonomidis, Kyriazis & Argyros, BMVC 2011)."""

from tracker.hand_geometry import HandGeometry, default_geometry
from tracker.kinematics import DEFAULT_HAND_LENGTH_MM, PRIMITIVE_LAYOUT, HandModel, finger_crossing_penalty
from tracker.pose import CANONICAL_POSES, LIMITS, PARAM_NAMES, HandPose

__all__ = ["HandPose", "HandModel", "HandGeometry", "default_geometry", "finger_crossing_penalty",
           "PARAM_NAMES", "LIMITS", "CANONICAL_POSES", "PRIMITIVE_LAYOUT", "DEFAULT_HAND_LENGTH_MM"]
