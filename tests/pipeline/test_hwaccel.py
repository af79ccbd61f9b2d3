"""--hwaccel: NVDEC/NVENC only where the FFmpeg build and the host both have them; else the CPU codecs."""

from __future__ import annotations

import av
import pytest

from pipeline.errors import PipelineError
from pipeline.hwaccel import NVENC, choose

FULL_BUILD = {"h264_cuvid", "hevc_cuvid", "h264_nvenc", "hevc_nvenc", "libx264"}


def test_none_always_takes_the_cpu_codecs():
    codecs = choose("none", lambda: FULL_BUILD, lambda: True)
    assert codecs.encoder_for("libx264") == "libx264" and codecs.decoder_for("h264") is None


def test_auto_takes_nvdec_and_nvenc_where_build_and_host_have_them():
    codecs = choose("auto", lambda: FULL_BUILD, lambda: True)
    assert codecs.decoder_for("h264") == "h264_cuvid" and codecs.decoder_for("hevc") == "hevc_cuvid"
    assert codecs.encoder_for("libx264") == "h264_nvenc" and codecs.encoder_for("libx265") == "hevc_nvenc"
    assert codecs.encoder_for("libsvtav1") == "libsvtav1"  # no NVENC counterpart asked for: the CPU's
    assert codecs.decoder_for("vp9") is None


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
