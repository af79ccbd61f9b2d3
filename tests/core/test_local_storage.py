"""The folder bucket: atomic writes, listing, limits."""

import io

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
