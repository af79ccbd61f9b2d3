"""Video engine benchmark: throughput, output size and quality, memory and start-up, each
ratio measured side by side in one run.

The reference is the ffmpeg CLI as a user runs it: its defaults (MB-tree, the preset's
lookahead) plus the user-facing options we are asked for, the same CRF, preset, no B-frames
and 4 threads, audio copied::

  ffmpeg -i in -c:v libx264 -preset veryfast -crf 18 -bf 0 -threads 4 -pix_fmt yuv420p -c:a copy out

Contenders, on the same input, rounds interleaved, the best of ``--rounds`` counting (a load
spike on a shared machine then hits every contender alike):

  * ``facefleet run --processors none --workers 1 --crf 18 --preset veryfast`` (the whole
    command: start-up, probe, plan, chunked decode and segment encode, checkpoints, stitch,
    a faststart MP4 delivered); targets >= 0.95x the CLI's throughput on 20 s, >= 1.0x on
    60 s, and an output <= 1.05x the CLI's size with a PSNR no lower;
  * a bare PyAV decode -> encode loop in one Python process, same x264 settings, no audio;
  * FaceFusion 3.8's default "memory" workflow: one ffmpeg decoding to raw bgr24 on a pipe,
    a second encoding from it with the CLI's settings (a direct pipe: no Python between);
  * its "disk" workflow: every frame to PNG with ffmpeg, then merged (first round only).

Each output's size is set against the CLI's, and its PSNR against the input (ffmpeg's psnr
filter, all planes): the same CRF must cost the same bits for the same quality.

Inputs (made once, kept in ``--out``): footage-like, a real photograph panned and zoomed
with grain (``bench/footage.py``), 20 s and ``--long-seconds`` of it; and a generated
pattern (testsrc2), 20 s. Then the peak resident memory of ``facefleet run`` (the whole
process tree, sampled) on a 1-minute and a 10-minute input (small frames, so it stays
quick), which must not grow with the length (within 10 %), and the start-up time of
``facefleet --help``.

Usage: python bench/bench_video.py [--seconds 20] [--long-seconds 60] [--rounds 3] [--long-minutes 10]
                                   [--out bench/out] [--no-pattern] [--no-disk] [--smoke]

``--smoke``: every step once on a 1-second 160x96 input, one round, no long inputs (the
suite runs it so that the bench keeps working; its figures mean nothing).
"""

from __future__ import annotations

import argparse
import compileall
import os
import platform
import re
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import av

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.contenders import (  # noqa: E402
    CLI_X264,
    bare_loop,
    facefleet_run,
    facefusion_disk,
    facefusion_memory,
    ffmpeg_cli,
)
from bench.footage import QUIET, footage, pattern  # noqa: E402

TARGETS = {"throughput": 0.95, "long throughput": 1.0, "size": 1.05}
OURS = "facefleet run"
CLI = "ffmpeg CLI"
# PNG encoding makes it several times slower than the rest: one round of it tells enough
DISK = "FaceFusion disk (PNG, 1 round)"


def best_seconds(
    contenders: dict[str, Callable[[], object]], rounds: int, once: frozenset[str] = frozenset()
) -> tuple[dict[str, float], dict[str, float]]:
    """Each contender once per round, rounds interleaved, in reverse order every other round
    (a load that rises or falls during a round then favours no one); the fastest round of
    each, in wall-clock and in CPU seconds (those in ``once`` run in the first round only).

    CPU seconds (the bench's own process and its children, user and system) are what a run
    costs whatever else shares the cores: under load, wall time also depends on how many
    threads each contender has to claim a share with."""
    best = {name: float("inf") for name in contenders}
    best_cpu = dict(best)
    for number in range(1, rounds + 1):
        times = []
        order = list(contenders.items())
        for name, run in order if number % 2 else reversed(order):
            if number > 1 and name in once:
                continue
            cpu_before, started = _cpu_seconds(), time.perf_counter()
            run()
            seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu_before
            best[name], best_cpu[name] = min(best[name], seconds), min(best_cpu[name], cpu)
            times.append(f"{name.split(' (')[0]} {seconds:.2f}s ({cpu:.1f} CPU s)")
        print(f"  round {number}: " + ", ".join(times) + f"  (load {_load()})", flush=True)
    return best, best_cpu


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def generated(path: Path, seconds: float, width: int, height: int) -> Path:
    """A small testsrc2 clip with a tone, for the memory measurement (kept between runs)."""
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


def frames_and_rate(src: Path) -> tuple[int, str]:
    with av.open(str(src)) as probe:
        stream = probe.streams.video[0]
        return sum(1 for packet in probe.demux(stream) if packet.size), str(stream.average_rate)


