"""`facefleet run --face-selector-mode one --face-selector-order large-small` on a clip with
three faces of different sizes: only the largest face changes; a filter without an attribute
model is refused naming it."""

from fractions import Fraction

import av
import cv2
import numpy as np

from facefleet.modes.demo import source_face
from pipeline.faces.loading import load_detector
from pipeline.runtime import Runtime
from tests.harness.cli import run_cli
from tests.media import decode_bgr

FRAMES = 10
SIZES = ((20, 130, 110), (190, 50, 240), (460, 100, 160))  # (x, y, side) of each face


def _three_faces_clip(path, face_path):
    face = cv2.imread(str(face_path))
    image = np.full((360, 640, 3), 90, np.uint8)
    for x, y, side in SIZES:
        image[y : y + side, x : x + side] = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=25, options={"crf": "18", "preset": "veryfast"})
        video.width, video.height, video.pix_fmt = 640, 360, "yuv420p"
        for index in range(FRAMES):
            frame = av.VideoFrame.from_ndarray(np.roll(image, index, axis=1), format="bgr24")
            frame.pts, frame.time_base = index, Fraction(1, 25)
            container.mux(video.encode(frame))
        container.mux(video.encode())
    return path


def test_one_large_small_changes_only_the_largest_face(tmp_path, shared_models):
    clip = _three_faces_clip(tmp_path / "three.mp4", source_face(tmp_path / "face.png"))
    env = {"FACEFLEET_MODEL_MIRRORS": str(shared_models), "FACEFLEET_WATERMARK": "off"}
    common = ["--target", str(clip), "--no-progress", "--face-detector", "yunet"]
    plain, blurred = tmp_path / "plain.mp4", tmp_path / "blurred.mp4"
    assert run_cli(tmp_path / "home", "run", *common, "--output", str(plain), env=env).returncode == 0
    result = run_cli(
        tmp_path / "home",
        "run",
        *common,
        "--output",
        str(blurred),
        "--processors",
        "face_anonymizer",
        "--face-selector-mode",
        "one",
        "--face-selector-order",
        "large-small",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    detector = load_detector(
        {"face_detector": "yunet", "detector_score": 0.5, "detector_nms": 0.4, "detector_size": 640},
        Runtime(model_dir=tmp_path / "models", model_mirrors=(str(shared_models),)),
    )
    before_frames, after_frames = decode_bgr(plain), decode_bgr(blurred)
    assert len(before_frames) == len(after_frames) == FRAMES
    for before, after in zip(before_frames, after_frames, strict=True):
        faces = sorted(detector.detect(before), key=lambda f: f.area, reverse=True)
        assert len(faces) == 3, "the clip shows three faces in every frame"
        changes = []
        for face in faces:
            x1, y1, x2, y2 = face.box.astype(int)
            inner = (slice(max(0, y1), y2), slice(max(0, x1), x2))
            changes.append(float(np.abs(before[inner].astype(int) - after[inner].astype(int)).mean()))
        assert changes[0] > 8, changes  # the largest face: blurred
        assert max(changes[1:]) < 2, changes  # the other two: as a plain re-encode


def test_a_filter_without_an_attribute_model_is_a_cli_error_naming_it(tmp_path):
    clip = tmp_path / "missing.mp4"
    clip.write_bytes(b"")
    result = run_cli(
        tmp_path / "home",
        "run",
        "--target",
        str(clip),
        "--output",
        str(tmp_path / "out.mp4"),
        "--processors",
        "face_anonymizer",
        "--face-selector-gender",
        "female",
    )
    assert result.returncode != 0
    assert "face_attribute_model" in result.stderr and "--face-selector-gender" in result.stderr, (
        result.stderr
    )
