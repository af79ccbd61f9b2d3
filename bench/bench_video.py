"""Video engine benchmark: throughput, memory and start-up, measured side by side in one run.

Every contender encodes the same generated 720p input with the same x264 settings (crf 18,
preset veryfast, no B-frames, no MB-tree as our segments use, 4 encoder frame threads) and
keeps the audio by stream copy. Rounds are interleaved and the best of ``--rounds`` counts,
so a load spike on a shared machine hits every contender alike:

  * the ffmpeg CLI: ``ffmpeg -i in -c:v libx264 ... -c:a copy -movflags +faststart out``
    (the reference, 1.00x; faststart because our MP4s have their index first by default);
  * ``facefleet run --processors none --workers 1`` (whole command: start-up, probe, plan,
    chunked decode and segment encode, checkpoints, stitch, delivery); target >= 0.90x;
  * a bare PyAV decode -> encode loop in one Python process (FFmpeg's own choice of decoder
    threads: what a PyAV pipeline with nothing else costs);
  * FaceFusion 3.8's default "memory" workflow: one ffmpeg decoding to raw bgr24 on a pipe,
    a second encoding from that pipe (here a direct pipe between the two: no Python between);
  * its "disk" workflow: every frame extracted to PNG with ffmpeg, then merged with ffmpeg
    (first round only: it is several times slower than the rest).

The 20 s input shows the whole command with its fixed costs (start-up, probe, stitch); a
longer input (``--long-seconds``, CLI against ``facefleet run`` only) shows the throughput
a long video gets, where those costs are spread over many frames.

Then the peak resident memory of ``facefleet run`` (the whole process tree, sampled) on a
1-minute and a 10-minute input (ffmpeg testsrc2, small frames, so it stays quick), which
must not grow with the length (within 10 %), and the start-up time of ``facefleet --help``.

Usage: python bench/bench_video.py [--seconds 20] [--long-seconds 60] [--rounds 3] [--long-minutes 10]
                                   [--out bench/out]
"""

from __future__ import annotations

import argparse
import compileall
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from facefleet.demo import make_sample_video  # noqa: E402

CRF, PRESET, THREADS = "18", "veryfast", "4"
X264_PARAMS = "bframes=0:mbtree=0"  # what pipeline.encode gives x264
CLI_X264 = [
    "-c:v",
    "libx264",
    "-crf",
    CRF,
    "-preset",
    PRESET,
    "-x264-params",
    X264_PARAMS,
    "-threads",
    THREADS,
]
QUIET = ["ffmpeg", "-nostdin", "-v", "error", "-y"]
TARGET_RATIO = 0.9
# PNG encoding makes it several times slower than the rest: one round of it tells enough
DISK = "FaceFusion disk (PNG frames, then merge; 1 round)"


def ffmpeg_cli(src: Path, dst: Path) -> None:
    cmd = [*QUIET, "-i", str(src), *CLI_X264, "-c:a", "copy", "-movflags", "+faststart", str(dst)]
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
        options = {"crf": CRF, "preset": PRESET, "x264-params": X264_PARAMS}
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


def best_seconds(
    contenders: dict[str, Callable[[], object]], rounds: int, once: frozenset[str] = frozenset()
) -> dict[str, float]:
    """Each contender once per round, rounds interleaved; the fastest round of each (those in
    ``once`` run in the first round only)."""
    best = {name: float("inf") for name in contenders}
    for number in range(1, rounds + 1):
        times = []
        for name, run in contenders.items():
            if number > 1 and name in once:
                continue
            started = time.perf_counter()
            run()
            seconds = time.perf_counter() - started
            best[name] = min(best[name], seconds)
            times.append(
                f"{name.split(' (')[0].removesuffix(' --processors none --workers 1')} {seconds:.2f}s"
            )
        print(f"  round {number}: " + ", ".join(times) + f"  (load {_load()})", flush=True)
    return best


def generated(path: Path, seconds: float, width: int, height: int) -> Path:
    """A testsrc2 clip with a tone, made by the ffmpeg CLI (kept between runs)."""
    if not path.exists():
        subprocess.run(
            [
                *QUIET,
                *("-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate=25:duration={seconds}"),
                *("-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"),
                *("-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p"),
                *("-c:a", "aac", "-shortest", str(path)),
            ],
            check=True,
        )
    return path


def help_seconds(rounds: int = 5) -> float:
    entry = Path(sys.executable).with_name("facefleet")
    cmd = [str(entry)] if entry.exists() else [sys.executable, "-m", "cli"]
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        subprocess.run([*cmd, "--help"], cwd=ROOT, stdout=subprocess.DEVNULL, check=True)
        best = min(best, time.perf_counter() - started)
    return best


def sample_720p(out: Path, seconds: float) -> Path:
    src = out / f"input-720p-{seconds:g}s.mp4"
    if not src.exists():
        make_sample_video(src, seconds=seconds, width=1280, height=720)
    return src


