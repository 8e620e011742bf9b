"""Recording folders: RGB, depth, masks and ground truth on disk, one format for every source.

The synthetic-data generator writes it, real sensor recordings (Kinect, RealSense) are stored in
it, and the tracker and depth network read it. The layout (``docs/data_format.md`` has the full
description)::

    DIR/camera.json            {"fx", "fy", "cx", "cy", "width", "height", "depth_unit_mm", ...}
    DIR/rgb/000000.png         8-bit RGB (BGR on disk, as OpenCV writes it), pixel-aligned with depth
    DIR/depth/000000.png       uint16, value * depth_unit_mm = millimetres, 0 = no reading
    DIR/mask/000000.png        optional, uint8 hand mask, nonzero = hand (written as 0/255)
    DIR/depth_gt/000000.png    optional, noise-free depth, same encoding as depth/
    DIR/joints.npy             optional, (N, 21, 3) float32 mm, camera frame, MediaPipe order
    DIR/poses.npy              optional, (N, 27) float32 model parameters
    DIR/intrinsics.npy         optional, (N, 4) float32 fx, fy, cx, cy per frame (overrides camera.json)

Frames are the union of the digit-named PNGs in ``rgb/`` and ``depth/``, in numerical order of
their names; row ``i`` of the ``.npy`` arrays belongs to the ``i``-th frame in that order.
Whatever exists loads, whatever is missing is ``None``. Every problem with a file is a
``ValueError`` whose message starts with that file's path.

Writes are atomic (temporary file in the same folder, then ``os.replace``), so a crashed writer
never leaves a half-written file under a real name, and PNG encoding is deterministic: writing the
same data twice gives byte-identical files.
"""

from __future__ import annotations

import copy
import io
import json
import logging
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from handrgbd.camera import CameraIntrinsics, crop_image
from handrgbd.depth import DEPTH_UNIT_RANGE_MM, MAX_RANGE_MM, depth_mm_to_uint16, uint16_to_depth_mm
from handrgbd.joints import NUM_JOINTS
from handrgbd.outputs import atomic_write_bytes

__all__ = ["Frame", "Recording", "RecordingWriter", "read_depth_png", "write_depth_png",
           "IMAGE_KINDS", "NUM_POSE_PARAMS"]

logger = logging.getLogger(__name__)

#: Image folders of a recording, in the order a frame's images are read and checked.
IMAGE_KINDS: tuple[str, ...] = ("rgb", "depth", "mask", "depth_gt")
#: Folders that define frames; ``mask/`` and ``depth_gt/`` only accompany them.
_PRIMARY_KINDS: tuple[str, ...] = ("rgb", "depth")
#: Length of a pose vector (palm position 3, orientation quaternion 4, 4 angles x 5 fingers).
NUM_POSE_PARAMS = 27

CAMERA_FILE = "camera.json"
_ARRAY_FILES = {"joints": "joints.npy", "poses": "poses.npy", "intrinsics": "intrinsics.npy"}
_CAMERA_KEYS = ("fx", "fy", "cx", "cy", "width", "height", "depth_unit_mm")
_FRAME_DIGITS = 6
#: PNG compression level for every image we write; fixed so rewrites are byte-identical.
_PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 3]
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"IEND\xaeB`\x82"  # chunk type + CRC of the last chunk of every complete PNG


