"""Analytic depth scenes (mm) shared by the detection and depth-source tests."""

from __future__ import annotations

import cv2
import numpy as np

from handrgbd import CameraIntrinsics

CAM = CameraIntrinsics(500.0, 500.0, 319.5, 239.5, 640, 480)


def paint_disc(depth, centre, radius_px, z):
    cv2.circle(depth, tuple(int(round(c)) for c in centre), int(round(radius_px)), float(z), -1)


def paint_bar(depth, a, b, width_px, z):
    cv2.line(depth, tuple(int(round(c)) for c in a), tuple(int(round(c)) for c in b), float(z),
             max(1, int(round(width_px))))


def paint_limb(depth, start, delta, z0, dz, width_px, steps=40):
    """A limb from ``start`` along ``delta`` (pixels) in ``steps - 1`` bars, each at depth
    ``z0 + dz * t`` (t its far end's fraction of the way) and ``width_px(that depth)`` wide."""
    ts = np.linspace(0, 1, steps)
    for t0, t1 in zip(ts[:-1], ts[1:]):
        z = z0 + dz * t1
        paint_bar(depth, start + t0 * delta, start + t1 * delta, width_px(z), z)


def arm_toward_the_camera(seed: int = 0):
    """An analytic egocentric scene (mm) in CAM: a hand (palm disc of 40 mm radius at 450 mm,
    four fingers and a thumb) at the end of a 70 mm wide arm that comes toward the camera down
    to the bottom border (250 mm there). Returns depth and the palm centre (camera mm)."""
    depth = np.zeros((CAM.height, CAM.width), np.float32)
    px = lambda mm, z: mm * CAM.fx / z  # noqa: E731
    z = 450.0
    palm = np.array([330.0, 170.0])
    heel, end = palm + np.array([0.0, px(45, z)]), np.array([250.0, 479.0])
    paint_limb(depth, heel, end - heel, z + 10, -200.0, lambda near: px(70, near), steps=60)
    for angle_deg, length in ((-110, 80), (-95, 88), (-80, 82), (-65, 68), (-10, 55)):
        d = np.array([np.cos(np.radians(angle_deg)), np.sin(np.radians(angle_deg))])
        start = palm + d * px(30, z)
        paint_bar(depth, start, start + d * px(length, z), px(17, z), z - 5.0)
    paint_disc(depth, palm, px(40, z), z)
    depth += np.random.default_rng(seed).normal(0, 1.5, depth.shape).astype(np.float32) * (depth > 0)
    return depth, CAM.unproject(palm, z)
