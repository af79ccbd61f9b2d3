"""1080p face swap end to end (decode -> detect -> recognise -> swap -> paste -> encode) per
batch size, on the fastest providers this host has and on the CPU, side by side in one run.

For each batch size (``FACEFLEET_INFERENCE_BATCH``: frames per inference call) it prints the
frames per second end to end, the per-frame latency p50/p95 (from a frame's decoding to its
reaching the encoder), which provider ran each model, and which codecs decoded and encoded.

Models: the real detector (det_10g where present, else det_500m: both SCRFD at a 640x640
input) from the model mirrors; the recogniser and swapper are generated with the real
signatures (ArcFace [N,3,112,112] -> 512; inswapper target [N,3,128,128] + source [N,512]
with its emap) unless ``--real-swapper NAME`` names installed weights. The report says which.

    .venv/bin/python bench/bench_gpu.py [--frames 240] [--batches 1,4,8,16] [--hwaccel auto]
    .venv/bin/python bench/bench_gpu.py --smoke   # a few frames at 320x180, batches 1 and 4
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from facefleet.modes.demo import make_sample_video, source_face  # noqa: E402
from pipeline.demux import open_input  # noqa: E402
from pipeline.encode import EncoderSettings, encode_segment  # noqa: E402
from pipeline.frames import Frame, batched  # noqa: E402
from pipeline.hwaccel import Codecs, choose, encoder_coding  # noqa: E402
from pipeline.models import clear_sessions  # noqa: E402
from pipeline.models.sessions import chosen_providers  # noqa: E402
from pipeline.probe import VideoProbe, probe  # noqa: E402
from pipeline.processors import JobInputs, build_chain, prepare_chain  # noqa: E402
from pipeline.reader import read_frames  # noqa: E402
from pipeline.runtime import Runtime  # noqa: E402
from tests.faces.models import RECOGNIZER, SWAPPER, generated_options, write_test_models  # noqa: E402

GPU_SIDE = ("auto",)
CPU_SIDE = ("CPUExecutionProvider",)


def _detector(mirrors: list[str]) -> str:
    return "det_10g" if any((Path(m) / "det_10g.onnx").is_file() for m in mirrors) else "det_500m"


def _stamped(frames: Iterator[Frame], stamps: dict[int, float]) -> Iterator[Frame]:
    for frame in frames:
        stamps[frame.index] = time.perf_counter()
        yield frame


def codecs_used(clip: Path, video: VideoProbe, codecs: Codecs) -> str:
    """The decoder and encoder that really ran: a frame decoded on the device comes back in
    the device's layout (NV12/P010), one FFmpeg decoded in software in the CPU decoder's; the
    encoder as ``encode_segment`` takes it for the coded pixel format (an NVENC that cannot
    open fails the pass instead)."""
    device = codecs.decode_device_for(video.codec)
    decoder = f"{video.codec} (CPU)"
    if device is not None:
        try:
            with open_input(clip, hw_device=device) as container:
                frame = next(container.decode(video=0))
            if frame.format.name != video.pix_fmt:
                decoder = f"{video.codec} on NVDEC ({frame.format.name})"
        except (av.FFmpegError, StopIteration) as exc:  # the reader falls back to the CPU too
            decoder = f"{video.codec} (CPU: {device} did not open: {exc})"
    return f"decoder {decoder}, encoder {encoder_coding(codecs.encoder_for('libx264'), 'yuv420p')}"


def run(clip: Path, runtime: Runtime, options: dict, source: Path, batch: int, codecs: Codecs) -> dict:  # type: ignore[type-arg]
    """One pass over the clip: fps end to end and the frames' inter-arrival at the encoder."""
    video = probe(clip)
    assets = prepare_chain(["face_swapper"], options, JobInputs(sources=(source,)), runtime)
    chain = build_chain(["face_swapper"], {**options, "face_batch": batch}, assets, runtime)
    encoder = EncoderSettings(codec=codecs.encoder_for("libx264"), threads=4)
    frames = read_frames(
        clip, video, 0, len(video.frame_pts), hw_device=codecs.decode_device_for(video.codec)
    )
    decoded: dict[int, float] = {}
    reached: dict[int, float] = {}
    processed = (f for group in batched(_stamped(frames, decoded), batch) for f in chain.process(group))
    with tempfile.TemporaryDirectory() as folder:
        began = time.perf_counter()
        written = encode_segment(_stamped(processed, reached), Path(folder) / "out.mp4", video, encoder)
        seconds = time.perf_counter() - began
    gaps = np.array([reached[i] - decoded[i] for i in reached]) * 1000  # decoded -> at the encoder
    return {
        "fps": written / seconds,
        "p50_ms": float(np.percentile(gaps, 50)),
        "p95_ms": float(np.percentile(gaps, 95)),
        "providers": chosen_providers(),
        "codecs": codecs_used(clip, video, codecs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=240)
    parser.add_argument("--batches", default="1,4,8,16")
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--hwaccel", choices=["auto", "none"], default="auto")
    parser.add_argument("--real-swapper", default=None, help="a swapper model name installed in the mirrors")
    parser.add_argument("--no-cpu", action="store_true", help="skip the CPU side (slow at 1080p)")
    parser.add_argument("--smoke", action="store_true", help="a few small frames, batches 1 and 4")
    args = parser.parse_args()
    if args.smoke:
        args.frames, args.batches, args.width, args.height = 12, "1,4", 320, 180
    batches = [int(b) for b in args.batches.split(",")]
    mirrors = [m for m in os.environ.get("FACEFLEET_MODEL_MIRRORS", "").split(",") if m]
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        manifest = write_test_models(work / "generated")
        clip = make_sample_video(
            work / "clip.mp4", seconds=args.frames / 25, width=args.width, height=args.height
        )
        source = source_face(work / "source.png")
        detector = _detector(mirrors)
        swapper = args.real_swapper or SWAPPER
        options = generated_options(face_detector=detector, swapper_model=swapper)
        codecs = choose(args.hwaccel)
        print(f"clip: {args.frames} frames {args.width}x{args.height}; codecs: {codecs.reason}")
        print(
            f"models: detector {detector} (real weights), recogniser {RECOGNIZER} (generated), "
            f"swapper {swapper} ({'real weights' if args.real_swapper else 'generated, real signature'})"
        )
        # the CPU side: the same pipeline on the CPU's providers and codecs
        sides = [("accelerated", GPU_SIDE, codecs)] + ([] if args.no_cpu else [("cpu", CPU_SIDE, Codecs())])
        print(f"{'side':<12}{'batch':>6}{'fps':>9}{'p50 ms':>9}{'p95 ms':>9}  providers; codecs")
        for name, providers, side_codecs in sides:
            for batch in batches:
                clear_sessions()
                runtime = Runtime(
                    model_dir=work / "models", model_mirrors=tuple(mirrors), model_manifest=manifest,
                    providers=providers, allow_cpu_fallback=True,
                )  # fmt: skip
                result = run(clip, runtime, options, source, batch, side_codecs)
                shown = ", ".join(
                    f"{m}={p.replace('ExecutionProvider', '')}"
                    for m, p in sorted(result["providers"].items())
                )
                print(
                    f"{name:<12}{batch:>6}{result['fps']:>9.1f}{result['p50_ms']:>9.1f}{result['p95_ms']:>9.1f}  {shown}; {result['codecs']}"
                )


if __name__ == "__main__":
    main()
