"""The anonymiser on the demo's own clip and on a face crossing the frame (issue 27): faces at
the border, small and in profile, which the demo left unblurred at 3.5 s and 4.5 s, are
blurred now; neither real detector finds a face in any output frame, and the job's gate
(checked with the other detector) passes."""

from __future__ import annotations

import json
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from facefleet.modes.demo import group_photo, make_sample_video
from pipeline.faces.gate import CHECK_SCORE
from pipeline.faces.loading import load_detector
from pipeline.runtime import Runtime
from tests.harness.cli import run_cli
from tests.media import decode_bgr

FPS = 25
WIDTH, HEIGHT = 640, 360
FACE = 120  # the crossing face's side, in pixels
CROSSING = 24  # frames per crossing


@pytest.fixture(scope="module")
def detectors(shared_models, tmp_path_factory):
    runtime = Runtime(model_dir=tmp_path_factory.mktemp("models"), model_mirrors=(str(shared_models),))
    return {
        name: load_detector({"face_detector": name, "detector_score": CHECK_SCORE}, runtime)
        for name in ("det_500m", "yunet")
    }


def _anonymised(
    tmp_path: Path, clip: Path, shared_models: Path, switches: dict[str, str] | None = None
) -> tuple[Path, dict]:
    """``facefleet run`` with the anonymiser (det_500m, the watermark on as by default); the
    output and the run's quality report."""
    output = tmp_path / "blurred.mp4"
    env = {
        "FACEFLEET_MODEL_MIRRORS": str(shared_models),
        "FACEFLEET_QUALITY_SAMPLE_EVERY": "5",
        **(switches or {}),
    }
    result = run_cli(
        tmp_path / "home",
        "run", "--target", str(clip), "--output", str(output),
        "--processors", "face_anonymizer", "--face-detector", "det_500m", "--no-progress",
        env=env, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stderr.splitlines() if line.startswith("quality: "))
    return output, json.loads(line.removeprefix("quality: "))


def _faces_left(frames: list[np.ndarray], detectors: dict) -> dict[int, dict[str, int]]:
    found = {
        i: {name: len(d.detect(image)) for name, d in detectors.items()} for i, image in enumerate(frames)
    }
    return {index: counts for index, counts in found.items() if any(counts.values())}


def test_the_demo_clip_anonymised_shows_no_face(tmp_path, shared_models, detectors):
    clip = make_sample_video(tmp_path / "demo.mp4", seconds=8)  # `make run`'s sample, whole
    output, quality = _anonymised(tmp_path, clip, shared_models)
    # the gate compares the output with the input as marked (against the unmarked input
    # this clip read 29.86 dB outside the faces, under the 30 dB floor)
    assert quality["passed"] is True, quality
    assert quality["face_coverage"] == 0.0
    assert quality["psnr_outside_db"] >= 30, quality
    inputs = decode_bgr(clip)
    # faces to hide: at least three a frame (the half face at the top edge at 2.2 s, which
    # hovers at the detector's threshold for six frames, and those at 3.5 s and 4.5 s included)
    assert sum(len(detectors["yunet"].detect(image)) for image in inputs) >= len(inputs) * 3
    frames = decode_bgr(output)
    assert len(frames) == len(inputs) == 8 * FPS
    assert _faces_left(frames, detectors) == {}


def _crossing_clip(path: Path, face: np.ndarray) -> list[set[str]]:
    """A face crossing a plain background: in through the left edge and out through the
    right, then in through the top and out through the bottom, then back the other ways.
    Written to ``path``; returns the edges that cut the face, frame by frame."""
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    background = np.dstack([60 + xx * 100 // WIDTH, 90 + yy * 60 // HEIGHT, 120 + 0 * xx]).astype(np.uint8)
    paths = [  # (start x, start y) -> (end x, end y) of the face's top-left corner
        ((-FACE, (HEIGHT - FACE) // 2), (WIDTH, (HEIGHT - FACE) // 2)),
        (((WIDTH - FACE) // 2, -FACE), ((WIDTH - FACE) // 2, HEIGHT)),
        ((WIDTH, HEIGHT // 3), (-FACE, HEIGHT // 3)),
        ((WIDTH // 3, HEIGHT), (WIDTH // 3, -FACE)),
    ]
    cuts: list[set[str]] = []
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for (x0, y0), (x1, y1) in paths:
            for step in range(CROSSING):
                t = step / (CROSSING - 1)
                x, y = round(x0 + (x1 - x0) * t), round(y0 + (y1 - y0) * t)
                frame = background.copy()
                left, top = max(x, 0), max(y, 0)
                right, bottom = min(x + FACE, WIDTH), min(y + FACE, HEIGHT)
                cut = set()
                if right > left and bottom > top:
                    frame[top:bottom, left:right] = face[top - y : bottom - y, left - x : right - x]
                    edges = {
                        "left": x < 0,
                        "top": y < 0,
                        "right": x + FACE > WIDTH,
                        "bottom": y + FACE > HEIGHT,
                    }
                    cut = {edge for edge, cuts in edges.items() if cuts}
                cuts.append(cut)
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")):
                    container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return cuts


def test_a_face_entering_and_leaving_through_every_edge_stays_hidden(tmp_path, shared_models, detectors):
    photo = group_photo()
    best = max(detectors["yunet"].detect(photo), key=lambda f: f.score)
    x1, y1, x2, y2 = (int(v) for v in best.box)
    grow = (x2 - x1) // 3  # the head around the face, so the crop looks like one
    crop = photo[max(y1 - grow, 0) : y2 + grow, max(x1 - grow, 0) : x2 + grow]
    clip = tmp_path / "crossing.mp4"
    cuts = _crossing_clip(clip, cv2.resize(crop, (FACE, FACE)))
    inputs = decode_bgr(clip)
    seen = _faces_left(inputs, detectors)
    # the face is there to hide: found in most frames, and while each of the four edges cuts it
    assert len(seen) >= len(inputs) // 2, seen
    assert set().union(*(cuts[index] for index in seen)) == {"left", "top", "right", "bottom"}
    output, quality = _anonymised(tmp_path, clip, shared_models)
    assert _faces_left(decode_bgr(output), detectors) == {}
    assert quality["face_coverage"] == 0.0, quality


def test_the_gate_fails_a_run_whose_anonymiser_left_faces(tmp_path, shared_models):
    clip = make_sample_video(tmp_path / "demo.mp4", seconds=2)
    switch = {"FACEFLEET_TEST_ANONYMIZER_LEAVES_FACES": "1"}  # the anonymiser hides nothing
    _, quality = _anonymised(tmp_path, clip, shared_models, switch)
    assert quality["passed"] is False, quality
    assert quality["face_coverage"] > 0.5, quality
    assert any("still detectable" in reason for reason in quality["reasons"]), quality
