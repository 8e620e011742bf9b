"""``handrgbd gl-info``: which OpenGL backend works here, and a check that it renders correctly."""

from __future__ import annotations

import json
import sys

import numpy as np

from handrgbd.args import CommandParser
from handrgbd.camera import CameraIntrinsics
from renderer.context import BACKENDS, create_context
from renderer.tiled import HypothesisRenderer, PrimitiveKind, PrimitiveSet


def build_parser() -> CommandParser:
    parser = CommandParser(prog="handrgbd gl-info", description=__doc__)
    parser.add_argument("--backend", choices=sorted(BACKENDS) + ["auto"], default=None,
                        help="GL backend (default: $HANDRGBD_GL or auto: egl, osmesa, glfw)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def gl_info_main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        ctx = create_context(args.backend)
    except (RuntimeError, ValueError) as e:  # no backend works; an unknown $HANDRGBD_GL
        return parser.fail(e)
    with ctx:
        info = ctx.info()
        # Self-check: a sphere of radius 50 mm at 500 mm must render centre depth 450 mm.
        camera = CameraIntrinsics(200.0, 200.0, 31.5, 31.5, 64, 64)
        transform = np.diag([50.0, 50.0, 50.0, 1.0])
        transform[2, 3] = 500.0
        with HypothesisRenderer(PrimitiveSet([PrimitiveKind.SPHERE]), tile_size=64, capacity=1,
                                context=ctx) as r:
            depth = r.render(transform[None, None], camera)[0]
        centre = float(depth[31:33, 31:33].min())
        info["sphere_centre_depth_mm"] = round(centre, 3)
        info["self_check"] = "ok" if abs(centre - 450.0) < 1.0 else "FAILED"
    if args.json:
        print(json.dumps(info))
    else:
        for k, v in info.items():
            print(f"{k:>24}: {v}")
    return 0 if info["self_check"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(gl_info_main())
