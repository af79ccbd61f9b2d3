"""The face selector as FaceFusion users know it, on a frame with three faces: every mode and
order, today's aliases, the age and gender filters (a generated attribute model), the refusal
without one, and the reference face tracked from frame to frame."""

from __future__ import annotations

import numpy as np
import pytest

from facefleet.config.options import OptionsError, parse_options
from pipeline.errors import PipelineError
from pipeline.faces.loading import load_attributes
from pipeline.faces.selection import SELECTOR_ORDERS, Selection, select_faces, selection_of
from pipeline.faces.types import Face

from .models import ATTRIBUTES, generated_options

# name: box (x1, y1, x2, y2), detector score, embedding, BGR paint (gender and age for the
# generated attribute model: red female, blue male, green 2.55 x age)
THREE = {
    "A": ((20, 20, 60, 60), 0.9, (1.0, 0.0), (0, 77, 200)),  # woman of 30, left, mid-sized, best
    "B": ((150, 40, 250, 140), 0.7, (0.0, 1.0), (200, 153, 0)),  # man of 60, middle, largest, worst
    "C": ((300, 10, 330, 40), 0.8, (0.8, 0.6), (0, 20, 200)),  # girl of 8, right, smallest, top
}
# what a FaceFusion user expects each order to give (many: all of them; one: the first)
EXPECTED_ORDER = {
    "left-right": "ABC",
    "right-left": "CBA",
    "top-bottom": "CAB",
    "bottom-top": "BAC",
    "small-large": "CAB",
    "large-small": "BAC",
    "best-worst": "ACB",
    "worst-best": "BCA",
}


def _faces(**moved: tuple[float, float, float, float]) -> list[Face]:
    """The three faces as the detector lists them (best score first: A, C, B)."""
    faces = []
    for name in "ACB":
        box, score, embedding, _ = THREE[name]
        faces.append(
            Face(
                box=np.array(moved.get(name, box), np.float32),
                score=score,
                kps=np.zeros((5, 2), np.float32),
                embedding=np.array(embedding, np.float32),
            )
        )
    return faces


def _names(chosen: list[Face], faces: list[Face]) -> str:
    return "".join("ACB"[next(i for i, f in enumerate(faces) if f is face)] for face in chosen)


def _frame() -> np.ndarray:
    image = np.zeros((200, 360, 3), np.uint8)
    for (x1, y1, x2, y2), _, _, paint in THREE.values():
        image[y1:y2, x1:x2] = paint
    return image


REFERENCE = np.array([1.0, 0.0], np.float32)  # A's embedding; C is 0.2 from it, B 1.0


@pytest.mark.parametrize("order", SELECTOR_ORDERS)
def test_many_takes_every_face_in_the_order(order):
    faces = _faces()
    assert _names(select_faces(faces, Selection("many", order)), faces) == EXPECTED_ORDER[order]


@pytest.mark.parametrize("order", SELECTOR_ORDERS)
def test_one_takes_the_first_face_of_the_order(order):
    faces = _faces()
    assert _names(select_faces(faces, Selection("one", order)), faces) == EXPECTED_ORDER[order][0]


@pytest.mark.parametrize("order", SELECTOR_ORDERS)
def test_reference_takes_the_faces_like_the_reference_in_the_order(order):
    faces = _faces()
    chosen = select_faces(faces, Selection("reference", order, reference_distance=0.3), REFERENCE)
    assert _names(chosen, faces) == "".join(n for n in EXPECTED_ORDER[order] if n in "AC")
    tight = select_faces(faces, Selection("reference", order, reference_distance=0.1), REFERENCE)
    assert _names(tight, faces) == "A"


def test_todays_selector_values_are_aliases_with_their_old_results():
    faces = _faces()
    assert _names(select_faces(faces, "all"), faces) == "ACB"  # as detected, unchanged
    assert _names(select_faces(faces, "largest"), faces) == "B"
    assert _names(select_faces(faces, "leftmost"), faces) == "A"
    assert _names(select_faces(faces, "reference", REFERENCE, max_distance=0.3), faces) == "AC"
    for alias, (mode, order) in {
        "all": ("many", None),
        "largest": ("one", "large-small"),
        "leftmost": ("one", "left-right"),
        "reference": ("reference", None),
    }.items():
        chosen = selection_of({"face_selector": alias})
        assert (chosen.mode, chosen.order) == (mode, order), alias


def test_the_options_choose_mode_order_and_distance():
    assert selection_of({}) == Selection("many", None, 0.6)
    assert selection_of({"face_selector_mode": "one"}) == Selection("one", "large-small", 0.6)
    chosen = selection_of(
        {
            "face_selector_mode": "reference",
            "face_selector_order": "top-bottom",
            "reference_face_distance": 0.3,
        }
    )
    assert chosen == Selection("reference", "top-bottom", 0.3)
    assert selection_of({"face_selector": "all", "face_selector_order": "right-left"}).order == "right-left"
    assert selection_of({"reference_distance": 0.4}).reference_distance == 0.4  # the older name
    with pytest.raises(PipelineError, match="face_selector_order"):
        selection_of({"face_selector_order": "front-back"})