def _frames_and_rate(src: Path) -> tuple[int, str]:
    with av.open(str(src)) as probe:
        stream = probe.streams.video[0]
        return sum(1 for packet in probe.demux(stream) if packet.size), str(stream.average_rate)


def long_throughput(out: Path, seconds: float, rounds: int) -> None:
    """The CLI against ``facefleet run`` on a longer input: the throughput of a long video."""
    src = sample_720p(out, seconds)
    frames, _ = _frames_and_rate(src)
    print(f"throughput on {src.name} ({frames} frames), same settings, best of {rounds}:")
    contenders: dict[str, Callable[[], object]] = {
        "ffmpeg CLI": lambda: ffmpeg_cli(src, out / "cli-long.mp4"),
        "facefleet run": lambda: facefleet_run(src, out / "facefleet-long.mp4", out / "home-long"),
    }
    best = best_seconds(contenders, rounds)
    reference = frames / best["ffmpeg CLI"]
    for name, taken in best.items():
        print(f"  {name:<46} {frames / taken:7.1f} fps  {frames / taken / reference:5.2f}x the CLI")
    ratio = frames / best["facefleet run"] / reference
    verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
    print(f"  facefleet / ffmpeg CLI = {ratio:.2f} on {seconds:g} s (target >= {TARGET_RATIO}: {verdict})")


def _load() -> str:
    return "/".join(f"{v:.1f}" for v in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the 720p throughput input")
    parser.add_argument(
        "--long-seconds", type=float, default=60.0, help="length of the long 720p input (0: skip it)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the best of each counts")
    parser.add_argument("--long-minutes", type=float, default=10.0, help="length of the long memory input")
    parser.add_argument("--memory-size", default="320x180", help="frame size of the memory inputs")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    # our modules' bytecode, as an installed package ships it (the editable install leaves
    # it to each run, and PYTHONDONTWRITEBYTECODE then makes every run compile them again)
    for package in ("api", "worker", "pipeline", "facefleet", "cli"):
        compileall.compile_dir(ROOT / package, quiet=1)
    print(f"{os.cpu_count()} CPUs, load {_load()} (1/5/15 min); ffmpeg and PyAV's own libx264")
    # an unoptimised interpreter build (pyenv's default) makes start-up ~1.4x slower
    print(f"Python {platform.python_version()} from {sys.base_prefix} ({sys.executable})")

    src = sample_720p(args.out, args.seconds)
    frames, rate = _frames_and_rate(src)
    print(
        f"throughput on {src.name} ({frames} frames, 1280x720, {rate} fps), libx264 crf {CRF} "
        f"{PRESET} {X264_PARAMS} threads={THREADS}, best of {args.rounds}:"
    )
    out = args.out
    contenders: dict[str, Callable[[], object]] = {
        "ffmpeg CLI": lambda: ffmpeg_cli(src, out / "cli.mp4"),
        "facefleet run --processors none --workers 1": lambda: facefleet_run(
            src, out / "facefleet.mp4", out / "home-throughput"
        ),
        "bare PyAV decode -> encode loop": lambda: bare_loop(src, out / "bare.mp4"),
        "FaceFusion memory (ffmpeg | ffmpeg, bgr24)": lambda: facefusion_memory(
            src, out / "memory.mp4", 1280, 720, rate
        ),
        DISK: lambda: facefusion_disk(src, out / "disk.mp4", rate),
    }
    best = best_seconds(contenders, args.rounds, once=frozenset({DISK}))
    reference = frames / best["ffmpeg CLI"]
    for name, seconds in best.items():
        fps = frames / seconds
        print(f"  {name:<46} {fps:7.1f} fps  {fps / reference:5.2f}x the CLI")
    ours = frames / best["facefleet run --processors none --workers 1"]
    verdict = "met" if ours / reference >= TARGET_RATIO else "NOT met"
    print(f"  facefleet / ffmpeg CLI = {ours / reference:.2f} (target >= {TARGET_RATIO}: {verdict})")
    if args.long_seconds > 0:
        long_throughput(args.out, args.long_seconds, max(2, args.rounds - 1))

    width, height = (int(v) for v in args.memory_size.split("x"))
    print(f"peak RSS of facefleet run, whole process tree ({width}x{height}, 25 fps):")
    peaks = {}
    for minutes in (1.0, args.long_minutes):
        video = generated(out / f"input-{minutes:g}min-{width}x{height}.mp4", 60 * minutes, width, height)
        peaks[minutes] = facefleet_run(video, out / f"out-{minutes:g}min.mp4", out / "home-memory")
        print(f"  {minutes:g}-minute input: {peaks[minutes] / 1024:.1f} MiB", flush=True)
    ratio = peaks[args.long_minutes] / peaks[1.0]
    verdict = "met" if ratio <= 1.1 else "NOT met"
    print(f"  {args.long_minutes:g}-minute / 1-minute = {ratio:.2f} (target <= 1.10: {verdict})")
    print(f"facefleet --help: {help_seconds():.3f} s (best of 5; target < 0.3 s)")
    print(f"load at the end {_load()}")


if __name__ == "__main__":
    main()
