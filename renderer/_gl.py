"""Small OpenGL helpers shared by the renderers: the lazy ``GL`` module, programs, framebuffers.

PyOpenGL binds its function loader when ``OpenGL.GL`` is first imported, and
``renderer.context`` must choose that loader first. So the renderers use ``GL`` from here: a
stand-in that imports ``OpenGL.GL`` on first use (by then a context exists) and then behaves
as the module itself.
"""

from __future__ import annotations

import numpy as np


class _LazyGL:
    def __getattr__(self, name):
        from OpenGL import GL as module

        self.__dict__.update(vars(module))
        return getattr(module, name)


GL = _LazyGL()


class ShaderError(RuntimeError):
    """A GLSL shader failed to compile or link (message has the driver's log)."""


def compile_program(vertex_src: str, fragment_src: str) -> int:
    """Compile and link a vertex + fragment program; raise ShaderError with the log on failure."""
    shaders = []
    for kind, src in ((GL.GL_VERTEX_SHADER, vertex_src), (GL.GL_FRAGMENT_SHADER, fragment_src)):
        sh = GL.glCreateShader(kind)
        GL.glShaderSource(sh, src)
        GL.glCompileShader(sh)
        if not GL.glGetShaderiv(sh, GL.GL_COMPILE_STATUS):
            log = GL.glGetShaderInfoLog(sh)
            GL.glDeleteShader(sh)
            raise ShaderError(f"shader compile failed: {log.decode(errors='replace') if isinstance(log, bytes) else log}")
        shaders.append(sh)
    prog = GL.glCreateProgram()
    for sh in shaders:
        GL.glAttachShader(prog, sh)
    GL.glLinkProgram(prog)
    for sh in shaders:
        GL.glDetachShader(prog, sh)
        GL.glDeleteShader(sh)
    if not GL.glGetProgramiv(prog, GL.GL_LINK_STATUS):
        log = GL.glGetProgramInfoLog(prog)
        GL.glDeleteProgram(prog)
        raise ShaderError(f"program link failed: {log.decode(errors='replace') if isinstance(log, bytes) else log}")
    return prog


class Framebuffer:
    """An FBO of ``width x height`` with the given colour attachments and a float depth buffer.

    attachments : list of (internal_format, format, type) per colour attachment, e.g.
        ``(GL_R32F, GL_RED, GL_FLOAT)``.
    """

    def __init__(self, width: int, height: int, attachments):
        self.width, self.height = int(width), int(height)
        max_size = int(GL.glGetIntegerv(GL.GL_MAX_RENDERBUFFER_SIZE))
        if self.width > max_size or self.height > max_size:
            raise ValueError(f"framebuffer {self.width}x{self.height} exceeds GL_MAX_RENDERBUFFER_SIZE {max_size}")
        self.fbo = GL.glGenFramebuffers(1)
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, self.fbo)
        self.colors = []
        for i, (internal, _fmt, _type) in enumerate(attachments):
            rb = GL.glGenRenderbuffers(1)
            GL.glBindRenderbuffer(GL.GL_RENDERBUFFER, rb)
            GL.glRenderbufferStorage(GL.GL_RENDERBUFFER, internal, self.width, self.height)
            GL.glFramebufferRenderbuffer(GL.GL_FRAMEBUFFER, GL.GL_COLOR_ATTACHMENT0 + i, GL.GL_RENDERBUFFER, rb)
            self.colors.append(rb)
        self.depth = GL.glGenRenderbuffers(1)
        GL.glBindRenderbuffer(GL.GL_RENDERBUFFER, self.depth)
        GL.glRenderbufferStorage(GL.GL_RENDERBUFFER, GL.GL_DEPTH_COMPONENT32F, self.width, self.height)
        GL.glFramebufferRenderbuffer(GL.GL_FRAMEBUFFER, GL.GL_DEPTH_ATTACHMENT, GL.GL_RENDERBUFFER, self.depth)
        GL.glDrawBuffers(len(attachments), [GL.GL_COLOR_ATTACHMENT0 + i for i in range(len(attachments))])
        status = GL.glCheckFramebufferStatus(GL.GL_FRAMEBUFFER)
        if status != GL.GL_FRAMEBUFFER_COMPLETE:
            self.delete()
            raise RuntimeError(f"framebuffer incomplete (status 0x{int(status):x})")

    def bind(self) -> None:
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, self.fbo)
        GL.glViewport(0, 0, self.width, self.height)

    def read(self, index: int, fmt, gl_type, dtype, channels: int = 1, rows: int | None = None) -> np.ndarray:
        """Read attachment ``index`` (bottom ``rows`` rows, all by default) as ``(rows, W[, C])``."""
        rows = self.height if rows is None else int(rows)
        out = np.empty((rows, self.width, channels) if channels > 1 else (rows, self.width), dtype=dtype)
        GL.glBindFramebuffer(GL.GL_READ_FRAMEBUFFER, self.fbo)
        GL.glReadBuffer(GL.GL_COLOR_ATTACHMENT0 + index)
        GL.glPixelStorei(GL.GL_PACK_ALIGNMENT, 1)
        GL.glReadPixels(0, 0, self.width, rows, fmt, gl_type, out)
        return out

    def delete(self) -> None:
        if self.fbo is not None:
            GL.glDeleteRenderbuffers(len(self.colors) + 1, self.colors + [self.depth])
            GL.glDeleteFramebuffers(1, [self.fbo])
            self.fbo = None
