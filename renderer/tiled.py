"""Tiled hypothesis rendering: N hypotheses x P primitives into T x T tiles of one framebuffer.

The tracker's hot path. Every hypothesis is the same list of P primitives (the hand model), each
placed by a 4x4 affine transform from its unit shape to the camera frame (mm):

* ``SPHERE``: the unit sphere ``|x| <= 1``; an ellipsoid is a sphere under a non-uniform scale.
* ``CONE``: the truncated cone (cylinder when ``taper == 1``) around +z with radius 1 at
  ``z = 0`` and radius ``taper`` at ``z = 1``, closed by flat caps.

Each primitive is drawn as a proxy box, and its fragment shader intersects the pixel's viewing
ray with the exact quadric (ray casting), so depth is exact (no tessellation error) and a
hypothesis costs 37 x 12 triangles. All instances of one kind go in ONE instanced draw; each
instance's tile is ``gl_InstanceID / P_kind``, placed by an affine map of clip space and clipped
to its tile with four ``gl_ClipDistance`` planes (the equivalent of one viewport per tile; GL
guarantees only 16 viewports). Depth comes back as ``(N, T, T) float32`` camera-frame z in mm,
0 = background; :func:`tile_sums` gives the tracker's three sums per hypothesis.

Tile layout: hypothesis ``n`` occupies grid cell ``(row, col) = divmod(n, cols)`` with
``cols = ceil(sqrt(capacity))``; the returned array is already in hypothesis order.
"""

from __future__ import annotations

import ctypes
import logging
import math
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

import numpy as np
from handrgbd.camera import CameraIntrinsics
from renderer._gl import GL, Framebuffer, compile_program
from renderer._kernels import tile_sums_kernel
from renderer.context import GLContext, create_context
from renderer.projection import DEFAULT_FAR_MM, DEFAULT_NEAR_MM, RegionOfInterest, gl_projection

log = logging.getLogger(__name__)

__all__ = ["PrimitiveKind", "PrimitiveSet", "HypothesisRenderer", "TileSums", "tile_sums"]


class PrimitiveKind(IntEnum):
    SPHERE = 0
    CONE = 1


@dataclass(frozen=True)
class PrimitiveSet:
    """What each of the P primitives of a hypothesis is.

    kinds : ``(P,)`` PrimitiveKind values.
    taper : ``(P,)`` float, top/bottom radius ratio of cones (>= 0; 1 = cylinder); ignored for
        spheres. Defaults to all ones.
    """

    kinds: tuple[int, ...]
    taper: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        kinds = tuple(int(k) for k in np.asarray(self.kinds).ravel())
        valid = {int(k) for k in PrimitiveKind}
        bad = sorted({k for k in kinds if k not in valid})
        if not kinds:
            raise ValueError("PrimitiveSet needs at least one primitive")
        if bad:
            raise ValueError(f"PrimitiveSet: unknown primitive kind(s) {bad}; known: "
                             f"{[f'{k.name}={int(k)}' for k in PrimitiveKind]}")
        taper = (1.0,) * len(kinds) if self.taper is None else tuple(float(t) for t in np.asarray(self.taper).ravel())
        if len(taper) != len(kinds):
            raise ValueError(f"PrimitiveSet: taper has {len(taper)} values for {len(kinds)} primitives")
        if not all(math.isfinite(t) and t >= 0 for t in taper):
            raise ValueError(f"PrimitiveSet: taper must be finite and >= 0, got {taper}")
        object.__setattr__(self, "kinds", kinds)
        object.__setattr__(self, "taper", taper)

    def __len__(self) -> int:
        return len(self.kinds)

    def indices(self, kind: PrimitiveKind) -> np.ndarray:
        return np.flatnonzero(np.asarray(self.kinds) == int(kind))


class TileSums(NamedTuple):
    """Per-hypothesis sums of the tracker's objective, each ``(N,) float64``.

    depth_diff : sum over pixels in the union of min(|observed - rendered|, d_max) (mm).
    union : pixels where the observed mask or the rendered silhouette is set.
    intersection : pixels where both are set.
    """

    depth_diff: np.ndarray
    union: np.ndarray
    intersection: np.ndarray


