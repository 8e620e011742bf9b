"""The realistic hand: the LibHand textured, skinned hand-and-forearm mesh, posed by our 27 parameters.

Asset: ``synth/assets/libhand`` (LibHand, Marin Saric, http://www.libhand.org/, CC BY 3.0):
37,047 vertices, 69,885 skin triangles, a 2048 px skin texture, 22 bones with sparse
linear-blend-skinning weights. Its units are arbitrary; we rescale it to the hand geometry's size.

One skeleton for both hand models: ``calibrate_geometry`` measures our kinematic skeleton
(``tracker.HandGeometry``) on this mesh: joint centres are LibHand's bone heads (wrist =
metacarpals head, finger joints = finger bone heads), fingertips are the mesh's tip vertices,
segment radii come from the mesh's cross-sections. ``LibHandModel`` then poses the mesh by
skinning it with the frames of ``tracker.HandModel``'s forward kinematics, so for the same
parameters both models have the same joints, and the mesh's own joints (bone heads moved by
their skinning transforms, tip vertices skinned) agree with them.

The forearm is kept (real images show one) and has its own label (``FOREARM_LABEL``) so a data
generator can leave it out of the hand mask. It moves rigidly with the palm (the 27 parameters
have no wrist joint) unless ``LibHandModel.pose`` is given a wrist bend (``wrist_rad``: the
forearm turned about the wrist joint, the skin across the wrist blended between palm and forearm;
the joints do not move). The tracker's model has no wrist either: a bent wrist is a hard case
(``synth.scenarios``, ``wrist``), not a pose parameter.

Run ``python -m synth.libhand --write-geometry`` to regenerate tracker/data/hand_geometry.json
(measurement, then the size refinement: about a minute).
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np

from synth._kernels import lbs_kernel
from tracker.hand_geometry import GEOMETRY_PATH, HandGeometry
from tracker.kinematics import DEFAULT_HAND_LENGTH_MM, HandModel
from tracker.pose import NUM_PARAMS

log = logging.getLogger(__name__)

__all__ = ["LibHandAsset", "LibHandModel", "load_libhand", "calibrate_geometry", "refine_size_factors",
           "apply_size_factors", "size_fit_loss", "ASSET_DIR", "HAND_LABEL",
           "FOREARM_LABEL", "PosedMesh", "wrist_bend"]

ASSET_DIR = Path(__file__).resolve().parent / "assets" / "libhand"
HAND_LABEL = 1
FOREARM_LABEL = 2

# LibHand bone indices: finger1 = pinky ... finger4 = index, finger5 = thumb (checked on the mesh:
# finger5 is the short two-phalanx chain on the radial side, finger3 the longest).
_CHAIN_BONES = ((3, 4, 5), (19, 20, 21), (15, 16, 17), (11, 12, 13), (7, 8, 9))  # thumb, index..pinky
_WRIST_BONE = 2       # "metacarpals": its head is the wrist
_FOREARM_BONES = (0, 1)  # root, "carpals" (spans the forearm)
_TIP_VERTICES = 5     # fingertip = mean of the 5 distal-bone vertices furthest along the bone
_MAX_INFLUENCES = 5   # skinning frames per vertex: LibHand's 22 bones merged onto our 16 frames need at most 5
#: the skin that follows a bent wrist's forearm: none this far on the hand's side of the wrist
#: joint (hand frame y, 180 mm hand), all of it this far past it (smoothstep between)
_WRIST_BLEND_MM = (-10.0, 25.0)


def wrist_bend(wrist_rad, wrist_mm: np.ndarray) -> np.ndarray:
    """``(3, 4)`` affine of the hand frame (mm, +y toward the elbow, +z the back of the hand):
    the forearm turned about the wrist joint ``wrist_mm (3,)`` by ``wrist_rad = (flexion,
    deviation)`` radians, first about the hand's z axis (deviation, in the palm's plane), then
    about its x axis (flexion, toward the palm or the back)."""
    flex, dev = (float(a) for a in wrist_rad)
    R = _axis_angle_matrix(np.array([1.0, 0.0, 0.0]), flex) @ _axis_angle_matrix(np.array([0.0, 0.0, 1.0]), dev)
    w = np.asarray(wrist_mm, np.float64)
    return np.hstack([R, (w - R @ w)[:, None]])


@dataclass(frozen=True, eq=False)
class LibHandAsset:
    """The raw asset, LibHand units. ``weights`` ``(V, 22)`` normalised skinning weights,
    ``rest_bones`` ``(22, 4, 4)`` bone -> model transforms at rest (bone y axis along the bone)."""

    vertices: np.ndarray
    normals: np.ndarray
    uv: np.ndarray
    faces: np.ndarray
    weights: np.ndarray
    bone_names: tuple[str, ...]
    bone_parents: np.ndarray
    rest_bones: np.ndarray
    texture_path: Path

    def texture(self) -> np.ndarray:
        """``(2048, 2048, 3) uint8`` RGB skin texture."""
        import cv2

        img = cv2.imread(str(self.texture_path), cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError(f"{self.texture_path}: cannot read the LibHand texture")
        return np.ascontiguousarray(img[..., ::-1])


def _axis_angle_matrix(axis: np.ndarray, angle: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    K = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * K + (1 - np.cos(angle)) * K @ K


@lru_cache(maxsize=2)
def load_libhand(directory: str | Path = ASSET_DIR) -> LibHandAsset:
    """Load ``libhand_hand.npz`` + ``hand_texture.png`` from ``directory``."""
    directory = Path(directory)
    path = directory / "libhand_hand.npz"
    try:
        z = np.load(path, allow_pickle=False)
        data = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot load the LibHand mesh ({e}); it ships in synth/assets/libhand") from e
    need = ["vertices", "normals", "uv", "faces_skin", "skin_vertex", "skin_bone", "skin_weight", "bone_names",
            "bone_parent", "bone_local_position", "bone_local_axis", "bone_local_angle"]
    missing = [k for k in need if k not in data]
    if missing:
        raise ValueError(f"{path}: missing arrays {missing}")
    v = data["vertices"].astype(np.float64)
    nb = len(data["bone_names"])
    weights = np.zeros((v.shape[0], nb))
    np.add.at(weights, (data["skin_vertex"], data["skin_bone"]), data["skin_weight"])
    total = weights.sum(1, keepdims=True)
    if np.any(total <= 0):
        raise ValueError(f"{path}: {int((total <= 0).sum())} vertices have no skinning weight")
    weights /= total
    rest = np.zeros((nb, 4, 4))
    for b in range(nb):
        local = np.eye(4)
        local[:3, :3] = _axis_angle_matrix(data["bone_local_axis"][b].astype(float), float(data["bone_local_angle"][b]))
        local[:3, 3] = data["bone_local_position"][b]
        parent = int(data["bone_parent"][b])
        rest[b] = local if parent < 0 else rest[parent] @ local
    return LibHandAsset(v, data["normals"].astype(np.float64), data["uv"].astype(np.float32),
                        data["faces_skin"].astype(np.int64), weights, tuple(str(n) for n in data["bone_names"]),
                        data["bone_parent"].astype(np.int64), rest, directory / "hand_texture.png")


# ---------------------------------------------------------------------------------------------
# Calibration: LibHand -> our hand frame and skeleton
# ---------------------------------------------------------------------------------------------
class _RestHand(NamedTuple):
    """The asset at rest in our hand frame (mm at the default hand length)."""

    vertices: np.ndarray        # (V, 3)
    chain_joints: np.ndarray    # (5, 4, 3) base, 2nd, 3rd joint, tip
    wrist: np.ndarray           # (3,)
    tip_vertices: np.ndarray    # (5, _TIP_VERTICES) vertex indices
    to_hand: np.ndarray         # (4, 4) LibHand units -> hand frame mm
    dominant: np.ndarray        # (V,) dominant bone


def _rest_hand(asset: LibHandAsset, hand_length_mm: float) -> _RestHand:
    heads = asset.rest_bones[:, :3, 3]
    dominant = asset.weights.argmax(1)
    wrist = heads[_WRIST_BONE]
    joints = np.zeros((5, 4, 3))
    tips = np.zeros((5, _TIP_VERTICES), np.int64)
    for f, bones in enumerate(_CHAIN_BONES):
        joints[f, :3] = heads[list(bones)]
        axis = asset.rest_bones[bones[2], :3, 1]
        own = np.flatnonzero(dominant == bones[2])
        far = own[np.argsort((asset.vertices[own] - joints[f, 2]) @ axis)[-_TIP_VERTICES:]]
        tips[f] = far
        joints[f, 3] = asset.vertices[far].mean(0)
    # hand frame axes: -y from the wrist to the middle MCP, +x toward the index side (thumb side)
    y = -(joints[2, 0] - wrist)
    y /= np.linalg.norm(y)
    x = joints[1, 0] - joints[4, 0]
    x -= (x @ y) * y
    x /= np.linalg.norm(x)
    z = np.cross(x, y)
    R = np.stack([x, y, z])  # rows: LibHand -> hand axes
    seg = np.linalg.norm(np.diff(joints[2], axis=0), axis=1).sum()
    length_units = np.linalg.norm(joints[2, 0] - wrist) + seg  # straight-finger hand length
    s = hand_length_mm / length_units
    verts_h = (asset.vertices - wrist) @ R.T * s
    # origin: midway between the wrist and the knuckles, at the palm's mid-thickness
    mcp_mean = (joints[1:, 0] - wrist) @ R.T * s
    origin = 0.5 * mcp_mean.mean(0)
    palm = np.isin(dominant, [_WRIST_BONE, 6, 10, 14, 18])
    in_palm = palm & (verts_h[:, 1] < 0) & (verts_h[:, 1] > mcp_mean[:, 1].mean())
    zs = verts_h[in_palm, 2]
    origin[2] = 0.5 * (np.percentile(zs, 3) + np.percentile(zs, 97))
    to_hand = np.eye(4)
    to_hand[:3, :3] = R * s
    to_hand[:3, 3] = -(R @ wrist) * s - origin
    def tf(p):
        return p @ to_hand[:3, :3].T + to_hand[:3, 3]
    rest = _RestHand(tf(asset.vertices), tf(joints.reshape(-1, 3)).reshape(5, 4, 3), tf(wrist), tips, to_hand,
                     dominant)
    # palm faces -z: a curled finger's tip is on the -z side of its base
    curl = (rest.chain_joints[1:, 3, 2] - rest.chain_joints[1:, 0, 2]).mean()
    if curl >= 0:
        raise ValueError("LibHand calibration: fingers do not curl toward -z; is this a right hand?")
    return rest


def _signed_angle(a: np.ndarray, b: np.ndarray, axis: np.ndarray) -> float:
    return float(np.arctan2(np.cross(a, b) @ axis, a @ b))


def _median_radius(points: np.ndarray, start: np.ndarray, direction: np.ndarray, length: float,
                   u_range: tuple[float, float]) -> np.ndarray:
    """Radial distances from the segment axis of points whose axial fraction lies in u_range."""
    rel = points - start
    u = rel @ direction / length
    sel = (u >= u_range[0]) & (u <= u_range[1])
    radial = rel[sel] - np.outer(rel[sel] @ direction, direction)
    return np.linalg.norm(radial, axis=1)


def apply_size_factors(geometry: HandGeometry, factors: np.ndarray) -> HandGeometry:
    """The geometry with its measured primitive sizes multiplied by ``factors`` (26,): radii
    (5 x 4, row-major), palm half width, half thickness, cap, thumb metacarpal (3)."""
    from dataclasses import replace

    f = np.asarray(factors, dtype=np.float64)
    base = geometry.size_factors
    rel = f / base  # sizes in ``geometry`` already carry ``base``
    return replace(geometry, radii_mm=geometry.radii_mm * rel[:20].reshape(5, 4),
                   palm_half_width_mm=geometry.palm_half_width_mm * rel[20],
                   palm_half_thickness_mm=geometry.palm_half_thickness_mm * rel[21],
                   palm_cap_mm=geometry.palm_cap_mm * rel[22],
                   thumb_metacarpal_scale=geometry.thumb_metacarpal_scale * rel[23:26], size_factors=f)


def size_fit_loss(geometry: HandGeometry, asset: LibHandAsset | None = None, num_poses: int = 24, seed: int = 0,
                  context=None):
    """``loss(factors (26,)) -> float``: the tracker's objective (depth + silhouette terms) of the
    primitives, sized by ``factors``, against the mesh rendered at ``num_poses`` random poses
    (the synthetic prior, seeded; 128 x 128, hand only), averaged; the poses are the true ones."""
    from handrgbd.camera import CameraIntrinsics
    from renderer.mesh import Mesh, MeshRenderer
    from renderer.projection import RegionOfInterest
    from synth.poses import sample_angles, sample_orientation
    from tracker.objective import CpuScorer, ObjectiveConfig, objective_from_sums

    rng = np.random.default_rng(seed)
    model = LibHandModel("right", geometry.hand_length_mm, asset, geometry)
    camera = CameraIntrinsics(220.0, 220.0, 63.5, 63.5, 128, 128)
    poses = np.array([np.r_[0.0, 0.0, 500.0 * geometry.hand_length_mm / 180.0, sample_orientation(rng),
                            sample_angles(rng).ravel()] for _ in range(num_poses)])
    observed = []
    with MeshRenderer(context=context) as r:
        for p in poses:
            posed = model.pose(p)
            hand = r.upload(Mesh(posed.vertices, model.hand_faces, posed.normals, label=HAND_LABEL))
            arm = r.upload(Mesh(posed.vertices, model.forearm_faces, posed.normals, label=FOREARM_LABEL))
            out = r.render([(hand, np.eye(4)), (arm, np.eye(4))], camera)
            r.remove(hand)
            r.remove(arm)
            mask = out.labels == HAND_LABEL
            observed.append((np.where(mask, out.depth_mm, 0.0), mask))
    roi = RegionOfInterest(0, 0, 128, 128)
    objective = ObjectiveConfig()

    def loss(theta):
        hm = HandModel("right", geometry.hand_length_mm, apply_size_factors(geometry, theta))
        scorer = CpuScorer(hm.primitive_set, 128)
        transforms = hm.primitives(poses)
        total = 0.0
        for k, (depth, mask) in enumerate(observed):
            sums = scorer.sums(transforms[k:k + 1], camera, roi, depth, mask, objective.d_max_mm)
            total += objective_from_sums(sums, np.zeros(1), objective)[0]
        return total / len(observed)

    return loss


def refine_size_factors(geometry: HandGeometry, asset: LibHandAsset | None = None, num_poses: int = 24,
                        seed: int = 0, context=None) -> np.ndarray:
    """Fit the 26 size factors so the primitives reproduce the mesh's rendered depth: minimise
    ``size_fit_loss`` by Powell's method within [0.6, 1.6]. Deterministic for a seed; about a
    minute on 2 cores."""
    from scipy.optimize import minimize

    loss = size_fit_loss(geometry, asset, num_poses, seed, context)
    start = np.asarray(geometry.size_factors, dtype=np.float64)
    result = minimize(loss, start, method="Powell", bounds=[(0.6, 1.6)] * len(start),
                      options=dict(maxiter=2, xtol=1e-2, ftol=1e-3))
    factors = np.round(result.x, 4)
    factors[0] = 1.0  # the thumb's CMC radius has no primitive: keep it as measured
    log.info("size refinement: objective %.3f -> %.3f (%d evaluations)", loss(start), loss(factors), result.nfev)
    return factors


def calibrate_geometry(asset: LibHandAsset | None = None, hand_length_mm: float = DEFAULT_HAND_LENGTH_MM,
                       size_factors: np.ndarray | None = None) -> HandGeometry:
    """Measure the kinematic skeleton and primitive sizes on the LibHand mesh (see module doc),
    then scale the sizes by ``size_factors`` (see ``refine_size_factors``; None = as measured)."""
    asset = load_libhand() if asset is None else asset
    rest = _rest_hand(asset, hand_length_mm)
    zhat = np.array([0.0, 0.0, 1.0])
    base_rot = np.zeros((5, 3, 3))
    abd_sign = np.zeros(5)
    joint_axes = np.zeros((5, 2, 3))
    lengths = np.zeros((5, 3))
    radii = np.zeros((5, 4))
    rest_angles = np.zeros((5, 4))
    for f in range(5):
        P = rest.chain_joints[f]
        d = np.diff(P, axis=0)
        lengths[f] = np.linalg.norm(d, axis=1)
        d /= lengths[f][:, None]
        if f == 0:  # thumb: zero = its modelled metacarpal direction, flexion in its curl plane
            y_b = d[0]
            x_b = np.cross(d[0], d[1])
            x_b /= np.linalg.norm(x_b)
            side_dir = -zhat  # positive abduction toward the palm side
        else:       # fingers: zero = straight in the palm plane
            y_b = d[0] - (d[0] @ zhat) * zhat
            y_b /= np.linalg.norm(y_b)
            x_b = np.cross(y_b, -zhat)
            x_b /= np.linalg.norm(x_b)
            side_dir = np.array([1.0, 0.0, 0.0])  # positive abduction toward the thumb
        z_b = np.cross(x_b, y_b)
        B = np.stack([x_b, y_b, z_b], axis=1)
        base_rot[f] = B
        abd_sign[f] = -np.sign(x_b @ side_dir)  # d(direction)/d(abduction) = -sign * x_b
        if abd_sign[f] == 0:
            raise ValueError(f"LibHand calibration: abduction direction of chain {f} is undefined")
        rest_angles[f, 0] = _signed_angle(y_b, d[0], x_b)
        # frame of segment 1 at rest, then the 2nd and 3rd joint axes in the preceding segment's frame
        c, s = np.cos(rest_angles[f, 0]), np.sin(rest_angles[f, 0])
        R = B @ np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
        for k in (1, 2):
            axis = np.cross(d[k - 1], d[k])
            if np.linalg.norm(axis) < 1e-6:
                axis = R[:, 0]
            axis /= np.linalg.norm(axis)
            angle = _signed_angle(d[k - 1], d[k], axis)
            if axis @ R[:, 0] < 0:  # keep flexion positive toward the palm
                axis, angle = -axis, -angle
            joint_axes[f, k - 1] = R.T @ axis
            rest_angles[f, k + 1] = angle
            R = R @ _axis_angle_matrix(joint_axes[f, k - 1], angle)
        # radii of the primitive spheres at the four joints, from the mesh's cross-sections
        bones = _CHAIN_BONES[f]
        seg_pts = [rest.vertices[rest.dominant == b] for b in bones]
        def rad(k, u_range):
            return _median_radius(seg_pts[k], P[k], d[k], lengths[f, k], u_range)
        radii[f, 0] = np.median(rad(0, (0.15, 0.5)))  # nearer the knuckle the palm bones dominate
        radii[f, 1] = np.median(np.concatenate([rad(0, (0.75, 1.0)), rad(1, (0.0, 0.25))]))
        radii[f, 2] = np.median(np.concatenate([rad(1, (0.75, 1.0)), rad(2, (0.0, 0.25))]))
        radii[f, 3] = np.median(rad(2, (0.4, 0.75)))
    # thumb metacarpal ellipsoid: extents across and through the segment
    P = rest.chain_joints[0]
    meta = rest.vertices[rest.dominant == _CHAIN_BONES[0][0]] - P[0]
    local = meta @ base_rot[0]
    mid = np.abs(local[:, 1] / lengths[0, 0] - 0.5) < 0.3
    thumb_meta = np.array([np.percentile(np.abs(local[mid, 0]), 80), 0.55 * lengths[0, 0],
                           np.percentile(np.abs(local[mid, 2]), 80)])
    # palm: elliptic cylinder from the wrist to the knuckle line, with ellipsoid caps
    palm = np.isin(rest.dominant, [_WRIST_BONE, 6, 10, 14, 18])
    mcp_y = rest.chain_joints[1:, 0, 1].mean()
    core = palm & (rest.vertices[:, 1] < rest.wrist[1]) & (rest.vertices[:, 1] > mcp_y)
    px, pz = rest.vertices[core, 0], rest.vertices[core, 2]
    half_width = 0.5 * (np.percentile(px, 95) - np.percentile(px, 5))
    half_thickness = 0.5 * (np.percentile(pz, 95) - np.percentile(pz, 5))
    cap = 0.3 * half_width
    measured = HandGeometry(
        hand_length_mm=hand_length_mm, wrist_mm=rest.wrist, base_mm=rest.chain_joints[:, 0],
        base_rotation=base_rot, abduction_sign=abd_sign, joint_axes=joint_axes, lengths_mm=lengths,
        radii_mm=radii, rest_angles_rad=rest_angles, palm_half_width_mm=half_width,
        palm_half_thickness_mm=half_thickness, palm_bottom_y_mm=float(rest.wrist[1]) - cap,
        palm_top_y_mm=float(mcp_y) + 0.5 * cap, palm_cap_mm=cap, thumb_metacarpal_scale=thumb_meta,
        size_factors=np.ones(26))
    return measured if size_factors is None else apply_size_factors(measured, size_factors)


# ---------------------------------------------------------------------------------------------
# Posing
# ---------------------------------------------------------------------------------------------
class PosedMesh(NamedTuple):
    """vertices, normals ``(V, 3)`` camera frame mm; joints ``(21, 3)`` measured on the mesh."""

    vertices: np.ndarray
    normals: np.ndarray
    joints: np.ndarray


def _extend_forearm(vertices, normals, uv, faces, weights, forearm, length_mm):
    """LibHand's forearm ends in an open cut a few centimetres past the wrist, which a camera
    would see as a hollow tube. Extrude that cut ring ``length_mm`` further along the forearm
    (rigid with the palm, texture stretched from the ring) and close it with a flat cap."""
    if length_mm <= 0:
        return vertices, normals, uv, faces, weights, forearm
    e = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    uniq, count = np.unique(e, axis=0, return_counts=True)
    boundary = uniq[count == 1]
    y_end = vertices[forearm, 1].max()
    ring_v = np.unique(boundary)
    ring_v = ring_v[forearm[ring_v] & (vertices[ring_v, 1] > y_end - 0.25 * np.ptp(vertices[forearm, 1]))]
    in_ring = np.zeros(len(vertices), bool)
    in_ring[ring_v] = True
    # ring edges, oriented as in their face (so the new side faces keep the winding)
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    key = {tuple(sorted(x)) for x in boundary.tolist()}
    ring_edges = np.array([d for d in directed.tolist() if in_ring[d[0]] and in_ring[d[1]] and tuple(sorted(d)) in key])
    if len(ring_edges) < 8:
        log.warning("LibHand forearm cut not found: forearm not extended")
        return vertices, normals, uv, faces, weights, forearm
    centre = vertices[ring_v].mean(0)
    axis = centre - vertices[~forearm].mean(0)
    axis /= np.linalg.norm(axis)
    n0 = len(vertices)
    new_index = np.full(n0, -1)
    new_index[ring_v] = n0 + np.arange(len(ring_v))
    shift = (centre - vertices[ring_v]) @ axis + length_mm  # all new vertices on one plane
    new_v = vertices[ring_v] + shift[:, None] * axis
    cap_centre = centre + length_mm * axis
    side = np.concatenate([np.stack([ring_edges[:, 1], ring_edges[:, 0], new_index[ring_edges[:, 0]]], 1),
                           np.stack([ring_edges[:, 1], new_index[ring_edges[:, 0]], new_index[ring_edges[:, 1]]], 1)])
    c = n0 + len(ring_v)
    cap = np.stack([np.full(len(ring_edges), c), new_index[ring_edges[:, 0]], new_index[ring_edges[:, 1]]], 1)
    w_new = np.zeros((len(ring_v) + 1, weights.shape[1]))
    w_new[:, 0] = 1.0  # the forearm moves with the palm
    return (np.vstack([vertices, new_v, cap_centre]),
            np.vstack([normals, normals[ring_v], axis]),
            np.vstack([uv, uv[ring_v], uv[ring_v].mean(0)]).astype(np.float32),
            np.vstack([faces, side, cap]),
            np.vstack([weights, w_new]),
            np.concatenate([forearm, np.ones(len(ring_v) + 1, bool)]))


class LibHandModel:
    """The LibHand mesh driven by the 27 parameters (``pose`` -> vertices, normals, joints).

    side, hand_length_mm : as ``tracker.HandModel`` (left = mirror image).
    """

    def __init__(self, side: str = "right", hand_length_mm: float = DEFAULT_HAND_LENGTH_MM,
                 asset: LibHandAsset | None = None, geometry: HandGeometry | None = None,
                 forearm_extension_mm: float = 250.0):
        self.asset = load_libhand() if asset is None else asset
        self.hand = HandModel(side, hand_length_mm, geometry)
        self.side = side
        g = self.hand.geometry
        rest = _rest_hand(self.asset, g.hand_length_mm)
        normals = self.asset.normals @ rest.to_hand[:3, :3].T
        normals /= np.linalg.norm(normals, axis=1, keepdims=True)
        # skinning weights on our 16 frames: palm/forearm bones -> hand frame 0
        frame_of_bone = np.zeros(len(self.asset.bone_names), np.int64)
        for f, bones in enumerate(_CHAIN_BONES):
            for k, b in enumerate(bones):
                frame_of_bone[b] = 1 + 3 * f + k
        weights = np.zeros((rest.vertices.shape[0], 16))
        np.add.at(weights.T, frame_of_bone, self.asset.weights.T)
        forearm = np.isin(rest.dominant, _FOREARM_BONES)
        vertices, normals, uv, faces, weights, forearm = _extend_forearm(
            rest.vertices, normals, self.asset.uv, self.asset.faces, weights, forearm, forearm_extension_mm)
        self.rest_vertices = np.ascontiguousarray(vertices)
        self.rest_normals = np.ascontiguousarray(normals)
        self.faces = faces
        self.uv = uv
        self.weights = weights
        self._tips = rest.tip_vertices
        # sparse form for the kernel: the _MAX_INFLUENCES largest weights per vertex, renormalised
        order = np.argsort(-self.weights, axis=1)[:, :_MAX_INFLUENCES]
        w = np.take_along_axis(self.weights, order, axis=1)
        self._bone_index = np.ascontiguousarray(order.astype(np.int64))
        self._bone_weight = np.ascontiguousarray(w / w.sum(1, keepdims=True))
        # joints attached to frames: wrist to the hand frame, each chain's joints to their segment
        heads = np.concatenate([[rest.wrist], rest.chain_joints[:, :3].reshape(-1, 3)])
        # a bent wrist: a 17th frame, the forearm's, takes the hand frame's share of the skin
        # past the wrist (smoothstep over _WRIST_BLEND_MM along hand y)
        t = (vertices[:, 1] - rest.wrist[1] - _WRIST_BLEND_MM[0]) / (_WRIST_BLEND_MM[1] - _WRIST_BLEND_MM[0])
        t = np.clip(t, 0.0, 1.0)
        arm = t * t * (3 - 2 * t)
        w17 = np.hstack([self.weights, (self.weights[:, 0] * arm)[:, None]])
        w17[:, 0] *= 1.0 - arm
        order = np.argsort(-w17, axis=1)[:, :_MAX_INFLUENCES + 1]
        w = np.take_along_axis(w17, order, axis=1)
        self._arm_index = np.ascontiguousarray(order.astype(np.int64))
        self._arm_weight = np.ascontiguousarray(w / w.sum(1, keepdims=True))
        self._joint_frame = np.array([0] + [1 + 3 * f + k for f in range(5) for k in range(3)])
        self._joint_rest = heads
        identity = np.zeros(NUM_PARAMS)
        identity[3] = 1.0
        identity[7:] = g.rest_angles_rad.ravel()
        rest_model = HandModel("right", g.hand_length_mm, g)
        rest_frames = rest_model.kinematics(identity).frames[0]
        self._rest_inv = np.stack([np.linalg.inv(np.vstack([fr, [0, 0, 0, 1]])) for fr in rest_frames])
        self.labels = np.where(forearm, FOREARM_LABEL, HAND_LABEL).astype(np.uint8)
        forearm_face = (self.labels[self.faces] == FOREARM_LABEL).all(axis=1)
        #: faces of the hand proper and of the forearm (a triangle is forearm when all its
        #: vertices are): render them as two meshes to label the forearm apart from the hand.
        self.hand_faces = self.faces[~forearm_face]
        self.forearm_faces = self.faces[forearm_face]

    def _model(self, hand_length_mm: float | None) -> HandModel:
        if hand_length_mm is None or hand_length_mm == self.hand.hand_length_mm:
            return self.hand
        return HandModel(self.side, hand_length_mm, self.hand.geometry)

    def skinning_matrices(self, params: np.ndarray, hand_length_mm: float | None = None) -> np.ndarray:
        """``(16, 3, 4)`` rest hand frame -> camera transforms of the 16 frames for one pose."""
        frames = self._model(hand_length_mm).kinematics(params).frames[0]
        return np.einsum("kij,kjl->kil", frames, self._rest_inv)

    def pose(self, params: np.ndarray, hand_length_mm: float | None = None, wrist_rad=None) -> PosedMesh:
        """Pose the mesh for parameters ``(27,)``: vertices and normals (camera frame, mm) by linear
        blend skinning, and the 21 joints measured on the posed mesh. ``hand_length_mm``
        overrides the model's hand size for this call; ``wrist_rad`` = (flexion, deviation)
        radians bends the forearm about the wrist (``wrist_bend``; None or zeros: rigid with the palm)."""
        p = np.asarray(params, dtype=np.float64)
        if p.shape != (NUM_PARAMS,):
            raise ValueError(f"pose parameters must have shape ({NUM_PARAMS},), got {p.shape}")
        M = self.skinning_matrices(p, hand_length_mm)  # (16, 3, 4)
        index, weight = self._bone_index, self._bone_weight
        if wrist_rad is not None and (np.shape(wrist_rad) != (2,) or not np.isfinite(wrist_rad).all()):
            raise ValueError(f"wrist_rad must be two finite angles (flexion, deviation), got {wrist_rad!r}")
        if wrist_rad is not None and np.any(np.asarray(wrist_rad, np.float64) != 0.0):
            bend = np.vstack([wrist_bend(wrist_rad, self._joint_rest[0]), [0.0, 0.0, 0.0, 1.0]])
            M = np.concatenate([M, (M[0] @ bend)[None]])
            index, weight = self._arm_index, self._arm_weight
        v = np.empty_like(self.rest_vertices)
        n = np.empty_like(self.rest_normals)
        lbs_kernel(index, weight, np.ascontiguousarray(M), self.rest_vertices, self.rest_normals, v, n)
        joints = np.empty((21, 3))
        Mj = M[self._joint_frame]
        heads = np.einsum("jik,jk->ji", Mj[:, :, :3], self._joint_rest) + Mj[:, :, 3]
        joints[0] = heads[0]
        for f in range(5):
            joints[1 + 4 * f: 4 + 4 * f] = heads[1 + 3 * f: 4 + 3 * f]
            joints[4 + 4 * f] = v[self._tips[f]].mean(0)
        return PosedMesh(v, n, joints)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="LibHand calibration of the shared hand geometry.")
    parser.add_argument("--write-geometry", action="store_true",
                        help=f"recalibrate and write {GEOMETRY_PATH.relative_to(Path.cwd()) if GEOMETRY_PATH.is_relative_to(Path.cwd()) else GEOMETRY_PATH}")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    geometry = calibrate_geometry()
    geometry = apply_size_factors(geometry, refine_size_factors(geometry))
    if args.write_geometry:
        geometry.save(GEOMETRY_PATH)
        print(f"wrote {GEOMETRY_PATH}")
    else:
        print(geometry.to_dict())
    return 0


if __name__ == "__main__":
    sys.exit(main())