# ---- frames --------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Frame:
    """One frame of a recording: whatever images and ground truth it has, and its camera.

    index : position of the frame in its recording (0-based; row of the ``.npy`` arrays).
    name : file stem of the frame's images, e.g. ``"000003"``.
    camera : intrinsics of this frame's images (per frame when the recording has
        ``intrinsics.npy``); every image below is ``(camera.height, camera.width)``.
    rgb : ``(H, W, 3) uint8`` RGB, or None.
    depth_mm : ``(H, W) float32`` millimetres, 0 = no reading, or None.
    mask : ``(H, W) bool`` hand mask (True = hand), or None.
    depth_gt_mm : ``(H, W) float32`` noise-free depth in millimetres, 0 = background, or None.
    joints_mm : ``(21, 3) float32`` joints in mm, camera frame, MediaPipe order, or None.
    pose : ``(27,) float32`` hand model parameters, or None.
    """

    index: int
    name: str
    camera: CameraIntrinsics
    rgb: np.ndarray | None = None
    depth_mm: np.ndarray | None = None
    mask: np.ndarray | None = None
    depth_gt_mm: np.ndarray | None = None
    joints_mm: np.ndarray | None = None
    pose: np.ndarray | None = None

    def __post_init__(self) -> None:
        if isinstance(self.index, bool) or not isinstance(self.index, (int, np.integer)) or self.index < 0:
            raise ValueError(f"Frame.index must be a non-negative integer, got {self.index!r}")
        object.__setattr__(self, "index", int(self.index))
        if not isinstance(self.name, str):
            raise ValueError(f"Frame.name must be a str, got {self.name!r}")
        if not isinstance(self.camera, CameraIntrinsics):
            raise ValueError(f"Frame.camera must be CameraIntrinsics, got {type(self.camera).__name__}")
        hw = (self.camera.height, self.camera.width)
        _check_array("Frame.rgb", self.rgb, (*hw, 3), np.uint8)
        _check_array("Frame.depth_mm", self.depth_mm, hw, np.float32)
        _check_array("Frame.mask", self.mask, hw, np.bool_)
        _check_array("Frame.depth_gt_mm", self.depth_gt_mm, hw, np.float32)
        _check_array("Frame.joints_mm", self.joints_mm, (NUM_JOINTS, 3), np.float32)
        _check_array("Frame.pose", self.pose, (NUM_POSE_PARAMS,), np.float32)

    @property
    def clean_depth_mm(self) -> np.ndarray | None:
        """The most exact depth the frame has: ``depth_gt_mm`` (noise-free) when there is one, else
        the sensor's ``depth_mm`` (or None): what targets and ground truth are computed from."""
        return self.depth_gt_mm if self.depth_gt_mm is not None else self.depth_mm

    def crop(self, x0: int, y0: int, width: int, height: int) -> "Frame":
        """The frame's pixels ``[y0, y0 + height) x [x0, x0 + width)`` as a frame of their own,
        with its camera cropped to match (``CameraIntrinsics.crop``). The box may reach past the
        image: pixels outside are black in rgb, 0 (no reading) in depth and not hand in mask.
        Joints and pose are the camera frame's and do not change."""
        if width < 1 or height < 1:
            raise ValueError(f"crop size must be positive, got {width}x{height}")

        def cut(image: np.ndarray | None) -> np.ndarray | None:
            return None if image is None else crop_image(image, x0, y0, width, height)

        return Frame(self.index, self.name, self.camera.crop(x0, y0, width, height), cut(self.rgb), cut(self.depth_mm),
                     cut(self.mask), cut(self.depth_gt_mm), self.joints_mm, self.pose)


def _check_array(what: str, value: np.ndarray | None, shape: tuple[int, ...], dtype: type) -> None:
    if value is None:
        return
    if not isinstance(value, np.ndarray) or value.dtype != dtype or value.shape != shape:
        got = (f"{value.dtype} {value.shape}" if isinstance(value, np.ndarray)
               else type(value).__name__)
        raise ValueError(f"{what} must be {np.dtype(dtype)} {shape}, got {got}")


# ---- PNG helpers -----------------------------------------------------------------------------
def _ordinary_or_missing(path: Path) -> None:
    """``ValueError`` when something other than an ordinary file (a pipe, a device, a folder) has
    ``path``'s name: reading a pipe would block for good, and a writer must not replace it."""
    if path.exists() and not path.is_file():
        raise ValueError(f"{path}: not an ordinary file")


