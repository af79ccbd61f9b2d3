"""Scratch files: a name per holder, and a sweep that removes what dead processes left and
never what a live one holds."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from facefleet.storage.scratch import scratch_dir, scratch_file, sweep


def _age(path, seconds: float = 600) -> None:
    old = time.time() - seconds
    os.utime(path, (old, old))


def test_two_holders_of_one_segment_get_files_of_their_own(tmp_path):
    with (
        scratch_file(tmp_path, "seg-t-00000-00001", ".mp4") as a,
        scratch_file(tmp_path, "seg-t-00000-00001", ".mp4") as b,
    ):
        assert a != b and a.exists() and b.exists()
    assert not a.exists() and not b.exists()


def test_sweep_removes_what_dead_processes_left_and_keeps_what_live_ones_hold(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    dead_file = tmp_path / "ff-seg-x.1-ab.mp4"
    dead_dir = tmp_path / "ff-upload.1-cd"
    dead_part = cache / ".part-abc"
    dead_file.write_bytes(b"x")
    dead_dir.mkdir()
    (dead_dir / "target").write_bytes(b"y")
    dead_part.write_bytes(b"z")
    cached = cache / ("0" * 40)  # a finished cache entry: the cache's own to evict, not the sweep's
    cached.write_bytes(b"c")
    not_ours = tmp_path / "celerybeat-schedule"
    not_ours.write_bytes(b"b")
    # a live process (not this one) holding an old scratch file
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from facefleet.storage.scratch import scratch_file\n"
            "with scratch_file(Path(sys.argv[1]), 'seg-live') as p:\n"
            "    print(p, flush=True); time.sleep(60)",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=os.getcwd(),
    )
    try:
        live = tmp_path / os.path.basename(holder.stdout.readline().strip())
        for path in (dead_file, dead_dir, dead_part, cached, not_ours, live):
            _age(path)
        fresh = tmp_path / "ff-seg-fresh.2-ef.mp4"  # newer than the sweeper's start: left alone
        fresh.write_bytes(b"f")
        assert sweep(tmp_path, older_than=time.time() - 60) == 3
        assert not dead_file.exists() and not dead_dir.exists() and not dead_part.exists()
        assert live.exists() and fresh.exists() and cached.exists() and not_ours.exists()
    finally:
        holder.kill()
        holder.wait()
    assert sweep(tmp_path, older_than=time.time() - 60) == 1  # the holder died: its file goes


def test_a_held_folder_is_kept_while_in_use(tmp_path):
    with scratch_dir(tmp_path, "upload") as folder:
        _age(folder)
        assert sweep(tmp_path, older_than=time.time()) == 0
        assert folder.exists()
    assert not folder.exists()
