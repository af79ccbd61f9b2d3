"""Bad input to `facefleet run`: one clear line, a non-zero exit, no traceback, no output file."""

import pytest

from tests.harness.cli import run_cli
from tests.media import make_audio_only, make_png, make_text_file, make_truncated, make_zero_frames


def _inputs(tmp_path, sample):
    return {
        "non-video": make_text_file(tmp_path / "notes.mp4"),
        "truncated": make_truncated(sample, tmp_path / "truncated.mp4", keep=0.3),
        "zero-frame": make_zero_frames(tmp_path / "empty.mp4"),
        "audio-only": make_audio_only(tmp_path / "tone.m4a"),
        "image": make_png(tmp_path / "photo.png"),
        "missing": tmp_path / "nowhere.mp4",
    }


@pytest.mark.parametrize(
    ("kind", "extra", "expected"),
    [
        ("non-video", [], "not"),
        ("truncated", [], ""),
        ("zero-frame", [], "video"),
        ("image", [], "image"),
        ("audio-only", [], "video"),
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


@pytest.mark.parametrize(
    ("make_output", "expected"),
    [
        (lambda tmp: tmp / "folder.mp4", "not a regular file"),  # an existing directory
        (lambda tmp: tmp / "missing" / "out.mp4", "folder does not exist"),
        (lambda tmp: "", "must name a file"),
        (lambda tmp: str(tmp) + "/", "not a regular file"),
    ],
)
def test_unusable_output_is_refused_before_any_work(tmp_path, sample, make_output, expected):
    (tmp_path / "folder.mp4").mkdir()
    output = make_output(tmp_path)
    result = run_cli(tmp_path / "home", "run", "--target", str(sample), "--output", str(output))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert expected in result.stderr
    assert not (tmp_path / "home" / "facefleet.db").exists()  # refused before a job was created


def test_target_folder_and_non_image_source_are_refused(tmp_path, sample):
    empty = tmp_path / "empty"
    empty.mkdir()  # a folder is a batch (tests/embedded/test_batch_run.py): this one has no videos
    result = run_cli(tmp_path / "home", "run", "--target", str(empty), "--output", str(tmp_path / "o"))
    assert result.returncode == 1 and "no videos to submit" in result.stderr
    result = run_cli(
        tmp_path / "home",
        "run",
        "--target",
        str(sample),
        "--source",
        str(sample),
        "--output",
        str(tmp_path / "o.mp4"),
        "--processors",
        "face_swapper",
    )
    assert result.returncode != 0
    assert "source" in result.stderr and "cannot be read as an image" in result.stderr
