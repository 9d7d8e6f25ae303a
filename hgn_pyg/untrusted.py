"""The one reader of pickle-bearing files a user points us at (like :mod:`hgn_pyg.io`, it imports
nothing of ours but :mod:`hgn_pyg.errors`).

A pickle names the functions that rebuild its objects, so unpickling an arbitrary file runs
arbitrary code. SMPL model files (``.pkl``, and ``.npz`` copies with object arrays), VideoPose3D /
CPN ``.npz`` files (a pickled dict of arrays per key) are pickles, often fetched from third-party
mirrors. Every such file goes through :func:`load_pickle` / :func:`load_npz`, which admit only:

* plain containers and scalars (``dict``, ``list``, ``tuple``, ``set``, ``str``, ``bytes``, numbers);
* NumPy arrays, dtypes and scalars (the exact reconstructor functions NumPy pickles with);
* ``scipy.sparse`` CSC / CSR / COO matrices (SMPL's ``J_regressor``);
* ``copyreg._reconstructor`` and ``_codecs.encode`` (how Python 2 pickles spell the above).

Any other global is refused before it is imported: one :class:`~hgn_pyg.errors.DataError` naming
the file and the refused global. A caller that only needs part of a file may map whole packages to
the inert :class:`Opaque` stand-in (``placeholders=("chumpy",)``: the chumpy arrays of the original
SMPL ``.pkl`` when only its faces are read).

Arrays without objects in an ``.npz`` are read by NumPy with ``allow_pickle=False``.

Byte budget: a pickle is small, but the callables it may name can allocate from a small argument
(``bytearray(3_000_000_000)``, ``ndarray((10**9,))``, ``list(range(10**9))``). Every call the
pickle makes is checked first: no integer argument (a length), no shape product and no ``range``
beyond :data:`MAX_ITEMS`, and the sum of what the calls may allocate within :data:`MAX_ALLOC_BYTES`
per file; otherwise one :class:`~hgn_pyg.errors.DataError`. Data stored in the file itself is
bounded by the file (and, in an ``.npz``, by the member sizes the caller checks from the zip
directory).
"""
from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any, Dict, Iterable, Optional, Sequence, Union

import numpy as np

from hgn_pyg.errors import DataError

__all__ = ["load_pickle", "load_npz", "loads_pickle", "RestrictedUnpickler", "Opaque", "ALLOWED_GLOBALS",
           "MAX_ITEMS", "MAX_ALLOC_BYTES"]

PathLike = Union[str, os.PathLike]

_NUMPY = [(m, n) for m in ("numpy.core.multiarray", "numpy._core.multiarray")
          for n in ("_reconstruct", "scalar")]
_NUMPY += [(m, "_frombuffer") for m in ("numpy.core.numeric", "numpy._core.numeric")]
_NUMPY += [("numpy", "ndarray"), ("numpy", "dtype")]
_SPARSE = [(m, c) for m in ("scipy.sparse", "scipy.sparse.csc", "scipy.sparse._csc", "scipy.sparse.csr",
                            "scipy.sparse._csr", "scipy.sparse.coo", "scipy.sparse._coo")
           for c in ("csc_matrix", "csr_matrix", "coo_matrix")]
_PLAIN = [(m, n) for m in ("builtins", "__builtin__")
          for n in ("object", "dict", "list", "tuple", "set", "frozenset", "int", "float", "complex",
                    "bool", "str", "bytes", "bytearray", "slice", "range")]
#: Exact ``(module, name)`` pairs a pickle may name (a prefix rule would admit callables that run
#: code, e.g. ``numpy.testing`` helpers or ``builtins.eval``).
ALLOWED_GLOBALS = frozenset(_NUMPY + _SPARSE + _PLAIN + [
    ("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor"), ("_codecs", "encode"),
])
#: Largest length, shape product or range a pickled call may ask for: 2**27 items (1 GiB of
#: float64; SMPL's largest array has ~0.4 million).
MAX_ITEMS = 2 ** 27
#: Most bytes the calls of one pickle may allocate together (8 bytes counted per item).
MAX_ALLOC_BYTES = 2 ** 30
_RENAMED = {"__builtin__": "builtins", "copy_reg": "copyreg"}
_HINTS = {"chumpy": "; the original SMPL .pkl stores chumpy arrays: use its chumpy-free copy (the "
                    "'remove chumpy' SMPL file or SMPL_NEUTRAL.npz)"}


