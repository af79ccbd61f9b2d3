"""--hwaccel in a whole job: the chunks decode and encode with the codecs the run chose, and
on this CPU host ``auto`` gives the bytes of ``none`` (frame-exact, segments joined by copy)."""

from __future__ import annotations

import logging

from facefleet.config.options import parse_options
from facefleet.config.settings import Settings
from facefleet.modes.embedded import JobRequest, job_id, run_job
from pipeline.hwaccel import Codecs
from pipeline.probe import probe
from tests.harness.cli import run_cli
from tests.pipeline.engine import check_output

CHUNKING = ("--chunk-frames", "11", "--segment-frames", "4")


def test_auto_on_a_cpu_host_gives_the_bytes_of_none(clips, tmp_path):
    clip = clips["bframes"]
    outputs = {}
    for mode in ("none", "auto"):
        out = tmp_path / f"{mode}.mp4"
        result = run_cli(
            tmp_path / f"home-{mode}",
            "run", "--target", str(clip.path), "--output", str(out), *CHUNKING,
            "--workers", "2", "--hwaccel", mode, "--no-progress",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert ("video codecs (--hwaccel auto): CPU codecs" in result.stderr) == (mode == "auto")
        outputs[mode] = out.read_bytes()
    assert outputs["auto"] == outputs["none"]
    source = probe(clip.path)
    check_output(tmp_path / "auto.mp4", clip, source, 0, source.frame_count)


def test_the_chunks_use_the_codecs_the_run_chose(clips, tmp_path, caplog):
    """Stand-ins a CPU host has: libx265 for libx264 (the output says HEVC, and every segment
    came from it, else the stitch refuses the join), and NVDEC asked for H.264, which this
    host cannot open: the reader says so and decodes the same frames on the CPU."""
    clip = clips["cfr"]
    source = probe(clip.path)
    options = parse_options({"chunk_frames": 11, "segment_frames": 4})
    request = JobRequest(clip.path, (), None, tmp_path / "out.mp4", options)
    stand_in = Codecs(device_decoded=("h264",), encoders={"libx264": "libx265"})
    settings = Settings(home=tmp_path / "home")
    with caplog.at_level(logging.WARNING, logger="pipeline.reader"):
        run_job(settings, request, codecs=stand_in)
    out = probe(request.output)
    assert out.codec == "hevc"
    check_output(request.output, clip, source, 0, source.frame_count)
    assert "cannot decode on cuda" in caplog.text
    # children take the parent's codecs: all segments from the stand-in again
    run_job(
        settings, JobRequest(clip.path, (), None, tmp_path / "two.mp4", options), workers=2, codecs=stand_in
    )
    assert probe(tmp_path / "two.mp4").codec == "hevc"
    assert (tmp_path / "two.mp4").read_bytes() == request.output.read_bytes()


def test_the_encoder_is_part_of_an_embedded_job_id(clips, tmp_path):
    """A rerun with other codecs is another job: never a resume mixing two encoders' segments."""
    options = parse_options({})
    request = JobRequest(clips["cfr"].path, (), None, tmp_path / "out.mp4", options)
    assert job_id(request, Codecs()) == job_id(request)  # CPU jobs keep their ids
    assert job_id(request, Codecs(encoders={"libx264": "h264_nvenc"})) != job_id(request)
    assert job_id(request, Codecs(device_decoded=("h264",))) == job_id(request)  # decoding changes no bits
