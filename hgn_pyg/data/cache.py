"""On-disk cache of precomputed dataset tensors.

A data set's targets (projected 2D inputs, camera-frame joints, coarsened mesh targets) are
computed once and stored as one file of contiguous tensors. The file name carries a key: a hash
of everything the tensors depend on (the input files' size, modification time and content
hash, the subject list, the subsampling, the skip list, the body model file, the mesh hierarchy,
a code-version constant). A changed input gives another key, so a stale file is never read.

Writes are atomic (a temporary file in the same folder, then :func:`os.replace`), and a cache
file that cannot be read back (truncated, corrupted, another format) is treated as a miss: the
caller rebuilds it.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Union

import numpy as np
import torch

from ..errors import DataError
from ..io import atomic_write

log = logging.getLogger(__name__)

#: Files up to this size are hashed in full; larger ones by :data:`_SAMPLE_CHUNKS` evenly spaced
#: chunks (their size and modification time are part of the fingerprint as well).
FULL_HASH_LIMIT = 64 * 1024 * 1024
_SAMPLE_CHUNKS = 64
_CHUNK = 1024 * 1024
_FORMAT = "hgn_pyg.tensor_cache/1"

PathLike = Union[str, os.PathLike]


def file_fingerprint(path: PathLike) -> Dict[str, Any]:
    """Fingerprint of one input file: ``{"name", "size", "mtime_ns", "blake2b"}``.

    The content hash covers the whole file when it is at most :data:`FULL_HASH_LIMIT` bytes,
    otherwise 64 chunks of 1 MiB spread evenly over it (first and last included); size and
    modification time catch every other edit made through the file system.

    Raises:
        DataError: the file does not exist or cannot be read.
    """
    path = Path(path)
    try:
        st = path.stat()
        digest = hashlib.blake2b(digest_size=16)
        with open(path, "rb") as fh:
            if st.st_size <= FULL_HASH_LIMIT:
                for block in iter(lambda: fh.read(_CHUNK), b""):
                    digest.update(block)
            else:
                step = (st.st_size - _CHUNK) / (_SAMPLE_CHUNKS - 1)
                for k in range(_SAMPLE_CHUNKS):
                    fh.seek(int(round(k * step)))
                    digest.update(fh.read(_CHUNK))
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    return {"name": path.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "blake2b": digest.hexdigest()}


def array_digest(arrays: Sequence[Any]) -> str:
    """Hash of a sequence of arrays (NumPy, torch or nested lists): dtype, shape and bytes."""
    digest = hashlib.blake2b(digest_size=16)
    for a in arrays:
        if isinstance(a, torch.Tensor):
            a = a.detach().cpu().numpy()
        a = np.ascontiguousarray(np.asarray(a))
        digest.update(f"{a.dtype.str}{a.shape}".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def hierarchy_signature(hierarchy: Any, levels: Sequence[int]) -> Dict[str, Any]:
    """What mesh targets coarsened through ``hierarchy`` at ``levels`` depend on.

    Covers the real/slot counts of every level, the cluster maps and the permutations (the
    coarse vertex positions of docs/published_model.md §1.3 are a function of the cluster maps alone; the
    permutations are included so that any rebuilt hierarchy gets a fresh cache).
    """
    clusters = [np.asarray(_to_numpy(c)) for c in hierarchy.clusters]
    perms = [np.asarray(_to_numpy(p)) for p in getattr(hierarchy, "perms", [])]
    return {
        "levels": [int(level) for level in levels],
        "num_real": [int(n) for n in hierarchy.num_real],
        "num_slots": [int(n) for n in getattr(hierarchy, "num_slots", [])],
        "clusters": array_digest(clusters),
        "perms": array_digest(perms),
    }


def _to_numpy(x: Any) -> Any:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x


def cache_key(parts: Mapping[str, Any]) -> str:
    """A stable hex key (32 characters) for a JSON-serialisable description of the inputs."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def save_tensors(path: PathLike, tensors: Mapping[str, torch.Tensor], key: str,
                 meta: Optional[Mapping[str, Any]] = None) -> None:
    """Write ``tensors`` (name → tensor) with their ``key`` and ``meta`` atomically to ``path``.

    The data go to a temporary file in the same folder, are flushed to disk, and then replace
    ``path`` in one step, so a reader sees the old file or the new one, never half of one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": _FORMAT,
        "key": key,
        "meta": dict(meta or {}),
        "tensors": {name: t.contiguous() for name, t in tensors.items()},
    }
    atomic_write(path, lambda fh: torch.save(payload, fh))


def load_tensors(path: PathLike, key: str) -> Optional[Dict[str, Any]]:
    """Read a file written by :func:`save_tensors`; ``None`` when it is absent or unusable.

    Returns ``{"tensors": {...}, "meta": {...}}``. A file that is truncated, corrupted, of
    another format or written for another key is reported in the log and ignored (the caller
    rebuilds it); it is never an error.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any corruption: unpickling, zip, EOF, ...
        log.warning("ignoring unreadable cache file %s (%s: %s)", path, type(exc).__name__, exc)
        return None
    if (not isinstance(payload, dict) or payload.get("format") != _FORMAT
            or payload.get("key") != key or not isinstance(payload.get("tensors"), dict)
            or not all(isinstance(t, torch.Tensor) for t in payload["tensors"].values())):
        log.warning("ignoring cache file %s: not written for this key/format", path)
        return None
    return {"tensors": payload["tensors"], "meta": payload.get("meta", {})}


__all__ = [
    "FULL_HASH_LIMIT",
    "file_fingerprint",
    "array_digest",
    "hierarchy_signature",
    "cache_key",
    "save_tensors",
    "load_tensors",
]
