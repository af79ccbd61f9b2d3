"""Faces per second of the swapper path, batch 1 vs batch 8, side by side in one run.

The real inswapper_128 (554 MB) cannot be downloaded here, so this generates a graph with
inswapper's exact signature (target [1,3,128,128], source [1,512], emap initializer) and
a compute trunk of residual 3x3 convolutions at 32x32 (``--channels``, ``--blocks``), and
prints its weight size and FLOPs per face. It goes through the real loading code: manifest,
sha256 check, symbolic-batch rewrite, equality check, cached session. Timed per face:
alignment, the model, and paste-back into the frame (detection excluded: it is the same
for both batch sizes).

    .venv/bin/python bench/bench_faces.py [--faces 32] [--channels 256] [--blocks 8] [--smoke]

``--smoke``: 8 faces through a tiny generated swapper, one repeat (a check, not a measure).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.faces.geometry import paste_back  # noqa: E402
from pipeline.faces.loading import load_swapper  # noqa: E402
from pipeline.faces.masks import box_mask  # noqa: E402
from pipeline.runtime import Runtime  # noqa: E402
from tests.faces.models import SWAPPER, write_test_models  # noqa: E402

FRAME_SHAPE = (720, 1280, 3)
FACE_SPACING = 200
REPEATS = 3


def flops_per_face(channels: int, blocks: int) -> float:
    trunk = blocks * 2 * channels * channels * 9 * 32 * 32
    ends = 2 * 2 * channels * 3 * 16 * 32 * 32 + 2 * 512 * channels
    return float(trunk + ends)


def synthetic_faces(count: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Frames with ``count`` keypoint sets (an ArcFace-like layout, various scales)."""
    rng = np.random.default_rng(0)
    template = np.array([[38.3, 51.7], [73.5, 51.5], [56.0, 71.7], [41.5, 92.4], [70.7, 92.2]], np.float32)
    frames, kps = [], []
    for index in range(count):
        frames.append(rng.integers(0, 255, FRAME_SHAPE, dtype=np.uint8))
        offset = np.array([100 + (index * FACE_SPACING) % 1000, 100 + (index % 3) * 150], np.float32)
        kps.append(template * (1.0 + (index % 4) * 0.3) + offset)
    return frames, kps


def run_once(swapper, frames, kps, latent, mask) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    aligned = [swapper.align(frame, points) for frame, points in zip(frames, kps, strict=True)]
    swapped = swapper.run(np.stack([crop for crop, _ in aligned]), latent)
    for frame, (_, matrix), crop in zip(frames, aligned, swapped, strict=True):
        paste_back(frame, crop, matrix, mask)
    return time.perf_counter() - start


def measure(runtime: Runtime, batch: int, frames, kps, repeats: int = REPEATS) -> float:  # type: ignore[no-untyped-def]
    swapper = load_swapper({"swapper_model": SWAPPER, "face_batch": batch}, runtime)
    latent = swapper.latent(np.ones(512, np.float32) / np.sqrt(512))
    mask = box_mask(swapper.size, 0.1)
    run_once(swapper, frames[:batch], kps[:batch], latent, mask)  # warm
    best = min(run_once(swapper, frames, kps, latent, mask) for _ in range(repeats))
    return len(frames) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=32)
    parser.add_argument("--channels", type=int, default=256)
    parser.add_argument("--blocks", type=int, default=8)
    parser.add_argument("--smoke", action="store_true", help="tiny model, 8 faces, one repeat")
    args = parser.parse_args()
    repeats = 1 if args.smoke else REPEATS
    if args.smoke:
        args.faces, args.channels, args.blocks = 8, 8, 1

    import onnxruntime

    available = onnxruntime.get_available_providers()
    provider_sets = [("CPU", ("CPUExecutionProvider",))]
    if "CUDAExecutionProvider" in available:
        provider_sets.append(("CUDA", ("CUDAExecutionProvider", "CPUExecutionProvider")))
    frames, kps = synthetic_faces(args.faces)
    with tempfile.TemporaryDirectory() as folder:
        manifest = write_test_models(Path(folder), swapper_blocks=args.blocks, swapper_channels=args.channels)
        weights = (Path(folder) / f"{SWAPPER}.onnx").stat().st_size
        print(
            f"generated swapper: {weights / 1e6:.1f} MB of weights, {flops_per_face(args.channels, args.blocks) / 1e9:.2f} "
            f"GFLOPs per face ({args.blocks} residual 3x3 convs x {args.channels} channels at 32x32); "
            f"{args.faces} faces, {FRAME_SHAPE[1]}x{FRAME_SHAPE[0]} frames, best of {repeats}"
        )
        print(f"{'provider':<8} {'batch 1 faces/s':>16} {'batch 8 faces/s':>16} {'ratio 8/1':>10}")
        for label, providers in provider_sets:
            runtime = Runtime(model_dir=Path(folder) / "cache", model_manifest=manifest, providers=providers)
            single = measure(runtime, 1, frames, kps, repeats)
            batched = measure(runtime, 8, frames, kps, repeats)
            print(f"{label:<8} {single:>16.1f} {batched:>16.1f} {batched / single:>10.2f}")


if __name__ == "__main__":
    main()