class Opaque:
    """Inert stand-in for a refused class a caller chose to skip: it stores what it is given."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _Refused(pickle.UnpicklingError):
    def __init__(self, module: str, name: str):
        super().__init__(f"{module}.{name}")
        self.module, self.name = module, name


class _Budget(pickle.UnpicklingError):
    def __init__(self, what: str):
        super().__init__(what)
        self.what = what


def _items(value: Any, depth: int = 0) -> int:
    """How many items a call argument may make the callee allocate (lengths, shapes, ranges)."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return abs(value)
    if isinstance(value, range):
        return len(value)
    if isinstance(value, (tuple, list)) and depth < 3:
        if value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            prod = 1
            for v in value:
                prod *= max(abs(v), 1)
            return max(prod, max(abs(v) for v in value))
        return max((_items(v, depth + 1) for v in value), default=0)
    if isinstance(value, dict) and depth < 3:
        return max((_items(v, depth + 1) for v in value.values()), default=0)
    return 0


class _Wrapped:
    """A guarded allowed global: calling it checks the budget; ``cls`` is the original."""

    __slots__ = ("cls", "_call")

    def __init__(self, cls: Any, call: Any):
        self.cls, self._call = cls, call

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._call(*args, **kwargs)


class RestrictedUnpickler(pickle.Unpickler):
    """A :class:`pickle.Unpickler` that resolves only :data:`ALLOWED_GLOBALS` (see the module doc).

    Args:
        file: a binary file object.
        placeholders: top-level package names whose globals become :class:`Opaque`.
    """

    def __init__(self, file: Any, placeholders: Sequence[str] = (), encoding: str = "latin1"):
        super().__init__(file, encoding=encoding)
        self._placeholders = frozenset(placeholders)
        self._spent = 0

    def _guarded(self, fn: Any, label: str) -> Any:
        """``fn`` behind the byte budget of the module doc. Builtin and NumPy classes become guarded
        callables too (unwrapped again where another allowed call takes them as arguments, e.g.
        ``_reconstruct(ndarray, ...)``); scipy.sparse classes stay classes (pickle's NEWOBJ needs a
        class, and ``__new__`` allocates nothing)."""
        if isinstance(fn, type) and fn.__module__ not in ("builtins", "numpy"):
            return fn

        def call(*args: Any, **kwargs: Any) -> Any:
            args = tuple(a.cls if isinstance(a, _Wrapped) else a for a in args)
            n = max(_items(list(args)), _items(kwargs))
            if n > MAX_ITEMS:
                raise _Budget(f"a call to {label} asks for {n} items (at most {MAX_ITEMS}, MAX_ITEMS in "
                              "hgn_pyg.untrusted)")
            self._spent += 8 * n
            if self._spent > MAX_ALLOC_BYTES:
                raise _Budget(f"the calls of the pickle ask for over {MAX_ALLOC_BYTES} bytes together "
                              "(MAX_ALLOC_BYTES in hgn_pyg.untrusted)")
            return fn(*args, **kwargs)

        return _Wrapped(fn, call)

    def find_class(self, module: str, name: str) -> Any:
        if module.split(".")[0] in self._placeholders:
            return Opaque
        if (module, name) in ALLOWED_GLOBALS:
            module = _RENAMED.get(module, module)
            if module.startswith("numpy.core.") and hasattr(np, "_core"):
                module = "numpy._core." + module[len("numpy.core."):]  # NumPy 2 (no warning)
            return self._guarded(super().find_class(module, name), f"{module}.{name}")
        if module in ("numpy.dtypes", "numpy._core.dtypes") and name.endswith("DType") and name.isidentifier():
            return super().find_class(module, name)  # the dtype classes of NumPy >= 1.25
        raise _Refused(module, name)


