"""The content policy (issue 26), embedded: ``block`` with a classifier that flags every frame
fails the job naming content_policy and leaves nothing of it in the bucket; ``flag`` succeeds
and says it was flagged; a clean classifier leaves a task unflagged. The classifiers are
generated with Open NSFW's signature (tests/faces/models.py) and loaded through the registry
like any model (sha256 checked)."""

from __future__ import annotations

import json
import sqlite3
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from facefleet.modes.demo import make_sample_video
from pipeline.content import Policy, Screening, screened
from tests.faces.models import CLASSIFIER_BRIGHT, CLASSIFIER_SAFE, CLASSIFIER_UNSAFE, write_test_models
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


# a clip dark for its first half, bright after: the bright classifier's first unsafe sample
# is frame 20 (sampled every 10th), after the dark segments 0-2 (frames 0-14) are stored
DARK_FRAMES, BRIGHT_FRAMES = 15, 15


def _dark_then_bright(path: Path) -> Path:
    ramp = np.add.outer(np.arange(96) // 8, np.arange(160) // 8).astype(np.uint8)  # some texture
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=25, options={"crf": "20", "preset": "veryfast"})
        video.width, video.height, video.pix_fmt = 160, 96, "yuv420p"
        for index in range(DARK_FRAMES + BRIGHT_FRAMES):
            level = 20 if index < DARK_FRAMES else 210
            image = np.repeat((ramp + level + index % 5)[:, :, None], 3, axis=2)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
            frame.pts, frame.time_base = index, Fraction(1, 25)
            container.mux(video.encode(frame))
        container.mux(video.encode())
    return path


def test_block_after_segments_were_stored_removes_them_too(tmp_path, manifest):
    clip = _dark_then_bright(tmp_path / "dark-then-bright.mp4")
    home, output = tmp_path / "home", tmp_path / "out.mp4"
    env = {
        "FACEFLEET_MODEL_MANIFEST": str(manifest),
        "FACEFLEET_CONTENT_POLICY": "block",
        "FACEFLEET_CONTENT_POLICY_MODEL": CLASSIFIER_BRIGHT,
        "FACEFLEET_QUALITY_SAMPLE_EVERY": "10",  # frames 0, 10 (dark), 20 (bright) are classified
        "FACEFLEET_LOG_LEVEL": "INFO",  # each stored segment's line
    }
    args = ("--chunk-frames", "30", "--segment-frames", "5", "--processors", "none", "--workers", "1")
    # --keep-work: even work files a run would keep go when its task is blocked
    result = run_cli(
        home,
        "run",
        "--target",
        str(clip),
        "--output",
        str(output),
        *args,
        "--no-progress",
        "--keep-work",
        env=env,
    )
    assert result.returncode != 0
    assert "content_policy: frame 20 scored" in result.stderr, result.stderr
    assert not output.exists()
    task_id, state, reason, _, _ = _task(home)
    assert (state, reason) == ("failed", "content_policy")
    # segments were stored before the block: the chunk's checkpoint (saved after each segment's
    # store) and the scores kept for each stored segment, all dark and safe, outlive the files.
    # Not a race: with two segments in flight, segment 4 (which takes frame 20) starts only
    # once segment 2 is stored and checkpointed; segment 3 may or may not have been
    with sqlite3.connect(home / "facefleet.db") as db:
        chunk_state, segments_done, frames_done, scores = db.execute(
            "SELECT state, segments_done, frames_done, content_policy FROM chunks WHERE task_id = ?",
            (task_id,),
        ).fetchone()
    assert chunk_state == "failed"
    assert segments_done >= 3 and frames_done >= 15, (segments_done, frames_done)
    stored = json.loads(scores)["segments"]
    assert {"0", "1", "2"} <= set(stored)
    assert all(s["score"] < 0.01 for s in stored.values()), stored
    # the log says the same, in order: segments 0-2 stored, then the block, then the clean-up
    log = result.stderr
    marks = [f"segment {i} of chunk 0 of task {task_id} stored" for i in range(3)]
    marks += [f"task {task_id} blocked by the content policy", f"task {task_id}: all clean-up done"]
    assert all(mark in log for mark in marks), log
    assert sorted(marks, key=log.index) == marks, log
    # ... and none of them is left, nor anything else of the task: no file in the home's bucket
    # (its input, segments, probe: all under tasks/<id>/) nor in its scratch folder
    left = [p.relative_to(home).as_posix() for p in home.glob("*/**/*") if p.is_file()]
    assert [name for name in left if name.startswith(("bucket/", "work/"))] == [], left
    assert not (home / "bucket" / "tasks" / task_id).exists()
