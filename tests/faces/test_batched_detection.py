"""Detection over a batch of frames in one call gives each frame exactly what one frame alone gets."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.faces.batched_detection import detect_all
from pipeline.faces.loading import load_detector

from .models import generated_options


@pytest.mark.parametrize("detector_name", ["det_500m", "yunet"])
def test_a_batch_of_frames_is_detected_as_each_frame_alone(runtime, astronaut, group_photo, detector_name):
    detector = load_detector(generated_options(face_detector=detector_name), runtime)
    assert detector.batch_session is not None  # the real detector runs batched, not frame by frame
    frames = [astronaut, group_photo, astronaut[::-1].copy(), np.zeros((200, 300, 3), np.uint8)] * 2
    together = detect_all(detector, frames, detector.batch_session)
    alone = [detector.detect(frame) for frame in frames]
    assert sum(len(faces) for faces in alone) >= 6  # faces were found, in several frames
    for mine, theirs in zip(together, alone, strict=True):
        assert len(mine) == len(theirs)
        for a, b in zip(mine, theirs, strict=True):
            assert np.array_equal(a.box, b.box) and np.array_equal(a.kps, b.kps) and a.score == b.score
