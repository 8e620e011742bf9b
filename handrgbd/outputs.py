"""Output files of every command: atomic writes, valid JSON, and no silent overwrite.

* Every file is written to a hidden temporary file beside its final name, then renamed over it
  (``os.replace``): a crash or Ctrl-C leaves either the old file or the new one, never half of
  one. :func:`atomic_write_bytes` is the one primitive; the others encode, then call it.
* JSON is strict (``allow_nan=False``): a NaN or an infinity that reaches a writer is a bug and
  raises. Metrics that cannot be computed are ``null``; :func:`finite_or_none` turns non-finite
  numbers into ``None`` and :func:`undefined_reasons` says why each one is.
* :func:`check_outputs` refuses to replace a previous run's files unless the user asked for it
  (``--overwrite``). It runs before any input is read and creates nothing; commands create their
  output folder only once their input has been accepted.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = ["atomic_write_bytes", "save_torch", "write_text", "write_json", "write_csv", "save_npy", "write_image",
           "save_figure", "finite_or_none", "undefined_reasons", "check_outputs", "check_output_file",
           "clear_outputs", "make_folder"]


def atomic_write_bytes(path: str | os.PathLike, data: bytes | memoryview, durable: bool = False) -> None:
    """Write ``data`` to a hidden temporary file beside ``path``, then rename it over ``path``.

    The temporary file is created with mode 0o666 minus the umask, like a plain ``open``
    (``tempfile.mkstemp`` would leave a 0o600 file behind the rename). ``durable``: flushed to
    the disk (``fsync``) before the rename, so a power cut cannot leave an empty file under the
    final name either (training checkpoints: hours of work).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj, indent: int | None = 1, default=None) -> None:
    """Strict JSON (``allow_nan=False``: non-finite numbers raise ``ValueError``), atomically;
    ``default`` as in ``json.dumps`` (e.g. ``str`` for paths in configs)."""
    write_text(path, json.dumps(obj, indent=indent, allow_nan=False, default=default) + "\n")


def write_csv(path: str | os.PathLike, rows: Iterable[Mapping] | Iterable[Sequence],
              fieldnames: Sequence[str] | None = None) -> None:
    """Rows as CSV, atomically: dicts with ``fieldnames`` (a header line), or plain sequences."""
    buf = io.StringIO(newline="")
    if fieldnames is not None:
        w = csv.DictWriter(buf, fieldnames=list(fieldnames))
        w.writeheader()
    else:
        w = csv.writer(buf)
    w.writerows(rows)
    write_text(path, buf.getvalue())


def save_torch(obj, path: str | os.PathLike) -> None:
    """``torch.save(obj)`` written atomically and durably: every checkpoint and weights file of
    the project's trainings (depthnet's and the tracker's small networks) goes through here."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getbuffer(), durable=True)  # the buffer itself: no second copy


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


def write_image(path: str | os.PathLike, rgb: np.ndarray, params: Sequence[int] = ()) -> None:
    """``(H, W, 3) uint8`` RGB (or ``(H, W)`` grey) to a PNG/JPEG named by ``path``'s suffix."""
    import cv2

    image = rgb[..., ::-1] if rgb.ndim == 3 else rgb
    try:
        ok, buf = cv2.imencode(Path(path).suffix or ".png", np.ascontiguousarray(image), list(params))
    except cv2.error:  # an extension OpenCV has no encoder for
        ok = False
    if not ok:
        raise ValueError(f"{path}: cannot encode a {rgb.dtype} {rgb.shape} image as {Path(path).suffix!r}")
    atomic_write_bytes(path, buf.tobytes())


def save_figure(fig, path: str | os.PathLike, dpi: int = 100) -> None:
    """A matplotlib figure, in the format of ``path``'s suffix, atomically."""
    buf = io.BytesIO()
    fig.savefig(buf, format=Path(path).suffix.lstrip(".") or "png", dpi=dpi)
    atomic_write_bytes(path, buf.getvalue())


