"""handrgbd core: the few types every package shares (camera, joints, depth encoding, the
recording folder format).

Data flows one way: ``handrgbd`` (core types) <- renderer, depthnet, tracker <- experiments.
Nothing in this package's core modules imports from the others; ``handrgbd.cli`` dispatches to
their entry points lazily.
"""

from handrgbd.camera import CameraIntrinsics
from handrgbd.depth import depth_mm_to_uint16, uint16_to_depth_mm
from handrgbd.joints import BONES, FINGERS, NUM_JOINTS, PARENTS, Joint
from handrgbd.recording import Frame, Recording, RecordingWriter

__all__ = ["CameraIntrinsics", "Joint", "PARENTS", "BONES", "FINGERS", "NUM_JOINTS",
           "depth_mm_to_uint16", "uint16_to_depth_mm", "Frame", "Recording", "RecordingWriter"]
__version__ = "0.1.0"
