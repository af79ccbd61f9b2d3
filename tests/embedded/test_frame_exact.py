"""`facefleet run` on every kind of input the engine must handle: the output is frame for
frame the requested range of the source, with its timestamps, rotation and audio."""

import pytest

from pipeline.probe import probe
from tests.harness.cli import run_cli
from tests.pipeline.engine import KINDS, check_output


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_cli_output_is_frame_exact(clips, kind, tmp_path):
    clip = clips[kind]
    source = probe(clip.path)
    start, end = 3, source.frame_count - 2
    out = tmp_path / "out.mp4"
    result = run_cli(
        tmp_path / "home",
        "run",
        "--target",
        str(clip.path),
        "--output",
        str(out),
        "--chunk-frames",
        "11",
        "--segment-frames",
        "4",
        "--trim-start",
        str(start),
        "--trim-end",
        str(end),
        "--workers",
        "2",
        "--no-progress",
    )
    assert result.returncode == 0, result.stderr
    check_output(out, clip, source, start, end)
