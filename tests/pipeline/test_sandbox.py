"""The probe of untrusted uploads, in a child process: same answers, and a crash stays in the child."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import InvalidMediaError
from pipeline.limits import MediaLimits
from pipeline.probe import probe
from pipeline.sandbox import probe_untrusted
from tests.media import Clip, make_huge_header_avi, make_text_file


def test_a_plain_file_probes_the_same(clips: dict[str, Clip]) -> None:
    for kind in ("cfr", "vfr_mkv_pcm", "mpegts_long_gop"):
        assert probe_untrusted(clips[kind].path) == probe(clips[kind].path)


def test_a_refusal_in_the_child_keeps_its_message(tmp_path: Path, clips: dict[str, Clip]) -> None:
    notes = make_text_file(tmp_path / "notes.mp4")
    huge = make_huge_header_avi(tmp_path / "huge.avi")
    for path, limits in ((notes, None), (huge, None), (clips["cfr"].path, MediaLimits(max_frames=10))):
        with pytest.raises(InvalidMediaError) as direct:
            probe(path, limits)
        with pytest.raises(InvalidMediaError) as sandboxed:
            probe_untrusted(path, limits)
        assert str(sandboxed.value) == str(direct.value)


def test_a_crash_is_an_invalid_file(clips: dict[str, Clip]) -> None:
    with pytest.raises(
        InvalidMediaError, match=r"cfr.mp4: the file could not be read safely \(the prober crashed\)"
    ):
        probe_untrusted(clips["cfr"].path, crash=True)
    assert probe_untrusted(clips["cfr"].path).frame_count == clips["cfr"].frames


def test_a_timeout_is_an_invalid_file(clips: dict[str, Clip]) -> None:
    with pytest.raises(InvalidMediaError, match=r"could not be read safely \(the prober timed out\)"):
        probe_untrusted(clips["cfr"].path, timeout_s=0.01)
