"""The content policy (issue 26), embedded: ``block`` with a classifier that flags every frame
fails the job naming content_policy and leaves nothing of it in the bucket; ``flag`` succeeds
and says it was flagged; a clean classifier leaves a task unflagged. The classifiers are
generated with Open NSFW's signature (tests/faces/models.py) and loaded through the registry
like any model (sha256 checked)."""

from __future__ import annotations

import sqlite3

import pytest

from facefleet.modes.demo import make_sample_video
from pipeline.content import Policy, Screening, screened
from tests.faces.models import CLASSIFIER_SAFE, CLASSIFIER_UNSAFE, write_test_models
from tests.harness.cli import run_cli

ARGS = ("--chunk-frames", "15", "--segment-frames", "5", "--no-progress", "--keep-work")


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    return write_test_models(tmp_path_factory.mktemp("classifiers"))


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_sample_video(tmp_path_factory.mktemp("clip") / "clip.mp4", seconds=1.2, width=320, height=180)


def _run(home, clip, output, manifest, policy, model):
    env = {
        "FACEFLEET_MODEL_MANIFEST": str(manifest),
        "FACEFLEET_CONTENT_POLICY": policy,
        "FACEFLEET_CONTENT_POLICY_MODEL": model,
    }
    return run_cli(home, "run", "--target", str(clip), "--output", str(output), *ARGS, env=env)


def _task(home):
    with sqlite3.connect(home / "facefleet.db") as db:
        return db.execute("SELECT id, state, reason, error, content_policy FROM tasks").fetchone()


def test_block_fails_the_job_and_keeps_nothing(tmp_path, clip, manifest):
    home, output = tmp_path / "home", tmp_path / "out.mp4"
    result = _run(home, clip, output, manifest, "block", CLASSIFIER_UNSAFE)
    assert result.returncode != 0
    assert "content_policy" in result.stderr
    assert not output.exists()
    task_id, state, reason, error, _ = _task(home)
    assert (state, reason) == ("failed", "content_policy")
    assert "content_policy" in error
    left = [p for p in (home / "bucket").rglob("*") if p.is_file() and task_id in str(p)]
    assert left == [], f"files of the blocked task are left: {left}"
    with sqlite3.connect(home / "facefleet.db") as db:
        chunk_states = {state for (state,) in db.execute("SELECT state FROM chunks")}
    assert "failed" in chunk_states and "succeeded" not in chunk_states


def test_flag_succeeds_and_is_flagged(tmp_path, clip, manifest):
    home, output = tmp_path / "home", tmp_path / "out.mp4"
    result = _run(home, clip, output, manifest, "flag", CLASSIFIER_UNSAFE)
    assert result.returncode == 0, result.stderr
    assert output.is_file()
    assert "flagged by the content policy" in result.stderr
    _, state, _, _, verdict = _task(home)
    assert state == "succeeded"
    assert '"flagged": true' in verdict
    # 30 frames in 2 chunks of 15, sampled every 50th and at each chunk's first: frames 0 and 15
    assert '"samples": 2' in verdict


def test_a_clean_classifier_flags_nothing(tmp_path, clip, manifest):
    home, output = tmp_path / "home", tmp_path / "out.mp4"
    result = _run(home, clip, output, manifest, "block", CLASSIFIER_SAFE)
    assert result.returncode == 0, result.stderr
    assert "content_policy" not in result.stderr
    _, state, _, _, verdict = _task(home)
    assert state == "succeeded"
    assert '"flagged": false' in verdict


def test_sampling_and_verdict():
    assert [i for i in range(0, 120) if screened(i, 50, 10)] == [0, 10, 50, 100]
    assert [i for i in range(10, 20) if screened(i, 0, 10)] == [10]  # the gate off: the chunk's first
    total = Screening(1, 0.2).add(Screening(2, 0.9))
    assert total.report(Policy("flag").threshold) == {"flagged": True, "score": 0.9, "samples": 3}
    assert Screening(3, 0.5).report(0.8)["flagged"] is False


def test_the_classifier_is_a_registry_model_with_its_signature(tmp_path, manifest):
    from pipeline.content import load_classifier
    from pipeline.errors import ModelError
    from pipeline.models.registry import ModelRegistry
    from pipeline.runtime import Runtime
    from tests.faces.models import RECOGNIZER

    runtime = Runtime(model_dir=tmp_path / "models", model_manifest=manifest)
    assert load_classifier(CLASSIFIER_UNSAFE, runtime).name == CLASSIFIER_UNSAFE
    with pytest.raises(ModelError, match="not one of: nsfw"):
        load_classifier(RECOGNIZER, runtime)  # an ArcFace model is no classifier
    real = ModelRegistry.load().get("open_nsfw", ("nsfw",))  # the default: url and sha256 declared
    assert real.sha256 and len(real.sha256) == 64 and real.sources[0].startswith("https://")
    assert real.input_layout == ((None, 224, 224, 3),)