def _refusal(path: PathLike, exc: _Refused, key: Optional[str] = None) -> DataError:
    where = f"{path}: [\"{key}\"]" if key is not None else f"{path}"
    return DataError(f"{where}: refused to unpickle the global '{exc.module}.{exc.name}' (only arrays, plain "
                     f"containers and scipy.sparse matrices are admitted: a pickle can run code)"
                     f"{_HINTS.get(exc.module.split('.')[0], '')}")


def _unpickle(fh: Any, path: PathLike, placeholders: Sequence[str], key: Optional[str] = None) -> Any:
    try:
        return RestrictedUnpickler(fh, placeholders).load()
    except _Refused as exc:
        raise _refusal(path, exc, key) from None
    except _Budget as exc:
        where = f" [\"{key}\"]:" if key is not None else ""
        raise DataError(f"{path}:{where} refused: {exc.what}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            ImportError, UnicodeDecodeError, RecursionError, MemoryError) as exc:
        where = f" [\"{key}\"]" if key is not None else ""
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}:{where} not a readable pickle ({type(exc).__name__}: {msg[:200]})") from None


def load_pickle(path: PathLike, placeholders: Sequence[str] = ()) -> Any:
    """The object pickled in ``path`` (Python 2 pickles read as latin-1), through the allow-list.

    Raises:
        DataError: missing or unreadable file, a refused global (naming it), a corrupt pickle.
    """
    path = Path(path)
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    with fh:
        return _unpickle(fh, path, placeholders)


def loads_pickle(data: bytes, source: str = "<bytes>", placeholders: Sequence[str] = ()) -> Any:
    """:func:`load_pickle` for bytes in memory (``source`` names them in errors)."""
    return _unpickle(io.BytesIO(data), source, placeholders)


def _read_npy(fh: Any, path: Path, key: str, placeholders: Sequence[str]) -> np.ndarray:
    fmt = np.lib.format
    version = fmt.read_magic(fh)
    if version == (1, 0):
        _, _, dtype = fmt.read_array_header_1_0(fh)
    elif version == (2, 0):
        _, _, dtype = fmt.read_array_header_2_0(fh)
    else:  # 3.0 (UTF-8 field names): NumPy has no public reader of its header
        reader = getattr(fmt, "_read_array_header", None)
        if reader is None:  # NumPy 2
            from numpy.lib import _format_impl as impl

            reader = impl._read_array_header
        _, _, dtype = reader(fh, version)
    if dtype.hasobject:  # NumPy stores object arrays as one pickle of the array
        arr = _unpickle(fh, path, placeholders, key)
        if not isinstance(arr, np.ndarray):
            raise DataError(f"{path}: [\"{key}\"]: expected an array, found {type(arr).__name__}")
        return arr
    fh.seek(0)
    return fmt.read_array(fh, allow_pickle=False)


def load_npz(path: PathLike, keys: Optional[Iterable[str]] = None,
             placeholders: Sequence[str] = ()) -> Dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file by key (all, or ``keys`` that exist); object arrays are
    unpickled through the allow-list, the others read by NumPy without pickle.

    Raises:
        DataError: missing file, not an ``.npz``, a refused global (naming file, key and global).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    want = None if keys is None else set(keys)
    out: Dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for member in zf.namelist():
                key = member[:-4] if member.endswith(".npy") else member
                if want is not None and key not in want:
                    continue
                with zf.open(member) as fh:
                    out[key] = _read_npy(fh, path, key, placeholders)
    except DataError:
        raise
    except Exception as exc:  # zip, zlib, header and format errors of a truncated or foreign file
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: not a readable .npz file ({type(exc).__name__}: {msg[:200]})") from None
    return out
