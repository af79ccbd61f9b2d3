"""Face masks (box, occlusion, area, region) against references written here, independently.

Each reference mask comes from the same generated model, called through onnxruntime directly,
with its own pre- and post-processing: scikit-image's similarity fit, Pillow's warps and
resizes, scipy's Gaussian; the pipeline's comes from ``pipeline.faces`` and ``paste_back``.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image, ImageDraw
from scipy import ndimage
from scipy.spatial import ConvexHull
from skimage.transform import SimilarityTransform

from facefleet.config.options import OptionsError, parse_options
from pipeline.faces.geometry import ARCFACE_TEMPLATE_112, paste_back
from pipeline.faces.loading import load_detector, load_masker, load_swapper
from pipeline.faces.mask_names import AREA_LANDMARKS, REGION_CLASSES
from pipeline.faces.masks import MEAN_FACE_68, box_mask
from pipeline.faces.processors import SWAP_MASK_FEATHER, _aligned_faces
from pipeline.frames import Frame

from .models import OCCLUDER, PARSER, generated_options

MIN_IOU = 0.92
EDGE_SIGMA = 5.0  # FaceFusion's soft edge, in crop pixels


# ---------------------------------------------------------------- the test's own processing


def _similarity(kps: np.ndarray, side: int) -> np.ndarray:
    """3x3: frame -> inswapper crop (the ArcFace template, 8 px to the right in 128)."""
    template = ARCFACE_TEMPLATE_112 * (side / 128) + np.array([8.0 * side / 128, 0.0])
    fit = SimilarityTransform.from_estimate(np.asarray(kps, np.float64), template.astype(np.float64))
    assert fit
    return fit.params


def _pil_affine(array: np.ndarray, to_output: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``array`` warped by ``to_output`` (3x3, OpenCV's pixel-centre convention) with Pillow,
    whose pixel centres sit at +0.5: Pillow is given the output -> input map in its own terms."""
    shift = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
    unshift = np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1]])
    to_input = shift @ np.linalg.inv(to_output) @ unshift
    coefficients = tuple(to_input[:2].ravel())
    image = Image.fromarray(array.astype(np.float32), mode="F") if array.ndim == 2 else Image.fromarray(array)
    warped = image.transform(size, Image.Transform.AFFINE, coefficients, resample=Image.Resampling.BILINEAR)
    return np.asarray(warped)


def _pil_resize(array: np.ndarray, side: int) -> np.ndarray:
    image = Image.fromarray(array.astype(np.float32), mode="F") if array.ndim == 2 else Image.fromarray(array)
    return np.asarray(image.resize((side, side), Image.Resampling.BILINEAR))


def _soft(mask: np.ndarray, sigma: float = EDGE_SIGMA) -> np.ndarray:
    blurred = ndimage.gaussian_filter(
        np.clip(mask, 0, 1).astype(np.float64), sigma, mode="mirror", truncate=4.0
    )
    return (np.clip(blurred, 0.5, 1.0) - 0.5) * 2.0


def _session(manifest, name):  # type: ignore[no-untyped-def]
    return ort.InferenceSession(str(manifest.parent / f"{name}.onnx"), providers=["CPUExecutionProvider"])


def _reference_occlusion(frame: np.ndarray, kps: np.ndarray, session, side: int = 128) -> np.ndarray:  # type: ignore[no-untyped-def]
    to_crop = _similarity(kps, side)
    crop = _pil_affine(frame, to_crop, (side, side))
    blob = _pil_resize(crop, 256).astype(np.float32)[None] / 255.0  # BGR, NHWC, as XSeg takes it
    visible = session.run(None, {session.get_inputs()[0].name: blob})[0][0, :, :, 0].clip(0, 1)
    mask = _soft(_pil_resize(visible, side))
    return _pil_affine(mask, np.linalg.inv(to_crop), (frame.shape[1], frame.shape[0]))


def _reference_region(frame: np.ndarray, kps: np.ndarray, session, regions, side: int = 128) -> np.ndarray:  # type: ignore[no-untyped-def]
    to_crop = _similarity(kps, side)
    crop = _pil_affine(frame, to_crop, (side, side))
    rgb = _pil_resize(crop[:, :, ::-1].copy(), 512).astype(np.float32) / 255.0
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    blob = ((rgb - mean) / std).astype(np.float32).transpose(2, 0, 1)[None]
    logits = session.run(None, {session.get_inputs()[0].name: blob})[0][0]
    chosen = np.isin(logits.argmax(axis=0), [REGION_CLASSES[r] for r in regions]).astype(np.float32)
    mask = _soft(_pil_resize(chosen, side))
    return _pil_affine(mask, np.linalg.inv(to_crop), (frame.shape[1], frame.shape[0]))


