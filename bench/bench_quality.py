"""A face job's time with and without the quality gate, side by side in one run (issue 27).

The demo's clip (the group photo panned, 640x360, 25 fps) through ``face_swapper`` in
embedded mode, with the real YuNet detector and generated recogniser and swapper (the real
inswapper cannot be downloaded here; ``--blocks`` gives the generated one more compute, the
real one costs more still, so the gate's share measured here is an upper bound). The two
variants alternate, best of ``--rounds`` each; the gate's share is
``(with - without) / with``, in CPU seconds of the job (the process's, all threads: on a
shared machine wall times move with other users' load far more than the work does).

    .venv/bin/python bench/bench_quality.py [--seconds 8] [--every 30] [--rounds 3] [--smoke]

``--smoke``: 1 second, one round, a tiny generated swapper (a check that it runs, not a figure).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from facefleet.config.options import parse_options  # noqa: E402
from facefleet.config.settings import Settings  # noqa: E402
from facefleet.modes.demo import make_sample_video, source_face  # noqa: E402
from facefleet.modes.embedded import JobRequest, run_job  # noqa: E402
from facefleet.task import segments  # noqa: E402
from tests.faces.models import RECOGNIZER, SWAPPER, write_test_models  # noqa: E402

SHARED_MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"


def one_job(
    folder: Path, clip: Path, source: Path, manifest: Path, every: int, run: int
) -> tuple[float, dict]:
    settings = Settings(
        home=folder / f"home-{every}-{run}",
        model_manifest=manifest,
        model_dir=folder / "models",
        model_mirrors=str(SHARED_MODELS),
        quality_sample_every=every,
    )
    options = parse_options(
        {
            "processors": "face_swapper",
            "face_detector": "yunet",
            "face_recognizer": RECOGNIZER,
            "swapper_model": SWAPPER,
        }
    )
    output = folder / f"out-{every}-{run}.mp4"
    request = JobRequest(target=clip, sources=(source,), reference=None, output=output, options=options)
    started = _cpu_seconds()
    quality = run_job(settings, request).quality
    return _cpu_seconds() - started, quality or {}


GATE_CPU = [0.0]


def _timed_measure(measure):  # type: ignore[no-untyped-def]
    """``measure_segment`` counting its own CPU time (it runs in the segment's thread)."""

    def timed(*args, **kwargs):  # type: ignore[no-untyped-def]
        started = time.thread_time()
        try:
            return measure(*args, **kwargs)
        finally:
            GATE_CPU[0] += time.thread_time() - started

    return timed


def _cpu_seconds() -> float:
    """CPU time of this process, all its threads: a shared, busy machine moves wall times
    far more than the work done (workers=1 runs the job in this process)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--every", type=int, default=Settings().quality_sample_every)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--blocks", type=int, default=4)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--smoke", action="store_true", help="1 s, one round, a tiny model (a check)")
    args = parser.parse_args()
    if args.smoke:
        args.seconds, args.every, args.rounds, args.blocks, args.channels = 1.0, 5, 1, 1, 8
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        clip = make_sample_video(folder / "clip.mp4", seconds=args.seconds)
        source = source_face(folder / "source.png")
        manifest = write_test_models(folder / "generated", args.blocks, args.channels)
        segments.measure_segment = _timed_measure(segments.measure_segment)
        one_job(folder, clip, source, manifest, 0, -1)  # models loaded and cached once
        times: dict[int, list[float]] = {0: [], args.every: []}
        gate_share: list[float] = []
        quality: dict = {}
        for run in range(args.rounds):
            for every in (0, args.every) if run % 2 == 0 else (args.every, 0):
                GATE_CPU[0] = 0.0
                seconds, reported = one_job(folder, clip, source, manifest, every, run)
                times[every].append(seconds)
                if every:
                    gate_share.append(GATE_CPU[0] / seconds)
                quality = reported or quality
        frames = round(args.seconds * 25)
        without, with_gate = min(times[0]), min(times[args.every])
        print(
            f"{frames} frames, 640x360, face_swapper, best of {args.rounds} (each run's CPU seconds: {times})"
        )
        print(f"without the gate: {without:.2f} CPU s")
        print(f"with the gate, every {args.every}th frame: {with_gate:.2f} CPU s")
        print(f"the gate's share: {100 * (with_gate - without) / with_gate:.1f} % of the job's time")
        print(
            "the gate's own CPU time (decoding back and measuring, timed in the job): "
            + ", ".join(f"{100 * share:.1f} %" for share in gate_share)
            + " of its job's"
        )
        print(f"quality: {quality}")


if __name__ == "__main__":
    main()