def _read_png(path: Path) -> np.ndarray:
    """Decode a PNG as stored (no channel or bit-depth conversion); OpenCV's BGR order."""
    _ordinary_or_missing(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ValueError(f"{path}: cannot read ({e.strerror or e})") from e
    if not data.startswith(_PNG_SIGNATURE):
        raise ValueError(f"{path}: not a PNG file")
    if data.rfind(_PNG_IEND) < len(_PNG_SIGNATURE):
        raise ValueError(f"{path}: truncated PNG ({len(data)} bytes, no IEND chunk)")
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as e:
        raise ValueError(f"{path}: cannot decode PNG ({e})") from e
    if image is None:
        raise ValueError(f"{path}: cannot decode PNG (corrupt data)")
    return image


def _png_size(path: Path) -> tuple[int, int] | None:
    """``(width, height)`` from a PNG's header (IHDR) without decoding it; None if unreadable
    (reading the frame reports the problem)."""
    try:
        with open(path, "rb") as f:
            head = f.read(24)
    except OSError:
        return None
    if len(head) < 24 or not head.startswith(_PNG_SIGNATURE):
        return None
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def _png_whole(path: Path) -> bool:
    """Whether ``path`` is a file that starts like a PNG and ends with its IEND chunk (not decoded).
    Something else under that name (a pipe, a device) is a ``ValueError``: it is neither read nor
    replaced."""
    _ordinary_or_missing(path)
    try:
        with open(path, "rb") as f:
            head = f.read(len(_PNG_SIGNATURE))
            f.seek(0, os.SEEK_END)
            if f.tell() < len(_PNG_SIGNATURE) + len(_PNG_IEND):
                return False
            f.seek(-len(_PNG_IEND), os.SEEK_END)
            tail = f.read()
    except OSError:
        return False
    return head == _PNG_SIGNATURE and tail == _PNG_IEND


def _describe(image: np.ndarray) -> str:
    channels = 1 if image.ndim == 2 else image.shape[2]
    return f"{image.dtype} with {channels} channel{'s' if channels != 1 else ''}"


def _read_rgb_png(path: Path) -> np.ndarray:
    """``(H, W, 3) uint8`` RGB from an 8-bit 3-channel PNG."""
    image = _read_png(path)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{path}: expected 8-bit 3-channel RGB, got {_describe(image)}")
    return np.ascontiguousarray(image[:, :, ::-1])


def _read_mask_png(path: Path) -> np.ndarray:
    """``(H, W) bool`` (nonzero = hand) from an 8-bit single-channel PNG."""
    image = _read_png(path)
    if image.dtype != np.uint8 or image.ndim != 2:
        raise ValueError(f"{path}: expected uint8 single-channel mask, got {_describe(image)}")
    return image > 0


def read_depth_png(path: str | os.PathLike, depth_unit_mm: float) -> np.ndarray:
    """Read a depth PNG -> ``(H, W) float32`` millimetres, 0 = no reading.

    The file must be a single-channel uint16 PNG whose values are in units of ``depth_unit_mm``
    (1.0 for Kinect-style data, 0.125 for the SR305). Raises ``ValueError`` naming the file when it
    is unreadable, truncated or of the wrong type.
    """
    path = Path(path)
    image = _read_png(path)
    if image.dtype != np.uint16 or image.ndim != 2:
        raise ValueError(f"{path}: expected uint16 single-channel depth, got {_describe(image)}")
    return uint16_to_depth_mm(image, depth_unit_mm)


def _write_png(path: Path, image: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", image, _PNG_PARAMS)
    if not ok:
        raise ValueError(f"{path}: PNG encoding failed for {_describe(image)}")
    atomic_write_bytes(path, buf.tobytes())


def write_depth_png(path: str | os.PathLike, depth_mm: np.ndarray, depth_unit_mm: float) -> None:
    """Write ``(H, W)`` float millimetres (0, negative or non-finite = no reading) as a uint16 PNG.

    Values are rounded to units of ``depth_unit_mm``; depth past the uint16 range raises. The write
    is atomic and deterministic (same data -> same bytes).
    """
    path = Path(path)
    depth = np.asarray(depth_mm)
    if depth.ndim != 2 or depth.dtype.kind not in "fiu":
        raise ValueError(f"{path}: depth_mm must be a real (H, W) array, got {depth.dtype} {depth.shape}")
    try:
        raw = depth_mm_to_uint16(depth, depth_unit_mm)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from e
    _write_png(path, raw)


# ---- camera.json -----------------------------------------------------------------------------
def _read_camera_json(path: Path) -> tuple[dict, CameraIntrinsics, float]:
    """Parse and validate ``camera.json`` -> (whole dict, intrinsics, depth_unit_mm)."""
    try:
        _ordinary_or_missing(path)
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"{path}: missing; a recording folder needs camera.json with keys "
                         f"{list(_CAMERA_KEYS)}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot read ({e})") from e
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(meta).__name__}")
    missing = [k for k in _CAMERA_KEYS if k not in meta]
    if missing:
        raise ValueError(f"{path}: missing key(s) {missing}")

    def number(key: str, positive: bool) -> float:
        value = meta[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or (positive and value <= 0):
            kind = "a finite positive number" if positive else "a finite number"
            raise ValueError(f"{path}: key '{key}' must be {kind}, got {value!r}")
        return float(value)

    def integer(key: str) -> int:
        value = number(key, positive=True)
        if not value.is_integer():
            raise ValueError(f"{path}: key '{key}' must be a positive integer, got {meta[key]!r}")
        return int(value)

    camera = CameraIntrinsics(number("fx", True), number("fy", True), number("cx", False),
                              number("cy", False), integer("width"), integer("height"))
    for key, why in camera.implausible():
        raise ValueError(f"{path}: key '{key}' {why}")
    unit = number("depth_unit_mm", True)
    lo, hi = DEPTH_UNIT_RANGE_MM
    if not lo <= unit <= hi:
        raise ValueError(f"{path}: key 'depth_unit_mm' must be in [{lo:g}, {hi:g}] millimetres per unit "
                         f"(1 for Kinect-style data, 0.125 for the SR305), got {meta['depth_unit_mm']!r}")
    return meta, camera, unit


def _camera_json(camera: CameraIntrinsics, depth_unit_mm: float, meta: Mapping | None) -> dict:
    """The dict a writer stores as camera.json; ``meta`` may add keys but not replace ours."""
    d = {**camera.to_dict(), "depth_unit_mm": float(depth_unit_mm)}
    for key, value in (meta or {}).items():
        if key in d:
            raise ValueError(f"meta must not set the camera key '{key}'; pass it through camera or "
                             f"depth_unit_mm")
        d[str(key)] = value
    return d


# ---- reading ---------------------------------------------------------------------------------
class Recording:
    """A recording folder, opened for reading (see the module docstring for the layout).

    Opening validates ``camera.json``, lists the frames and loads and checks the small ``.npy``
    arrays; images are read only when a frame is accessed (``rec[i]``, iteration). Every problem
    is a ``ValueError`` whose message names the file.

    With ``skip_bad=True`` iteration skips frames whose files are bad, logs a warning for each and
    records ``(name, reason)`` in ``skipped`` (reset at the start of every pass); without it the
    first bad frame raises. Indexing (``rec[i]``) always raises on a bad frame.
    """

    def __init__(self, path: str | os.PathLike, skip_bad: bool = False) -> None:
        self._path = Path(path)
        if not self._path.is_dir():
            raise ValueError(f"{self._path}: not a directory")
        self.skip_bad = bool(skip_bad)
        #: ``(name, reason)`` for each frame skipped by the latest iteration (``skip_bad=True``).
        self.skipped: list[tuple[str, str]] = []
        self._meta, self._camera, self._depth_unit_mm = _read_camera_json(self._path / CAMERA_FILE)
        self._files: dict[str, dict[str, str]] = {kind: self._list_pngs(kind) for kind in IMAGE_KINDS}
        self._names = self._frame_names()
        n = len(self._names)
        self._joints = self._load_array("joints", (n, NUM_JOINTS, 3))
        self._poses = self._load_array("poses", (n, NUM_POSE_PARAMS))
        self._intrinsics = self._load_array("intrinsics", (n, 4))
        if self._intrinsics is not None:
            self._check_intrinsics()
        for key, columns in (("joints", slice(None)), ("poses", slice(0, 3))):
            array = getattr(self, f"_{key}")
            if array is not None:
                sub = np.abs(array[:, columns])
                far = sub.max(axis=tuple(range(1, sub.ndim)), initial=0.0) > MAX_RANGE_MM
                if far.any():
                    first = int(np.flatnonzero(far)[0])
                    raise ValueError(f"{self._path / _ARRAY_FILES[key]}: {'joints' if key == 'joints' else 'palm positions'} "
                                     f"farther than {MAX_RANGE_MM / 1000:g} m (millimetres expected) in "
                                     f"{int(far.sum())} frame(s), first at row {first} (frame {self._names[first]})")
        logger.debug("opened %s: %d frames, images %s, arrays %s", self._path, n,
                     [k for k in IMAGE_KINDS if self._files[k]],
                     [k for k, f in _ARRAY_FILES.items() if (self._path / f).exists()])

    def _check_intrinsics(self) -> None:
        """Each row of intrinsics.npy: positive, plausible focal lengths and principal point."""
        path = self._path / _ARRAY_FILES["intrinsics"]
        for i, row in enumerate(self._intrinsics):
            if (row[:2] <= 0).any():
                raise ValueError(f"{path}: fx and fy must be positive, row {i} is {row.tolist()}")
            stem = self._names[i]
            kind = next((k for k in _PRIMARY_KINDS if stem in self._files[k]), None)
            size = _png_size(self._path / kind / self._files[kind][stem]) if kind else None
            w, h = size if size else (self._camera.width, self._camera.height)
            for key, why in CameraIntrinsics(*(float(v) for v in row), w, h).implausible():
                raise ValueError(f"{path}: row {i} (frame {stem}): {key} {why}")

    # ---- opening ---------------------------------------------------------------------------
    def _list_pngs(self, kind: str) -> dict[str, str]:
        """``stem -> file name`` for the PNGs in folder ``kind`` (empty if there is no folder)."""
        folder = self._path / kind
        if not folder.is_dir():
            return {}
        files: dict[str, str] = {}
        for entry in os.scandir(folder):
            stem, ext = os.path.splitext(entry.name)
            if ext.lower() != ".png" or entry.name.startswith("."):
                continue  # temporary files of an interrupted writer, thumbnails, notes
            if not stem.isdigit():
                raise ValueError(f"{folder / entry.name}: frame files must be named by number "
                                 f"(e.g. 000000.png)")
            if not entry.is_file():  # the listing knows already: no stat per frame (a pipe would block)
                raise ValueError(f"{folder / entry.name}: not an ordinary file")
            files[stem] = entry.name
        return files

    def _frame_names(self) -> list[str]:
        names = set(self._files["rgb"]) | set(self._files["depth"])
        for kind in ("mask", "depth_gt"):
            for stem in sorted(set(self._files[kind]) - names):
                raise ValueError(f"{self._path / kind / self._files[kind][stem]}: no matching frame "
                                 f"in rgb/ or depth/")
        ordered = sorted(names, key=lambda s: (int(s), s))
        for a, b in zip(ordered, ordered[1:]):
            if int(a) == int(b):
                raise ValueError(f"{self._path}: frame names '{a}' and '{b}' are the same number")
        return ordered

    def _load_array(self, key: str, shape: tuple[int, ...]) -> np.ndarray | None:
        path = self._path / _ARRAY_FILES[key]
        if not path.exists():
            return None
        _ordinary_or_missing(path)
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            raise ValueError(f"{path}: cannot read ({e})") from e
        if not isinstance(array, np.ndarray) or array.dtype.kind not in "fiu":
            raise ValueError(f"{path}: expected a float array, got {getattr(array, 'dtype', type(array))}")
        if array.shape != shape:
            raise ValueError(f"{path}: expected shape {shape} ({shape[0]} frames), got {array.shape}")
        array = array.astype(np.float32)
        finite = np.isfinite(array).all(axis=tuple(range(1, array.ndim)))
        if not finite.all():
            first = int(np.flatnonzero(~finite)[0])
            raise ValueError(f"{path}: NaN or infinite values in {int((~finite).sum())} frame(s), "
                             f"first at row {first} (frame {self._names[first]})")
        return array

    # ---- properties ------------------------------------------------------------------------
    @property
    def path(self) -> Path:
        return self._path

    @property
    def camera(self) -> CameraIntrinsics:
        """Intrinsics from camera.json (frames override them when intrinsics.npy exists)."""
        return self._camera

    @property
    def depth_unit_mm(self) -> float:
        """Millimetres per unit of the uint16 depth PNGs."""
        return self._depth_unit_mm

    @property
    def meta(self) -> dict:
        """A copy of the whole camera.json (the required keys plus any extra ones)."""
        return copy.deepcopy(self._meta)

    @property
    def names(self) -> list[str]:
        """Frame names (file stems) in recording order."""
        return list(self._names)

    @property
    def has_rgb(self) -> bool:
        return bool(self._files["rgb"])

    @property
    def has_depth(self) -> bool:
        return bool(self._files["depth"])

    @property
    def has_mask(self) -> bool:
        return bool(self._files["mask"])

    @property
    def has_depth_gt(self) -> bool:
        return bool(self._files["depth_gt"])

    @property
    def has_joints(self) -> bool:
        return self._joints is not None

    @property
    def has_poses(self) -> bool:
        return self._poses is not None

    @property
    def has_intrinsics(self) -> bool:
        """Whether intrinsics.npy gives every frame its own intrinsics."""
        return self._intrinsics is not None

    @property
    def joints_mm(self) -> np.ndarray | None:
        """All joints, ``(N, 21, 3) float32`` mm (a copy), or None: ground truth without images."""
        return None if self._joints is None else self._joints.copy()

    @property
    def poses(self) -> np.ndarray | None:
        """All poses, ``(N, 27) float32`` (a copy), or None."""
        return None if self._poses is None else self._poses.copy()

    def frames_with(self, kind: str) -> list[str]:
        """Names of the frames that have an image in folder ``kind`` (one of ``IMAGE_KINDS``)."""
        if kind not in IMAGE_KINDS:
            raise ValueError(f"kind must be one of {IMAGE_KINDS}, got {kind!r}")
        return [name for name in self._names if name in self._files[kind]]

    def __len__(self) -> int:
        return len(self._names)

    def spread(self, n: int | None = None) -> np.ndarray:
        """``(min(n, len),) int``: the indices of ``n`` frames spread evenly over the recording,
        first and last included (every frame when ``n`` is None or at least its length)."""
        if n is None or n >= len(self._names):
            return np.arange(len(self._names))
        return np.linspace(0, len(self._names) - 1, n).round().astype(int)

    def select(self, frames: slice | None) -> "Recording":
        """The frames ``frames`` (a ``slice`` over frame positions, e.g. ``slice(10, 40)``; None:
        all) as a recording of their own: ``len``, ``names``, indexing, the ``.npy`` arrays and
        ``has_*`` cover those frames only (a frame's ``index`` is its position in the selection).
        The folder is not read again. ``ValueError`` naming the folder when no frame is selected."""
        if frames is None:
            return self
        if not isinstance(frames, slice):
            raise TypeError(f"frames must be a slice or None, got {type(frames).__name__}")
        rows = range(len(self._names))[frames]
        if len(rows) == 0:
            raise ValueError(f"{self._path}: frames {_slice_text(frames)} select no frame of its {len(self)}")
        view = copy.copy(self)
        view._names = [self._names[i] for i in rows]
        keep = set(view._names)
        view._files = {kind: {k: v for k, v in files.items() if k in keep} for kind, files in self._files.items()}
        for key in ("_joints", "_poses", "_intrinsics"):
            array = getattr(self, key)
            if array is not None:
                setattr(view, key, array[list(rows)])
        view.skipped = []
        return view

    def __repr__(self) -> str:
        kinds = ", ".join(k for k in IMAGE_KINDS if self._files[k]) or "no images"
        return f"Recording({str(self._path)!r}, {len(self)} frames: {kinds})"

    # ---- frames ----------------------------------------------------------------------------
    def __getitem__(self, index: int) -> Frame:
        """Read frame ``index`` (negative counts from the end); ``ValueError`` if a file is bad."""
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"recording indices must be integers, got {type(index).__name__}")
        n = len(self._names)
        i = int(index) + n if index < 0 else int(index)
        if not 0 <= i < n:
            raise IndexError(f"frame index {index} out of range for {n} frames in {self._path}")
        return self._read_frame(i)

    def __iter__(self) -> Iterator[Frame]:
        self.skipped = []
        for i, name in enumerate(self._names):
            try:
                frame = self._read_frame(i)
            except ValueError as e:
                if not self.skip_bad:
                    raise
                logger.warning("skipping frame %s of %s: %s", name, self._path, e)
                self.skipped.append((name, str(e)))
                continue
            yield frame

    def _read_frame(self, i: int) -> Frame:
        name = self._names[i]
        readers = {"rgb": _read_rgb_png, "mask": _read_mask_png,
                   "depth": lambda p: read_depth_png(p, self._depth_unit_mm),
                   "depth_gt": lambda p: read_depth_png(p, self._depth_unit_mm)}
        images: dict[str, np.ndarray] = {}
        first: str | None = None  # the frame's first image, e.g. "rgb/000003.png": others match its size
        for kind in IMAGE_KINDS:
            file = self._files[kind].get(name)
            if file is None:
                continue
            path = self._path / kind / file
            image = readers[kind](path)
            h, w = image.shape[:2]
            if first is None:
                first = f"{kind}/{file}"
                if self._intrinsics is None and (h, w) != (self._camera.height, self._camera.width):
                    raise ValueError(f"{path}: size {w}x{h} differs from {CAMERA_FILE} "
                                     f"{self._camera.width}x{self._camera.height}")
            else:
                h0, w0 = next(iter(images.values())).shape[:2]
                if (h, w) != (h0, w0):
                    raise ValueError(f"{path}: size {w}x{h} differs from {first} {w0}x{h0}")
            images[kind] = image
        if self._intrinsics is None:
            camera = self._camera
        else:
            fx, fy, cx, cy = (float(v) for v in self._intrinsics[i])
            h, w = next(iter(images.values())).shape[:2]
            camera = CameraIntrinsics(fx, fy, cx, cy, w, h)
        return Frame(index=i, name=name, camera=camera, rgb=images.get("rgb"),
                     depth_mm=images.get("depth"), mask=images.get("mask"),
                     depth_gt_mm=images.get("depth_gt"),
                     joints_mm=None if self._joints is None else self._joints[i].copy(),
                     pose=None if self._poses is None else self._poses[i].copy())


