"""OpenGL context backends: EGL surfaceless (headless default), GLFW null platform + OSMesa
(headless fallback), GLFW window (desktop).

All three give an OpenGL >= 3.3 core-profile context; the renderers draw into their own
framebuffer objects, so a context needs no default framebuffer of any size.

PyOpenGL binds its function loader once per process (``PYOPENGL_PLATFORM``, read when
``OpenGL`` is first imported), so one process uses one loader family: ``egl`` (EGL contexts,
and GLFW windows created through EGL), ``osmesa``, or the desktop default (GLX/WGL/CGL for GLFW
windows). :func:`create_context` picks the backend (argument, else ``HANDRGBD_GL``, else the
first of egl, osmesa, glfw that works), fixes the loader before PyOpenGL is imported, and raises
a :class:`GLBackendError` naming what is missing and the apt line that fixes it when nothing
works. Probing EGL uses ctypes only, so a failed probe leaves the loader free for the fallback.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys
from typing import Callable

log = logging.getLogger(__name__)

__all__ = ["GLContext", "GLBackendError", "create_context", "BACKENDS", "APT_FIX"]

APT_FIX = "apt-get install -y libegl1 libegl-mesa0 libgl1-mesa-dri libosmesa6"
GL_VERSION_REQUIRED = (3, 3)


class GLBackendError(RuntimeError):
    """No usable OpenGL context (the message says what is missing and how to fix it)."""


# ---------------------------------------------------------------------------------------
# PyOpenGL loader family for this process
# ---------------------------------------------------------------------------------------
_PYOPENGL_CLASS_TO_PLATFORM = {"EGLPlatform": "egl", "OSMesaPlatform": "osmesa",
                               "GLXPlatform": "glx", "Win32Platform": "wgl", "DarwinPlatform": "darwin"}


def _active_pyopengl_platform() -> str | None:
    """The loader PyOpenGL already bound in this process, or None if OpenGL is not imported yet."""
    mod = sys.modules.get("OpenGL.platform")
    if mod is None or not hasattr(mod, "PLATFORM"):
        return None
    return _PYOPENGL_CLASS_TO_PLATFORM.get(type(mod.PLATFORM).__name__, type(mod.PLATFORM).__name__)


def _bind_pyopengl(platform: str | None, backend: str) -> None:
    """Make PyOpenGL use ``platform`` (None: its own default), or fail if another is bound."""
    active = _active_pyopengl_platform()
    if active is None:
        if platform is not None:
            os.environ["PYOPENGL_PLATFORM"] = platform
        import OpenGL.GL  # noqa: F401  (binds the loader now, with the environment above)
        return
    if platform is not None and active != platform:
        raise GLBackendError(
            f"GL backend {backend!r} needs PyOpenGL's {platform!r} loader, but this process already "
            f"bound {active!r}; one process uses one loader family: run {backend!r} in another process")


# ---------------------------------------------------------------------------------------
# Context interface
# ---------------------------------------------------------------------------------------
class GLContext:
    """An OpenGL >= 3.3 core context. Use as a context manager; ``close()`` frees it.

    Renderers created on a context must be closed before it (they free their GL objects).
    """

    backend: str = "?"

    def make_current(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> "GLContext":
        self.make_current()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def info(self) -> dict:
        """GL_VENDOR, GL_RENDERER, GL_VERSION strings and the backend name."""
        from OpenGL import GL

        self.make_current()

        def s(name):
            v = GL.glGetString(name)
            return v.decode() if isinstance(v, bytes) else str(v)

        return {"backend": self.backend, "vendor": s(GL.GL_VENDOR), "renderer": s(GL.GL_RENDERER),
                "version": s(GL.GL_VERSION)}

    def _check_version(self) -> None:
        from OpenGL import GL

        major = GL.glGetIntegerv(GL.GL_MAJOR_VERSION)
        minor = GL.glGetIntegerv(GL.GL_MINOR_VERSION)
        if (int(major), int(minor)) < GL_VERSION_REQUIRED:
            self.close()
            raise GLBackendError(f"{self.backend}: OpenGL {major}.{minor} < required "
                                 f"{GL_VERSION_REQUIRED[0]}.{GL_VERSION_REQUIRED[1]}")


# ---------------------------------------------------------------------------------------
# EGL (ctypes; surfaceless Mesa, EGL devices, or the default display)
# ---------------------------------------------------------------------------------------
_EGL_NONE = 0x3038
_EGL_EXTENSIONS = 0x3055
_EGL_RENDERABLE_TYPE = 0x3040
_EGL_OPENGL_BIT = 0x0008
_EGL_OPENGL_API = 0x30A2
_EGL_CONTEXT_MAJOR_VERSION = 0x3098
_EGL_CONTEXT_MINOR_VERSION = 0x30FB
_EGL_CONTEXT_OPENGL_PROFILE_MASK = 0x30FD
_EGL_CONTEXT_OPENGL_CORE_PROFILE_BIT = 0x1
_EGL_PLATFORM_SURFACELESS_MESA = 0x31DD
_EGL_PLATFORM_DEVICE_EXT = 0x313F


def _load_egl() -> ctypes.CDLL:
    name = ctypes.util.find_library("EGL") or "libEGL.so.1"
    try:
        lib = ctypes.CDLL(name)
    except OSError as e:
        raise GLBackendError(f"egl: cannot load libEGL ({e}); install it with: {APT_FIX}") from e
    vp, i32 = ctypes.c_void_p, ctypes.c_int32
    sig = {
        "eglGetError": (i32, []),
        "eglGetDisplay": (vp, [vp]),
        "eglInitialize": (ctypes.c_uint, [vp, ctypes.POINTER(i32), ctypes.POINTER(i32)]),
        "eglTerminate": (ctypes.c_uint, [vp]),
        "eglQueryString": (ctypes.c_char_p, [vp, i32]),
        "eglChooseConfig": (ctypes.c_uint, [vp, ctypes.POINTER(i32), ctypes.POINTER(vp), i32,
                                            ctypes.POINTER(i32)]),
        "eglBindAPI": (ctypes.c_uint, [ctypes.c_uint]),
        "eglCreateContext": (vp, [vp, vp, vp, ctypes.POINTER(i32)]),
        "eglDestroyContext": (ctypes.c_uint, [vp, vp]),
        "eglMakeCurrent": (ctypes.c_uint, [vp, vp, vp, vp]),
        "eglGetProcAddress": (vp, [ctypes.c_char_p]),
    }
    for fname, (res, args) in sig.items():
        f = getattr(lib, fname)
        f.restype, f.argtypes = res, args
    return lib


def _egl_displays(egl: ctypes.CDLL):
    """Candidate displays, best first: Mesa surfaceless, EGL devices, the default display."""
    client_ext = (egl.eglQueryString(None, _EGL_EXTENSIONS) or b"").decode().split()
    get_platform_display = None
    addr = egl.eglGetProcAddress(b"eglGetPlatformDisplayEXT")
    if addr and "EGL_EXT_platform_base" in client_ext:
        get_platform_display = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_uint, ctypes.c_void_p,
                                                ctypes.c_void_p)(addr)
    if get_platform_display and "EGL_MESA_platform_surfaceless" in client_ext:
        yield "surfaceless", get_platform_display(_EGL_PLATFORM_SURFACELESS_MESA, None, None)
    if get_platform_display and "EGL_EXT_device_enumeration" in client_ext:
        qaddr = egl.eglGetProcAddress(b"eglQueryDevicesEXT")
        if qaddr:
            query = ctypes.CFUNCTYPE(ctypes.c_uint, ctypes.c_int32, ctypes.POINTER(ctypes.c_void_p),
                                     ctypes.POINTER(ctypes.c_int32))(qaddr)
            devices = (ctypes.c_void_p * 16)()
            n = ctypes.c_int32(0)
            if query(16, devices, ctypes.byref(n)):
                for i in range(n.value):
                    yield f"device{i}", get_platform_display(_EGL_PLATFORM_DEVICE_EXT, devices[i], None)
    yield "default", egl.eglGetDisplay(None)


# EGL displays are process-wide and eglTerminate is not reference counted: terminating one
# context's display would kill every other context on it. Count users per display here.
_EGL_DISPLAY_USERS: dict[int, int] = {}


class EGLContext(GLContext):
    """Headless EGL context with no surface (OpenGL core 3.3+, renders into FBOs)."""

    backend = "egl"

    def __init__(self) -> None:
        self._egl = _load_egl()
        egl = self._egl
        self._display = self._context = None
        errors = []
        for kind, display in _egl_displays(egl):
            if not display:
                errors.append(f"{kind}: no display")
                continue
            major, minor = ctypes.c_int32(), ctypes.c_int32()
            if not egl.eglInitialize(display, ctypes.byref(major), ctypes.byref(minor)):
                errors.append(f"{kind}: eglInitialize failed (0x{egl.eglGetError():x})")
                continue
            context = self._create(display)
            if context:
                self._display, self._context, self.display_kind = display, context, kind
                _EGL_DISPLAY_USERS[display] = _EGL_DISPLAY_USERS.get(display, 0) + 1
                break
            errors.append(f"{kind}: no OpenGL {GL_VERSION_REQUIRED} core context (0x{egl.eglGetError():x})")
            if not _EGL_DISPLAY_USERS.get(display):
                egl.eglTerminate(display)
        if self._context is None:
            raise GLBackendError("egl: no usable EGL display (" + "; ".join(errors) +
                                 f"); on Debian install Mesa's EGL with: {APT_FIX}")
        self.make_current()

    def _create(self, display):
        egl = self._egl
        if not egl.eglBindAPI(_EGL_OPENGL_API):
            return None
        attrs = (ctypes.c_int32 * 3)(_EGL_RENDERABLE_TYPE, _EGL_OPENGL_BIT, _EGL_NONE)
        config = ctypes.c_void_p()
        count = ctypes.c_int32(0)
        if not egl.eglChooseConfig(display, attrs, ctypes.byref(config), 1, ctypes.byref(count)) or count.value < 1:
            config = ctypes.c_void_p(None)  # EGL_KHR_no_config_context
        ctx_attrs = (ctypes.c_int32 * 7)(
            _EGL_CONTEXT_MAJOR_VERSION, GL_VERSION_REQUIRED[0], _EGL_CONTEXT_MINOR_VERSION, GL_VERSION_REQUIRED[1],
            _EGL_CONTEXT_OPENGL_PROFILE_MASK, _EGL_CONTEXT_OPENGL_CORE_PROFILE_BIT, _EGL_NONE)
        return egl.eglCreateContext(display, config, None, ctx_attrs)

    def make_current(self) -> None:
        if self._context is None:
            raise GLBackendError("egl: context is closed")
        if not self._egl.eglMakeCurrent(self._display, None, None, self._context):
            raise GLBackendError(f"egl: eglMakeCurrent failed (0x{self._egl.eglGetError():x})")

    def close(self) -> None:
        if self._context is not None:
            self._egl.eglMakeCurrent(self._display, None, None, None)
            self._egl.eglDestroyContext(self._display, self._context)
            _EGL_DISPLAY_USERS[self._display] -= 1
            if _EGL_DISPLAY_USERS[self._display] == 0:
                del _EGL_DISPLAY_USERS[self._display]
                self._egl.eglTerminate(self._display)
            self._context = None


# ---------------------------------------------------------------------------------------
# GLFW: null platform + OSMesa (headless), or a real window (desktop)
# ---------------------------------------------------------------------------------------
class _GLFWState:
    """GLFW is process-global: initialised once, on one platform, with a window count."""

    platform: str | None = None  # "null" or "native"
    windows = 0


def _glfw_init(platform: str):
    try:
        import glfw
    except ImportError as e:  # pragma: no cover - glfw is a dependency
        raise GLBackendError(f"glfw python package missing ({e}): pip install glfw") from e
    if _GLFWState.platform is not None:
        if _GLFWState.platform != platform:
            raise GLBackendError(f"GLFW is already initialised on the {_GLFWState.platform} platform in "
                                 f"this process; the {platform} platform needs another process")
        return glfw
    glfw.ERROR_REPORTING = "ignore"  # failures are reported by our exceptions, with glfw's reason
    if platform == "null":
        if not hasattr(glfw, "PLATFORM_NULL"):
            raise GLBackendError("osmesa: this glfw has no null platform (needs GLFW >= 3.4)")
        glfw.init_hint(glfw.PLATFORM, glfw.PLATFORM_NULL)
    if not glfw.init():
        reason = _glfw_last_error(glfw)
        hint = (f"install OSMesa with: {APT_FIX}" if platform == "null"
                else "no display: set DISPLAY (e.g. run under xvfb-run) or use HANDRGBD_GL=egl")
        raise GLBackendError(f"glfw: glfw.init() failed on the {platform} platform ({reason}); {hint}")
    _GLFWState.platform = platform
    return glfw


def _glfw_last_error(glfw) -> str:
    code, description = glfw.get_error()
    if not code:
        return "no error reported"
    return description.decode(errors="replace") if isinstance(description, bytes) else str(description)


class _GLFWContext(GLContext):
    _platform = "native"

    def __init__(self, width: int = 64, height: int = 64, visible: bool = False, title: str = "handrgbd"):
        glfw = _glfw_init(self._platform)
        self._glfw = glfw
        glfw.default_window_hints()
        glfw.window_hint(glfw.CONTEXT_VERSION_MAJOR, GL_VERSION_REQUIRED[0])
        glfw.window_hint(glfw.CONTEXT_VERSION_MINOR, GL_VERSION_REQUIRED[1])
        glfw.window_hint(glfw.OPENGL_PROFILE, glfw.OPENGL_CORE_PROFILE)
        if sys.platform == "darwin":
            glfw.window_hint(glfw.OPENGL_FORWARD_COMPAT, True)
        glfw.window_hint(glfw.VISIBLE, bool(visible))
        self._hint_context_api(glfw)
        self._window = glfw.create_window(int(width), int(height), title, None, None)
        if not self._window:
            if _GLFWState.windows == 0:
                glfw.terminate()
                _GLFWState.platform = None
            raise GLBackendError(f"{self._failure_message()} [GLFW: {_glfw_last_error(glfw)}]")
        _GLFWState.windows += 1
        self.make_current()

    def _hint_context_api(self, glfw) -> None:
        pass

    def _failure_message(self) -> str:
        return "glfw: could not create an OpenGL 3.3 core window"

    @property
    def window(self):
        """The GLFW window handle (for event handling and swapping in a viewer)."""
        return self._window

    def make_current(self) -> None:
        if self._window is None:
            raise GLBackendError(f"{self.backend}: context is closed")
        self._glfw.make_context_current(self._window)

    def close(self) -> None:
        if self._window is not None:
            self._glfw.make_context_current(None)
            self._glfw.destroy_window(self._window)
            self._window = None
            _GLFWState.windows -= 1
            if _GLFWState.windows == 0:
                self._glfw.terminate()
                _GLFWState.platform = None


class OSMesaContext(_GLFWContext):
    """Headless fallback: GLFW's null platform with an OSMesa (software) context."""

    backend = "osmesa"
    _platform = "null"

    def _hint_context_api(self, glfw) -> None:
        glfw.window_hint(glfw.CONTEXT_CREATION_API, glfw.OSMESA_CONTEXT_API)

    def _failure_message(self) -> str:
        return f"osmesa: GLFW could not create an OSMesa context (libOSMesa missing?); install it with: {APT_FIX}"