def _reference_area(frame: np.ndarray, kps: np.ndarray, areas, side: int = 128) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The areas' hull in the crop: the mean face fitted to the crop's five points, each pixel
    covered by its share of the hull (Pillow on a 16x finer grid, averaged down), the soft edge
    (scipy), warped back into the frame (Pillow)."""
    to_crop = _similarity(kps, side)
    crop_kps = (np.c_[kps, np.ones(len(kps))] @ to_crop.T)[:, :2]
    fit = SimilarityTransform.from_estimate(ARCFACE_TEMPLATE_112.astype(np.float64), crop_kps)
    assert fit
    points = fit(MEAN_FACE_68)[[i for area in areas for i in AREA_LANDMARKS[area]]]
    hull = points[ConvexHull(points).vertices]
    fine = 16
    canvas = Image.new("L", (side * fine, side * fine), 0)
    ImageDraw.Draw(canvas).polygon([tuple((p + 0.5) * fine) for p in hull], fill=255)
    covered = np.asarray(canvas, np.float64).reshape(side, fine, side, fine).mean(axis=(1, 3)) / 255.0
    return _pil_affine(_soft(covered), np.linalg.inv(to_crop), (frame.shape[1], frame.shape[0]))


def _iou(a: np.ndarray, b: np.ndarray, level: float = 0.5) -> float:
    a, b = a > level, b > level
    return float((a & b).sum() / max(1, (a | b).sum()))


def _soft_iou(a: np.ndarray, b: np.ndarray) -> float:
    """The IoU of two soft masks (weighted Jaccard): what the blend sees, at every level."""
    return float(np.minimum(a, b).sum() / max(1e-9, np.maximum(a, b).sum()))


# ---------------------------------------------------------------- the pipeline's masks, in the frame


def _pipeline_masks(frame: np.ndarray, options: dict, runtime):  # type: ignore[no-untyped-def]
    """(faces, the mask of each face in the frame) as the swapper computes and pastes them."""
    detector, swapper = load_detector(options, runtime), load_swapper(options, runtime)
    faces = detector.detect(frame)
    aligned = _aligned_faces([Frame(0, 0, image=frame)], [faces], swapper.align)
    assert aligned is not None
    masks = load_masker(options, runtime, swapper.size, SWAP_MASK_FEATHER).masks(aligned.crops, aligned.kps)
    white = np.full((swapper.size, swapper.size, 3), 255, np.uint8)
    in_frame = [
        paste_back(np.zeros_like(frame), white, matrix, mask)[:, :, 0].astype(np.float32) / 255.0
        for (_, matrix), mask in zip(aligned.places, masks, strict=True)
    ]
    return faces, in_frame, masks, aligned


@pytest.fixture(params=["astronaut", "group_photo"])
def photo(request) -> np.ndarray:  # type: ignore[no-untyped-def]
    image = request.getfixturevalue(request.param)
    return np.ascontiguousarray(np.repeat(np.repeat(image, 2, 0), 2, 1)) if image.shape[0] < 600 else image


def _check(ious: list[float]) -> None:
    assert ious and min(ious) >= MIN_IOU, ious


def test_region_masks_match_a_reference(photo, runtime, manifest, fresh_caches) -> None:
    session = _session(manifest, PARSER)
    for regions in (
        ["skin", "nose"],
        ["skin", "left-eye", "right-eye", "nose", "mouth", "upper-lip", "lower-lip"],
    ):
        options = generated_options(face_mask_types=["region"], face_mask_regions=regions)
        faces, masks, _, _ = _pipeline_masks(photo, options, runtime)
        ious = [
            _iou(m, _reference_region(photo, f.kps, session, regions))
            for f, m in zip(faces, masks, strict=True)
        ]
        print("region", regions, [round(i, 4) for i in ious])
        _check(ious)


def test_occlusion_masks_match_a_reference(photo, runtime, manifest, fresh_caches) -> None:
    session = _session(manifest, OCCLUDER)
    faces, masks, _, _ = _pipeline_masks(photo, generated_options(face_mask_types=["occlusion"]), runtime)
    ious = [_iou(m, _reference_occlusion(photo, f.kps, session)) for f, m in zip(faces, masks, strict=True)]
    print("occlusion", [round(i, 4) for i in ious])
    _check(ious)


def test_area_masks_match_a_reference(photo, runtime, fresh_caches) -> None:
    for areas in (["upper-face", "lower-face", "mouth"], ["lower-face"], ["upper-face"], ["mouth"]):
        options = generated_options(face_mask_types=["area"], face_mask_areas=areas)
        faces, masks, _, _ = _pipeline_masks(photo, options, runtime)
        references = [_reference_area(photo, f.kps, areas) for f in faces]
        soft = [_soft_iou(m, r) for m, r in zip(masks, references, strict=True)]
        print(
            "area",
            areas,
            "soft IoU",
            [round(i, 4) for i in soft],
            "peak",
            [round(float(m.max()), 3) for m in masks],
        )
        _check(soft)
        if areas == ["mouth"]:
            # alone, the mouth is ~29 x 14 crop pixels: FaceFusion's soft edge (sigma 5, the
            # upper half of the ramp kept) leaves it a faint mask, nowhere above ~0.6, so the
            # set above one half is a few pixels or empty and only the soft IoU says anything
            assert all(0.3 < m.max() < 0.7 for m in masks), [m.max() for m in masks]
        else:
            _check([_iou(m, r) for m, r in zip(masks, references, strict=True)])


def test_masks_combine_by_their_minimum_batched_for_every_face(group_photo, runtime, fresh_caches) -> None:
    chosen = {"face_mask_regions": ["skin", "nose"], "face_mask_padding": [10, 0, 5, 0]}
    types = ["box", "occlusion", "area", "region"]
    _, _, combined, aligned = _pipeline_masks(
        group_photo, generated_options(face_mask_types=types, **chosen), runtime
    )
    assert len(combined) >= 4 and combined.shape[1:] == (128, 128)
    alone = [
        _pipeline_masks(group_photo, generated_options(face_mask_types=[t], **chosen), runtime)[2]
        for t in types
    ]
    np.testing.assert_array_equal(combined, np.clip(np.minimum.reduce(alone), 0, 1))
    assert all(not np.array_equal(combined, a) for a in alone)  # each mask takes its part
    # all faces at once give what each face alone gives
    options = generated_options(face_mask_types=types, **chosen)
    masker = load_masker(options, runtime, 128, SWAP_MASK_FEATHER)
    for index in range(len(aligned.crops)):
        one = masker.masks(aligned.crops[index : index + 1], aligned.kps[index : index + 1])[0]
        np.testing.assert_allclose(one, combined[index], atol=1e-5)


def test_the_box_alone_is_the_mask_pasted_before() -> None:
    """Today's box (a feather of 0.1 of 128 pixels, no padding), to the byte."""
    before = np.zeros((128, 128), np.float32)
    before[12:116, 12:116] = 1.0
    import cv2

    np.testing.assert_array_equal(box_mask(128, 0.1), cv2.GaussianBlur(before, (0, 0), sigmaX=6.0))
    padded = box_mask(128, 0.1, (25, 0, 10, 50))
    assert padded[:32].max() < 0.5 and padded[-12:].max() < 0.5 and padded[:, :64].max() < 0.5
    assert padded[70, 100] > 0.99


