"""The quality gate's figures (pipeline.quality): sums, the report's shape, thresholds, the
carried faces of the anonymiser."""

from __future__ import annotations

import numpy as np

from pipeline.faces.anonymizer import carry
from pipeline.faces.types import Face
from pipeline.quality import Figures, Thresholds, psnr_db, squared_error_outside, summarise, total


def test_figures_add_up_and_survive_json():
    parts = [
        Figures(samples=2, with_face=2, similarities=[0.9, 0.8], squared_error=10.0, values=100),
        Figures(samples=1, with_face=0, similarities=[], squared_error=5.0, values=50),
    ]
    whole = total(parts)
    assert (whole.samples, whole.with_face, whole.values) == (3, 2, 150)
    assert Figures.from_json(whole.to_json()) == whole


def test_the_report_names_each_threshold_missed():
    figures = Figures(
        samples=4, with_face=4, similarities=[0.5, 0.6, 0.9, 0.95], squared_error=0.0, values=10
    )
    report = summarise(figures, Thresholds())
    assert set(report) == {"id_similarity", "psnr_outside_db", "face_coverage", "passed", "reasons"}
    assert report["id_similarity"] == {"mean": 0.7375, "p05": 0.515, "min": 0.5, "samples": 4}
    assert report["passed"] is False and "identity similarity 0.738" in report["reasons"][0]
    noisy = Figures(samples=1, with_face=1, similarities=[0.9], squared_error=255.0**2 * 10, values=10)
    assert summarise(noisy, Thresholds())["reasons"] == [
        "PSNR outside the faces 0.0 dB is under 30 dB (pixels beyond the faces changed)"
    ]
    left = Figures(samples=5, with_face=1, reverse=True, squared_error=1.0, values=10)
    assert "still detectable in 1 of 5" in summarise(left, Thresholds())["reasons"][0]


def test_psnr_outside_ignores_the_faces():
    before = np.zeros((100, 100, 3), np.uint8)
    after = before.copy()
    after[40:60, 40:60] = 255  # inside the face's reach
    error, values = squared_error_outside(before, after, [np.array([45, 45, 55, 55], np.float32)])
    assert error == 0 and values > 0 and psnr_db(error, values) == float("inf")
    after[0, 0] = 10
    error, values = squared_error_outside(before, after, [np.array([45, 45, 55, 55], np.float32)])
    assert error == 300 and round(psnr_db(error, values), 1) == round(
        10 * np.log10(255**2 / (300 / values)), 1
    )


def _face(x: float) -> Face:
    return Face(box=np.array([x, 0, x + 10, 10], np.float32), score=0.9, kps=np.zeros((5, 2), np.float32))


def test_a_face_missed_in_one_frame_is_carried_from_its_neighbours():
    found = [[_face(0)], [], [_face(1)], [], [], [], [_face(50)]]
    carried = carry(found, frames=2)
    assert [len(faces) for faces in carried] == [1, 1, 1, 1, 2, 1, 1]
    assert carried[1][0].box[0] in (0, 1)
    assert carried[5][0].box[0] == 50  # only what lies within two frames