def _slice_text(frames: slice) -> str:
    """``slice(10, 40)`` as ``10:40`` (the form ``--frames`` takes)."""
    text = ("" if frames.start is None else str(frames.start)) + ":" + ("" if frames.stop is None else str(frames.stop))
    return text if frames.step in (None, 1) else f"{text}:{frames.step}"


# ---- writing ---------------------------------------------------------------------------------
class RecordingWriter:
    """Writes a recording folder: camera.json at construction, then frames and arrays.

    camera : intrinsics stored in camera.json; every image written must be
        ``(camera.height, camera.width)`` unless ``per_frame_intrinsics`` (crops of varying size,
        whose intrinsics go to intrinsics.npy via ``write_arrays``).
    depth_unit_mm : millimetres per uint16 unit of the depth PNGs (1.0: Kinect style, up to
        65.5 m; 0.125: SR305 style, up to 8.19 m).
    meta : extra JSON-serialisable keys for camera.json (source, seed, generator config).
    expect : the images every frame gets, a subset of ``IMAGE_KINDS``; ``frame_done`` checks them.

    Opening an existing folder resumes it: its camera.json must equal the one this writer would
    write (so frames never mix cameras or depth units), and ``frame_done`` says which frames to skip.
    """

    def __init__(self, path: str | os.PathLike, camera: CameraIntrinsics, depth_unit_mm: float = 1.0,
                 meta: Mapping | None = None, expect: Sequence[str] = IMAGE_KINDS,
                 per_frame_intrinsics: bool = False) -> None:
        if not isinstance(camera, CameraIntrinsics):
            raise ValueError(f"camera must be CameraIntrinsics, got {type(camera).__name__}")
        if isinstance(depth_unit_mm, bool) or not isinstance(depth_unit_mm, (int, float, np.floating)) \
                or not (math.isfinite(depth_unit_mm) and depth_unit_mm > 0):
            raise ValueError(f"depth_unit_mm must be a finite positive number, got {depth_unit_mm!r}")
        if not DEPTH_UNIT_RANGE_MM[0] <= depth_unit_mm <= DEPTH_UNIT_RANGE_MM[1]:
            raise ValueError(f"depth_unit_mm must be in [{DEPTH_UNIT_RANGE_MM[0]:g}, {DEPTH_UNIT_RANGE_MM[1]:g}] mm "
                             f"per unit, got {depth_unit_mm!r}")
        expect = tuple(expect)
        unknown = [k for k in expect if k not in IMAGE_KINDS]
        if not expect or unknown or not set(expect) & set(_PRIMARY_KINDS):
            raise ValueError(f"expect must be a subset of {IMAGE_KINDS} with 'rgb' or 'depth', "
                             f"got {expect}")
        self._path = Path(path)
        self._camera = camera
        self._depth_unit_mm = float(depth_unit_mm)
        self._expect = expect
        self._per_frame_intrinsics = bool(per_frame_intrinsics)

        camera_json = _camera_json(camera, self._depth_unit_mm, meta)
        try:
            text = json.dumps(camera_json, indent=2, allow_nan=False) + "\n"
        except (TypeError, ValueError) as e:
            raise ValueError(f"meta must be JSON-serialisable with finite numbers: {e}") from e
        self._path.mkdir(parents=True, exist_ok=True)
        camera_path = self._path / CAMERA_FILE
        if camera_path.exists():
            existing, _, _ = _read_camera_json(camera_path)
            if existing != json.loads(text):
                raise ValueError(f"{camera_path}: exists with different contents; resume with the same "
                                 f"camera, depth_unit_mm and meta, or write to an empty folder")
        else:
            atomic_write_bytes(camera_path, text.encode("utf-8"))

    @property
    def path(self) -> Path:
        return self._path

    @property
    def camera(self) -> CameraIntrinsics:
        return self._camera

    @property
    def depth_unit_mm(self) -> float:
        return self._depth_unit_mm

    @property
    def expect(self) -> tuple[str, ...]:
        return self._expect

    def _file(self, kind: str, index: int) -> Path:
        return self._path / kind / f"{index:0{_FRAME_DIGITS}d}.png"

    def write_frame(self, index: int, rgb: np.ndarray | None = None, depth_mm: np.ndarray | None = None,
                    mask: np.ndarray | None = None, depth_gt_mm: np.ndarray | None = None) -> None:
        """Write the given images of frame ``index`` (file stem ``f"{index:06d}"``), each atomically.

        rgb : ``(H, W, 3) uint8`` RGB.
        depth_mm, depth_gt_mm : ``(H, W)`` float mm, 0 / negative / non-finite = no reading;
            rounded to ``depth_unit_mm`` units (``handrgbd.depth.depth_mm_to_uint16``).
        mask : ``(H, W)`` bool or integer, nonzero = hand; stored as 0/255.
        At least one of ``rgb`` and ``depth_mm`` is required; all images must have the same size.
        Everything is validated before anything is written.
        """
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
            raise ValueError(f"frame index must be a non-negative integer, got {index!r}")
        index = int(index)
        if rgb is None and depth_mm is None:
            raise ValueError(f"frame {index}: write_frame needs rgb or depth_mm (a frame is defined by them)")
        given = {"rgb": rgb, "depth": depth_mm, "mask": mask, "depth_gt": depth_gt_mm}
        encoded: dict[str, np.ndarray] = {}
        size: tuple[int, int] | None = None
        for kind, value in given.items():
            if value is None:
                continue
            path = self._file(kind, index)
            image = self._encode(kind, path, np.asarray(value))
            if size is None:
                size = image.shape[:2]
                if not self._per_frame_intrinsics and size != (self._camera.height, self._camera.width):
                    raise ValueError(f"{path}: size {size[1]}x{size[0]} differs from the camera's "
                                     f"{self._camera.width}x{self._camera.height}")
            elif image.shape[:2] != size:
                raise ValueError(f"{path}: size {image.shape[1]}x{image.shape[0]} differs from the "
                                 f"frame's other images, {size[1]}x{size[0]}")
            encoded[kind] = image
        for kind, image in encoded.items():
            path = self._file(kind, index)
            path.parent.mkdir(exist_ok=True)  # folders appear with their first image
            _write_png(path, image)

    def _encode(self, kind: str, path: Path, value: np.ndarray) -> np.ndarray:
        """Validate one image and convert it to what the PNG stores (BGR, uint16 units, 0/255)."""
        if kind == "rgb":
            if value.dtype != np.uint8 or value.ndim != 3 or value.shape[2] != 3:
                raise ValueError(f"{path}: rgb must be (H, W, 3) uint8, got {value.dtype} {value.shape}")
            return np.ascontiguousarray(value[:, :, ::-1])
        if kind == "mask":
            if value.ndim != 2 or value.dtype.kind not in "biu":
                raise ValueError(f"{path}: mask must be (H, W) bool or integer, got {value.dtype} {value.shape}")
            return np.where(value != 0, np.uint8(255), np.uint8(0))
        if value.ndim != 2 or value.dtype.kind not in "fiu":
            raise ValueError(f"{path}: {kind} must be (H, W) float mm, got {value.dtype} {value.shape}")
        try:
            return depth_mm_to_uint16(value, self._depth_unit_mm)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from e

    def frame_done(self, index: int) -> bool:
        """Whether every image in ``expect`` exists for frame ``index`` and is a whole PNG (to skip
        it when resuming; a damaged file is written again)."""
        return all(_png_whole(self._file(kind, int(index))) for kind in self._expect)

    def write_arrays(self, joints: np.ndarray | None = None, poses: np.ndarray | None = None,
                     intrinsics: np.ndarray | None = None) -> None:
        """Write the per-frame arrays, each atomically, as float32 (row ``i`` = frame ``i``).

        joints : ``(N, 21, 3)`` mm, camera frame, MediaPipe order -> joints.npy.
        poses : ``(N, 27)`` model parameters -> poses.npy.
        intrinsics : ``(N, 4)`` fx, fy, cx, cy in pixels (fx, fy > 0) -> intrinsics.npy.
        All must be finite and agree on N; everything is validated before anything is written.
        """
        shapes = {"joints": (NUM_JOINTS, 3), "poses": (NUM_POSE_PARAMS,), "intrinsics": (4,)}
        given = {"joints": joints, "poses": poses, "intrinsics": intrinsics}
        arrays: dict[str, np.ndarray] = {}
        for key, value in given.items():
            if value is None:
                continue
            path = self._path / _ARRAY_FILES[key]
            array = np.asarray(value)
            if array.dtype.kind not in "fiu" or array.ndim != 1 + len(shapes[key]) \
                    or array.shape[1:] != shapes[key]:
                raise ValueError(f"{path}: expected a float array of shape (N, "
                                 f"{', '.join(map(str, shapes[key]))}), got {array.dtype} {array.shape}")
            array = np.ascontiguousarray(array, dtype=np.float32)
            if not np.isfinite(array).all():
                raise ValueError(f"{path}: NaN or infinite values")
            if key == "intrinsics" and (array[:, :2] <= 0).any():
                raise ValueError(f"{path}: fx and fy must be positive")
            arrays[key] = array
        lengths = {key: len(a) for key, a in arrays.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"{self._path}: arrays disagree on the number of frames: {lengths}")
        for key, array in arrays.items():
            buf = io.BytesIO()
            np.save(buf, array, allow_pickle=False)
            atomic_write_bytes(self._path / _ARRAY_FILES[key], buf.getvalue())
