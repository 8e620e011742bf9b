"""``handrgbd show DIR``: a contact sheet of a recording, to judge data at a glance.

One row per frame: RGB | sensor depth (colour map, black = no reading) | mask over RGB |
joints and skeleton over RGB (projected with the frame's intrinsics). Columns whose data the
recording lacks are left grey.
"""

from __future__ import annotations

import logging
import sys

import cv2
import numpy as np

from handrgbd.args import CommandParser, integer, out_path
from handrgbd.draw import colorize_depth, draw_skeleton
from handrgbd.outputs import check_output_file, write_image
from handrgbd.recording import Frame, Recording

log = logging.getLogger(__name__)

__all__ = ["contact_sheet", "show_main", "colorize_depth"]

#: most frames one contact sheet shows
MAX_ROWS = 200


def _panel(frame: Frame, kind: str, size: int) -> np.ndarray:
    grey = np.full((size, size, 3), 90, np.uint8)
    rgb = frame.rgb
    if kind == "rgb":
        img = rgb
    elif kind == "depth":
        img = None if frame.depth_mm is None else colorize_depth(frame.depth_mm)
    elif kind == "mask":
        if frame.mask is None:
            img = None
        else:
            base = rgb if rgb is not None else np.zeros((*frame.mask.shape, 3), np.uint8)
            img = base.copy()
            img[frame.mask] = (0.5 * img[frame.mask] + [0, 127, 0]).astype(np.uint8)
    else:
        if frame.joints_mm is None:
            img = None
        else:
            img = (rgb if rgb is not None else colorize_depth(frame.depth_mm)).copy()
            uv = frame.camera.project(frame.joints_mm)
            scale = max(1, img.shape[0] // 128)
            draw_skeleton(img, uv, (40, 230, 40), scale, dot_radius=scale + 1, dot_colour=(255, 50, 50))
    if img is None:
        return grey
    h, w = img.shape[:2]
    s = size / max(h, w)
    img = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    grey[:img.shape[0], :img.shape[1]] = img
    return grey


def contact_sheet(recording: Recording, rows: int = 6, size: int = 192, start: int = 0) -> np.ndarray:
    """``(rows * size, 4 * size, 3) uint8`` RGB sheet of ``rows`` frames spread over the recording."""
    n = len(recording)
    if n == 0:
        raise ValueError(f"{recording.path}: no frames")
    idx = np.unique(np.linspace(start, n - 1, min(rows, n - start)).round().astype(int))
    lines = []
    for i in idx:
        frame = recording[int(i)]
        lines.append(np.concatenate([_panel(frame, k, size) for k in ("rgb", "depth", "mask", "joints")], axis=1))
    return np.concatenate(lines, axis=0)


def build_parser() -> CommandParser:
    parser = CommandParser(prog="handrgbd show", description=show_main.__doc__)
    parser.add_argument("data", help="recording folder")
    parser.add_argument("--out", type=out_path, default="sheet.png", help="output image (.png or .jpg)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    parser.add_argument("--rows", type=integer(1, MAX_ROWS), default=6, help="frames shown (spread over the recording)")
    parser.add_argument("--size", type=integer(32, 1024), default=192, help="pixels per panel")
    return parser


def show_main(argv: list[str] | None = None) -> int:
    """Contact sheet of a recording folder: RGB | depth | mask | joints."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_output_file(args.out, args.overwrite, "--out")
        sheet = contact_sheet(Recording(args.data), args.rows, args.size)
        write_image(args.out, sheet)
    except (ValueError, OSError) as e:  # OSError: a write the checks could not foresee
        return parser.fail(e)
    log.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(show_main())