def finite_or_none(obj):
    """``obj`` with every non-finite float (NaN, +-inf) replaced by ``None``, recursively
    through dicts, lists, tuples and numpy arrays/scalars (which become plain Python values)."""
    if isinstance(obj, Mapping):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return finite_or_none(obj.tolist())
    if isinstance(obj, (list, tuple)):
        return [finite_or_none(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def undefined_reasons(result: Mapping, reasons: Mapping[str, str]) -> dict[str, str]:
    """``{key: reason}`` for each of ``reasons``' keys whose value in ``result`` is ``None``:
    the ``"undefined"`` field of a results file, next to its ``null`` metrics."""
    return {k: why for k, why in reasons.items() if k in result and result[k] is None}


def check_outputs(folder: str | os.PathLike, names: Iterable[str], overwrite: bool, option: str = "--out",
                  remedy: str = "pass --overwrite to replace them") -> Path:
    """Check that a run may write ``names`` into ``folder``; creates nothing.

    Raises ``ValueError`` (``"--out: ... (got FOLDER)"``) when ``folder`` is a file, or when one
    of ``names`` exists there (a previous run's output) and ``overwrite`` is false; ``remedy``
    says what the user can do about it besides choosing another folder.
    """
    folder = Path(folder)
    try:
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"{option}: not a folder (got {str(folder)!r})")
        _check_writable(folder, option, folder)
        found = [n for n in names if (folder / n).exists() or (folder / n).is_symlink()]
        odd = [n for n in found if not ((folder / n).is_file() or (folder / n).is_dir())]
    except OSError as e:  # a name too long, a loop of links, ...
        raise ValueError(f"{option}: {e.strerror or e} (got {str(folder)!r})") from e
    if odd:
        raise ValueError(f"{option}: {', '.join(odd)} is not an ordinary file (a device, pipe or broken link); "
                         f"it is never replaced (got {str(folder)!r})")
    if found and not overwrite:
        raise ValueError(f"{option}: {', '.join(found)} from an earlier run would be replaced; {remedy}, "
                         f"or choose another folder (got {str(folder)!r})")
    return folder


def check_output_file(path: str | os.PathLike, overwrite: bool, option: str) -> Path:
    """Check that a run may write the file ``path``: its folder exists, and it is not there
    already unless ``overwrite``. Raises ``ValueError`` naming ``option``; creates nothing."""
    path = Path(path)
    try:
        if path.parent.exists() and not path.parent.is_dir():
            raise ValueError(f"{option}: {str(path.parent)!r} is a file, not a folder (got {str(path)!r})")
        if not path.parent.is_dir():
            raise ValueError(f"{option}: folder {str(path.parent)!r} does not exist (got {str(path)!r})")
        if path.is_dir():
            raise ValueError(f"{option}: is a folder, not a file (got {str(path)!r})")
        if (path.exists() or path.is_symlink()) and not path.is_file():
            raise ValueError(f"{option}: not an ordinary file (a device, pipe or broken link); it is never "
                             f"replaced (got {str(path)!r})")
        if path.exists() and not overwrite:
            raise ValueError(f"{option}: exists; pass --overwrite to replace it (got {str(path)!r})")
        _check_writable(path.parent, option, path)
        if len(path.name.encode()) + 40 > os.pathconf(path.parent, "PC_NAME_MAX"):  # + the temporary file's suffix
            raise ValueError(f"{option}: the file name is too long (got {str(path)!r})")
    except OSError as e:  # a name too long, a loop of links, ...
        raise ValueError(f"{option}: {e.strerror or e} (got {str(path)!r})") from e
    return path


def clear_outputs(folder: str | os.PathLike, names: Iterable[str]) -> None:
    """Remove an earlier run's outputs ``names`` from ``folder`` (files, and folders of ours such as
    ``overlay/``), so that ``--overwrite`` replaces a run instead of mixing two. Call it once the
    new run's input has been accepted; only ordinary files and folders are removed."""
    import shutil

    for name in names:
        path = Path(folder) / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.is_file() or path.is_symlink():
            path.unlink()


def make_folder(folder: str | os.PathLike, option: str = "--out") -> Path:
    """``mkdir -p`` with its failure as a ``ValueError`` naming ``option``."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"{option}: cannot create the folder ({e.strerror or e}) (got {str(folder)!r})") from e
    return folder


def _check_writable(folder: Path, option: str, given: Path) -> None:
    """Can files be created in ``folder`` (or, when it does not exist yet, in the folder that would
    hold it)? Probed by creating and removing a hidden empty file in the nearest existing folder,
    which catches read-only places, virtual file systems and a file where a folder should be."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{option}: {str(existing)!r} is a file, so no folder can be made below it "
                         f"(got {str(given)!r})")
    probe = existing / f".handrgbd-write-test.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.remove(probe)
    except OSError as e:
        raise ValueError(f"{option}: cannot write in {str(existing)!r} ({e.strerror or e}) (got {str(given)!r})") from e
