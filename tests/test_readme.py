"""The README and the docs: their Python examples run as written, their links lead somewhere."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def _python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


def test_readme_api_example_runs(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    block = _python_blocks(README)[0]
    rgb = cv2.imread("data/embedded/test_sequence/rgb/000000.png")[..., ::-1].copy()
    scope = {"rgb": rgb}  # the example's frame
    exec(compile(block, "README.md", "exec"), scope)
    r = scope["r"]
    assert r.status in ("tracked", "lost") and r.joints_mm.shape == (21, 3) and r.joints_px.shape == (21, 2)


def test_renderer_example_runs(gl_context, capsys):
    block = _python_blocks(ROOT / "docs" / "renderer.md")[0]
    exec(compile(block, "docs/renderer.md", "exec"), {})
    shape = capsys.readouterr().out.split(")")[0]
    assert shape == "(64, 64, 64"


def test_readme_is_short_and_its_links_resolve():
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    for doc in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
            if "://" in target:
                continue
            assert (doc.parent / target).exists(), f"{doc.name}: link to {target} leads nowhere"
