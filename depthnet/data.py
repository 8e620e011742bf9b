"""Training samples from recording folders, with the paper's augmentation.

``HandDepthDataset(folders, input_size, augment)`` yields ``Sample``s:

* rgb ``(3, S, S) float32 in [0, 1]``;
* mask ``(1, S/4, S/4)`` and relative depth ``(1, S/4, S/4)``: the paper's targets (eqs. 1-2,
  ``depthnet.targets``) computed on the augmented depth at the output resolution;
* the frame's file name, for error messages;
* keypoint heatmaps ``(21, S/4, S/4)`` and their weights ``(21,)`` (``depthnet.targets.keypoint_targets``:
  the frame's joints projected with its intrinsics through the same warp; weights 0 without
  joints.npy), and the side: 1 a right hand, 0 a left one (a flipped sample is the other side),
  -1 unknown (no poses.npy: the joints alone cannot tell a hand from its mirror image).

Augmentation (paper): horizontal flip with p = 0.5, rotation uniform in [-90, 90] degrees, a
random crop of 0.8 of the image (side) resized back, colour jitter: uniform [-20, 20] added per
channel to RGB only. Geometric operations apply to RGB and depth together as one affine warp;
depth is resampled with nearest neighbour (never blending a hand with the background), RGB
bilinearly; pixels rotated in from outside are black and have no depth.

Hand-free squares (``hand_free=FOLDERS, hand_free_share=S``): a share S of the samples is a
square cut from a frame of those folders (full frames: ``handrgbd synth --full-frame``) away from
its hands and from what eq. 1 would keep with them (:func:`hand_free_square`), through the same
augmentation; its targets say no hand is there: mask 0, relative depth 1 (background), every
joint's heatmap empty at weight 1 (an absent joint: a Gaussian map's MSE against 0, a softmax
map's divergence from a flat map), side unknown. Every positive sample holds a hand, so without
them nothing teaches the network to answer a crop of a face, a skin-coloured object or a second
person with low confidence, which is what the live localiser compares candidates by.
With ``hand_free_mined=FILES, hand_free_mined_share=M`` a share M of the hand-free samples is
cut instead from squares the live localiser was wrongly sure of (hard negatives: ``handrgbd mine
--out``, :func:`read_mined_squares`; the square as mined, black past the image's edge, then the
same augmentation and targets).

Targets come from ``depth_gt/`` (exact) when the folder has it, else from ``depth/``. With
``foreground="hand"`` (a network whose mask is the labelled hand alone,
``DepthNetConfig.foreground``) the depth outside mask/ is dropped before the warp, so eq. 1
keeps the hand alone (a hand spans far less than its 300 mm): its pixels are the mask target and
its mean is the relative depth's zero (``targets_from_mask``'s targets, through the same warp).
"""

from __future__ import annotations

import csv
import math
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from depthnet.model import FOREGROUNDS
from depthnet.targets import BACKGROUND, FOREGROUND_MM, keypoint_targets, make_targets
from handrgbd.camera import crop_image
from handrgbd.joints import NUM_JOINTS, hand_side
from handrgbd.outputs import write_csv
from handrgbd.recording import Recording

__all__ = ["Augmentation", "HandDepthDataset", "Sample", "augment_pair", "augment_matrix", "collate",
           "check_hand_free_source", "degraded", "hand_exclusion", "hand_free_square", "jpeg_roundtrip", "low_light",
           "MinedSquare", "read_mined_squares", "square_sum", "write_mined_squares"]


