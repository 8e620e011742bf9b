"""Mesh rendering: textured or coloured triangle meshes under 4x4 poses, with simple lighting.

Returns RGB ``(H, W, 3) uint8``, depth ``(H, W) float32`` camera-frame z in mm (0 =
background), and per-pixel labels ``(H, W) uint8`` (each mesh's ``label``; 0 = background),
from which masks are taken. Depth is the interpolated camera z of the visible surface, written
to a float32 target (not read back from the depth buffer), so it is exact up to float rounding.
"""

from __future__ import annotations

import ctypes
import logging
import math
from dataclasses import dataclass, field
from typing import NamedTuple, Sequence

import numpy as np

from handrgbd.camera import CameraIntrinsics
from renderer._gl import GL, Framebuffer, compile_program
from renderer.context import GLContext, create_context
from renderer.projection import DEFAULT_FAR_MM, DEFAULT_NEAR_MM, gl_projection

log = logging.getLogger(__name__)

__all__ = ["Mesh", "DirectionalLight", "Lighting", "MeshRenderer", "RenderOutput", "vertex_normals"]

MAX_LIGHTS = 4


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals ``(V, 3) float32`` (zero for unused vertices)."""
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    n = np.zeros_like(v)
    for k in range(3):
        np.add.at(n, f[:, k], fn)
    length = np.linalg.norm(n, axis=1, keepdims=True)
    return (n / np.where(length > 0, length, 1.0)).astype(np.float32)


@dataclass(frozen=True, eq=False)
class Mesh:
    """A triangle mesh in its own frame (mm).

    vertices : ``(V, 3)`` float, mm.
    faces : ``(F, 3)`` int vertex indices.
    normals : ``(V, 3)`` unit normals; None = computed (area-weighted).
    colors : ``(V, 3)`` per-vertex albedo in [0, 1] (float) or 0..255 (uint8); None = ``color``.
    uv : ``(V, 2)`` texture coordinates in [0, 1] (v up, OpenGL's convention) with ``texture``
        ``(h, w, 3) uint8`` (row 0 = top of the image); texture overrides colours.
    color : RGB albedo in [0, 1] when neither colours nor texture are given.
    label : value written to the label image where this mesh is visible (1..255).
    specular : specular reflectance in [0, 1] (0 = matte), shininess: Blinn-Phong exponent.
    """

    vertices: np.ndarray
    faces: np.ndarray
    normals: np.ndarray | None = None
    colors: np.ndarray | None = None
    uv: np.ndarray | None = None
    texture: np.ndarray | None = None
    color: tuple[float, float, float] = (0.8, 0.8, 0.8)
    label: int = 1
    specular: float = 0.0
    shininess: float = 32.0

    def __post_init__(self) -> None:
        v = np.ascontiguousarray(self.vertices, dtype=np.float32)
        f = np.asarray(self.faces)
        if v.ndim != 2 or v.shape[1] != 3 or v.shape[0] == 0:
            raise ValueError(f"Mesh.vertices must be (V, 3) with V > 0, got {v.shape}")
        if not np.all(np.isfinite(v)):
            raise ValueError("Mesh.vertices contain non-finite values")
        if f.ndim != 2 or f.shape[1] != 3 or f.shape[0] == 0 or not np.issubdtype(f.dtype, np.integer):
            raise ValueError(f"Mesh.faces must be (F, 3) integers with F > 0, got {f.shape} {f.dtype}")
        if f.min() < 0 or f.max() >= v.shape[0]:
            raise ValueError(f"Mesh.faces index out of range [0, {v.shape[0]})")
        object.__setattr__(self, "vertices", v)
        object.__setattr__(self, "faces", np.ascontiguousarray(f, dtype=np.uint32))
        n = vertex_normals(v, f) if self.normals is None else np.ascontiguousarray(self.normals, dtype=np.float32)
        if n.shape != v.shape:
            raise ValueError(f"Mesh.normals must be {v.shape}, got {n.shape}")
        object.__setattr__(self, "normals", n)
        if self.colors is not None:
            c = np.asarray(self.colors)
            if c.shape != v.shape:
                raise ValueError(f"Mesh.colors must be {v.shape} RGB, got {c.shape}")
            c = c.astype(np.float32) / 255.0 if c.dtype == np.uint8 else c.astype(np.float32)
            object.__setattr__(self, "colors", np.ascontiguousarray(c))
        if (self.uv is None) != (self.texture is None):
            raise ValueError("Mesh.uv and Mesh.texture must be given together")
        if self.uv is not None:
            uv = np.ascontiguousarray(self.uv, dtype=np.float32)
            if uv.shape != (v.shape[0], 2):
                raise ValueError(f"Mesh.uv must be ({v.shape[0]}, 2), got {uv.shape}")
            tex = np.asarray(self.texture)
            if tex.ndim != 3 or tex.shape[2] != 3 or tex.dtype != np.uint8:
                raise ValueError(f"Mesh.texture must be (h, w, 3) uint8, got {tex.shape} {tex.dtype}")
            object.__setattr__(self, "uv", uv)
        if not (isinstance(self.label, (int, np.integer)) and 1 <= int(self.label) <= 255):
            raise ValueError(f"Mesh.label must be an integer in 1..255, got {self.label!r}")


@dataclass(frozen=True)
class DirectionalLight:
    """Light travelling along ``direction`` (camera frame; normalised), with RGB ``color`` >= 0."""

    direction: tuple[float, float, float] = (0.0, 0.0, 1.0)
    color: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def __post_init__(self) -> None:
        d = np.asarray(self.direction, dtype=np.float64)
        if d.shape != (3,) or not np.all(np.isfinite(d)) or np.linalg.norm(d) == 0:
            raise ValueError(f"DirectionalLight.direction must be a finite non-zero 3-vector, got {self.direction}")
        c = np.asarray(self.color, dtype=np.float64)
        if c.shape != (3,) or not np.all(np.isfinite(c)) or np.any(c < 0):
            raise ValueError(f"DirectionalLight.color must be 3 finite values >= 0, got {self.color}")
        object.__setattr__(self, "direction", tuple(float(x) for x in d / np.linalg.norm(d)))
        object.__setattr__(self, "color", tuple(float(x) for x in c))


@dataclass(frozen=True)
class Lighting:
    """Ambient + up to four directional lights (Lambert), optional Blinn-Phong specular per mesh."""

    ambient: tuple[float, float, float] = (0.35, 0.35, 0.35)
    lights: tuple[DirectionalLight, ...] = field(default_factory=lambda: (
        DirectionalLight((0.3, 0.4, 1.0), (0.7, 0.7, 0.7)),))

    def __post_init__(self) -> None:
        a = np.asarray(self.ambient, dtype=np.float64)
        if a.shape != (3,) or not np.all(np.isfinite(a)) or np.any(a < 0):
            raise ValueError(f"Lighting.ambient must be 3 finite values >= 0, got {self.ambient}")
        lights = tuple(self.lights)
        if len(lights) > MAX_LIGHTS or not all(isinstance(x, DirectionalLight) for x in lights):
            raise ValueError(f"Lighting.lights must be at most {MAX_LIGHTS} DirectionalLight")
        object.__setattr__(self, "lights", lights)


class RenderOutput(NamedTuple):
    """rgb ``(H, W, 3) uint8``; depth_mm ``(H, W) float32`` (0 = background); labels ``(H, W) uint8``."""

    rgb: np.ndarray
    depth_mm: np.ndarray
    labels: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        """``(H, W) bool``: any mesh visible."""
        return self.labels > 0

    def mask_of(self, label: int) -> np.ndarray:
        """``(H, W) bool``: where the mesh(es) with ``label`` are visible."""
        return self.labels == label


_VERTEX = """
#version 330 core
layout(location = 0) in vec3 a_pos;
layout(location = 1) in vec3 a_normal;
layout(location = 2) in vec3 a_color;
layout(location = 3) in vec2 a_uv;
uniform mat4 u_model;      // mesh -> camera (mm)
uniform mat3 u_normal;     // inverse transpose of u_model's 3x3
uniform mat4 u_proj;
out vec3 v_pos;
out vec3 v_normal;
out vec3 v_color;
out vec2 v_uv;
void main() {
    vec4 cam = u_model * vec4(a_pos, 1.0);
    v_pos = cam.xyz;
    v_normal = u_normal * a_normal;
    v_color = a_color;
    v_uv = a_uv;
    gl_Position = u_proj * cam;
}
"""

_FRAGMENT = """
#version 330 core
in vec3 v_pos;
in vec3 v_normal;
in vec3 v_color;
in vec2 v_uv;
uniform int u_color_source;   // 0 uniform albedo, 1 vertex colours, 2 texture
uniform vec3 u_albedo;
uniform vec3 u_tint;          // multiplies the albedo (skin tone, cloth colour) without re-uploading
uniform sampler2D u_texture;
uniform vec3 u_ambient;
uniform int u_num_lights;
uniform vec3 u_light_dir[4];    // direction the light travels, camera frame
uniform vec3 u_light_color[4];
uniform float u_specular;
uniform float u_shininess;
uniform uint u_label;
layout(location = 0) out vec4 o_color;
layout(location = 1) out float o_depth;
layout(location = 2) out uint o_label;
void main() {
    vec3 albedo = u_tint * (u_color_source == 0 ? u_albedo : (u_color_source == 1 ? v_color : texture(u_texture, v_uv).rgb));
    vec3 n = normalize(v_normal);
    vec3 view = normalize(-v_pos);
    if (dot(n, view) < 0.0) n = -n;       // two-sided
    vec3 rgb = u_ambient * albedo;
    for (int i = 0; i < u_num_lights; ++i) {
        vec3 l = -u_light_dir[i];
        float lambert = max(dot(n, l), 0.0);
        rgb += lambert * u_light_color[i] * albedo;
        if (u_specular > 0.0 && lambert > 0.0) {
            vec3 h = normalize(l + view);
            rgb += u_specular * pow(max(dot(n, h), 0.0), u_shininess) * u_light_color[i];
        }
    }
    o_color = vec4(clamp(rgb, 0.0, 1.0), 1.0);
    o_depth = v_pos.z;
    o_label = u_label;
}
"""


class _GPUMesh:
    """A mesh's GL buffers; vertex positions and normals can be updated in place."""

    def __init__(self, mesh: Mesh):
        self.mesh = mesh
        self.tint = (1.0, 1.0, 1.0)
        self.specular = float(mesh.specular)
        self.shininess = float(mesh.shininess)
        v = mesh.vertices
        self.num_vertices = v.shape[0]
        self.count = mesh.faces.size
        self.vao = GL.glGenVertexArrays(1)
        GL.glBindVertexArray(self.vao)
        self.vbos = list(GL.glGenBuffers(4))
        colors = mesh.colors if mesh.colors is not None else np.zeros_like(v)
        uv = mesh.uv if mesh.uv is not None else np.zeros((v.shape[0], 2), np.float32)
        for loc, (vbo, data, size) in enumerate(zip(self.vbos, (v, mesh.normals, colors, uv), (3, 3, 3, 2))):
            GL.glBindBuffer(GL.GL_ARRAY_BUFFER, vbo)
            GL.glBufferData(GL.GL_ARRAY_BUFFER, data.nbytes, np.ascontiguousarray(data, np.float32),
                            GL.GL_DYNAMIC_DRAW if loc < 2 else GL.GL_STATIC_DRAW)
            GL.glEnableVertexAttribArray(loc)
            GL.glVertexAttribPointer(loc, size, GL.GL_FLOAT, GL.GL_FALSE, 0, None)
        self.ebo = GL.glGenBuffers(1)
        GL.glBindBuffer(GL.GL_ELEMENT_ARRAY_BUFFER, self.ebo)
        GL.glBufferData(GL.GL_ELEMENT_ARRAY_BUFFER, mesh.faces.nbytes, mesh.faces, GL.GL_STATIC_DRAW)
        GL.glBindVertexArray(0)
        self.texture = None
        if mesh.texture is not None:
            tex = np.ascontiguousarray(mesh.texture[::-1])  # row 0 = top -> GL's v = 0 at the bottom
            self.texture = GL.glGenTextures(1)
            GL.glBindTexture(GL.GL_TEXTURE_2D, self.texture)
            GL.glPixelStorei(GL.GL_UNPACK_ALIGNMENT, 1)
            GL.glTexImage2D(GL.GL_TEXTURE_2D, 0, GL.GL_RGB8, tex.shape[1], tex.shape[0], 0, GL.GL_RGB,
                            GL.GL_UNSIGNED_BYTE, tex)
            GL.glGenerateMipmap(GL.GL_TEXTURE_2D)
            GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_MIN_FILTER, GL.GL_LINEAR_MIPMAP_LINEAR)
            GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_MAG_FILTER, GL.GL_LINEAR)
            GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_WRAP_S, GL.GL_CLAMP_TO_EDGE)
            GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_WRAP_T, GL.GL_CLAMP_TO_EDGE)

    def update(self, vertices: np.ndarray, normals: np.ndarray | None) -> None:
        v = np.ascontiguousarray(vertices, dtype=np.float32)
        if v.shape != (self.num_vertices, 3) or not np.all(np.isfinite(v)):
            raise ValueError(f"vertices must be finite ({self.num_vertices}, 3), got {v.shape}")
        n = vertex_normals(v, self.mesh.faces) if normals is None else np.ascontiguousarray(normals, np.float32)
        if n.shape != v.shape:
            raise ValueError(f"normals must be {v.shape}, got {n.shape}")
        for vbo, data in zip(self.vbos[:2], (v, n)):
            GL.glBindBuffer(GL.GL_ARRAY_BUFFER, vbo)
            GL.glBufferSubData(GL.GL_ARRAY_BUFFER, 0, data.nbytes, data)

    def delete(self) -> None:
        GL.glDeleteVertexArrays(1, [self.vao])
        GL.glDeleteBuffers(5, self.vbos + [self.ebo])
        if self.texture is not None:
            GL.glDeleteTextures(1, [self.texture])


