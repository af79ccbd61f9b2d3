"""The folder bucket: atomic writes, listing, limits."""

import io
import os
from pathlib import Path

import pytest

from facefleet.storage.base import StorageError, UploadTooLarge
from facefleet.storage.local import LocalStorage


def test_put_list_get_delete(tmp_path):
    storage = LocalStorage(tmp_path / "bucket")
    src = tmp_path / "a.bin"
    src.write_bytes(b"x" * 1000)
    storage.put_file("tasks/t1/work/segments/00000/00000.mp4", src)
    storage.put_file("tasks/t1/work/segments/00000/00001.mp4", src)
    storage.put_file("tasks/t10/input/target", src)
    assert storage.list("tasks/t1/work/segments/00000/") == [
        "tasks/t1/work/segments/00000/00000.mp4",
        "tasks/t1/work/segments/00000/00001.mp4",
    ]
    assert storage.list("tasks/t1/") == storage.list("tasks/t1/work/")
    assert storage.size("tasks/t10/input/target") == 1000
    storage.delete_prefix("tasks/t1/")
    assert storage.list("tasks/t1/") == []
    assert storage.exists("tasks/t10/input/target")


def test_stream_over_the_limit_leaves_nothing(tmp_path):
    storage = LocalStorage(tmp_path / "bucket")
    with pytest.raises(UploadTooLarge):
        storage.put_stream("big", io.BytesIO(b"y" * 5000), max_bytes=4096)
    assert not storage.exists("big")
    assert list((tmp_path / "bucket").rglob("*")) == []


def test_keys_cannot_escape_the_bucket(tmp_path):
    storage = LocalStorage(tmp_path / "bucket")
    with pytest.raises(StorageError):
        storage.exists("../outside")


def test_missing_object_is_a_clear_error(tmp_path):
    storage = LocalStorage(tmp_path / "bucket")
    with pytest.raises(StorageError, match="no object 'nope'"):
        storage.local_path("nope")


def test_a_stored_file_is_linked_not_copied_and_outlives_its_scratch_name(tmp_path):
    storage = LocalStorage(tmp_path / "bucket")
    scratch = tmp_path / "seg.mp4"
    scratch.write_bytes(b"z" * 3000)
    storage.put_file("tasks/t1/work/segments/00000/00000.mp4", scratch)
    stored = storage.local_path("tasks/t1/work/segments/00000/00000.mp4")
    assert stored.stat().st_ino == scratch.stat().st_ino
    scratch.unlink()
    assert stored.read_bytes() == b"z" * 3000
    assert [p.name for p in stored.parent.iterdir()] == ["00000.mp4"]  # no link left aside


def test_a_file_on_another_file_system_is_copied(tmp_path):
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second file system at /dev/shm")
    storage = LocalStorage(tmp_path / "bucket")
    scratch = shm / f"facefleet-test-{os.getpid()}"
    scratch.write_bytes(b"q" * 2000)
    try:
        storage.put_file("tasks/t1/output.mp4", scratch)
    finally:
        scratch.unlink()
    assert storage.local_path("tasks/t1/output.mp4").read_bytes() == b"q" * 2000