class GLFWWindowContext(_GLFWContext):
    """A real GLFW window (desktop; hidden unless ``visible=True``); also the live viewer's."""

    backend = "glfw"

    def _hint_context_api(self, glfw) -> None:
        # Under PyOpenGL's EGL loader, create the window's context through EGL too.
        if _active_pyopengl_platform() == "egl":
            glfw.window_hint(glfw.CONTEXT_CREATION_API, glfw.EGL_CONTEXT_API)

    def _failure_message(self) -> str:
        return ("glfw: could not open an OpenGL 3.3 core window (no display? set DISPLAY, run under "
                "xvfb-run, or use a headless backend: HANDRGBD_GL=egl)")


# ---------------------------------------------------------------------------------------
# Selection
# ---------------------------------------------------------------------------------------
BACKENDS: dict[str, Callable[..., GLContext]] = {
    "egl": EGLContext,
    "osmesa": OSMesaContext,
    "glfw": GLFWWindowContext,
}
_LOADER = {"egl": "egl", "osmesa": "osmesa", "glfw": None}
AUTO_ORDER = ("egl", "osmesa", "glfw")


def _probe_egl() -> str | None:
    """Why EGL cannot work here (None if a context could be made), without binding PyOpenGL."""
    try:
        EGLContext().close()
    except GLBackendError as e:
        return str(e)
    return None