class MeshHandle:
    """A mesh uploaded to a :class:`MeshRenderer` (opaque; pass it to ``render``)."""

    def __init__(self, renderer: "MeshRenderer", key: int):
        self._renderer, self._key = renderer, key

    def update(self, vertices: np.ndarray, normals: np.ndarray | None = None) -> None:
        """Replace the vertex positions ``(V, 3)`` mm (e.g. a skinned pose); normals recomputed if None."""
        self._renderer._make_current()
        self._renderer._meshes[self._key].update(vertices, normals)

    def set_material(self, tint=None, specular: float | None = None, shininess: float | None = None) -> None:
        """Change how the mesh looks without re-uploading it: ``tint`` (RGB >= 0) multiplies its
        albedo (texture, vertex colours or colour); specular reflectance and exponent."""
        gpu = self._renderer._meshes[self._key]
        if tint is not None:
            t = np.asarray(tint, dtype=np.float64)
            if t.shape != (3,) or not np.all(np.isfinite(t)) or np.any(t < 0):
                raise ValueError(f"tint must be 3 finite values >= 0, got {tint}")
            gpu.tint = tuple(float(x) for x in t)
        if specular is not None:
            if not 0.0 <= specular <= 1.0:
                raise ValueError(f"specular must be in [0, 1], got {specular}")
            gpu.specular = float(specular)
        if shininess is not None:
            if not shininess > 0:
                raise ValueError(f"shininess must be > 0, got {shininess}")
            gpu.shininess = float(shininess)


