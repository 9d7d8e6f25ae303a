"""Atomic file writes, shared by every stage of hgn_pyg (like :mod:`hgn_pyg.errors`, it imports
nothing of ours).

A file is written to a temporary file in the destination folder (``.<name>.tmp-XXXX``), flushed and ``fsync``-ed, given
the permissions a plain ``open()`` would give it, and then moved over the destination with
:func:`os.replace` (atomic on POSIX file systems): a reader, or a run killed at any moment, sees
the old file or the new one, never half of one.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO, Any, Callable, Optional, Union

__all__ = ["atomic_write", "atomic_write_text", "atomic_write_bytes"]

PathLike = Union[str, os.PathLike]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(str(folder), os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_write(path: PathLike, write: Callable[[IO[Any]], Any], *, text: bool = False,
                 before_replace: Optional[Callable[[], Any]] = None, sync_dir: bool = False) -> Path:
    """Write ``path`` atomically; returns it as a :class:`~pathlib.Path`.

    Args:
        path: destination; its folder is created when missing.
        write: called with the open temporary file (binary, or text when ``text=True``).
        before_replace: called after the data are on disk, just before the rename (test hooks).
        sync_dir: also ``fsync`` the folder after the rename, so the rename itself is durable.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=str(path.parent))
    try:
        with os.fdopen(fd, "w" if text else "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 -> what open() would have given
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if sync_dir:
        _fsync_dir(path.parent)
    return path


def atomic_write_text(path: PathLike, text: str) -> Path:
    """Write the string ``text`` to ``path`` atomically."""
    return atomic_write(path, lambda fh: fh.write(text), text=True)


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda fh: fh.write(data))
