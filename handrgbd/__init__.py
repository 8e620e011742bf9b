"""handrgbd core: the few types every package shares (camera, joints, depth encoding, the
recording folder format).

Data flows one way: ``handrgbd`` (core types) <- renderer, depthnet, tracker <- experiments.
Nothing in this package's core modules imports from the others; ``handrgbd.cli`` dispatches to
their entry points lazily, and ``handrgbd.HandTracker`` (the Python API, ``handrgbd.api``) is
imported on first use.
"""

from handrgbd.camera import CameraIntrinsics
from handrgbd.depth import depth_mm_to_uint16, uint16_to_depth_mm
from handrgbd.joints import BONES, FINGERS, NUM_JOINTS, PARENTS, Joint
from handrgbd.recording import Frame, Recording, RecordingWriter

__all__ = ["CameraIntrinsics", "Joint", "PARENTS", "BONES", "FINGERS", "NUM_JOINTS",
           "depth_mm_to_uint16", "uint16_to_depth_mm", "Frame", "Recording", "RecordingWriter", "HandTracker",
           "HandResult"]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in ("HandTracker", "HandResult"):  # the API pulls in torch, numba and the models: on first use
        from handrgbd import api

        return getattr(api, name)
    raise AttributeError(f"module 'handrgbd' has no attribute {name!r}")