@dataclass(frozen=True)
class Augmentation:
    """The paper's augmentation parameters (``enabled=False``: none), and one of ours: JPEG.

    jpeg_prob : the share of samples JPEG-compressed at the frame's own resolution, before the
        warp, at a quality drawn uniformly from ``jpeg_quality`` (what a webcam's MJPEG stream, a
        video file or a photograph does to a frame; the renders are lossless). 0, the default,
        draws nothing, so the paper's augmentation is unchanged to the bit.
    low_light_prob : the share of samples taken as a dim scene would be (:func:`low_light`, at
        the frame's own resolution, before JPEG and the warp), at a gain drawn log-uniformly from
        ``low_light_gain``; 0, the default, draws nothing.
    """

    enabled: bool = True
    flip_prob: float = 0.5
    rotation_deg: float = 90.0
    crop_fraction: float = 0.8
    color_jitter: float = 20.0
    jpeg_prob: float = 0.0
    jpeg_quality: tuple[int, int] = (30, 95)
    low_light_prob: float = 0.0
    low_light_gain: tuple[float, float] = (2.0, 16.0)

    def __post_init__(self):
        for name in ("jpeg_prob", "low_light_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        lo, hi = self.low_light_gain
        if not 1.0 <= lo <= hi:
            raise ValueError(f"low_light_gain must be (low, high) with 1 <= low <= high, got {self.low_light_gain}")
        lo, hi = self.jpeg_quality
        if not 1 <= lo <= hi <= 100:
            raise ValueError(f"jpeg_quality must be (low, high) with 1 <= low <= high <= 100, got {self.jpeg_quality}")


class Sample(NamedTuple):
    rgb: torch.Tensor
    mask: torch.Tensor
    relative: torch.Tensor
    name: str
    heatmaps: torch.Tensor | None = None
    joint_weights: torch.Tensor | None = None
    right: torch.Tensor | None = None
    joint_uv: torch.Tensor | None = None  # (21, 2) the joints in output-map pixels (column, row); 0 without
    # joints, NaN in a hand-free square (no joint anywhere)


def augment_pair(rgb: np.ndarray, depth_mm: np.ndarray, size: int, aug: Augmentation,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One affine warp (flip, rotation, crop, resize) of RGB and depth to ``size x size``,
    then colour jitter. Returns ``(rgb (size, size, 3) uint8, depth (size, size) float32)``."""
    return augment_frame(rgb, depth_mm, size, aug, rng)[:2]


def augment_frame(rgb: np.ndarray, depth_mm: np.ndarray, size: int, aug: Augmentation,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """:func:`augment_pair`, also returning the warp ``(3, 3)`` (image pixel centre -> output
    pixel centre, homogeneous) and whether it flips."""
    h, w = rgb.shape[:2]
    A, flipped = augment_matrix(h, w, size, aug, rng)
    M = A[:2]
    if aug.enabled and aug.low_light_prob > 0 and rng.random() < aug.low_light_prob:
        gain = math.exp(rng.uniform(math.log(aug.low_light_gain[0]), math.log(aug.low_light_gain[1])))
        rgb = low_light(rgb, gain, rng)
    if aug.enabled and aug.jpeg_prob > 0 and rng.random() < aug.jpeg_prob:
        rgb = jpeg_roundtrip(rgb, int(rng.integers(aug.jpeg_quality[0], aug.jpeg_quality[1] + 1)))
    out_rgb = cv2.warpAffine(rgb, M, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    out_depth = cv2.warpAffine(depth_mm.astype(np.float32), M, (size, size), flags=cv2.INTER_NEAREST,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if aug.enabled and aug.color_jitter > 0:
        jitter = rng.uniform(-aug.color_jitter, aug.color_jitter, 3)
        out_rgb = np.clip(out_rgb.astype(np.float32) + jitter, 0, 255).astype(np.uint8)
    return out_rgb, out_depth, A, flipped


def jpeg_roundtrip(rgb: np.ndarray, quality: int) -> np.ndarray:
    """``rgb (H, W, 3) uint8`` encoded as JPEG at ``quality`` (1-100, OpenCV's 4:2:0) and decoded."""
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("jpeg_roundtrip: OpenCV could not encode the image")
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].copy()


#: low_light's sensor: electrons at full scale (a webcam's small pixel at its base gain) and the
#: read noise (electrons, rms)
FULL_WELL_E = 2000.0
READ_NOISE_E = 3.0
#: the seed of low light's noise where it is measured (``handrgbd eval --low-light``, the live
#: benchmark's ``--low-light``), with the frame's own key: the same noise every run
LOW_LIGHT_SEED = 1717


def low_light(rgb: np.ndarray, gain: float, rng: np.random.Generator) -> np.ndarray:
    """``rgb (H, W, 3) uint8`` as a camera would have taken the scene with ``gain`` (>= 1) times
    less light and ``gain`` times its base amplification (a dim room, the exposure capped by
    the frame rate): the same brightness, with the noise of ``gain`` times fewer photons.

    Each value is taken to linear light (sRGB's 2.2 power), counted in electrons (``FULL_WELL_E``
    at full scale, divided by ``gain``), drawn with shot noise (Poisson) and read noise
    (``READ_NOISE_E``, Gaussian), amplified back, clipped and returned to 8-bit sRGB: per channel,
    independently, as a sensor's colour pixels (no demosaicing or denoising). At mid-grey (128) the
    noise is about 3 of 255 at ``gain`` 1 (a camera's in good light), 6 at 4, 9 at 8 and 13 at
    16; in the darks (30) 4, 13, 19 and 25. A webcam would also denoise and compress (JPEG):
    this is the noise before either."""
    if not (gain >= 1.0 and math.isfinite(gain)):
        raise ValueError(f"low_light: gain must be finite and >= 1, got {gain}")
    electrons = FULL_WELL_E / gain
    linear = (rgb.astype(np.float64) / 255.0) ** 2.2 * electrons
    counted = rng.poisson(linear) + rng.normal(0.0, READ_NOISE_E, rgb.shape)
    out = np.clip(counted / electrons, 0.0, 1.0) ** (1 / 2.2)
    return np.rint(out * 255.0).astype(np.uint8)


def augment_matrix(h: int, w: int, size: int, aug: Augmentation, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """The warp of an ``h x w`` image to ``size x size`` (``(3, 3)``, image pixel centre -> output
    pixel centre) and whether it flips; draws flip, rotation and crop from ``rng`` in that order."""
    flipped = False
    # map output pixel centres to input pixel centres: start from a plain resize
    scale = size / np.array([w, h], dtype=np.float64)
    A = np.array([[scale[0], 0, 0.5 * scale[0] - 0.5], [0, scale[1], 0.5 * scale[1] - 0.5], [0, 0, 1]])
    if aug.enabled:
        c = (size - 1) / 2.0
        to_centre = np.array([[1, 0, -c], [0, 1, -c], [0, 0, 1.0]])
        back = np.array([[1, 0, c], [0, 1, c], [0, 0, 1.0]])
        flipped = bool(rng.random() < aug.flip_prob)
        flip = np.diag([-1.0 if flipped else 1.0, 1.0, 1.0])
        a = math.radians(rng.uniform(-aug.rotation_deg, aug.rotation_deg))
        rot = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
        # crop: zoom in by 1 / crop_fraction about a random point that keeps the crop inside
        zoom = 1.0 / aug.crop_fraction
        slack = (1 - aug.crop_fraction) * size / 2
        shift = rng.uniform(-slack, slack, 2) * zoom
        crop = np.array([[zoom, 0, shift[0]], [0, zoom, shift[1]], [0, 0, 1]])
        A = back @ crop @ rot @ flip @ to_centre @ A
    return A, flipped


def degraded(rgb: np.ndarray, jpeg: int | None = None, low_light_gain: float | None = None,
             rng: np.random.Generator | None = None) -> np.ndarray:
    """``rgb (H, W, 3) uint8`` as a camera and its stream would deliver it: first taken in a dim
    scene at ``low_light_gain`` (:func:`low_light`, its noise drawn from ``rng``), then
    JPEG-compressed at quality ``jpeg`` (:func:`jpeg_roundtrip`); unchanged without them."""
    if low_light_gain is not None:  # the sensor's noise first, then the stream's compression
        if rng is None:
            raise ValueError("degraded: low light needs an rng for its noise")
        rgb = low_light(rgb, low_light_gain, rng)
    if jpeg is not None:
        rgb = jpeg_roundtrip(rgb, jpeg)
    return rgb


#: hand-free squares: the side's range as a share of the frame's shorter side (the live
#: localiser's windows are 0.5 and 0.75 of it, its blob crops anything from a hand's size up)
HAND_FREE_SIDE = (0.2, 0.8)
#: hand-free squares: draws per frame before the next frame of the folder is tried
HAND_FREE_TRIES = 20
#: hand-free squares keep this far (a share of the frame's shorter side) from the excluded pixels
HAND_FREE_GAP = 0.02


def check_hand_free_source(rec: Recording, what: str = "hand-free squares") -> None:
    """Raise ValueError unless ``rec`` can give hand-free squares: rgb/, depth/ (or depth_gt/)
    and mask/ for every frame (where the hands are; full frames: ``handrgbd synth --full-frame``)."""
    if not rec.has_rgb or not (rec.has_depth or rec.has_depth_gt) or len(rec.frames_with("mask")) < len(rec):
        raise ValueError(f"{rec.path}: {what} need rgb/, depth/ (or depth_gt/) and mask/ for every frame (where "
                         f"the hands are; full frames: handrgbd synth --full-frame)")


def hand_exclusion(depth_mm: np.ndarray, hand: np.ndarray, threshold_mm: float = FOREGROUND_MM) -> np.ndarray:
    """``(H, W) bool``: the labelled hand pixels ``hand`` (every hand in the frame) and every
    pixel eq. 1 would keep with them (a depth reading below the hands' nearest + ``threshold_mm``:
    forearms, held objects, a table under the hand), which a hand-free square must not touch."""
    d = np.asarray(depth_mm, np.float32)
    hand = np.asarray(hand, bool)
    near = hand & (d > 0)
    if not near.any():
        return hand.copy()
    return hand | ((d > 0) & (d < d[near].min() + threshold_mm))


def square_sum(integral: np.ndarray, x0: int, y0: int, side: int) -> int:
    """How many pixels of a mask the square ``(x0, y0, side)`` holds (the part inside the image),
    from the mask's summed-area table ``integral (H + 1, W + 1)`` (``cv2.integral``: sums over
    ``[0, y) x [0, x)``)."""
    H, W = integral.shape[0] - 1, integral.shape[1] - 1
    a, b, c, d = max(x0, 0), max(y0, 0), min(x0 + side, W), min(y0 + side, H)
    if c <= a or d <= b:
        return 0
    return int(integral[d, c] - integral[b, c] - integral[d, a] + integral[b, a])


def hand_free_square(exclude: np.ndarray, rng: np.random.Generator, side_range: tuple[float, float] = HAND_FREE_SIDE,
                     tries: int = HAND_FREE_TRIES, gap: float = HAND_FREE_GAP) -> tuple[int, int, int] | None:
    """A square ``(x0, y0, side)`` inside an ``(H, W)`` image that stays ``gap`` times the
    shorter side away from every pixel of ``exclude (H, W) bool``: side uniform in
    ``side_range`` times the shorter side, position uniform; None when ``tries`` draws all come
    too close."""
    H, W = exclude.shape
    short = min(H, W)
    pad = int(math.ceil(gap * short))
    grown = cv2.dilate(exclude.astype(np.uint8), np.ones((2 * pad + 1, 2 * pad + 1), np.uint8)) if pad else \
        exclude.astype(np.uint8)
    integral = cv2.integral(grown)
    for _ in range(tries):
        side = max(8, int(round(rng.uniform(*side_range) * short)))
        x0, y0 = int(rng.integers(0, W - side + 1)), int(rng.integers(0, H - side + 1))
        if square_sum(integral, x0, y0, side) == 0:
            return x0, y0, side
    return None


@dataclass(frozen=True)
class MinedSquare:
    """A square of a full frame with no hand in it that a network was sure of (a hard negative):
    the recording folder, the frame's name, the square in the frame's pixels (it may reach past
    the image) and its keypoints' mean confidence. One row of a mined squares file."""

    folder: str
    frame: str
    x0: int
    y0: int
    side: int
    confidence: float


def write_mined_squares(path: str | Path, squares: list[MinedSquare]) -> None:
    """A mined squares file: CSV with a header of ``MinedSquare``'s fields, one square a row
    (``handrgbd.outputs.write_csv``: atomic, never a half-written file)."""
    write_csv(path, [[fl.name for fl in fields(MinedSquare)],
                     *([*astuple(sq)[:-1], f"{sq.confidence:.4f}"] for sq in squares)])


def read_mined_squares(path: str | Path) -> list[MinedSquare]:
    """The squares of a mined squares file (``write_mined_squares``); ValueError naming the file
    and line when it is missing, has another header or a row that does not parse (a side under 8
    px, a folder or frame left empty)."""
    path = Path(path)
    names = [fl.name for fl in fields(MinedSquare)]
    try:
        with open(path, newline="", encoding="utf-8") as f:  # as write_csv writes it
            rows = list(csv.reader(f))
    except OSError as e:
        raise ValueError(f"{path}: cannot read mined squares ({e.strerror or e})") from e
    if not rows or rows[0] != names:
        raise ValueError(f"{path}: not a mined squares file (its header must be {','.join(names)}; "
                         f"write one with handrgbd mine --out)")
    squares = []
    for line, row in enumerate(rows[1:], 2):
        try:
            if len(row) != len(names) or not row[0] or not row[1]:
                raise ValueError(f"{len(row)} fields")
            sq = MinedSquare(row[0], row[1], int(row[2]), int(row[3]), int(row[4]), float(row[5]))
            if sq.side < 8:
                raise ValueError(f"side {sq.side}")
        except ValueError as e:
            raise ValueError(f"{path}, line {line}: not a square ({e}): {','.join(row)}") from None
        squares.append(sq)
    if not squares:
        raise ValueError(f"{path}: no squares")
    return squares


def _downsample_depth(depth: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour to 1/factor: the pixel nearest each output pixel's centre."""
    off = factor // 2
    return depth[off::factor, off::factor]


class HandDepthDataset(Dataset):
    """Samples from one or more recording folders (they need rgb/ and depth/ or depth_gt/).

    seed : base seed of the augmentation; a sample's randomness is ``(seed, epoch, index)``, so a
        resumed run sees the same augmentations (call ``set_epoch`` each epoch).
    hand_free, hand_free_share : folders (with mask/ for every frame, and depth) to cut hand-free
        squares from, and their share of the samples (module docstring): the hand samples come
        first, then ``round(share / (1 - share) x hand samples)`` hand-free ones, which go through
        the folders' frames in turn.
    hand_free_mined, hand_free_mined_share : mined squares files (``read_mined_squares``) and the
        share of the hand-free samples cut from their squares (drawn at random, from the
        sample's own random state) instead of random squares of ``hand_free``; at 1 the
        ``hand_free`` folders may be left out.
    """

    def __init__(self, folders, input_size: int = 256, augmentation: Augmentation = Augmentation(),
                 seed: int = 0, skip_bad: bool = False, foreground: str = "eq1", hand_free=(),
                 hand_free_share: float = 0.0, hand_free_mined=(), hand_free_mined_share: float = 0.0):
        folders = [folders] if isinstance(folders, (str, Path)) else list(folders)
        if not folders:
            raise ValueError("HandDepthDataset needs at least one recording folder")
        if foreground not in FOREGROUNDS:
            raise ValueError(f"foreground must be one of {FOREGROUNDS}, got {foreground!r}")
        self.recordings = [Recording(f, skip_bad=skip_bad) for f in folders]
        for rec in self.recordings:
            if not rec.has_rgb or not (rec.has_depth or rec.has_depth_gt):
                raise ValueError(f"{rec.path}: depthnet training needs rgb/ and depth/ (or depth_gt/)")
            if foreground == "hand" and len(rec.frames_with("mask")) < len(rec):
                raise ValueError(f"{rec.path}: a network of the labelled hand (foreground 'hand') needs mask/ for "
                                 f"every frame ({len(rec.frames_with('mask'))} of {len(rec)} have one)")
        self.foreground = foreground
        self.index = [(r, i) for r, rec in enumerate(self.recordings) for i in range(len(rec))]
        hand_free = [hand_free] if isinstance(hand_free, (str, Path)) else list(hand_free)
        if not (0.0 <= hand_free_share < 1.0):
            raise ValueError(f"hand_free_share must be in [0, 1), got {hand_free_share}")
        hand_free_mined = [hand_free_mined] if isinstance(hand_free_mined, (str, Path)) else list(hand_free_mined)
        if not 0.0 <= hand_free_mined_share <= 1.0:
            raise ValueError(f"hand_free_mined_share must be in [0, 1], got {hand_free_mined_share}")
        if bool(hand_free_mined) != (hand_free_mined_share > 0):
            raise ValueError("mined squares files and a share of them (hand_free_mined_share > 0) go together")
        if hand_free_mined and hand_free_share == 0:
            raise ValueError("mined squares are a share of the hand-free samples: give hand_free_share > 0 too")
        if hand_free_share > 0 and not hand_free and hand_free_mined_share < 1:
            raise ValueError("hand_free_share > 0 needs hand_free folders (full frames to cut hand-free squares from)")
        self.free_recordings = [Recording(f, skip_bad=skip_bad) for f in hand_free] if hand_free_share > 0 else []
        for rec in self.free_recordings:
            check_hand_free_source(rec)
        self.free_frames = [(r, i) for r, rec in enumerate(self.free_recordings) for i in range(len(rec))]
        self.mined, self.mined_frames = [], {}  # MinedSquare, and (folder, frame name) -> (recording, index)
        mined_recordings = {}  # folder -> (recording, frame name -> index)
        for path in hand_free_mined:
            for sq in read_mined_squares(path):
                if sq.folder not in mined_recordings:
                    try:
                        rec = Recording(sq.folder, skip_bad=skip_bad)
                    except (OSError, ValueError) as e:
                        raise ValueError(f"{path}: its folder {sq.folder}: {e}") from e
                    if not rec.has_rgb:
                        raise ValueError(f"{path}: its folder {sq.folder} has no rgb/")
                    mined_recordings[sq.folder] = (rec, {name: k for k, name in enumerate(rec.names)})
                rec, index_of = mined_recordings[sq.folder]
                if sq.frame not in index_of:
                    raise ValueError(f"{path}: frame {sq.frame} is not in {sq.folder}")
                self.mined_frames[(sq.folder, sq.frame)] = (rec, index_of[sq.frame])
                self.mined.append(sq)
        self.hand_free_mined_share = hand_free_mined_share
        self.hand_free_share = hand_free_share
        self.n_hand = len(self.index)
        self.n_free = self.hand_free_count(self.n_hand)
        self.input_size = input_size
        self.augmentation = augmentation
        self.seed = seed
        self.epoch = 0

    def hand_free_count(self, hand_samples: int) -> int:
        """How many hand-free squares go with ``hand_samples`` hand samples: their share of the
        whole, ``round(share / (1 - share) x hand_samples)`` (0 without hand-free frames)."""
        if not self.free_frames and not self.mined:
            return 0
        return int(round(self.hand_free_share / (1.0 - self.hand_free_share) * hand_samples))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n_hand + self.n_free

    def __getitem__(self, i: int) -> Sample:
        if not 0 <= i < len(self):
            raise IndexError(f"sample {i} of {len(self)}")
        if i >= self.n_hand:
            return self._hand_free(i)
        r, k = self.index[i]
        rec = self.recordings[r]
        frame = rec[k]
        name = f"{rec.path}/{frame.name}"
        depth = frame.clean_depth_mm
        if self.foreground == "hand":
            depth = np.where(frame.mask > 0, depth, 0.0).astype(np.float32)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch, i]))
        rgb, depth, A, flipped = augment_frame(frame.rgb, depth, self.input_size, self.augmentation, rng)
        small = _downsample_depth(depth, 4)
        t = make_targets(small)
        s = self.input_size // 4
        heatmaps, weights, right = np.zeros((NUM_JOINTS, s, s), np.float32), np.zeros(NUM_JOINTS, np.float32), -1.0
        joint_uv = np.zeros((NUM_JOINTS, 2), np.float32)
        if frame.joints_mm is not None and (frame.joints_mm[:, 2] > 0).all():
            uv = A[:2, :2] @ frame.camera.project(frame.joints_mm).T + A[:2, 2:]  # network input pixels
            joint_uv = ((uv.T - 2.0) / 4.0).astype(np.float32)  # output pixel j holds input pixel 4j + 2
            heatmaps, weights = keypoint_targets(joint_uv, frame.joints_mm[:, 2], small)
            if frame.pose is not None:
                right = float((hand_side(frame.pose, frame.joints_mm) == "right") != flipped)
        return Sample(torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float().div_(255.0),
                      torch.from_numpy(t.mask)[None], torch.from_numpy(t.relative)[None], name,
                      torch.from_numpy(heatmaps), torch.from_numpy(weights), torch.tensor(right),
                      torch.from_numpy(joint_uv))


    def _hand_free(self, i: int) -> Sample:
        """Sample ``i`` (``>= n_hand``): a hand-free square of the hand-free frames, from frame
        ``(i - n_hand) mod frames`` on (the next frame when ``HAND_FREE_TRIES`` draws find none),
        or, for the mined share, a mined square (``_mined``)."""
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch, i]))
        if self.mined and (self.hand_free_mined_share >= 1 or rng.random() < self.hand_free_mined_share):
            return self._mined(rng)
        start = i - self.n_hand
        for j in range(len(self.free_frames)):
            r, k = self.free_frames[(start + j) % len(self.free_frames)]
            rec = self.free_recordings[r]
            frame = rec[k]
            depth = frame.clean_depth_mm
            square = hand_free_square(hand_exclusion(depth, frame.mask), rng)
            if square is not None:
                break
        else:
            raise ValueError(f"{', '.join(str(r.path) for r in self.free_recordings)}: no frame has a hand-free "
                             f"square of {HAND_FREE_SIDE[0]:g}-{HAND_FREE_SIDE[1]:g} of its shorter side (hands "
                             f"too large or too many: render wider frames, handrgbd synth --full-frame)")
        x0, y0, side = square
        return self._no_hand(frame.rgb[y0:y0 + side, x0:x0 + side], f"{rec.path}/{frame.name}#hand-free", rng)

    def _mined(self, rng: np.random.Generator) -> Sample:
        """A hand-free sample from a mined square, drawn with ``rng``."""
        sq = self.mined[int(rng.integers(len(self.mined)))]
        rec, k = self.mined_frames[(sq.folder, sq.frame)]
        return self._no_hand(crop_image(rec[k].rgb, sq.x0, sq.y0, sq.side, sq.side),
                             f"{rec.path}/{sq.frame}#mined({sq.x0},{sq.y0},{sq.side})", rng)

    def _no_hand(self, rgb: np.ndarray, name: str, rng: np.random.Generator) -> Sample:
        """A square without a hand ``(side, side, 3) uint8`` -> its augmented sample with the
        no-hand targets (module docstring)."""
        rgb = np.ascontiguousarray(rgb)
        rgb = augment_frame(rgb, np.zeros(rgb.shape[:2], np.float32), self.input_size, self.augmentation, rng)[0]
        s = self.input_size // 4
        return Sample(torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float().div_(255.0),
                      torch.zeros((1, s, s)), torch.full((1, s, s), BACKGROUND), name,
                      torch.zeros((NUM_JOINTS, s, s)), torch.ones(NUM_JOINTS), torch.tensor(-1.0),
                      torch.full((NUM_JOINTS, 2), float("nan")))


def collate(samples: list[Sample]) -> Sample:
    return Sample(torch.stack([s.rgb for s in samples]), torch.stack([s.mask for s in samples]),
                  torch.stack([s.relative for s in samples]), [s.name for s in samples],
                  torch.stack([s.heatmaps for s in samples]), torch.stack([s.joint_weights for s in samples]),
                  torch.stack([s.right for s in samples]), torch.stack([s.joint_uv for s in samples]))
