"""Convert the 19 RealSense SR305 depth frames of Ladislav Ondris' hand-recognition data set
(MIT) into one recording folder, ``tests/data/sr305/`` (see ``tests/data/README.md``).

    python tests/data/convert_sr305.py /work/shared/data/sr305 tests/data/sr305

Frames: the 8 of sequence 20210326-230536, then the 11 of 20210326-231615, each sorted
numerically by file name. The raw uint16 values are kept exactly (unit 0.125 mm); the script
checks that every written PNG decodes to the source's values. Run once; the output is committed.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np

from handrgbd.camera import CameraIntrinsics
from handrgbd.recording import Recording, RecordingWriter

logger = logging.getLogger(__name__)

SEQUENCES = ("20210326-230536", "20210326-231615")
#: From the data set's readme.txt: focal length 476.007 px, principal point (313.683, 242.755).
CAMERA = CameraIntrinsics(fx=476.007, fy=476.007, cx=313.683, cy=242.755, width=640, height=480)
DEPTH_UNIT_MM = 0.125
SOURCE = ("Intel RealSense SR305 depth frames from Ladislav Ondris, hand-recognition "
          "(github.com/LadaOndris/hand-recognition, commit 5f8f9207f8cce3124cf92c60874691ebb8d0fe42, "
          "datasets/custom/), MIT licence (LICENSE_MIT.txt); depth only, right hand")


def convert(source_dir: Path, out_dir: Path) -> list[str]:
    """Write the recording; returns the original file of each frame, in frame order."""
    files = [f for seq in SEQUENCES
             for f in sorted((source_dir / seq).glob("*.png"), key=lambda p: int(p.stem))]
    originals = [f"{f.parent.name}/{f.name}" for f in files]
    writer = RecordingWriter(out_dir, CAMERA, depth_unit_mm=DEPTH_UNIT_MM, expect=("depth",),
                             meta={"source": SOURCE, "original_files": originals})
    raws = []
    for index, f in enumerate(files):
        raw = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
        if raw is None or raw.dtype != np.uint16 or raw.shape != (CAMERA.height, CAMERA.width):
            raise ValueError(f"{f}: expected a 640x480 uint16 PNG")
        # 0.125 is a power of two: raw * 0.125 / 0.125 rounds back to raw exactly.
        writer.write_frame(index, depth_mm=raw.astype(np.float64) * DEPTH_UNIT_MM)
        raws.append(raw)
    shutil.copyfile(source_dir / "LICENSE_MIT.txt", out_dir / "LICENSE_MIT.txt")

    recording = Recording(out_dir)
    assert len(recording) == len(raws)
    for frame, raw in zip(recording, raws):
        written = cv2.imread(str(out_dir / "depth" / f"{frame.name}.png"), cv2.IMREAD_UNCHANGED)
        if not np.array_equal(written, raw):
            raise AssertionError(f"frame {frame.name}: uint16 values changed in conversion")
    return originals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="folder holding the two sequence folders and LICENSE_MIT.txt")
    parser.add_argument("out", type=Path, help="recording folder to write (e.g. tests/data/sr305)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    originals = convert(args.source, args.out)
    for index, name in enumerate(originals):
        logger.info("depth/%06d.png <- %s", index, name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