def _make(name: str, **kwargs) -> GLContext:
    loader = _LOADER[name]
    if name == "glfw":
        loader = _active_pyopengl_platform()  # a window works under whatever loader is bound
    _bind_pyopengl(loader, name)
    ctx = BACKENDS[name](**kwargs) if name == "glfw" else BACKENDS[name]()
    ctx._check_version()
    log.debug("GL context %s: %s", name, ctx.info())
    return ctx


def create_context(backend: str | None = None, *, width: int = 64, height: int = 64,
                   visible: bool = False) -> GLContext:
    """Open an OpenGL >= 3.3 core context.

    backend : ``"egl" | "osmesa" | "glfw"``; None reads ``HANDRGBD_GL``, else ``"auto"``: the
        first of egl, osmesa, glfw that works in this process (once PyOpenGL is bound to a loader,
        only backends of that loader family are tried).
    width, height, visible : the window's size and visibility (``glfw`` only; the headless
        backends render into framebuffer objects and have no window).
    """
    name = backend if backend is not None else os.environ.get("HANDRGBD_GL", "auto")
    name = name.strip().lower()
    if name != "auto" and name not in BACKENDS:
        raise ValueError(f"unknown GL backend {name!r}; choose one of {sorted(BACKENDS)} or 'auto'")
    window = {"width": width, "height": height, "visible": visible}
    if name != "auto":
        return _make(name, **window)

    active = _active_pyopengl_platform()
    errors = []
    for candidate in AUTO_ORDER:
        loader = _LOADER[candidate]
        if active is not None and loader is not None and loader != active:
            errors.append(f"{candidate}: PyOpenGL already bound to {active!r}")
            continue
        if candidate == "egl" and active is None:
            why = _probe_egl()
            if why:
                errors.append(why)
                continue
        try:
            return _make(candidate, **window)
        except GLBackendError as e:
            errors.append(str(e))
    raise GLBackendError("no OpenGL backend works here:\n  " + "\n  ".join(errors) +
                         f"\nOn Debian/Ubuntu: {APT_FIX}   (and xvfb for a virtual display)")
