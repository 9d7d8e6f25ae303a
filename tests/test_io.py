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


def test_remove_stale_temps_only_removes_ours(tmp_path):
    from hgn_pyg.io import remove_stale_temps

    old = tmp_path / ".last.pth.tar.tmp-ab12"
    old.write_bytes(b"x")
    folder = tmp_path / ".data.tmp-cd34"
    (folder / "annotations").mkdir(parents=True)
    other = tmp_path / ".other.tmp-ef56"
    other.write_bytes(b"x")
    keep = [tmp_path / "last.pth.tar", tmp_path / ".hidden", tmp_path / "x.tmp-1"]
    for k in keep:
        k.write_bytes(b"x")
    assert remove_stale_temps(tmp_path, name="data") == [folder]
    assert remove_stale_temps(tmp_path, older_than=3600) == []  # too young: may be a live writer's
    assert sorted(remove_stale_temps(tmp_path)) == sorted([old, other])
    assert all(k.exists() for k in keep)


def test_file_lock_excludes_a_second_holder(tmp_path):
    from hgn_pyg.io import LockBusy, file_lock

    with file_lock(tmp_path / ".lock"):
        with pytest.raises(LockBusy) as info:
            with file_lock(tmp_path / ".lock", blocking=False):
                pass
        assert str(info.value) == str(os.getpid())
    with file_lock(tmp_path / ".lock", blocking=False):  # released
        pass