def tile_sums(rendered_mm: np.ndarray, observed_mm: np.ndarray, observed_mask: np.ndarray,
              d_max_mm: float, free_offset: bool = False) -> TileSums:
    """The three sums of Oikonomidis et al.'s depth term, for all hypotheses at once.

    rendered_mm : ``(N, T, T) float32`` rendered depth (0 = background).
    observed_mm : ``(T, T)`` observed depth in the same tile (0 = no reading).
    observed_mask : ``(T, T) bool`` observed hand mask.
    free_offset : the observed depth is known only up to a constant (relative depth from RGB):
        each hypothesis shifts the observation inside the mask by the mean rendered - observed
        difference over the pixels both cover.
    Pixels where one side has no depth count the clamp value ``d_max_mm``. Outside the mask a
    negative ``observed_mm`` is a surface that is not the hand (at minus that depth): a rendered
    pixel more than ``renderer._kernels.OCCLUDER_MARGIN_MM`` behind it is hidden and not scored.
    """
    r = np.asarray(rendered_mm, dtype=np.float32)
    o = np.asarray(observed_mm, dtype=np.float32)
    m = np.asarray(observed_mask, dtype=bool)
    if r.ndim != 3 or o.shape != r.shape[1:] or m.shape != r.shape[1:]:
        raise ValueError(f"tile_sums: rendered {r.shape}, observed {o.shape}, mask {m.shape} do not match")
    if not (d_max_mm > 0 and math.isfinite(d_max_mm)):
        raise ValueError(f"tile_sums: d_max_mm must be finite and > 0, got {d_max_mm}")
    n = r.shape[0]
    out = np.empty((n, 3), dtype=np.float64)
    tile_sums_kernel(np.ascontiguousarray(r.reshape(n, -1)), np.ascontiguousarray(o.reshape(-1)),
                     np.ascontiguousarray(m.reshape(-1)), float(d_max_mm), bool(free_offset), out)
    return TileSums(out[:, 0], out[:, 1], out[:, 2])


# ---------------------------------------------------------------------------------------
# Shaders
# ---------------------------------------------------------------------------------------
_VERTEX = """
#version 330 core
layout(location = 0) in vec3 a_corner;     // proxy box corner in [-1, 1]^3
layout(location = 1) in vec4 a_row0;       // rows 0..2 of the object -> camera affine transform
layout(location = 2) in vec4 a_row1;
layout(location = 3) in vec4 a_row2;
layout(location = 4) in vec4 a_eye_taper;  // xyz: camera centre in object space; w: cone taper

uniform mat4 u_proj;        // tile camera projection (row-major upload, transposed by GL)
uniform int u_kind;         // 0 sphere, 1 cone
uniform int u_per_tile;     // instances of this kind per hypothesis
uniform int u_tile_base;    // tile of instance 0 (naive path)
uniform ivec2 u_grid;       // tile columns, rows of the framebuffer

out vec3 v_obj;
out float v_camz;
flat out vec4 v_eye_taper;

void main() {
    vec3 p = a_corner;
    if (u_kind == 1) {
        p.xy *= max(1.0, a_eye_taper.w);
        p.z = 0.5 * (p.z + 1.0);
    }
    vec4 obj = vec4(p, 1.0);
    vec3 cam = vec3(dot(a_row0, obj), dot(a_row1, obj), dot(a_row2, obj));
    v_obj = p;
    v_camz = cam.z;
    v_eye_taper = a_eye_taper;
    vec4 clip = u_proj * vec4(cam, 1.0);
    gl_ClipDistance[0] = clip.w + clip.x;
    gl_ClipDistance[1] = clip.w - clip.x;
    gl_ClipDistance[2] = clip.w + clip.y;
    gl_ClipDistance[3] = clip.w - clip.y;
    int tile = u_tile_base + gl_InstanceID / u_per_tile;
    int col = tile % u_grid.x;
    int row = tile / u_grid.x;
    clip.x = (clip.x + clip.w) / float(u_grid.x) + clip.w * (2.0 * float(col) / float(u_grid.x) - 1.0);
    clip.y = (clip.y + clip.w) / float(u_grid.y) + clip.w * (2.0 * float(row) / float(u_grid.y) - 1.0);
    gl_Position = clip;
}
"""