def test_mask_options_are_checked_as_the_api_checks_them() -> None:
    options = parse_options({"face_mask_types": ["box", "region"], "face_mask_padding": [10, 5]})
    assert options.face_mask_padding == [10, 5, 10, 5] and options.face_mask_types == ["box", "region"]
    assert parse_options({}).face_mask_types == ["box"]
    for bad, field in (
        ({"face_mask_types": ["occluder"]}, "face_mask_types"),
        ({"face_mask_types": []}, "face_mask_types"),
        ({"face_mask_regions": ["hair"]}, "face_mask_regions"),
        ({"face_mask_areas": ["eyes"]}, "face_mask_areas"),
        ({"face_mask_padding": [60, 0, 50, 0]}, "face_mask_padding"),
        ({"face_mask_blur": 1.5}, "face_mask_blur"),
    ):
        with pytest.raises(OptionsError, match=field):
            parse_options(bad)


def test_a_run_with_box_and_region_masks_writes_its_output(tmp_path, shared_models) -> None:
    import av

    from facefleet.modes.demo import make_sample_video, source_face
    from tests.harness.cli import run_cli

    from .models import RECOGNIZER, SWAPPER, write_test_models

    clip = make_sample_video(tmp_path / "clip.mp4", seconds=0.4, width=640, height=360)
    env = {
        "FACEFLEET_MODEL_MANIFEST": str(write_test_models(tmp_path / "generated")),
        "FACEFLEET_MODEL_DIR": str(tmp_path / "models"),
        "FACEFLEET_MODEL_MIRRORS": str(shared_models),
    }
    output = tmp_path / "masked.mp4"
    result = run_cli(
        tmp_path / "home",
        "run",
        *("--target", str(clip), "--output", str(output), "--no-progress"),
        *("--processors", "face_swapper", "--source", str(source_face(tmp_path / "source.png"))),
        *("--face-detector", "yunet", "--face-recognizer", RECOGNIZER, "--swapper-model", SWAPPER),
        *("--face-mask-types", "box", "region", "--face-mask-regions", "skin", "nose"),
        *("--face-parser-model", PARSER),
        env=env,
    )
    assert result.returncode == 0, result.stderr
    with av.open(str(output)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 10
    refused = run_cli(
        tmp_path / "home",
        "run",
        *("--target", str(clip), "--output", str(tmp_path / "no.mp4"), "--no-progress"),
        *("--face-mask-types", "box", "occluder"),
        env=env,
    )
    assert refused.returncode == 1 and "face_mask_types" in refused.stderr, refused.stderr