def psnr(encoded: Path, source: Path) -> float:
    """PSNR of ``encoded`` against ``source``, all planes (ffmpeg's psnr filter, "average")."""
    result = subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-i",
            str(encoded),
            "-i",
            str(source),
            "-lavfi",
            "[0:v][1:v]psnr",
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"PSNR y:\S+ u:\S+ v:\S+ average:(\S+)", result.stderr)
    if found is None:
        raise SystemExit(f"no PSNR for {encoded}: {result.stderr[-500:]}")
    return float(found.group(1))


def compare(
    title: str, src: Path, contenders: dict[str, tuple[Callable[[], object], Path]], rounds: int
) -> dict[str, float]:
    """Time the contenders side by side, then set each one's fps, size and PSNR against the
    CLI's; returns our ratios (throughput, size) and the PSNR difference."""
    frames, rate = frames_and_rate(src)
    print(f"{title}: {src.name} ({frames} frames, {rate} fps), best of {rounds}:", flush=True)
    once = frozenset({DISK})
    best, best_cpu = best_seconds({name: run for name, (run, _) in contenders.items()}, rounds, once)
    reference_fps = frames / best[CLI]
    reference_size = contenders[CLI][1].stat().st_size
    reference_psnr = psnr(contenders[CLI][1], src)
    ratios: dict[str, float] = {}
    print(f"  {'':<40} {'fps':>7} {'speed':>6} {'CPU s':>6} {'MB':>7} {'size':>6} {'PSNR dB':>8}")
    for name, (_, output) in contenders.items():
        fps = frames / best[name]
        size = output.stat().st_size
        quality = reference_psnr if name == CLI else psnr(output, src)
        print(
            f"  {name:<40} {fps:7.1f} {fps / reference_fps:5.2f}x {best_cpu[name]:6.1f} "
            f"{size / 1e6:7.2f} {size / reference_size:5.2f}x {quality:8.2f}",
            flush=True,
        )
        if name == OURS:
            ratios = {
                "throughput": fps / reference_fps,
                "cpu": best_cpu[name] / best_cpu[CLI],
                "size": size / reference_size,
                "psnr": quality - reference_psnr,
            }
    return ratios


def verdict(label: str, ratios: dict[str, float], throughput_target: float) -> None:
    speed, size, quality = ratios["throughput"], ratios["size"], ratios["psnr"]
    met = speed >= throughput_target and size <= TARGETS["size"] and quality >= -0.005
    print(
        f"  {label}: facefleet / ffmpeg CLI: throughput {speed:.2f}x (target >= {throughput_target}; "
        f"CPU time {ratios['cpu']:.2f}x), "
        f"size {size:.2f}x (target <= {TARGETS['size']}), PSNR {quality:+.2f} dB (target >= 0): "
        f"{'met' if met else 'NOT met'}"
    )


def contenders_for(
    src: Path, out: Path, tag: str, *, everyone: bool, disk: bool
) -> dict[str, tuple[Callable[[], object], Path]]:
    """name -> (a run, the file it writes); the CLI and us always, the others if ``everyone``."""
    _, rate = frames_and_rate(src)
    with av.open(str(src)) as probe:
        width, height = probe.streams.video[0].width, probe.streams.video[0].height
    paths = {name: out / f"{tag}-{slug}.mp4" for name, slug in NAMES.items()}
    runs: dict[str, tuple[Callable[[], object], Path]] = {
        CLI: (lambda: ffmpeg_cli(src, paths[CLI]), paths[CLI]),
        OURS: (lambda: facefleet_run(src, paths[OURS], out / f"home-{tag}"), paths[OURS]),
    }
    if everyone:
        runs[BARE] = (lambda: bare_loop(src, paths[BARE]), paths[BARE])
        runs[MEMORY] = (lambda: facefusion_memory(src, paths[MEMORY], width, height, rate), paths[MEMORY])
        if disk:
            runs[DISK] = (lambda: facefusion_disk(src, paths[DISK], rate), paths[DISK])
    return runs


BARE = "bare PyAV loop (video only)"
MEMORY = "FaceFusion memory (ffmpeg | ffmpeg)"
NAMES = {CLI: "cli", OURS: "facefleet", BARE: "bare", MEMORY: "memory", DISK: "disk"}


