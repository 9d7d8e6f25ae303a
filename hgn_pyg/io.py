"""Atomic file writes, shared by every stage of hgn_pyg (like :mod:`hgn_pyg.errors`, it imports
nothing of ours).

A file is written to a temporary file in the destination folder (``.<name>.tmp-XXXX``), flushed and ``fsync``-ed, given
the permissions a plain ``open()`` would give it, and then moved over the destination with
:func:`os.replace` (atomic on POSIX file systems): a reader, or a run killed at any moment, sees
the old file or the new one, never half of one.
"""
from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import uuid
import shutil
import tempfile
import time
from pathlib import Path
from typing import IO, Any, Callable, Dict, Iterator, List, Optional, Sequence, Union

__all__ = ["atomic_write", "atomic_write_text", "atomic_write_bytes", "TEMP_MARK", "remove_stale_temps",
           "file_lock", "LockBusy", "ResultWriter", "read_manifest", "open_append", "NoFollowFileHandler",
           "named_os_error", "LOCK_NAME", "JOURNAL_SUFFIX", "MANIFEST_SUFFIX"]

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
    try:  # never through a symbolic link planted in the folder
        fd = os.open(str(path), os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666 & ~_umask())
    except OSError as exc:
        raise named_os_error(exc, path, "cannot open the lock file") from None
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


