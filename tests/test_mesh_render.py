"""Mesh rendering: analytic depth and silhouettes, colours, texture orientation, labels."""

from __future__ import annotations

import math

import numpy as np
import pytest
import trimesh

from conftest import translation
from handrgbd.camera import CameraIntrinsics
from renderer.mesh import DirectionalLight, Lighting, Mesh, MeshRenderer

FLAT = Lighting(ambient=(1.0, 1.0, 1.0), lights=())  # colour = albedo exactly


@pytest.fixture(scope="module")
def renderer(gl_context):
    with MeshRenderer(context=gl_context) as r:
        yield r


def quad(size_mm: float, **kwargs) -> Mesh:
    """A square in the z = 0 plane, centred at the origin, uv (0, 0) at the bottom-left (+y is down)."""
    h = size_mm / 2
    v = np.array([[-h, h, 0], [h, h, 0], [h, -h, 0], [-h, -h, 0]], float)  # bottom-left, bottom-right, ...
    uv = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)
    return Mesh(v, np.array([[0, 1, 2], [0, 2, 3]]), uv=uv if "texture" in kwargs else None, **kwargs)


def test_sphere_mesh_depth_and_area(renderer, vga_camera):
    radius, z = 40.0, 500.0
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=radius)
    cam = CameraIntrinsics(vga_camera.fx, vga_camera.fy, 319.5, 239.5, 640, 480)
    out = renderer.render([(renderer.upload(Mesh(sphere.vertices, sphere.faces)), translation(0, 0, z))], cam)
    assert abs(out.depth_mm[239:241, 319:321].min() - (z - radius)) < 1.0
    k = radius / math.sqrt(z * z - radius * radius)
    assert abs(out.mask.sum() / (math.pi * cam.fx * k * cam.fy * k) - 1) < 0.03
    assert out.rgb.dtype == np.uint8 and out.rgb.shape == (480, 640, 3)
    assert out.depth_mm.dtype == np.float32 and np.all(out.depth_mm[~out.mask] == 0)


def test_tilted_plane_depth_is_exact(renderer):
    cam = CameraIntrinsics(300.0, 300.0, 40.0, 30.0, 80, 60)
    pose = np.eye(4)
    a = math.radians(35)
    pose[:3, :3] = [[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]]
    pose[:3, 3] = (0, 0, 600)
    out = renderer.render([(renderer.upload(quad(400.0)), pose)], cam)
    n, p0 = pose[:3, 2], pose[:3, 3]  # plane normal and a point on it
    jj, ii = np.meshgrid(np.arange(80), np.arange(60))
    rays = np.stack([(jj - cam.cx) / cam.fx, (ii - cam.cy) / cam.fy, np.ones_like(jj, float)], -1)
    z_true = (n @ p0) / (rays @ n)
    assert out.mask.all()
    np.testing.assert_allclose(out.depth_mm, z_true, rtol=2e-6)


def test_texture_orientation_and_colours(renderer):
    cam = CameraIntrinsics(200.0, 200.0, 31.5, 31.5, 64, 64)
    texture = np.zeros((8, 8, 3), np.uint8)
    texture[:4] = (255, 0, 0)  # top rows red
    texture[4:] = (0, 0, 255)  # bottom rows blue
    out = renderer.render([(renderer.upload(quad(400.0, texture=texture)), translation(0, 0, 500))], cam, FLAT)
    assert tuple(out.rgb[5, 32]) == (255, 0, 0)
    assert tuple(out.rgb[58, 32]) == (0, 0, 255)


def test_vertex_colours_and_uniform_colour(renderer):
    cam = CameraIntrinsics(200.0, 200.0, 31.5, 31.5, 64, 64)
    colours = np.tile(np.array([[0, 255, 0]], np.uint8), (4, 1))
    out = renderer.render([(renderer.upload(quad(400.0, colors=colours)), translation(0, 0, 500))], cam, FLAT)
    assert tuple(out.rgb[32, 32]) == (0, 255, 0)
    out = renderer.render([(renderer.upload(quad(400.0, color=(0.2, 0.4, 0.6))), translation(0, 0, 500))], cam, FLAT)
    np.testing.assert_allclose(out.rgb[32, 32], (51, 102, 153), atol=1)


