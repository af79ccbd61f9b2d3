"""Bad input to `facefleet run`: one clear line, a non-zero exit, no traceback, no output file."""

import av
import cv2
import numpy as np
import pytest

from tests.embedded.conftest import run_cli


def _zero_frame_video(path):
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
    return path


def _inputs(tmp_path, sample):
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(sample.read_bytes()[: sample.stat().st_size // 3])
    image = tmp_path / "photo.png"
    cv2.imwrite(str(image), np.full((64, 64, 3), 128, np.uint8))
    return {
        "non-video": text,
        "truncated": truncated,
        "zero-frame": _zero_frame_video(tmp_path / "empty.mp4"),
        "image": image,
        "missing": tmp_path / "nowhere.mp4",
    }


@pytest.mark.parametrize(
    ("kind", "extra", "expected"),
    [
        ("non-video", [], "not"),
        ("truncated", [], ""),
        ("zero-frame", [], "frame"),
        ("image", [], "image"),
        ("missing", [], "not found"),
        ("sample", ["--trim-start", "90", "--trim-end", "500"], "trim"),
        ("sample", ["--trim-start", "200"], "trim"),
        ("sample", ["--chunk-frames", "0"], "chunk_frames"),
        ("sample", ["--segment-frames", "0"], "segment_frames"),
        ("sample", ["--processors", "face_melter"], "unknown processor"),
        ("sample", ["--workers", "0"], "workers"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path, sample, kind, extra, expected):
    target = sample if kind == "sample" else _inputs(tmp_path, sample)[kind]
    output = tmp_path / "out.mp4"
    result = run_cli(tmp_path / "home", "run", "--target", str(target), "--output", str(output), *extra)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("facefleet: ")
    assert expected in lines[0].lower()
    assert not output.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.mp4")]
