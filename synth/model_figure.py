"""``handrgbd model``: the two hand models side by side for one pose, with their joints drawn.

Left: the LibHand mesh (textured, skinned by the 27 parameters); right: the tracker's 37
primitives. Both show the 21 joints and the skeleton, projected with the same camera.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np

from handrgbd.args import CommandParser, integer, number, out_path
from handrgbd.camera import CameraIntrinsics
from handrgbd.depth import MAX_RANGE_MM
from handrgbd.draw import draw_skeleton
from handrgbd.outputs import check_output_file, write_image
from tracker.kinematics import DEFAULT_HAND_LENGTH_MM, HAND_LENGTH_RANGE_MM
from tracker.pose import CANONICAL_POSES, HandPose

log = logging.getLogger(__name__)

__all__ = ["render_models", "model_main"]

# a three-quarter view: palm toward the camera, turned 25 degrees about y and tilted 15 about x
_VIEW_QUATERNION = (0.968, 0.126, 0.213, -0.028)


def _draw_skeleton(image: np.ndarray, uv: np.ndarray) -> None:
    draw_skeleton(image, uv, (40, 220, 40), 2, dot_radius=4, dot_colour=(250, 60, 40))


def render_models(pose: HandPose, size: int = 480, hand_length_mm: float = DEFAULT_HAND_LENGTH_MM,
                  context=None) -> np.ndarray:
    """``(size, 2 * size, 3) uint8`` RGB: LibHand mesh | primitives, each with its joints."""
    from renderer.mesh import DirectionalLight, Lighting, Mesh, MeshRenderer
    from renderer.shapes import primitive_meshes
    from synth.libhand import LibHandModel
    from tracker.kinematics import HandModel

    params = pose.to_array()
    libhand = LibHandModel(pose.side, hand_length_mm)
    primitives = HandModel(pose.side, hand_length_mm)
    posed = libhand.pose(params)
    joints_prim = primitives.joints(params)[0]
    transforms = primitives.primitives(params)[0]
    # frame the hand: move it (both models alike) onto the optical axis and pick the focal
    # length that makes the hand (not the forearm) fill 85% of the panel
    hand_vertices = posed.vertices[libhand.labels == 1]
    lo, hi = hand_vertices.min(0), hand_vertices.max(0)
    centre = 0.5 * (lo + hi)
    shift = np.eye(4)
    shift[:2, 3] = -centre[:2]
    shift[2, 3] = max(0.0, 420.0 * hand_length_mm / 180.0 - centre[2])
    moved = hand_vertices + shift[:3, 3]
    f = 0.425 * size / np.max(np.abs(moved[:, :2]) / moved[:, 2:3])
    camera = CameraIntrinsics(f, f, (size - 1) / 2, (size - 1) / 2, size, size)
    lighting = Lighting(ambient=(0.45, 0.45, 0.45), lights=(DirectionalLight((0.3, 0.5, 1.0), (0.6, 0.6, 0.6)),))
    with MeshRenderer(context=context) as r:
        hand = r.upload(Mesh(posed.vertices, libhand.faces, normals=posed.normals, uv=libhand.uv,
                             texture=libhand.asset.texture(), specular=0.15))
        left = r.render([(hand, shift)], camera, lighting, background=(1.0, 1.0, 1.0)).rgb
        scene = [(r.upload(m), shift @ t) for m, t in zip(primitive_meshes(primitives.primitive_set), transforms)]
        right = r.render(scene, camera, lighting, background=(1.0, 1.0, 1.0)).rgb
    to_cam = lambda j: j @ shift[:3, :3].T + shift[:3, 3]  # noqa: E731
    left, right = np.ascontiguousarray(left), np.ascontiguousarray(right)
    _draw_skeleton(left, camera.project(to_cam(posed.joints)))
    _draw_skeleton(right, camera.project(to_cam(joints_prim)))
    return np.concatenate([left, right], axis=1)


def _load_pose(spec: str, side: str) -> HandPose:
    if spec in CANONICAL_POSES or spec == "relaxed":
        return HandPose.canonical(spec, orientation=_VIEW_QUATERNION, side=side)
    path = Path(spec)
    if not spec.strip() or not path.is_file():
        raise ValueError(f"--pose: neither a pose name ({', '.join(sorted(CANONICAL_POSES))}, relaxed) "
                         f"nor an existing pose JSON file (got {spec!r})")
    pose = HandPose.load(path)
    p = pose.to_array()
    if np.linalg.norm(p[:3]) > MAX_RANGE_MM or not 1e-6 < np.linalg.norm(p[3:7]) < 1e6:
        raise ValueError(f"--pose: {path}: position_mm must be within {MAX_RANGE_MM / 1000:g} m and "
                         f"orientation_wxyz a usable quaternion (got {p[:3].tolist()} and {p[3:7].tolist()})")
    return pose


def build_parser() -> CommandParser:
    parser = CommandParser(prog="handrgbd model", description=model_main.__doc__)
    parser.add_argument("--pose", default="open", help="canonical pose name or a pose JSON file (HandPose.save)")
    parser.add_argument("--side", choices=("right", "left"), default="right", help="hand side for named poses")
    parser.add_argument("--hand-length", type=number(*HAND_LENGTH_RANGE_MM), default=DEFAULT_HAND_LENGTH_MM,
                        help="wrist to middle fingertip, mm (default %(default)s)")
    parser.add_argument("--size", type=integer(64, 4096), default=480, help="pixels per panel")
    parser.add_argument("--out", type=out_path, default="model.png", help="output image (.png or .jpg)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    return parser


def model_main(argv: list[str] | None = None) -> int:
    """Render the LibHand mesh and the primitives model side by side for a pose."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_output_file(args.out, args.overwrite, "--out")
        pose = _load_pose(args.pose, args.side)
        write_image(args.out, render_models(pose, args.size, args.hand_length))
    except (ValueError, OSError) as e:  # OSError: a write the checks could not foresee
        return parser.fail(e)
    log.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(model_main())
