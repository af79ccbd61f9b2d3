"""Video engine benchmark: throughput and memory, measured side by side in one run.

Prints, on the same generated 720p input:
  * fps of a bare PyAV decode -> libx264 encode loop (the floor any pipeline pays);
  * fps of `facefleet run --processors none --workers 1` (probe, plan, chunked decode,
    segment encode, checkpoints, stitch);
  * fps of extracting every frame to PNG and then encoding the PNGs (how single-machine
    tools do it);
and the peak RSS of `facefleet run` on a 1-minute against a 10-minute input, which must not
grow with the video's length.

Usage: python bench/bench_video.py [--seconds 20] [--long-minutes 10] [--out bench/out]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from facefleet.demo import make_sample_video  # noqa: E402

ENCODE_OPTIONS = {"crf": "18", "preset": "veryfast", "threads": "4"}


def frame_count(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for packet in container.demux(video=0) if packet.size)


def bare_loop(src: Path, dst: Path) -> None:
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream_in = inp.streams.video[0]
        stream_in.thread_type = "AUTO"
        stream_out = out.add_stream("libx264", rate=stream_in.average_rate, options=ENCODE_OPTIONS)
        stream_out.width, stream_out.height, stream_out.pix_fmt = stream_in.width, stream_in.height, "yuv420p"
        for frame in inp.decode(stream_in):
            frame.pict_type = av.video.frame.PictureType.NONE
            out.mux(stream_out.encode(frame))
        out.mux(stream_out.encode())


def png_roundtrip(src: Path, dst: Path) -> None:
    with tempfile.TemporaryDirectory() as frames_dir:
        with av.open(str(src)) as inp:
            stream_in = inp.streams.video[0]
            stream_in.thread_type = "AUTO"
            rate = stream_in.average_rate
            for index, frame in enumerate(inp.decode(stream_in)):
                cv2.imwrite(f"{frames_dir}/{index:06d}.png", frame.to_ndarray(format="bgr24"))
        names = sorted(os.listdir(frames_dir))
        with av.open(str(dst), "w") as out:
            first = cv2.imread(f"{frames_dir}/{names[0]}")
            stream_out = out.add_stream("libx264", rate=rate, options=ENCODE_OPTIONS)
            stream_out.height, stream_out.width = first.shape[:2]
            stream_out.pix_fmt = "yuv420p"
            for index, name in enumerate(names):
                frame = av.VideoFrame.from_ndarray(cv2.imread(f"{frames_dir}/{name}"), format="bgr24")
                frame.pts, frame.time_base = index, Fraction(1) / rate
                out.mux(stream_out.encode(frame))
            out.mux(stream_out.encode())


def facefleet_run(src: Path, dst: Path, home: Path) -> int:
    """Run the CLI in a child process; returns its peak RSS in KiB.

    The peak is read from the child's own VmHWM while it runs: ru_maxrss of a forked child
    would also count the pages it inherited from this (large) benchmark process.
    """
    shutil.rmtree(home, ignore_errors=True)
    env = dict(os.environ, FACEFLEET_HOME=str(home))
    cmd = [
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
        "--no-progress",
    ]
    child = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
    peak = 0
    while child.poll() is None:
        peak = max(peak, _high_water_kib(child.pid))
        time.sleep(0.02)
    if child.returncode != 0:
        raise SystemExit(f"facefleet run failed on {src} (status {child.returncode})")
    return peak


def _high_water_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def timed(label: str, frames: int, fn) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    fn()
    fps = frames / (time.perf_counter() - started)
    print(f"  {label:<44} {fps:8.1f} fps", flush=True)
    return fps


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the 720p throughput input")
    parser.add_argument("--long-minutes", type=float, default=10.0, help="length of the long memory input")
    parser.add_argument("--memory-size", default="640x360", help="frame size of the memory inputs")
    parser.add_argument("--out", type=Path, default=Path("bench/out"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    src = make_sample_video(args.out / "input-720p.mp4", seconds=args.seconds, width=1280, height=720)
    frames = frame_count(src)
    print(f"throughput on {src} ({frames} frames, 1280x720, libx264 veryfast crf 18, 4 threads):")
    bare = timed("bare PyAV decode -> encode loop", frames, lambda: bare_loop(src, args.out / "bare.mp4"))
    ours = timed(
        "facefleet run --processors none --workers 1",
        frames,
        lambda: facefleet_run(src, args.out / "facefleet.mp4", args.out / "home-throughput"),
    )
    png = timed("extract to PNG, then encode", frames, lambda: png_roundtrip(src, args.out / "png.mp4"))
    print(f"  ratios: facefleet / bare = {ours / bare:.2f}, facefleet / png-roundtrip = {ours / png:.2f}")

    width, height = (int(v) for v in args.memory_size.split("x"))
    print(f"peak memory of facefleet run ({width}x{height}):")
    peaks = {}
    for minutes in (1.0, args.long_minutes):
        video = make_sample_video(
            args.out / f"input-{minutes:g}min.mp4", seconds=60 * minutes, width=width, height=height
        )
        peaks[minutes] = facefleet_run(video, args.out / f"out-{minutes:g}min.mp4", args.out / "home-memory")
        print(f"  {minutes:g}-minute input: {peaks[minutes] / 1024:.1f} MiB peak RSS", flush=True)
    ratio = peaks[args.long_minutes] / peaks[1.0]
    print(f"  ratio {args.long_minutes:g}-minute / 1-minute peak RSS = {ratio:.2f}")


if __name__ == "__main__":
    main()
