"""A window that shows RGB images (the live viewer): GLFW window backend, one textured quad.

``with ImageViewer(width, height, "title") as v: v.show(rgb); keys = v.poll()``. ``poll``
returns the characters of keys pressed since the last call (``"q"``, ``"r"``, ``" "``, ``"s"``,
...) and ``"q"`` when the window is closed.
"""

from __future__ import annotations

import numpy as np

from renderer._gl import GL, compile_program
from renderer.context import create_context

__all__ = ["ImageViewer"]

_VERT = """
#version 330 core
const vec2 corners[4] = vec2[4](vec2(-1, -1), vec2(1, -1), vec2(-1, 1), vec2(1, 1));
out vec2 v_uv;
void main() {
    vec2 c = corners[gl_VertexID];
    v_uv = vec2(0.5 * c.x + 0.5, 0.5 - 0.5 * c.y);  // image row 0 at the top of the window
    gl_Position = vec4(c, 0.0, 1.0);
}
"""
_FRAG = """
#version 330 core
in vec2 v_uv;
uniform sampler2D u_image;
out vec4 o_color;
void main() { o_color = vec4(texture(u_image, v_uv).rgb, 1.0); }
"""


class ImageViewer:
    def __init__(self, width: int, height: int, title: str = "handrgbd"):
        self.context = create_context("glfw", width=width, height=height, visible=True)
        import glfw

        self._glfw = glfw
        self.window = self.context.window
        glfw.set_window_title(self.window, title)
        self._keys: list[str] = []
        glfw.set_char_callback(self.window, lambda _w, cp: self._keys.append(chr(cp).lower()))
        self.program = compile_program(_VERT, _FRAG)
        self.vao = GL.glGenVertexArrays(1)
        self.texture = GL.glGenTextures(1)

    def show(self, rgb: np.ndarray) -> None:
        """Display ``(H, W, 3) uint8`` RGB, scaled to the window."""
        img = np.ascontiguousarray(rgb, dtype=np.uint8)
        self.context.make_current()
        GL.glBindTexture(GL.GL_TEXTURE_2D, self.texture)
        GL.glPixelStorei(GL.GL_UNPACK_ALIGNMENT, 1)
        GL.glTexImage2D(GL.GL_TEXTURE_2D, 0, GL.GL_RGB8, img.shape[1], img.shape[0], 0, GL.GL_RGB,
                        GL.GL_UNSIGNED_BYTE, img)
        GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_MIN_FILTER, GL.GL_LINEAR)
        GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_MAG_FILTER, GL.GL_LINEAR)
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, 0)
        w, h = self._glfw.get_framebuffer_size(self.window)
        GL.glViewport(0, 0, w, h)
        GL.glUseProgram(self.program)
        GL.glBindVertexArray(self.vao)
        GL.glDrawArrays(GL.GL_TRIANGLE_STRIP, 0, 4)
        self._glfw.swap_buffers(self.window)

    def poll(self) -> list[str]:
        self._glfw.poll_events()
        keys, self._keys = self._keys, []
        if self._glfw.window_should_close(self.window):
            keys.append("q")
        return keys

    def close(self) -> None:
        if self.context is not None:
            self.context.make_current()
            GL.glDeleteTextures(1, [self.texture])
            GL.glDeleteVertexArrays(1, [self.vao])
            GL.glDeleteProgram(self.program)
            self.context.close()
            self.context = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