def _load() -> str:
    return "/".join(f"{v:.1f}" for v in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the 720p inputs")
    parser.add_argument(
        "--long-seconds", type=float, default=60.0, help="length of the long footage input (0: skip it)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the best of each counts")
    parser.add_argument("--size", default="1280x720", help="frame size of the throughput inputs")
    parser.add_argument(
        "--long-minutes", type=float, default=10.0, help="length of the long memory input (0: skip)"
    )
    parser.add_argument("--memory-size", default="320x180", help="frame size of the memory inputs")
    parser.add_argument("--no-pattern", action="store_true", help="skip the generated pattern")
    parser.add_argument("--no-disk", action="store_true", help="skip FaceFusion's disk workflow")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument(
        "--smoke", action="store_true", help="tiny inputs, one round (a check, not a measure)"
    )
    args = parser.parse_args()
    if args.smoke:
        args.seconds, args.long_seconds, args.rounds, args.size, args.long_minutes = (
            1.0,
            0.0,
            1,
            "160x96",
            0.0,
        )
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    # our modules' bytecode, as an installed package ships it (the editable install leaves
    # it to each run, and PYTHONDONTWRITEBYTECODE then makes every run compile them again)
    for package in ("api", "worker", "pipeline", "facefleet", "cli"):
        compileall.compile_dir(ROOT / package, quiet=1)
    print(
        f"{os.cpu_count()} CPUs, load {_load()} (1/5/15 min); ffmpeg {_cli_version()}, PyAV {av.__version__}"
    )
    # an unoptimised interpreter build (pyenv's default) makes start-up ~1.4x slower
    print(f"Python {platform.python_version()} from {sys.base_prefix} ({sys.executable})")
    print(f"reference: ffmpeg -i in {' '.join(CLI_X264)} -pix_fmt yuv420p -c:a copy out.mp4")
    print(f"facefleet run: {_chunking()}")
    width, height = (int(v) for v in args.size.split("x"))
    seconds = args.seconds

    src = footage(out / f"footage-{args.size}-{seconds:g}s.mp4", seconds, width, height)
    contenders = contenders_for(src, out, "footage", everyone=True, disk=not args.no_disk)
    ratios = compare("footage-like (photograph panned and zoomed, grain)", src, contenders, args.rounds)
    verdict(f"footage {seconds:g} s", ratios, TARGETS["throughput"])
    if not args.no_pattern:
        src = pattern(out / f"pattern-{args.size}-{seconds:g}s.mp4", seconds, width, height)
        contenders = contenders_for(src, out, "pattern", everyone=False, disk=False)
        ratios = compare("generated pattern (testsrc2)", src, contenders, args.rounds)
        verdict(f"pattern {seconds:g} s", ratios, TARGETS["throughput"])
    if args.long_seconds > 0:
        src = footage(
            out / f"footage-{args.size}-{args.long_seconds:g}s.mp4", args.long_seconds, width, height
        )
        contenders = contenders_for(src, out, "long", everyone=False, disk=False)
        ratios = compare("footage-like, long", src, contenders, max(2, args.rounds - 1))
        verdict(f"footage {args.long_seconds:g} s", ratios, TARGETS["long throughput"])

    if args.long_minutes > 0:
        memory(out, args.memory_size, args.long_minutes)
    help_rounds = 1 if args.smoke else 5
    print(f"facefleet --help: {help_seconds(help_rounds):.3f} s (best of {help_rounds}; target < 0.3 s)")
    print(f"load at the end {_load()}")


def memory(out: Path, size: str, long_minutes: float) -> None:
    """Peak RSS of ``facefleet run`` on a 1-minute and a long input: it must not grow."""
    width, height = (int(v) for v in size.split("x"))
    print(f"peak RSS of facefleet run, whole process tree ({width}x{height}, 25 fps):")
    peaks = {}
    for minutes in (1.0, long_minutes):
        video = generated(out / f"input-{minutes:g}min-{width}x{height}.mp4", 60 * minutes, width, height)
        peaks[minutes] = facefleet_run(video, out / f"out-{minutes:g}min.mp4", out / "home-memory")
        print(f"  {minutes:g}-minute input: {peaks[minutes] / 1024:.1f} MiB", flush=True)
    ratio = peaks[long_minutes] / peaks[1.0]
    print(
        f"  {long_minutes:g}-minute / 1-minute = {ratio:.2f} (target <= 1.10: {'met' if ratio <= 1.1 else 'NOT met'})"
    )


def _chunking() -> str:
    """The chunk and segment lengths ``facefleet run`` gets here (FACEFLEET_* or the defaults):
    each segment is a fresh x264 stream, whose edges cost some bits and PSNR at the same CRF."""
    from facefleet.config.settings import LimitsSettings

    limits = LimitsSettings()
    return f"chunks of {limits.chunk_frames} frames, segments of {limits.segment_frames}"


def _cli_version() -> str:
    first = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, check=True).stdout
    return first.split()[2] if first else "?"


if __name__ == "__main__":
    main()
