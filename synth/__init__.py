"""synth: the realistic hand (LibHand mesh posed by the 27 parameters) and, to come, the
synthetic RGB-D data generator."""

from synth.libhand import FOREARM_LABEL, HAND_LABEL, LibHandModel, calibrate_geometry, load_libhand

__all__ = ["LibHandModel", "load_libhand", "calibrate_geometry", "HAND_LABEL", "FOREARM_LABEL"]