_FRAGMENT = """
#version 330 core
in vec3 v_obj;
in float v_camz;
flat in vec4 v_eye_taper;
uniform int u_kind;
uniform vec2 u_depth_ab;   // window depth = 0.5 * (A + B / z) + 0.5
layout(location = 0) out float o_depth;

const float NO_HIT = 1e30;

// nearest t > 0 of the ray o + t d with the unit sphere
float hit_sphere(vec3 o, vec3 d) {
    float a = dot(d, d), b = dot(o, d), c = dot(o, o) - 1.0;
    float disc = b * b - a * c;
    if (disc < 0.0) return NO_HIT;
    float s = sqrt(disc);
    float t0 = (-b - s) / a, t1 = (-b + s) / a;
    return t0 > 0.0 ? t0 : (t1 > 0.0 ? t1 : NO_HIT);
}

// nearest t > 0 of the ray with the capped cone r(z) = 1 + k z, z in [0, 1]
float hit_cone(vec3 o, vec3 d, float taper) {
    float k = taper - 1.0;
    float best = NO_HIT;
    float ro = 1.0 + k * o.z;
    float a = d.x * d.x + d.y * d.y - k * k * d.z * d.z;
    float b = o.x * d.x + o.y * d.y - k * d.z * ro;
    float c = o.x * o.x + o.y * o.y - ro * ro;
    if (abs(a) > 1e-12) {
        float disc = b * b - a * c;
        if (disc >= 0.0) {
            float s = sqrt(disc);
            float ts[2] = float[2]((-b - s) / a, (-b + s) / a);
            for (int i = 0; i < 2; ++i) {
                float t = ts[i];
                float z = o.z + t * d.z;
                if (t > 0.0 && t < best && z >= 0.0 && z <= 1.0 && 1.0 + k * z >= 0.0) best = t;
            }
        }
    } else if (abs(b) > 1e-12) {
        float t = -c / (2.0 * b);
        float z = o.z + t * d.z;
        if (t > 0.0 && z >= 0.0 && z <= 1.0) best = t;
    }
    if (abs(d.z) > 1e-12) {
        float t = -o.z / d.z;                       // bottom cap, radius 1
        vec2 q = o.xy + t * d.xy;
        if (t > 0.0 && t < best && dot(q, q) <= 1.0) best = t;
        t = (1.0 - o.z) / d.z;                      // top cap, radius taper
        q = o.xy + t * d.xy;
        if (t > 0.0 && t < best && dot(q, q) <= taper * taper) best = t;
    }
    return best;
}

void main() {
    vec3 eye = v_eye_taper.xyz;
    vec3 dir = v_obj - eye;            // t = 1 at this proxy fragment
    float t = (u_kind == 0) ? hit_sphere(eye, dir) : hit_cone(eye, dir, v_eye_taper.w);
    if (t >= NO_HIT) discard;
    float z = t * v_camz;              // camera-frame depth of the hit (affine in t)
    o_depth = z;
    gl_FragDepth = 0.5 * (u_depth_ab.x + u_depth_ab.y / z) + 0.5;
}
"""

def _box_triangles() -> np.ndarray:
    """The 12 triangles of the box [-1, 1]^3, counter-clockwise seen from outside: (36, 3)."""
    tris = []
    for axis in range(3):
        u, v = (axis + 1) % 3, (axis + 2) % 3
        for sign in (-1.0, 1.0):
            quad = []
            for a, b in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
                p = np.zeros(3)
                p[axis], p[u], p[v] = sign, a, b
                quad.append(p)
            q = np.array(quad)
            if np.dot(np.cross(q[1] - q[0], q[2] - q[0]), q.mean(0)) < 0:
                q = q[::-1]
            tris += [q[0], q[1], q[2], q[0], q[2], q[3]]
    return np.array(tris, dtype=np.float32)


_BOX = _box_triangles()

_INSTANCE_FLOATS = 16  # row0, row1, row2, (eye xyz, taper)


