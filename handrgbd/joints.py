"""The 21 hand joints, in MediaPipe Hands' order, and the skeleton tree.

::

                    8   12  16  20        tips
                    |   |   |   |
                    7   11  15  19        DIP
              4     |   |   |   |
              |     6   10  14  18        PIP
              3     |   |   |   |
               \\    5---9---13--17       MCP
                2    \\           /
                 \\    \\         /
                  1---- 0 -----           CMC (thumb) / WRIST (0)

Every package reports joints as ``(..., 21, 3)`` float32 millimetres in the camera frame, in
this order.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple

import numpy as np

__all__ = ["Joint", "PARENTS", "BONES", "FINGERS", "NUM_JOINTS", "hand_side", "Keypoints"]


class Joint(IntEnum):
    WRIST = 0
    THUMB_CMC = 1
    THUMB_MCP = 2
    THUMB_IP = 3
    THUMB_TIP = 4
    INDEX_MCP = 5
    INDEX_PIP = 6
    INDEX_DIP = 7
    INDEX_TIP = 8
    MIDDLE_MCP = 9
    MIDDLE_PIP = 10
    MIDDLE_DIP = 11
    MIDDLE_TIP = 12
    RING_MCP = 13
    RING_PIP = 14
    RING_DIP = 15
    RING_TIP = 16
    PINKY_MCP = 17
    PINKY_PIP = 18
    PINKY_DIP = 19
    PINKY_TIP = 20


NUM_JOINTS = len(Joint)

#: Parent of each joint in the kinematic tree (-1 for the wrist, the root).
PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11, 0, 13, 14, 15, 0, 17, 18, 19)

#: (parent, child) pairs: the 20 bones of the skeleton.
BONES: tuple[tuple[int, int], ...] = tuple((p, c) for c, p in enumerate(PARENTS) if p >= 0)

#: Joints of each finger from base to tip (thumb, index, middle, ring, pinky).
FINGERS: tuple[tuple[int, int, int, int], ...] = tuple(
    (1 + 4 * f, 2 + 4 * f, 3 + 4 * f, 4 + 4 * f) for f in range(5))


def hand_side(pose: np.ndarray, joints_mm: np.ndarray) -> str:
    """``"right"`` or ``"left"``: the side of a hand model whose parameters ``pose (27,)`` (its
    orientation quaternion ``(w, x, y, z)`` at 3:7) give ``joints_mm (21, 3)``. In the hand's own
    frame a right hand has its index knuckle on the +x side of its little-finger knuckle and a
    left hand, the mirror image, on the -x side (``tracker.kinematics``); the joints alone cannot
    tell a hand from its mirror image."""
    w, x, y, z = np.asarray(pose, np.float64)[3:7] / np.linalg.norm(np.asarray(pose, np.float64)[3:7])
    first_column = np.array([1 - 2 * (y * y + z * z), 2 * (x * y + w * z), 2 * (x * z - w * y)])  # R e_x
    across = np.asarray(joints_mm, np.float64)[Joint.INDEX_MCP] - np.asarray(joints_mm, np.float64)[Joint.PINKY_MCP]
    return "right" if across @ first_column > 0 else "left"


class Keypoints(NamedTuple):
    """2D joints seen in an image (e.g. depthnet's heatmaps), as they travel to the tracker.

    uv_px : ``(21, 2)`` float pixel coordinates (column, row) in the frame, ``Joint`` order.
    confidence : ``(21,)`` in [0, 1] (about 1 for a sure joint; 0: not seen).
    right_prob : the probability that the hand is a right hand, or None (not estimated).
    modes_px : ``(21, M, 2)`` other places each joint may be (a heatmap's modes, mode 0 at
        ``uv_px``), or None (``uv_px`` alone).
    mode_ratio : ``(21, M)`` in [0, 1], each mode's strength relative to mode 0 (0: none).
    """

    uv_px: np.ndarray
    confidence: np.ndarray
    right_prob: float | None = None
    modes_px: np.ndarray | None = None
    mode_ratio: np.ndarray | None = None