def test_age_and_gender_filters_with_an_attribute_model(runtime):
    model = load_attributes(generated_options(face_attribute_model=ATTRIBUTES), runtime)
    faces = _faces()
    model.estimate(_frame(), faces)
    assert [f.gender for f in faces] == ["female", "female", "male"]  # A, C, B
    np.testing.assert_allclose([f.age for f in faces], [30.2, 7.8, 60.0], atol=0.1)

    def chosen(**filters: object) -> str:
        selection = Selection("many", "left-right", **filters)  # type: ignore[arg-type]
        return _names(select_faces(faces, selection), faces)

    assert chosen(gender="female") == "AC"
    assert chosen(gender="male") == "B"
    assert chosen(age_start=20) == "AB"
    assert chosen(age_end=40) == "AC"
    assert chosen(age_start=18, age_end=40, gender="female") == "A"
    one = Selection("one", "large-small", gender="female")
    assert _names(select_faces(faces, one), faces) == "A"  # the largest woman


def test_a_filter_without_an_attribute_model_is_refused_naming_it(runtime):
    for field, value in (("face_selector_gender", "female"), ("face_selector_age_start", 18)):
        with pytest.raises(OptionsError, match=f"^{field}: needs an attribute model.*face_attribute_model"):
            parse_options({field: value})
    assert parse_options({"face_selector_gender": "male", "face_attribute_model": "genderage"})
    with pytest.raises(PipelineError, match="face_attribute_model"):
        load_attributes(generated_options(), runtime)
    with pytest.raises(PipelineError, match="attribute model"):
        select_faces(_faces(), Selection("many", gender="male"))  # no attributes on the faces


def test_contradicting_selector_options_are_refused():
    with pytest.raises(OptionsError, match="^face_selector_mode: face_selector largest"):
        parse_options({"face_selector": "largest", "face_selector_mode": "many"})
    with pytest.raises(OptionsError, match="^face_selector_order: face_selector leftmost"):
        parse_options({"face_selector": "leftmost", "face_selector_order": "top-bottom"})
    with pytest.raises(OptionsError, match="face_selector_age_end"):
        parse_options(
            {"face_selector_age_start": 40, "face_selector_age_end": 20, "face_attribute_model": "x"}
        )
    with pytest.raises(OptionsError, match="face_selector_order"):
        parse_options({"face_selector_order": "front-back"})
    with pytest.raises(OptionsError, match="reference_distance"):
        parse_options({"reference_distance": 0.3, "reference_face_distance": 0.4})
    assert parse_options({"reference_distance": 0.3}).reference_face_distance == 0.3
    assert parse_options({"face_selector_mode": "reference"}).selector_mode == "reference"
    assert parse_options({"face_selector": "largest"}).selector_mode == "one"


def test_the_reference_face_is_tracked_so_the_choice_does_not_flip():
    """A (the reference person) and C, a look-alike neighbour: once A is chosen, C coming
    within the distance does not take A's place or join it; when A is gone, C is chosen."""
    selection = Selection("reference", None, reference_distance=0.3)
    frame0 = _faces()
    frame0[1].embedding = np.array([0.6, 0.8], np.float32)  # C: 0.4 from the reference, out
    chosen0 = select_faces(frame0, selection, REFERENCE)
    assert _names(chosen0, frame0) == "A"
    frame1 = _faces(A=(22, 21, 62, 61))  # A moved a little; C now within the distance
    untracked = select_faces(frame1, selection, REFERENCE)
    assert _names(untracked, frame1) == "AC"  # without a previous frame: both are like the reference
    tracked = select_faces(frame1, selection, REFERENCE, previous=[f.box for f in chosen0])
    assert _names(tracked, frame1) == "A"
    frame2 = _faces(A=(200, 150, 240, 190))  # A far from where it was: no track, fresh choice
    assert (
        _names(select_faces(frame2, selection, REFERENCE, previous=[f.box for f in tracked]), frame2) == "AC"
    )


def test_the_finder_tracks_within_a_batch_of_frames(runtime):
    """FaceFinder over a batch: the first frame chooses from the distance alone, the next
    ones follow the chosen face (the state lives within one find call)."""
    from pipeline.faces.selection import FaceFinder

    batches = iter([[_faces(), _faces(A=(22, 21, 62, 61))]])

    class Listed:  # a detector that lists the three faces, frame by frame
        name = "listed"

        def detect(self, image: np.ndarray) -> list[Face]:
            return next(self.frames)

    detector = Listed()
    first, second = next(batches)
    first[1].embedding = np.array([0.6, 0.8], np.float32)
    detector.frames = iter([first, second])  # type: ignore[attr-defined]
    finder = FaceFinder(detector, Selection("reference", None, 0.3), reference=REFERENCE)
    found = finder.find([_frame(), _frame()])
    assert _names(found[0], first) == "A" and _names(found[1], second) == "A"
