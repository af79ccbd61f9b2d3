"""The real detectors: SCRFD against InsightFace's own decoder, YuNet against OpenCV's."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.faces.detectors import DetectorSettings, ScrfdDetector, YunetDetector
from pipeline.faces.geometry import letterbox
from pipeline.faces.loading import load_detector
from pipeline.models import load_model

GROUP_FACES = 6
PIXEL_TOLERANCE = 1.0


@pytest.fixture
def scrfd(runtime):
    return load_detector({"face_detector": "det_500m"}, runtime)


@pytest.fixture
def yunet(runtime):
    return load_detector({"face_detector": "yunet", "detector_nms": 0.3}, runtime)


def test_scrfd_finds_the_astronaut_and_the_group(scrfd, astronaut, group_photo):
    assert isinstance(scrfd, ScrfdDetector)
    assert len(scrfd.detect(astronaut)) == 1
    assert len(scrfd.detect(group_photo)) == GROUP_FACES


@pytest.mark.parametrize("size", [640, 320])
def test_scrfd_matches_insightface(runtime, astronaut, group_photo, size):
    from insightface.model_zoo.scrfd import SCRFD

    loaded = load_model(runtime, "det_500m", ("scrfd",))
    ours = ScrfdDetector("det_500m", loaded.session, DetectorSettings(size=size))
    reference = SCRFD(str(loaded.path), session=loaded.session)
    reference.prepare(-1, input_size=(size, size), det_thresh=0.5, nms_thresh=0.4)
    for image in (astronaut, group_photo):
        faces = ours.detect(image)
        boxes, kps = reference.detect(image, input_size=(size, size))
        assert len(faces) == len(boxes) > 0
        np.testing.assert_allclose(np.stack([f.box for f in faces]), boxes[:, :4], atol=PIXEL_TOLERANCE)
        np.testing.assert_allclose(np.stack([f.kps for f in faces]), kps, atol=PIXEL_TOLERANCE)
        np.testing.assert_allclose([f.score for f in faces], boxes[:, 4], atol=1e-4)


def test_yunet_finds_the_astronaut_and_the_group(yunet, astronaut, group_photo):
    assert isinstance(yunet, YunetDetector)
    assert len(yunet.detect(astronaut)) == 1
    assert len(yunet.detect(group_photo)) == GROUP_FACES


def test_yunet_matches_opencv(runtime, yunet, group_photo):
    path = load_model(runtime, "yunet", ("yunet",)).path
    canvas, scale = letterbox(group_photo, 640, 640)
    opencv = cv2.FaceDetectorYN.create(str(path), "", (640, 640), 0.5, 0.3, 5000)
    _, rows = opencv.detect(canvas)
    expected = np.array(sorted(rows.tolist(), key=lambda r: r[0]))
    faces = sorted(yunet.detect(group_photo), key=lambda f: float(f.box[0]))
    assert len(faces) == len(expected)
    boxes = expected[:, :4].copy()
    boxes[:, 2:] += boxes[:, :2]
    np.testing.assert_allclose(np.stack([f.box for f in faces]), boxes / scale, atol=PIXEL_TOLERANCE)
    kps = expected[:, 4:14].reshape(-1, 5, 2) / scale
    np.testing.assert_allclose(np.stack([f.kps for f in faces]), kps, atol=PIXEL_TOLERANCE)


def test_the_threshold_and_size_options_apply(runtime, group_photo):
    strict = load_detector({"face_detector": "det_500m", "detector_score": 0.99}, runtime)
    assert len(strict.detect(group_photo)) < GROUP_FACES
    small = load_detector({"face_detector": "det_500m", "detector_size": 160}, runtime)
    assert small.settings.size == 160