def test_lambert_and_ambient(renderer):
    cam = CameraIntrinsics(200.0, 200.0, 31.5, 31.5, 64, 64)
    light = Lighting(ambient=(0.2, 0.2, 0.2), lights=(DirectionalLight((0, 0, 1), (0.6, 0.6, 0.6)),))
    out = renderer.render([(renderer.upload(quad(400.0, color=(0.5, 0.5, 0.5))), translation(0, 0, 500))], cam, light)
    np.testing.assert_allclose(out.rgb[32, 32], 255 * 0.5 * (0.2 + 0.6), atol=1.5)
    grazing = Lighting(ambient=(0.2, 0.2, 0.2), lights=(DirectionalLight((1, 0, 0), (0.6, 0.6, 0.6)),))
    out = renderer.render([(renderer.upload(quad(400.0, color=(0.5, 0.5, 0.5))), translation(0, 0, 500))], cam, grazing)
    np.testing.assert_allclose(out.rgb[32, 32], 255 * 0.5 * 0.2, atol=1.5)


def test_labels_and_occlusion(renderer):
    cam = CameraIntrinsics(200.0, 200.0, 31.5, 31.5, 64, 64)
    back = renderer.upload(quad(400.0, label=2))
    front = renderer.upload(quad(100.0, label=1))
    out = renderer.render([(back, translation(0, 0, 800)), (front, translation(0, 0, 500))], cam)
    assert out.labels[32, 32] == 1 and out.labels[2, 2] == 2
    assert out.depth_mm[32, 32] == pytest.approx(500.0) and out.depth_mm[2, 2] == pytest.approx(800.0)
    front_area = out.mask_of(1).sum()
    assert abs(front_area - (200 * 100 / 500) ** 2) <= 2 * 200 * 100 / 500 + 1
    assert out.mask.all()


def test_vertex_update_and_any_image_size(renderer):
    handle = renderer.upload(quad(100.0))
    moved = quad(100.0).vertices + [0, 0, 100]
    for w, h in ((64, 48), (33, 17)):
        cam = CameraIntrinsics(200.0, 200.0, (w - 1) / 2, (h - 1) / 2, w, h)
        handle.update(quad(100.0).vertices)
        d0 = renderer.render([(handle, translation(0, 0, 500))], cam).depth_mm
        handle.update(moved)
        d1 = renderer.render([(handle, translation(0, 0, 500))], cam).depth_mm
        assert d0.shape == (h, w)
        assert d0[h // 2, w // 2] == pytest.approx(500.0) and d1[h // 2, w // 2] == pytest.approx(600.0)


@pytest.mark.parametrize("kwargs, message", [
    (dict(vertices=np.full((3, 3), np.nan)), "non-finite"),
    (dict(faces=np.array([[0, 1, 3]])), "out of range"),
    (dict(faces=np.zeros((1, 3), float)), "integers"),
    (dict(label=0), "label"),
    (dict(uv=np.zeros((3, 2))), "together"),
    (dict(colors=np.zeros((2, 3))), "colors"),
])
def test_bad_meshes(kwargs, message):
    base = dict(vertices=np.eye(3), faces=np.array([[0, 1, 2]]))
    base.update(kwargs)
    with pytest.raises(ValueError, match=message):
        Mesh(**base)


def test_bad_scenes(renderer, gl_context):
    cam = CameraIntrinsics(200.0, 200.0, 31.5, 31.5, 64, 64)
    handle = renderer.upload(quad(10.0))
    with pytest.raises(ValueError, match="pose"):
        renderer.render([(handle, np.full((4, 4), np.nan))], cam)
    with pytest.raises(ValueError, match="scene"):
        renderer.render([handle], cam)
    with MeshRenderer(context=gl_context) as other:
        with pytest.raises(ValueError, match="does not belong"):
            other.render([(handle, np.eye(4))], cam)
    with pytest.raises(ValueError, match="at most 4"):
        Lighting(lights=(DirectionalLight(),) * 5)


def test_closed_renderer_refuses_work(gl_context):
    r = MeshRenderer(context=gl_context)
    r.close()
    r.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        r.upload(quad(10.0))


def test_material_tint_without_reupload(renderer):
    cam = CameraIntrinsics(200.0, 200.0, 31.5, 31.5, 64, 64)
    handle = renderer.upload(quad(400.0, color=(0.5, 0.5, 0.5)))
    handle.set_material(tint=(2.0, 1.0, 0.5))
    out = renderer.render([(handle, translation(0, 0, 500))], cam, FLAT)
    np.testing.assert_allclose(out.rgb[32, 32], (255, 128, 64), atol=1)
    with pytest.raises(ValueError, match="tint"):
        handle.set_material(tint=(-1, 0, 0))