# ---------------------------------------------------------------------------- errors naming the path
def named_os_error(exc: OSError, path: PathLike, what: str = "cannot write") -> OSError:
    """``exc`` as an :class:`OSError` whose message names ``path`` and says what failed (a disk-full
    ``write()`` error carries no file name of its own)."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno == errno.ELOOP:
        reason = "it is a symbolic link (refused: hgn_pyg never writes through a link)"
    out = OSError(exc.errno, f"{what} {os.fspath(path)}: {reason}")
    return out


class _NamedFile:
    """A file object whose ``write`` errors name the file they are for (disk full, quota)."""

    def __init__(self, fh: IO[Any], final: Path):
        self._fh, self._final = fh, final

    def write(self, data: Any) -> int:
        try:
            return self._fh.write(data)
        except OSError as exc:
            raise named_os_error(exc, self._final) from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fh, name)


# ---------------------------------------------------------------------------- logs
def open_append(path: PathLike, text: bool = True) -> IO[Any]:
    """Open ``path`` for appending (created when missing) without following a symbolic link:
    ``O_NOFOLLOW``, so a log can never be appended to whatever a planted link points at."""
    path = Path(path)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(str(path), flags, 0o666 & ~_umask())
    except OSError as exc:
        raise named_os_error(exc, path, "cannot append to") from None
    return os.fdopen(fd, "a" if text else "ab", encoding="utf-8" if text else None)


class NoFollowFileHandler(logging.FileHandler):
    """A :class:`logging.FileHandler` (append mode) that opens its file with :func:`open_append`."""

    def __init__(self, filename: PathLike):
        super().__init__(filename, mode="a", encoding="utf-8", delay=True)
        self.stream = self._open()

    def _open(self):  # type: ignore[override]
        return open_append(self.baseFilename)


# ---------------------------------------------------------------------------- results as one unit
#: The lock file of an output folder (held while a result is written into it).
LOCK_NAME = ".lock"
#: ``.<result>`` + this: the commit journal, present only while the files of a result are moved
#: into place (a killed commit is finished by the next writer: :meth:`ResultWriter.recover`).
JOURNAL_SUFFIX = ".commit.json"
#: ``<result>`` + this: the manifest naming the files of the complete result (written last).
MANIFEST_SUFFIX = ".manifest.json"


def _lexists_kind(path: Path) -> Optional[str]:
    try:
        st = path.lstat()
    except FileNotFoundError:
        return None
    import stat

    if stat.S_ISLNK(st.st_mode):
        return "link"
    if stat.S_ISDIR(st.st_mode):
        return "dir"
    return "file"


def read_manifest(folder: PathLike, result: str) -> Optional[Dict[str, Any]]:
    """The manifest of ``result`` in ``folder`` (``None`` when there is none or a commit is still
    pending); raises :class:`ValueError` when a listed file is missing or of another size (a result
    that is not whole)."""
    folder = Path(folder)
    if (folder / f".{result}{JOURNAL_SUFFIX}").exists():
        return None
    path = folder / f"{result}{MANIFEST_SUFFIX}"
    if not path.is_file():
        return None
    doc = json.loads(path.read_text())
    for name, entry in doc.get("files", {}).items():
        f = folder / name
        if _lexists_kind(f) != "file" or f.stat().st_size != entry["bytes"]:
            raise ValueError(f"{f}: not the file of result {doc.get('result_id')} the manifest names")
    return doc


class ResultWriter:
    """Write the files of one result into ``folder`` as one unit.

    Every file is written to a temporary file in ``folder`` (created with ``O_EXCL``: never
    through a planted link); :meth:`commit` then records the set in a journal
    (``.<result>.commit.json``, written atomically), moves each file over its final name with
    :func:`os.replace` (which replaces a symbolic link found there instead of following it),
    removes the files of the previous result that the new one does not have, writes
    ``<result>.manifest.json`` (name and size of every file, the ``result_id``) and removes the
    journal. A process killed before the journal exists leaves the previous result whole (its
    temporaries are removed by the next writer); one killed after it leaves a journal that the next
    writer (or :meth:`recover`) rolls forward, so the new result becomes whole. Errors leave the
    previous result as it was.

    Writers of one folder are serialised by a lock (``folder/.lock``, ``fcntl.flock``): a second
    writer fails at once with :class:`LockBusy` (``blocking=False``) or waits.

    Example::

        with ResultWriter(out, "poses_3d") as w:
            with w.open("poses_3d.npz") as fh:
                np.savez(fh, ...)
            w.commit()
    """

    def __init__(self, folder: PathLike, result: str, blocking: bool = False):
        self.folder = Path(folder)
        self.result = result
        self.blocking = blocking
        self.result_id = uuid.uuid4().hex
        self._temps: Dict[str, Path] = {}
        self._stack: Optional[contextlib.ExitStack] = None
        self.committed = False

    # -------------------------------------------------------------- context
    def __enter__(self) -> "ResultWriter":
        if _lexists_kind(self.folder) not in (None, "dir") and not self.folder.is_dir():
            raise OSError(errno.ENOTDIR, f"{self.folder}: exists and is not a folder")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise named_os_error(exc, self.folder, "cannot create the folder") from None
        self._stack = contextlib.ExitStack()
        try:
            self._stack.enter_context(file_lock(self.folder / LOCK_NAME, blocking=self.blocking))
            self.recover()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            for tmp in self._temps.values():
                with contextlib.suppress(OSError):
                    tmp.unlink()
            self._temps.clear()
        finally:
            assert self._stack is not None
            self._stack.close()

    # -------------------------------------------------------------- names
    @property
    def manifest_name(self) -> str:
        return f"{self.result}{MANIFEST_SUFFIX}"

    @property
    def journal(self) -> Path:
        return self.folder / f".{self.result}{JOURNAL_SUFFIX}"

    def existing(self, names: Sequence[str]) -> List[str]:
        """Which of ``names`` (and this result's manifest) exist in the folder — links and
        folders included (``lstat``)."""
        return [n for n in list(names) + [self.manifest_name] if _lexists_kind(self.folder / n) is not None]

    # -------------------------------------------------------------- writing
    def temp_path(self, name: str) -> Path:
        """A new empty temporary file for the final file ``name`` (for writers that want a path)."""
        if "/" in name or name.startswith(".") or name in (LOCK_NAME,):
            raise ValueError(f"ResultWriter: {name!r} is not a plain file name")
        if name in self._temps:
            raise ValueError(f"ResultWriter: {name!r} written twice")
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{name}{TEMP_MARK}", dir=str(self.folder))
        except OSError as exc:
            raise named_os_error(exc, self.folder / name) from None
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())
        self._temps[name] = Path(tmp)
        return Path(tmp)

    @contextlib.contextmanager
    def open(self, name: str, text: bool = False) -> Iterator[IO[Any]]:
        """The temporary file of the final file ``name``, open for writing; errors name ``name``."""
        tmp = self.temp_path(name)
        final = self.folder / name
        try:
            fh = open(tmp, "w" if text else "wb", **({"encoding": "utf-8"} if text else {}))
        except OSError as exc:
            raise named_os_error(exc, final) from None
        try:
            with fh:
                yield _NamedFile(fh, final)  # type: ignore[misc]
                try:
                    fh.flush()
                    os.fsync(fh.fileno())
                except OSError as exc:
                    raise named_os_error(exc, final) from None
        except OSError as exc:
            if exc.filename is None and str(final) not in str(exc):
                raise named_os_error(exc, final) from None
            raise

    def commit(self, before_move: Optional[Callable[[str], Any]] = None) -> List[Path]:
        """Move every written file into place as one unit (class doc); returns the final paths.

        ``before_move(name)`` is called before each move (test hooks)."""
        for name in self._temps:
            if _lexists_kind(self.folder / name) == "dir":
                raise OSError(errno.EISDIR, f"cannot write {self.folder / name}: a folder is in the way")
        old = self._old_files()
        files = {}
        for name, tmp in self._temps.items():
            files[name] = {"bytes": tmp.stat().st_size}
        manifest = {"result": self.result, "result_id": self.result_id, "files": files}
        journal = {"temps": {n: t.name for n, t in self._temps.items()},
                   "remove": sorted(set(old) - set(files)), "manifest": manifest}
        try:
            atomic_write_text(self.journal, json.dumps(journal))
            _fsync_dir(self.folder)
        except OSError as exc:
            raise named_os_error(exc, self.journal) from None
        self._temps.clear()  # from here on the journal owns them
        self._roll_forward(journal, before_move)
        self.committed = True
        return [self.folder / n for n in files]

    # -------------------------------------------------------------- recovery
    def _old_files(self) -> List[str]:
        path = self.folder / self.manifest_name
        if _lexists_kind(path) != "file":
            return []
        try:
            return [n for n in json.loads(path.read_text()).get("files", {}) if "/" not in n]
        except (OSError, ValueError, AttributeError):
            return []

    def _roll_forward(self, journal: Dict[str, Any], before_move: Optional[Callable[[str], Any]] = None) -> None:
        for name, tmp_name in journal["temps"].items():
            tmp = self.folder / tmp_name
            if _lexists_kind(tmp) != "file":
                continue  # moved already by the killed commit
            if before_move is not None:
                before_move(name)
            try:
                os.replace(tmp, self.folder / name)
            except OSError as exc:
                raise named_os_error(exc, self.folder / name) from None
        for name in journal.get("remove", []):
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                (self.folder / name).unlink()
        try:
            atomic_write_text(self.folder / self.manifest_name, json.dumps(journal["manifest"], indent=1) + "\n")
            self.journal.unlink()
        except OSError as exc:
            raise named_os_error(exc, self.folder / self.manifest_name) from None
        _fsync_dir(self.folder)

    def recover(self) -> bool:
        """Finish a commit a killed writer left (its journal), then remove stale temporaries;
        called on entry, under the lock. Returns whether a commit was finished."""
        finished = False
        if _lexists_kind(self.journal) == "file":
            try:
                journal = json.loads(self.journal.read_text())
                ok = isinstance(journal.get("temps"), dict) and isinstance(journal.get("manifest"), dict)
            except (OSError, ValueError, AttributeError):
                ok = False
            if ok and all("/" not in str(t) for t in journal["temps"].values()):
                self._roll_forward(journal)
                finished = True
            else:
                self.journal.unlink()
        elif _lexists_kind(self.journal) is not None:
            self.journal.unlink()  # a link or other thing where the journal belongs
        remove_stale_temps(self.folder)
        return finished