def _validate_transforms(transforms: np.ndarray, num_primitives: int) -> np.ndarray:
    t = np.asarray(transforms)
    if t.ndim != 4 or t.shape[1:] != (num_primitives, 4, 4):
        raise ValueError(f"transforms must have shape (N, {num_primitives}, 4, 4), got {t.shape}")
    if t.shape[0] == 0:
        raise ValueError("transforms: need at least one hypothesis (N >= 1)")
    if not np.all(np.isfinite(t)):
        n, p = np.argwhere(~np.isfinite(t))[0][:2]
        raise ValueError(f"transforms: non-finite value at hypothesis {n}, primitive {p}")
    if not np.allclose(t[:, :, 3, :], [0.0, 0.0, 0.0, 1.0]):
        raise ValueError("transforms must be affine: last row of every matrix [0, 0, 0, 1]")
    return t


def _instance_data(t: np.ndarray, taper: np.ndarray) -> np.ndarray:
    """(N, P, 4, 4) affine transforms -> (N * P, 16) float32 instance records."""
    n, p = t.shape[:2]
    A = t[:, :, :3, :3].astype(np.float64)
    tr = t[:, :, :3, 3].astype(np.float64)
    det = np.linalg.det(A)
    if np.any(np.abs(det) < 1e-12):
        bad_n, bad_p = np.argwhere(np.abs(det) < 1e-12)[0]
        raise ValueError(f"transforms: singular (zero-size) primitive at hypothesis {bad_n}, primitive {bad_p}")
    # Both unit shapes are symmetric under x -> -x, so a mirroring transform (a left hand) can
    # be replaced by one with det > 0 showing the same solid: every proxy box then has the
    # same winding on screen and one face-culling setting serves all instances.
    A[..., :, 0] *= np.sign(det)[..., None]
    eye = np.linalg.solve(A, -tr[..., None])[..., 0]  # camera centre in object space
    out = np.empty((n, p, _INSTANCE_FLOATS), dtype=np.float32)
    out[..., 0:12] = np.concatenate([A, tr[..., None]], axis=-1).reshape(n, p, 12)
    out[..., 12:15] = eye
    out[..., 15] = taper[None, :]
    return out.reshape(n * p, _INSTANCE_FLOATS)


class HypothesisRenderer:
    """Render batches of hypotheses into ``tile_size``-square depth tiles.

    tile_size : T, pixels per tile side (> 0).
    capacity : hypotheses per framebuffer (one GL pass); larger batches run in several passes.
    context : a GL context to use (not closed by this renderer); None opens one (closed here).
    near_mm, far_mm : clipping range of the virtual camera.

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, primitives: PrimitiveSet, tile_size: int = 64, capacity: int = 64,
                 context: GLContext | None = None, near_mm: float = DEFAULT_NEAR_MM,
                 far_mm: float = DEFAULT_FAR_MM):
        if not isinstance(primitives, PrimitiveSet):
            raise ValueError(f"primitives must be a PrimitiveSet, got {type(primitives).__name__}")
        for name, v in (("tile_size", tile_size), ("capacity", capacity)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not (0 < near_mm < far_mm and math.isfinite(far_mm)):
            raise ValueError(f"need 0 < near_mm < far_mm < inf, got {near_mm}, {far_mm}")
        self.primitives = primitives
        self.tile_size = int(tile_size)
        self.capacity = int(capacity)
        self.near_mm, self.far_mm = float(near_mm), float(far_mm)
        self.cols = int(math.ceil(math.sqrt(self.capacity)))
        self.rows = int(math.ceil(self.capacity / self.cols))
        self._own_context = context is None
        self.context = create_context() if context is None else context
        self.context.make_current()
        self._taper = np.asarray(primitives.taper, dtype=np.float32)
        self._kinds = [(k, primitives.indices(k)) for k in PrimitiveKind if primitives.indices(k).size]
        self._gl_objects()

    # ---- GL resources -------------------------------------------------------------------
    def _gl_objects(self) -> None:
        self._program = compile_program(_VERTEX, _FRAGMENT)
        u = {name: GL.glGetUniformLocation(self._program, name)
             for name in ("u_proj", "u_kind", "u_per_tile", "u_tile_base", "u_grid", "u_depth_ab")}
        self._uniform = u
        self._fb = Framebuffer(self.cols * self.tile_size, self.rows * self.tile_size,
                               [(GL.GL_R32F, GL.GL_RED, GL.GL_FLOAT)])
        self._box_vbo = GL.glGenBuffers(1)
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, self._box_vbo)
        GL.glBufferData(GL.GL_ARRAY_BUFFER, _BOX.nbytes, _BOX, GL.GL_STATIC_DRAW)
        self._vaos, self._instance_vbos = {}, {}
        for kind, idx in self._kinds:
            vao = GL.glGenVertexArrays(1)
            vbo = GL.glGenBuffers(1)
            GL.glBindVertexArray(vao)
            GL.glBindBuffer(GL.GL_ARRAY_BUFFER, self._box_vbo)
            GL.glEnableVertexAttribArray(0)
            GL.glVertexAttribPointer(0, 3, GL.GL_FLOAT, GL.GL_FALSE, 12, None)
            GL.glBindBuffer(GL.GL_ARRAY_BUFFER, vbo)
            GL.glBufferData(GL.GL_ARRAY_BUFFER, self.capacity * idx.size * _INSTANCE_FLOATS * 4, None,
                            GL.GL_STREAM_DRAW)
            for loc in range(4):
                GL.glEnableVertexAttribArray(1 + loc)
                GL.glVertexAttribPointer(1 + loc, 4, GL.GL_FLOAT, GL.GL_FALSE, _INSTANCE_FLOATS * 4,
                                         ctypes.c_void_p(16 * loc))
                GL.glVertexAttribDivisor(1 + loc, 1)
            self._vaos[kind], self._instance_vbos[kind] = vao, vbo
        GL.glBindVertexArray(0)

    def close(self) -> None:
        """Free the GL objects (and the context, if this renderer opened it)."""
        if getattr(self, "_program", None) is None:
            return
        self.context.make_current()
        GL.glDeleteVertexArrays(len(self._vaos), list(self._vaos.values()))
        GL.glDeleteBuffers(len(self._instance_vbos) + 1, list(self._instance_vbos.values()) + [self._box_vbo])
        self._fb.delete()
        GL.glDeleteProgram(self._program)
        self._program = None
        if self._own_context:
            self.context.close()

    def __enter__(self) -> "HypothesisRenderer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def framebuffer_size(self) -> tuple[int, int]:
        """``(width, height)`` of the tile framebuffer in pixels."""
        return (self._fb.width, self._fb.height)

    # ---- rendering ---------------------------------------------------------------------
    def tile_camera(self, camera: CameraIntrinsics, roi: RegionOfInterest | None = None) -> CameraIntrinsics:
        """The virtual camera that sees ``roi`` of ``camera``'s image (whole image if None) as a tile."""
        roi = RegionOfInterest.full(camera) if roi is None else roi
        return roi.camera(camera, self.tile_size)

    def render(self, transforms: np.ndarray, camera: CameraIntrinsics,
               roi: RegionOfInterest | None = None, instanced: bool = True) -> np.ndarray:
        """Render N hypotheses; returns depth ``(N, T, T) float32`` mm, 0 = background.

        transforms : ``(N, P, 4, 4)`` affine maps from each primitive's unit shape to the camera
            frame (mm); P = ``len(primitives)``.
        camera : intrinsics of the observed (full) image.
        roi : the region of that image the tiles show (``RegionOfInterest``); None = all of it.
        instanced : True = one instanced draw per primitive kind (fast path); False = one draw
            per primitive (the naive baseline; same pixels).
        """
        if not isinstance(camera, CameraIntrinsics):
            raise ValueError(f"camera must be CameraIntrinsics, got {type(camera).__name__}")
        t = _validate_transforms(transforms, len(self.primitives))
        records = _instance_data(t, self._taper).reshape(t.shape[0], len(self.primitives), _INSTANCE_FLOATS)
        tile_cam = self.tile_camera(camera, roi)
        proj = gl_projection(tile_cam, self.near_mm, self.far_mm)
        out = np.empty((t.shape[0], self.tile_size, self.tile_size), dtype=np.float32)
        self.context.make_current()
        for start in range(0, t.shape[0], self.capacity):
            chunk = records[start:start + self.capacity]
            out[start:start + chunk.shape[0]] = self._render_pass(chunk, proj, instanced)
        return out

    def _render_pass(self, records: np.ndarray, proj: np.ndarray, instanced: bool) -> np.ndarray:
        n = records.shape[0]
        T = self.tile_size
        self._fb.bind()
        GL.glEnable(GL.GL_DEPTH_TEST)
        GL.glDepthFunc(GL.GL_LESS)
        # Shade each proxy box once, through its far faces (correct even when the camera is
        # inside a box). Boxes wind counter-clockwise outside-in, all det > 0 (see
        # _instance_data), and the projection mirrors y: the far faces are GL's front faces.
        GL.glEnable(GL.GL_CULL_FACE)
        GL.glFrontFace(GL.GL_CCW)
        GL.glCullFace(GL.GL_BACK)
        for i in range(4):
            GL.glEnable(GL.GL_CLIP_DISTANCE0 + i)
        GL.glClearColor(0.0, 0.0, 0.0, 0.0)
        GL.glClearDepth(1.0)
        used_rows = int(math.ceil(n / self.cols))
        GL.glEnable(GL.GL_SCISSOR_TEST)
        GL.glScissor(0, 0, self._fb.width, used_rows * T)
        GL.glClear(GL.GL_COLOR_BUFFER_BIT | GL.GL_DEPTH_BUFFER_BIT)
        GL.glDisable(GL.GL_SCISSOR_TEST)
        GL.glUseProgram(self._program)
        u = self._uniform
        GL.glUniformMatrix4fv(u["u_proj"], 1, GL.GL_TRUE, proj.astype(np.float32))
        GL.glUniform2i(u["u_grid"], self.cols, self.rows)
        GL.glUniform2f(u["u_depth_ab"], float(proj[2, 2]), float(proj[2, 3]))
        for kind, idx in self._kinds:
            data = np.ascontiguousarray(records[:, idx, :])  # (n, P_kind, 16), hypothesis-major
            GL.glUniform1i(u["u_kind"], int(kind))
            GL.glBindVertexArray(self._vaos[kind])
            if instanced:
                GL.glUniform1i(u["u_per_tile"], idx.size)
                GL.glUniform1i(u["u_tile_base"], 0)
                GL.glBindBuffer(GL.GL_ARRAY_BUFFER, self._instance_vbos[kind])
                GL.glBufferSubData(GL.GL_ARRAY_BUFFER, 0, data.nbytes, data)
                GL.glDrawArraysInstanced(GL.GL_TRIANGLES, 0, len(_BOX), n * idx.size)
            else:
                self._draw_naive(data)
        GL.glBindVertexArray(0)
        for i in range(4):
            GL.glDisable(GL.GL_CLIP_DISTANCE0 + i)
        GL.glDisable(GL.GL_CULL_FACE)
        img = self._fb.read(0, GL.GL_RED, GL.GL_FLOAT, np.float32, rows=used_rows * T)
        tiles = img.reshape(used_rows, T, self.cols, T).transpose(0, 2, 1, 3).reshape(-1, T, T)
        return tiles[:n]

    def _draw_naive(self, data: np.ndarray) -> None:
        """One draw call per primitive, its record given as constant vertex attributes."""
        u = self._uniform
        GL.glUniform1i(u["u_per_tile"], 1)
        for loc in range(1, 5):
            GL.glDisableVertexAttribArray(loc)
        for n in range(data.shape[0]):
            GL.glUniform1i(u["u_tile_base"], n)
            for rec in data[n]:
                for loc in range(4):
                    GL.glVertexAttrib4f(1 + loc, *(float(x) for x in rec[4 * loc:4 * loc + 4]))
                GL.glDrawArrays(GL.GL_TRIANGLES, 0, len(_BOX))
        for loc in range(1, 5):
            GL.glEnableVertexAttribArray(loc)

    def score(self, transforms: np.ndarray, camera: CameraIntrinsics, roi: RegionOfInterest | None,
              observed_mm: np.ndarray, observed_mask: np.ndarray, d_max_mm: float,
              free_offset: bool = False) -> tuple[np.ndarray, TileSums]:
        """Render and compute :func:`tile_sums` against observed tiles ``(T, T)`` (see
        :meth:`RegionOfInterest.sample`). Returns ``(depth (N, T, T), TileSums)``."""
        depth = self.render(transforms, camera, roi)
        return depth, tile_sums(depth, observed_mm, observed_mask, d_max_mm, free_offset)