class MeshRenderer:
    """Render scenes of meshes seen by a :class:`CameraIntrinsics` of any size.

    context : a GL context to use (not closed here); None opens one (closed by :meth:`close`).
    """

    def __init__(self, context: GLContext | None = None, near_mm: float = DEFAULT_NEAR_MM,
                 far_mm: float = DEFAULT_FAR_MM):
        if not (0 < near_mm < far_mm and math.isfinite(far_mm)):
            raise ValueError(f"need 0 < near_mm < far_mm < inf, got {near_mm}, {far_mm}")
        self.near_mm, self.far_mm = float(near_mm), float(far_mm)
        self._own_context = context is None
        self.context = create_context() if context is None else context
        self.context.make_current()
        self._program = compile_program(_VERTEX, _FRAGMENT)
        names = ["u_model", "u_normal", "u_proj", "u_color_source", "u_albedo", "u_tint", "u_texture", "u_ambient",
                 "u_num_lights", "u_light_dir", "u_light_color", "u_specular", "u_shininess", "u_label"]
        self._u = {n: GL.glGetUniformLocation(self._program, n) for n in names}
        self._meshes: dict[int, _GPUMesh] = {}
        self._next_key = 0
        self._fb: Framebuffer | None = None

    def _make_current(self) -> None:
        if self._program is None:
            raise ValueError("MeshRenderer is closed")
        self.context.make_current()

    def upload(self, mesh: Mesh) -> MeshHandle:
        """Upload a mesh once; render it any number of times under different poses."""
        if not isinstance(mesh, Mesh):
            raise ValueError(f"upload expects a Mesh, got {type(mesh).__name__}")
        self._make_current()
        key = self._next_key
        self._next_key += 1
        self._meshes[key] = _GPUMesh(mesh)
        return MeshHandle(self, key)

    def remove(self, handle: MeshHandle) -> None:
        """Free an uploaded mesh."""
        self._make_current()
        self._meshes.pop(handle._key).delete()

    def _framebuffer(self, width: int, height: int) -> Framebuffer:
        if self._fb is None or (self._fb.width, self._fb.height) != (width, height):
            if self._fb is not None:
                self._fb.delete()
            self._fb = Framebuffer(width, height, [(GL.GL_RGBA8, GL.GL_RGBA, GL.GL_UNSIGNED_BYTE),
                                                   (GL.GL_R32F, GL.GL_RED, GL.GL_FLOAT),
                                                   (GL.GL_R8UI, GL.GL_RED_INTEGER, GL.GL_UNSIGNED_BYTE)])
        return self._fb

    def render(self, scene: Sequence[tuple], camera: CameraIntrinsics, lighting: Lighting | None = None,
               background: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> RenderOutput:
        """Render ``scene``: a list of ``(handle, pose)`` or ``(handle, pose, tint)``, pose a 4x4
        mesh -> camera transform (mm), tint an RGB albedo multiplier for this item only (else the
        handle's material tint). One mesh may appear several times under different poses.

        background : RGB in [0, 1] where nothing is drawn.
        """
        if not isinstance(camera, CameraIntrinsics):
            raise ValueError(f"camera must be CameraIntrinsics, got {type(camera).__name__}")
        lighting = Lighting() if lighting is None else lighting
        items = []
        for i, item in enumerate(scene):
            if not (isinstance(item, (tuple, list)) and len(item) in (2, 3) and isinstance(item[0], MeshHandle)):
                raise ValueError(f"scene[{i}] must be (MeshHandle, 4x4 pose[, tint])")
            handle, pose = item[0], item[1]
            tint = None
            if len(item) == 3:
                tint = np.asarray(item[2], dtype=np.float64)
                if tint.shape != (3,) or not np.all(np.isfinite(tint)) or np.any(tint < 0):
                    raise ValueError(f"scene[{i}]: tint must be 3 finite values >= 0")
            if handle._renderer is not self or handle._key not in self._meshes:
                raise ValueError(f"scene[{i}]: mesh handle does not belong to this renderer (or was removed)")
            pose = np.asarray(pose, dtype=np.float64)
            if pose.shape != (4, 4) or not np.all(np.isfinite(pose)):
                raise ValueError(f"scene[{i}]: pose must be a finite 4x4 matrix, got shape {pose.shape}")
            if not np.allclose(pose[3], [0, 0, 0, 1]) or abs(np.linalg.det(pose[:3, :3])) < 1e-12:
                raise ValueError(f"scene[{i}]: pose must be an invertible affine transform")
            items.append((self._meshes[handle._key], pose, tint))
        self._make_current()
        fb = self._framebuffer(camera.width, camera.height)
        fb.bind()
        GL.glEnable(GL.GL_DEPTH_TEST)
        GL.glDepthFunc(GL.GL_LESS)
        GL.glDisable(GL.GL_CULL_FACE)
        GL.glClearBufferfv(GL.GL_COLOR, 0, np.array([*background, 1.0], np.float32))
        GL.glClearBufferfv(GL.GL_COLOR, 1, np.zeros(4, np.float32))
        GL.glClearBufferuiv(GL.GL_COLOR, 2, np.zeros(4, np.uint32))
        GL.glClear(GL.GL_DEPTH_BUFFER_BIT)
        GL.glUseProgram(self._program)
        u = self._u
        GL.glUniformMatrix4fv(u["u_proj"], 1, GL.GL_TRUE,
                              gl_projection(camera, self.near_mm, self.far_mm).astype(np.float32))
        GL.glUniform3f(u["u_ambient"], *lighting.ambient)
        GL.glUniform1i(u["u_num_lights"], len(lighting.lights))
        if lighting.lights:
            GL.glUniform3fv(u["u_light_dir"], len(lighting.lights),
                            np.array([lt.direction for lt in lighting.lights], np.float32))
            GL.glUniform3fv(u["u_light_color"], len(lighting.lights),
                            np.array([lt.color for lt in lighting.lights], np.float32))
        GL.glUniform1i(u["u_texture"], 0)
        for gpu, pose, tint in items:
            mesh = gpu.mesh
            GL.glUniformMatrix4fv(u["u_model"], 1, GL.GL_TRUE, pose.astype(np.float32))
            GL.glUniformMatrix3fv(u["u_normal"], 1, GL.GL_TRUE, np.linalg.inv(pose[:3, :3]).T.astype(np.float32))
            source = 2 if gpu.texture is not None else (1 if mesh.colors is not None else 0)
            GL.glUniform1i(u["u_color_source"], source)
            GL.glUniform3f(u["u_albedo"], *mesh.color)
            GL.glUniform3f(u["u_tint"], *(gpu.tint if tint is None else tint))
            GL.glUniform1f(u["u_specular"], gpu.specular)
            GL.glUniform1f(u["u_shininess"], gpu.shininess)
            GL.glUniform1ui(u["u_label"], int(mesh.label))
            if gpu.texture is not None:
                GL.glActiveTexture(GL.GL_TEXTURE0)
                GL.glBindTexture(GL.GL_TEXTURE_2D, gpu.texture)
            GL.glBindVertexArray(gpu.vao)
            GL.glDrawElements(GL.GL_TRIANGLES, gpu.count, GL.GL_UNSIGNED_INT, ctypes.c_void_p(0))
        GL.glBindVertexArray(0)
        rgb = fb.read(0, GL.GL_RGBA, GL.GL_UNSIGNED_BYTE, np.uint8, channels=4)[..., :3].copy()
        depth = fb.read(1, GL.GL_RED, GL.GL_FLOAT, np.float32)
        labels = fb.read(2, GL.GL_RED_INTEGER, GL.GL_UNSIGNED_BYTE, np.uint8)
        return RenderOutput(rgb, depth, labels)

    def close(self) -> None:
        """Free meshes, framebuffer and program (and the context, if this renderer opened it)."""
        if self._program is None:
            return
        self.context.make_current()
        for gpu in self._meshes.values():
            gpu.delete()
        self._meshes.clear()
        if self._fb is not None:
            self._fb.delete()
        GL.glDeleteProgram(self._program)
        self._program = None
        if self._own_context:
            self.context.close()

    def __enter__(self) -> "MeshRenderer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
