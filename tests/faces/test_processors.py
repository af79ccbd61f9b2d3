"""The chain's face processors on real images: anonymiser, debugger, enhancer, selection, errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.errors import PipelineError
from pipeline.faces.loading import load_detector
from pipeline.faces.processors import FACE_ANONYMIZER, FACE_DEBUGGER, FACE_ENHANCER, FACE_SWAPPER
from pipeline.faces.selection import select_faces
from pipeline.faces.types import Face
from pipeline.frames import Frame
from pipeline.processors import JobInputs, build_chain, prepare_chain

from .models import generated_options


def frames_of(*images: np.ndarray) -> list[Frame]:
    return [Frame(index=i, pts=i, image=image.copy()) for i, image in enumerate(images)]


@pytest.mark.parametrize("mode", ["blur", "pixelate"])
def test_anonymizer_leaves_no_detectable_face(runtime, astronaut, group_photo, mode):
    options = generated_options(face_detector="yunet", anonymizer_mode=mode)
    processor = FACE_ANONYMIZER.create(
        options, FACE_ANONYMIZER.prepare(options, JobInputs(), runtime), runtime
    )
    frames = processor.process(frames_of(astronaut, group_photo))
    detector = load_detector(options, runtime)
    assert len(detector.detect(astronaut)) == 1
    for frame in frames:
        assert detector.detect(frame.image) == []
    assert frames[0].image.shape == astronaut.shape


def test_debugger_draws_boxes(runtime, group_photo):
    options = generated_options()
    frames = FACE_DEBUGGER.create(options, {}, runtime).process(frames_of(group_photo))
    changed = np.any(frames[0].image != group_photo, axis=2)
    assert changed.sum() > 0
    assert changed.mean() < 0.2


def test_enhancer_blends_only_the_faces(runtime, astronaut):
    full = (
        FACE_ENHANCER.create(generated_options(enhancer_blend=1.0), {}, runtime)
        .process(frames_of(astronaut))[0]
        .image
    )
    none = (
        FACE_ENHANCER.create(generated_options(enhancer_blend=0.0), {}, runtime)
        .process(frames_of(astronaut))[0]
        .image
    )
    np.testing.assert_array_equal(none, astronaut)
    changed = np.any(full != astronaut, axis=2)
    assert 0 < changed.mean() < 0.5
    assert not changed[-20:, :].any()  # far from the face nothing moves


def test_chain_of_processors_runs_in_order(runtime, astronaut, group_photo, tmp_path):
    source = tmp_path / "source.png"
    cv2.imwrite(str(source), astronaut)
    names = ["face_swapper", "face_enhancer", "face_debugger"]
    options = generated_options()
    assets = prepare_chain(names, options, JobInputs(sources=(source,)), runtime)
    assert assets["face_swapper.source_embedding"].shape == (512,)
    chain = build_chain(names, options, assets, runtime)
    frames = chain.process(frames_of(group_photo, group_photo))
    assert len(frames) == 2 and not np.array_equal(frames[0].image, group_photo)
    np.testing.assert_array_equal(frames[0].image, frames[1].image)


def test_swapper_without_a_source_is_a_clear_error(runtime):
    with pytest.raises(PipelineError, match="at least one source face image"):
        FACE_SWAPPER.prepare(generated_options(), JobInputs(), runtime)


def test_a_source_without_a_face_is_a_clear_error(runtime, tmp_path):
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((200, 200, 3), 127, np.uint8))
    with pytest.raises(PipelineError, match="no face found in the source image blank.png"):
        FACE_SWAPPER.prepare(generated_options(), JobInputs(sources=(blank,)), runtime)


def test_an_unreadable_source_is_a_clear_error(runtime, tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(PipelineError, match="cannot be read as an image"):
        FACE_SWAPPER.prepare(generated_options(), JobInputs(sources=(text,)), runtime)


def test_reference_selector_needs_a_reference(runtime):
    with pytest.raises(PipelineError, match="needs a reference image"):
        FACE_ANONYMIZER.prepare(generated_options(face_selector="reference"), JobInputs(), runtime)


def test_reference_selector_keeps_the_matching_face(runtime, group_photo, tmp_path):
    detector = load_detector(generated_options(), runtime)
    faces = sorted(detector.detect(group_photo), key=lambda f: float(f.box[0]))
    x1, y1, x2, y2 = faces[2].box.astype(int)
    pad = (x2 - x1) // 2
    reference = tmp_path / "reference.png"
    cv2.imwrite(str(reference), group_photo[max(0, y1 - pad) : y2 + pad, max(0, x1 - pad) : x2 + pad])
    options = generated_options(face_selector="reference", reference_face_distance=0.25)
    assets = FACE_DEBUGGER.prepare(options, JobInputs(reference=reference), runtime)
    processor = FACE_DEBUGGER.create(options, assets, runtime)
    found = processor.finder.find([group_photo])[0]
    assert len(found) == 1
    np.testing.assert_allclose(found[0].box, faces[2].box, atol=1.0)


def _face(x: float, size: float, embedding: list[float] | None = None) -> Face:
    return Face(
        box=np.array([x, 0, x + size, size], np.float32),
        score=0.9,
        kps=np.zeros((5, 2), np.float32),
        embedding=None if embedding is None else np.array(embedding, np.float32),
    )


def test_selection_modes():
    faces = [_face(50, 10, [1, 0]), _face(10, 5, [0, 1]), _face(90, 30, [0.8, 0.6])]
    assert select_faces(faces, "all") == faces
    assert select_faces(faces, "largest") == [faces[2]]
    assert select_faces(faces, "leftmost") == [faces[1]]
    near = select_faces(faces, "reference", np.array([1, 0], np.float32), max_distance=0.3)
    assert near == [faces[0], faces[2]]
    assert select_faces([], "largest") == []
