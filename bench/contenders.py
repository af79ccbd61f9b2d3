"""The contenders of ``bench/bench_video.py``, each run as its users run it: the ffmpeg CLI
with its defaults plus the options asked for, ``facefleet run`` (its process tree's peak
memory sampled), a bare PyAV loop, and FaceFusion's memory and disk workflows."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av

from bench.footage import QUIET

ROOT = Path(__file__).resolve().parent.parent

CRF, PRESET, THREADS = "18", "veryfast", "4"
# the CLI as users run it: x264's defaults (MB-tree, rc-lookahead) and the options asked for
CLI_X264 = ["-c:v", "libx264", "-preset", PRESET, "-crf", CRF, "-bf", "0", "-threads", THREADS]


def ffmpeg_cli(src: Path, dst: Path) -> None:
    cmd = [*QUIET, "-i", str(src), *CLI_X264, "-pix_fmt", "yuv420p", "-c:a", "copy", str(dst)]
    subprocess.run(cmd, check=True)


def facefleet_cmd(src: Path, dst: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "cli",
        "run",
        "--target",
        str(src),
        "--output",
        str(dst),
        "--processors",
        "none",
        "--workers",
        "1",
        "--crf",
        CRF,
        "--preset",
        PRESET,
        "--no-progress",
    ]


def facefleet_run(src: Path, dst: Path, home: Path) -> int:
    """Run the CLI in a child process; returns the peak RSS of its process tree in KiB."""
    shutil.rmtree(home, ignore_errors=True)
    env = dict(os.environ, FACEFLEET_HOME=str(home))
    child = subprocess.Popen(facefleet_cmd(src, dst), env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    peak = 0
    while child.poll() is None:
        peak = max(peak, _tree_rss_kib(child.pid))
        time.sleep(0.02)
    if child.returncode != 0:
        raise SystemExit(f"facefleet run failed on {src} (status {child.returncode})")
    return peak


def _tree_rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` and all its descendants, now (from /proc)."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        total += _status_kib(current, "VmRSS:")
        try:
            with open(f"/proc/{current}/task/{current}/children") as children:
                todo.extend(int(c) for c in children.read().split())
        except OSError:
            pass
    return total


def _status_kib(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def bare_loop(src: Path, dst: Path) -> None:
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream_in = inp.streams.video[0]
        stream_in.thread_type = "AUTO"
        options = {"crf": CRF, "preset": PRESET, "x264-params": "bframes=0"}
        stream_out = out.add_stream("libx264", rate=stream_in.average_rate, options=options)
        stream_out.width, stream_out.height, stream_out.pix_fmt = stream_in.width, stream_in.height, "yuv420p"
        stream_out.codec_context.thread_count = int(THREADS)
        stream_out.codec_context.thread_type = "FRAME"  # as the CLI (PyAV's default is slices)
        for frame in inp.decode(stream_in):
            frame.pict_type = av.video.frame.PictureType.NONE
            out.mux(stream_out.encode(frame))
        out.mux(stream_out.encode())


def facefusion_memory(src: Path, dst: Path, width: int, height: int, rate: str) -> None:
    """Decode to raw bgr24 on a pipe, encode from the pipe (audio copied from the input)."""
    decode = subprocess.Popen(
        [*QUIET, "-i", str(src), "-f", "rawvideo", "-pix_fmt", "bgr24", "-"], stdout=subprocess.PIPE
    )
    encode = [
        *QUIET,
        *("-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{width}x{height}", "-r", rate, "-i", "-"),
        *("-i", str(src), "-map", "0:v", "-map", "1:a?", *CLI_X264, "-pix_fmt", "yuv420p", "-c:a", "copy"),
        str(dst),
    ]
    subprocess.run(encode, stdin=decode.stdout, check=True)
    assert decode.stdout is not None
    decode.stdout.close()
    if decode.wait() != 0:
        raise SystemExit("the decoding ffmpeg failed")


def facefusion_disk(src: Path, dst: Path, rate: str) -> None:
    """Every frame to PNG with ffmpeg, then the PNGs merged into the output with ffmpeg."""
    with tempfile.TemporaryDirectory() as frames:
        subprocess.run([*QUIET, "-i", str(src), "-vsync", "0", f"{frames}/%08d.png"], check=True)
        merge = [
            *QUIET,
            *("-framerate", rate, "-i", f"{frames}/%08d.png", "-i", str(src), "-map", "0:v", "-map", "1:a?"),
            *CLI_X264,
            *("-pix_fmt", "yuv420p", "-c:a", "copy", str(dst)),
        ]
        subprocess.run(merge, check=True)
