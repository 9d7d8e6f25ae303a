"""hgn_pyg.io: atomic writes (the one implementation every stage uses)."""
import os

import pytest

from hgn_pyg.io import atomic_write, atomic_write_bytes, atomic_write_text


def test_writes_replace_and_create_folders(tmp_path):
    p = tmp_path / "a" / "b" / "f.txt"
    atomic_write_text(p, "one")
    atomic_write_text(p, "two")
    assert p.read_text() == "two"
    atomic_write_bytes(p, b"\x00\x01")
    assert p.read_bytes() == b"\x00\x01"
    assert sorted(x.name for x in p.parent.iterdir()) == ["f.txt"]  # no temporary file left
    mask = os.umask(0)
    os.umask(mask)
    assert (p.stat().st_mode & 0o777) == (0o666 & ~mask)  # as open() would create it


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    p = tmp_path / "f.bin"
    atomic_write_bytes(p, b"old")

    def broken(fh):
        fh.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(p, broken)
    with pytest.raises(RuntimeError, match="hook"):
        atomic_write(p, lambda fh: fh.write(b"new"), before_replace=lambda: (_ for _ in ()).throw(RuntimeError("hook")))
    assert p.read_bytes() == b"old"
    assert [x.name for x in tmp_path.iterdir()] == ["f.bin"]


def test_before_replace_runs_with_the_data_on_disk(tmp_path):
    p = tmp_path / "f.txt"
    atomic_write_text(p, "old")
    seen = []
    atomic_write(p, lambda fh: fh.write("new"), text=True, sync_dir=True,
                 before_replace=lambda: seen.append(p.read_text()))
    assert seen == ["old"] and p.read_text() == "new"
