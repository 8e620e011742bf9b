"""GL context backends: each headless route works in its own process; selection and errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from renderer.context import BACKENDS, create_context


def _run(code: str, env_extra: dict | None = None, wrapper: list[str] | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("HANDRGBD_GL", "PYOPENGL_PLATFORM", "DISPLAY")}
    env.update(env_extra or {})
    cmd = (wrapper or []) + [sys.executable, "-c", textwrap.dedent(code)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)


def _gl_info(backend: str, wrapper=None) -> dict:
    proc = _run(f"""
        import sys
        from renderer.cli import gl_info_main
        sys.exit(gl_info_main(["--backend", "{backend}", "--json"]))
    """, wrapper=wrapper)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("backend", ["egl", "osmesa"])
def test_headless_backend_renders_correctly(backend):
    info = _gl_info(backend)
    assert info["backend"] == backend and info["self_check"] == "ok"
    assert info["version"].split()[0] >= "3.3"


def test_glfw_window_backend_under_xvfb():
    xvfb = shutil.which("xvfb-run")
    if xvfb is None:
        pytest.skip("xvfb-run not installed (./quickstart test installs it): the window backend needs a display")
    info = _gl_info("glfw", wrapper=[xvfb, "-a"])
    assert info["backend"] == "glfw" and info["self_check"] == "ok"


def test_env_var_selects_backend():
    proc = _run("""
        from renderer.context import create_context
        with create_context() as c:
            print(c.backend)
    """, {"HANDRGBD_GL": "osmesa"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "osmesa"


def test_auto_falls_back_to_osmesa_when_egl_fails():
    proc = _run("""
        import renderer.context as c
        c._probe_egl = lambda: "egl: disabled by the test"
        with c.create_context() as ctx:
            print(ctx.backend)
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "osmesa"


def test_one_loader_family_per_process():
    proc = _run("""
        from renderer.context import create_context, GLBackendError
        create_context("egl").close()
        try:
            create_context("osmesa")
        except GLBackendError as e:
            print("refused:", e)
    """)
    assert proc.returncode == 0, proc.stderr
    assert "refused:" in proc.stdout and "another process" in proc.stdout


def test_nothing_works_names_the_fix():
    proc = _run("""
        import renderer.context as c
        c._probe_egl = lambda: "egl: no libEGL (simulated)"
        def broken(*a, **k):
            raise c.GLBackendError("simulated failure")
        c.BACKENDS["osmesa"] = broken
        c.BACKENDS["glfw"] = broken
        try:
            c.create_context()
        except c.GLBackendError as e:
            print(e)
    """)
    assert proc.returncode == 0, proc.stderr
    assert "no OpenGL backend works" in proc.stdout and "apt-get install" in proc.stdout and "libosmesa6" in proc.stdout


def test_unknown_backend_is_a_value_error():
    with pytest.raises(ValueError, match="unknown GL backend 'vulkan'"):
        create_context("vulkan")
    assert set(BACKENDS) == {"egl", "osmesa", "glfw"}


def test_context_info_and_manager(gl_context):
    info = gl_context.info()
    assert set(info) == {"backend", "vendor", "renderer", "version"}
    assert info["backend"] in BACKENDS


def test_closing_one_context_keeps_the_others(gl_context):
    """EGL displays are shared: closing a second context must not terminate the first's display."""
    other = create_context(gl_context.backend)
    other.close()
    gl_context.make_current()
    assert gl_context.info()["renderer"]
