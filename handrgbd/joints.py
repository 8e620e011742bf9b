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

__all__ = ["Joint", "PARENTS", "BONES", "FINGERS", "NUM_JOINTS"]


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
