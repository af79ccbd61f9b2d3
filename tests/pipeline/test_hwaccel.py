"""--hwaccel: NVDEC/NVENC only where the FFmpeg build and the host both have them; else the CPU
codecs. The reader and the encoder use what was chosen, and frames decoded on a device are the
CPU decoder's frames."""

from __future__ import annotations

import logging

import av
import numpy as np
import pytest

from pipeline.encode import EncoderSettings, encode_segment
from pipeline.errors import PipelineError
from pipeline.hwaccel import NVENC, Codecs, choose, encoder_coding, nvenc_options
from pipeline.probe import probe
from pipeline.reader import _as_cpu_decoded, read_frames
from tests.media import make_clip

FULL_BUILD = {"h264_cuvid", "hevc_cuvid", "h264_nvenc", "hevc_nvenc", "libx264"}


def test_none_always_takes_the_cpu_codecs():
    codecs = choose("none", lambda: FULL_BUILD, lambda: True)
    assert codecs.encoder_for("libx264") == "libx264" and codecs.decode_device_for("h264") is None


def test_auto_takes_nvdec_and_nvenc_where_build_and_host_have_them():
    codecs = choose("auto", lambda: FULL_BUILD, lambda: True)
    assert codecs.decode_device_for("h264") == "cuda" and codecs.decode_device_for("hevc") == "cuda"
    assert codecs.encoder_for("libx264") == "h264_nvenc" and codecs.encoder_for("libx265") == "hevc_nvenc"
    assert codecs.encoder_for("libsvtav1") == "libsvtav1"  # no NVENC counterpart asked for: the CPU's
    assert codecs.decode_device_for("vp9") is None
    assert codecs.report() == {
        "video_decoders": "h264 on NVDEC, hevc on NVDEC",
        "video_encoders": "h264_nvenc, hevc_nvenc",
    }


def test_the_distributed_mode_decodes_on_nvdec_and_encodes_on_the_cpu():
    codecs = choose("auto", lambda: FULL_BUILD, lambda: True).decode_only()
    assert codecs.decode_device_for("h264") == "cuda" and codecs.encoder_for("libx264") == "libx264"
    assert codecs.report()["video_encoders"] == "cpu" and "encoding on the CPU" in codecs.reason
    assert Codecs().report() == {"video_decoders": "cpu", "video_encoders": "cpu"}


def test_auto_falls_back_to_the_cpu_without_a_gpu_or_without_the_codecs():
    no_gpu = choose("auto", lambda: FULL_BUILD, lambda: False)
    assert no_gpu.encoder_for("libx264") == "libx264" and "no NVIDIA GPU" in no_gpu.reason
    plain_build = choose("auto", lambda: {"libx264", "h264"}, lambda: True)
    assert plain_build.encoder_for("libx264") == "libx264" and "has none of" in plain_build.reason


def test_auto_on_this_build_and_host():
    codecs = choose("auto")
    if not any(enc in av.codecs_available for enc in NVENC.values()):
        assert codecs.encoder_for("libx264") == "libx264"  # PyAV's bundled FFmpeg: the CPU codecs
    assert codecs.reason


def test_an_unknown_mode_is_refused():
    with pytest.raises(PipelineError, match="auto or none"):
        choose("cuda")


def test_nvenc_options_mirror_the_users_crf_and_preset():
    assert nvenc_options(18, "veryfast") == {
        "rc": "vbr", "cq": "18", "b": "0", "preset": "p3", "tune": "hq", "bf": "0", "g": "250",
    }  # fmt: skip
    assert (
        nvenc_options(30, "ultrafast")["preset"] == "p1" and nvenc_options(30, "veryslow")["preset"] == "p7"
    )
    assert nvenc_options(23, "medium")["preset"] == "p4"


def test_nvenc_keeps_the_cpu_encoder_for_a_format_it_does_not_code():
    assert encoder_coding("h264_nvenc", "yuv420p") == "h264_nvenc"
    assert encoder_coding("hevc_nvenc", "yuv444p") == "hevc_nvenc"
    assert encoder_coding("h264_nvenc", "yuv420p10le") == "libx264"
    assert encoder_coding("libx265", "yuv420p10le") == "libx265"


def test_a_task_nvenc_cannot_code_is_encoded_on_the_cpu(tmp_path):
    """10-bit asked of h264_nvenc: libx264 codes it, here on a CPU host as on a GPU one."""
    clip = make_clip(tmp_path / "clip.mp4", frames=6)
    video = probe(clip.path)
    out = tmp_path / "out.mp4"
    settings = EncoderSettings(codec="h264_nvenc", pix_fmt="yuv420p10le")
    assert encode_segment(read_frames(clip.path, video, 0, 6), out, video, settings) == 6
    coded = probe(out)
    assert (coded.codec, coded.pix_fmt) == ("h264", "yuv420p10le")


def test_the_reader_decodes_on_the_device_it_is_given_with_the_cpus_frames(tmp_path, caplog):
    """Where the device opens (a GPU host), NVDEC's frames; where it does not (this host), the
    CPU's, said in the log; either way the frames equal the CPU decoder's, from a seek too."""
    clip = make_clip(tmp_path / "clip.mp4", frames=30, bframes=True)
    video = probe(clip.path)

    def frames(device: str | None) -> list[tuple[int, int, str, bytes]]:
        return [
            (f.index, f.pts, f.to_video_frame().format.name, f.to_video_frame().to_ndarray().tobytes())
            for f in read_frames(clip.path, video, 13, 27, hw_device=device)
        ]

    with caplog.at_level(logging.WARNING, logger="pipeline.reader"):
        on_device = frames("cuda")
    assert on_device == frames(None)
    assert [index for index, *_ in on_device] == list(range(13, 27))
    if not choose("auto").decode_device_for("h264"):
        assert "cannot decode on cuda" in caplog.text


@pytest.mark.parametrize(
    ("cpu_format", "device_format"),
    [("yuv420p", "nv12"), ("yuv420p10le", "p010le"), ("yuv444p10le", "yuv444p16le")],
)
def test_a_device_layout_brought_back_holds_the_same_samples(cpu_format, device_format):
    rng = np.random.default_rng(7)
    decoded = av.VideoFrame(62, 46, cpu_format)  # rows with padding
    for plane in decoded.planes:
        depth = np.uint16 if "10" in cpu_format else np.uint8
        values = rng.integers(0, 1024 if depth is np.uint16 else 256, plane.buffer_size // depth().itemsize)
        plane.update(values.astype(depth).tobytes())
    decoded.pts = 42
    back = _as_cpu_decoded(decoded.reformat(format=device_format), cpu_format)
    assert back.format.name == cpu_format and back.pts == 42
    assert _samples(back) == _samples(decoded)


def _samples(frame: av.VideoFrame) -> list[bytes]:
    """Each plane's samples, without the rows' padding."""
    sample_bytes = 2 if frame.format.components[0].bits > 8 else 1
    found = []
    for plane in frame.planes:
        rows = np.frombuffer(bytes(plane), np.uint8).reshape(plane.height, plane.line_size)
        found.append(rows[:, : plane.width * sample_bytes].tobytes())
    return found
