"""Atomic file writes, shared by every stage of hgn_pyg (like :mod:`hgn_pyg.errors`, it imports
nothing of ours).

A file is written to a temporary file in the destination folder (``.<name>.tmp-XXXX``), flushed and ``fsync``-ed, given
the permissions a plain ``open()`` would give it, and then moved over the destination with
:func:`os.replace` (atomic on POSIX file systems): a reader, or a run killed at any moment, sees
the old file or the new one, never half of one.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import IO, Any, Callable, Iterator, List, Optional, Union

__all__ = ["atomic_write", "atomic_write_text", "atomic_write_bytes", "TEMP_MARK", "remove_stale_temps",
           "file_lock", "LockBusy"]

PathLike = Union[str, os.PathLike]

#: Every temporary file or folder hgn_pyg writes is named ``.<final name><TEMP_MARK><random>``.
TEMP_MARK = ".tmp-"


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
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{TEMP_MARK}", dir=str(path.parent))
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


def remove_stale_temps(folder: PathLike, older_than: Optional[float] = None,
                       name: Optional[str] = None) -> List[Path]:
    """Remove this project's temporary files and folders (``.<name>.tmp-*``) left in ``folder`` by a
    killed process (only those of the final name ``name`` when given); returns what was removed.

    Call it while holding the lock that serialises writers of ``folder`` (then ``older_than=None``
    is safe), or give ``older_than`` seconds so that a live writer's temporary file is kept.
    """
    folder = Path(folder)
    removed: List[Path] = []
    if not folder.is_dir():
        return removed
    now = time.time()
    for entry in folder.iterdir():
        if not (entry.name.startswith(".") and TEMP_MARK in entry.name):
            continue
        if name is not None and not entry.name.startswith(f".{name}{TEMP_MARK}"):
            continue
        try:
            if older_than is not None and now - entry.lstat().st_mtime < older_than:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry)
        except OSError:  # gone already, or not ours to remove
            continue
    return removed


class LockBusy(OSError):
    """:func:`file_lock` with ``blocking=False`` found the lock held by another process."""


@contextlib.contextmanager
def file_lock(path: PathLike, blocking: bool = True) -> Iterator[Path]:
    """Hold an exclusive advisory lock on ``path`` (created when missing; ``fcntl.flock``).

    The lock dies with its process (a ``kill -9`` frees it). The holder's pid is written into the
    file for the message of a waiting process. ``blocking=False`` raises :class:`LockBusy`
    (``str``: the holder's pid or ``"?"``) instead of waiting.
    """
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(str(path), os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise LockBusy(holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock
