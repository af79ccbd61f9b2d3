"""The swap path against InsightFace's INSwapper and ArcFaceONNX, on generated models."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.faces.loading import load_detector, load_recognizer, load_swapper
from pipeline.faces.models import InSwapper
from pipeline.faces.processors import FACE_SWAPPER
from pipeline.frames import Frame
from pipeline.models import load_model
from pipeline.models.derived import swapper_files
from pipeline.processors import JobInputs

from .models import RECOGNIZER, SWAPPER, SWAPPER_FIXED, generated_options

CROP_TOLERANCE = 1  # grey levels: float rounding in a different warp/blob path
LATENT_TOLERANCE = 1e-5
# Our Umeyama fit and scikit-image's differ by ~1e-6 in the matrix, enough to move a few
# crop pixels by one grey level and the embedding by ~1e-5; identity is what must agree.
EMBEDDING_TOLERANCE = 1e-4
MAX_COSINE_DISTANCE = 1e-6


def _insightface_face(face, embedding):
    from insightface.app.common import Face

    return Face(bbox=face.box, kps=face.kps, det_score=face.score, embedding=embedding)


@pytest.fixture
def options():
    return generated_options(face_detector="det_500m")


def test_recognizer_matches_insightface(runtime, options, astronaut):
    from insightface.model_zoo.arcface_onnx import ArcFaceONNX

    face = load_detector(options, runtime).detect(astronaut)[0]
    recognizer = load_recognizer(options, runtime)
    loaded = load_model(runtime, RECOGNIZER, ("arcface",))
    reference = ArcFaceONNX(str(loaded.path), session=loaded.session)
    ours = recognizer.embed(astronaut, [face.kps])[0]
    theirs = reference.get(astronaut, _insightface_face(face, None))
    theirs = theirs / np.linalg.norm(theirs)
    np.testing.assert_allclose(ours, theirs, atol=EMBEDDING_TOLERANCE)
    assert 1.0 - float(ours @ theirs) < MAX_COSINE_DISTANCE


def test_crop_latent_and_swap_match_insightface(runtime, options, astronaut, group_photo):
    from insightface.model_zoo.inswapper import INSwapper as Reference

    detector, recognizer = load_detector(options, runtime), load_recognizer(options, runtime)
    swapper = load_swapper(options, runtime)
    loaded = load_model(runtime, SWAPPER, ("inswapper",))
    reference = Reference(str(loaded.path), session=loaded.session)
    source_face = detector.detect(astronaut)[0]
    embedding = recognizer.embed(astronaut, [source_face.kps])[0]
    source = _insightface_face(source_face, embedding)
    latent = swapper.latent(embedding)
    expected_latent = source.normed_embedding.reshape(1, -1) @ reference.emap
    np.testing.assert_allclose(
        latent, expected_latent / np.linalg.norm(expected_latent), atol=LATENT_TOLERANCE
    )
    for target_face in detector.detect(group_photo):
        crop, matrix = swapper.align(group_photo, target_face.kps)
        from insightface.utils import face_align

        expected_crop, expected_matrix = face_align.norm_crop2(group_photo, target_face.kps, 128)
        np.testing.assert_allclose(matrix, expected_matrix, atol=1e-4)
        assert np.abs(crop.astype(int) - expected_crop).max() <= CROP_TOLERANCE
        swapped = swapper.run(crop[None], latent)[0]
        expected_swap, _ = reference.get(
            group_photo, _insightface_face(target_face, None), source, paste_back=False
        )
        assert np.abs(swapped.astype(int) - expected_swap).max() <= CROP_TOLERANCE


@pytest.mark.parametrize("model", [SWAPPER, SWAPPER_FIXED])
def test_batched_swap_equals_one_face_at_a_time(runtime, options, group_photo, model, fresh_caches):
    options = {**options, "swapper_model": model}
    detector = load_detector(options, runtime)
    crops = np.stack(
        [load_swapper(options, runtime).align(group_photo, f.kps)[0] for f in detector.detect(group_photo)]
    )
    latent = np.random.default_rng(1).standard_normal((1, 512)).astype(np.float32)
    batched = load_swapper({**options, "face_batch": 8}, runtime)
    loaded = load_model(runtime, model, ("inswapper",))
    _, emap = swapper_files(loaded.path, loaded.spec, runtime.model_dir)
    one_at_a_time = InSwapper(model, loaded.session, emap, batch_size=1)
    np.testing.assert_array_equal(batched.run(crops, latent), one_at_a_time.run(crops, latent))
    # the batch copy is used only where it computes the same: the fixed graph runs per face
    assert (batched.session.get_inputs()[0].shape[0] == 1) == (model == SWAPPER_FIXED)


def test_swapper_processor_batches_equal_single_faces(runtime, options, astronaut, group_photo, tmp_path):
    import cv2

    source = tmp_path / "source.png"
    cv2.imwrite(str(source), astronaut)
    outputs = []
    for batch in (1, 8):
        job = {**options, "face_batch": batch}
        assets = FACE_SWAPPER.prepare(job, JobInputs(sources=(source,)), runtime)
        processor = FACE_SWAPPER.create(job, assets, runtime)
        frames = processor.process(frames_of([group_photo, astronaut]))
        outputs.append([f.image for f in frames])
    for single, batched in zip(*outputs, strict=True):
        np.testing.assert_array_equal(single, batched)
    assert not np.array_equal(outputs[0][0], group_photo)


def test_several_sources_average_into_one_identity(runtime, options, astronaut, group_photo, tmp_path):
    import cv2

    paths = [tmp_path / "a.png", tmp_path / "b.png"]
    cv2.imwrite(str(paths[0]), astronaut)
    cv2.imwrite(str(paths[1]), group_photo)
    one = FACE_SWAPPER.prepare(options, JobInputs(sources=(paths[0],)), runtime)["source_embedding"]
    two = FACE_SWAPPER.prepare(options, JobInputs(sources=tuple(paths)), runtime)["source_embedding"]
    assert two.shape == (512,)
    assert np.isclose(np.linalg.norm(two), 1.0, atol=1e-5)
    assert not np.allclose(one, two)


def frames_of(images):
    return [Frame(index=i, pts=i, image=image.copy()) for i, image in enumerate(images)]
