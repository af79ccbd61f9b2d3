"""The submission's check of the fleet's models (facefleet/fleet/models.py): refused only when
workers said what they have and none has every model the task needs."""

from __future__ import annotations

import pytest

from facefleet.config.errors import ModelsMissing
from facefleet.config.options import parse_options
from facefleet.fleet.models import check_fleet_models
from pipeline.models.registry import ModelRegistry, models_needed


def test_no_worker_or_one_that_did_not_say_accepts():
    check_fleet_models(["det_10g"], {})  # the task waits for workers, as before
    check_fleet_models(["det_10g"], {"w1": frozenset({"det_500m"}), "w2": None})


def test_a_model_no_worker_has_is_named_with_the_fix():
    with pytest.raises(ModelsMissing) as refused:
        check_fleet_models(["det_10g", "w600k_r50"], {"w1": frozenset({"w600k_r50"}), "w2": frozenset()})
    assert refused.value.models == ["det_10g"]
    assert "facefleet models download det_10g" in str(refused.value)


def test_models_spread_over_workers_are_not_enough():
    workers = {"w1": frozenset({"det_10g"}), "w2": frozenset({"inswapper_128", "w600k_r50"})}
    with pytest.raises(ModelsMissing) as refused:
        check_fleet_models(["det_10g", "w600k_r50", "inswapper_128"], workers)
    assert refused.value.models == ["det_10g"]
    check_fleet_models(["w600k_r50"], workers)


def _needed(gate: bool = False, **options: object) -> list[str]:
    parsed = parse_options(options)
    return models_needed(parsed.processors, parsed.model_dump(), ModelRegistry.load() if gate else None)


def test_the_models_a_task_needs():
    assert _needed(processors="none", gate=True) == []
    assert _needed(processors="face_anonymizer", face_detector="yunet") == ["yunet"]
    assert _needed(processors="face_swapper,face_enhancer") == [
        "det_10g",
        "w600k_r50",
        "inswapper_128",
        "gfpgan_1.4",
    ]
    # the anonymiser's quality gate checks with a detector of the other family
    assert _needed(processors="face_anonymizer", face_detector="det_500m", gate=True) == ["det_500m", "yunet"]
    assert _needed(processors="face_anonymizer", face_detector="yunet", gate=True) == ["yunet", "det_500m"]
