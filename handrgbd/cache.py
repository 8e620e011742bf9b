"""Where handrgbd keeps what it can rebuild (exported models, the hard bench's recordings).

``$HANDRGBD_CACHE`` when set, else ``$XDG_CACHE_HOME/handrgbd``, else ``~/.cache/handrgbd``.
Everything in it may be deleted at any time: it is made again on the next use.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir() -> Path:
    """The cache folder (not created here)."""
    if os.environ.get("HANDRGBD_CACHE"):
        return Path(os.environ["HANDRGBD_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "handrgbd"
