"""Shared fixtures: one GL context per test session (headless on CI: EGL, else OSMesa)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from handrgbd.camera import CameraIntrinsics


@pytest.fixture(scope="session", autouse=True)
def _private_model_cache(tmp_path_factory):
    """depthnet's exported models go to this session's folder, not the user's cache (the
    commands the tests start in subprocesses inherit it)."""
    os.environ["HANDRGBD_CACHE"] = str(tmp_path_factory.mktemp("model_cache"))
    yield


@pytest.fixture(scope="session")
def gl_context():
    from renderer.context import create_context

    ctx = create_context()
    yield ctx
    ctx.close()


@pytest.fixture
def vga_camera() -> CameraIntrinsics:
    """A 640 x 480 camera with f = 500 px and an off-centre principal point."""
    return CameraIntrinsics(fx=500.0, fy=520.0, cx=318.3, cy=243.7, width=640, height=480)


def translation(x: float, y: float, z: float, scale=(1.0, 1.0, 1.0)) -> np.ndarray:
    """4x4 transform: scale the unit shape, then translate (mm)."""
    m = np.diag([*scale, 1.0])
    m[:3, 3] = (x, y, z)
    return m


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite golden files under tests/golden/ from the current code")


@pytest.fixture
def update_golden(request) -> bool:
    return bool(request.config.getoption("--update-golden"))
