"""States, transitions and option validation: the rules every mode shares."""

import pytest

from facefleet.config.options import OptionsError, parse_options
from facefleet.config.settings import LimitsSettings
from facefleet.records.states import (
    CHUNK_TRANSITIONS,
    TASK_TRANSITIONS,
    ChunkState,
    TaskState,
    task_sources,
)


def test_every_state_has_a_transition_row():
    assert set(TASK_TRANSITIONS) == set(TaskState)
    assert set(CHUNK_TRANSITIONS) == set(ChunkState)


def test_finished_tasks_cannot_be_cancelled_or_restarted():
    assert TaskState.SUCCEEDED not in task_sources(TaskState.CANCELLED)
    assert TaskState.CANCELLED not in task_sources(TaskState.RUNNING)
    assert TASK_TRANSITIONS[TaskState.SUCCEEDED] == frozenset()


def test_stitching_follows_running_or_a_retried_failure_only():
    assert task_sources(TaskState.STITCHING) == [TaskState.RUNNING, TaskState.FAILED]


def test_defaults_are_valid():
    options = parse_options({})
    assert options.processors == []
    assert options.chunk_frames >= options.segment_frames
    # a chunk is one x264 stream by default: each segment start costs ~0.4 % of a minute's
    # bits and ~0.008 dB at the same CRF (README, "How the engine spends a run's time")
    assert options.segment_frames == options.chunk_frames == 750
    limits = LimitsSettings.model_fields  # the deployment's defaults, which the API and CLI apply
    assert limits["segment_frames"].default == limits["chunk_frames"].default == 750


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"chunk_frames": 0}, "chunk_frames"),
        ({"segment_frames": 0}, "segment_frames"),
        ({"colour": "red"}, "colour: unknown option"),
        ({"processors": "face_swapper,bogus"}, "unknown processor 'bogus'"),
        ({"trim_start": 10, "trim_end": 10}, "trim_end must be greater"),
        ({"preset": "ludicrous"}, "preset"),
        ({"crf": 99}, "crf"),
        ({"codec": "vp9"}, "codec"),
        ({"container": "avi"}, "container"),
        ({"pix_fmt": "rgb24"}, "pix_fmt"),
        ({"faststart": "sometimes"}, "faststart"),
        ({"codec": "hevc", "crf": 52}, "crf: at most 51 for hevc"),
        ({"codec": "av1", "pix_fmt": "yuv444p"}, "pix_fmt: av1"),
    ],
)
def test_bad_options_name_the_field(raw, message):
    with pytest.raises(OptionsError, match=message):
        parse_options(raw)


def test_processor_list_accepts_none_and_commas():
    assert parse_options({"processors": "none"}).processors == []
    assert parse_options({"processors": "face_swapper, face_enhancer"}).processors == [
        "face_swapper",
        "face_enhancer",
    ]


def test_output_options_and_their_defaults():
    options = parse_options({})
    assert (options.codec, options.container, options.faststart, options.pix_fmt) == (
        "h264",
        "mp4",
        True,
        None,
    )
    av1 = parse_options(
        {"codec": "av1", "crf": 63, "pix_fmt": "yuv420p10le", "container": "mkv", "faststart": False}
    )
    assert (av1.crf, av1.pix_fmt, av1.container, av1.faststart) == (63, "yuv420p10le", "mkv", False)
