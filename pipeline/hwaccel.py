"""NVDEC and NVENC, when asked for (``--hwaccel auto``) and when both this FFmpeg build and
this host have them; else the CPU codecs. ``none`` always takes the CPU codecs.

The choice is made once per process and said in its log. Frame-exact reading and the
segment join do not depend on it: the reader counts frames the same way whichever decoder
gives them, and a task's segments must all come from one encoder (see ``encoder_for``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from pipeline.errors import PipelineError

MODES = ("auto", "none")
# source codec (as probed) -> its NVDEC decoder in FFmpeg
NVDEC = {"h264": "h264_cuvid", "hevc": "hevc_cuvid"}
# our CPU encoder -> its NVENC counterpart in FFmpeg
NVENC = {"libx264": "h264_nvenc", "libx265": "hevc_nvenc"}


@dataclass(frozen=True)
class Codecs:
    """The decoders and encoders to use instead of FFmpeg's CPU defaults (empty: the CPU)."""

    decoders: dict[str, str] = field(default_factory=dict)
    encoders: dict[str, str] = field(default_factory=dict)
    reason: str = "CPU codecs (--hwaccel none)"

    def decoder_for(self, source_codec: str) -> str | None:
        """The decoder for a source coded with ``source_codec``; None: FFmpeg's default (CPU)."""
        return self.decoders.get(source_codec)

    def encoder_for(self, cpu_encoder: str) -> str:
        return self.encoders.get(cpu_encoder, cpu_encoder)


def _build_codecs() -> Collection[str]:
    import av

    return av.codecs_available


def _gpu_present() -> bool:
    from pipeline.devices import NoGpuError, list_gpus

    try:
        return bool(list_gpus())
    except NoGpuError:
        return False


def choose(
    mode: str,
    build_codecs: Callable[[], Collection[str]] = _build_codecs,
    gpu_present: Callable[[], bool] = _gpu_present,
) -> Codecs:
    """The codecs ``mode`` gives on this host (the two probes are arguments for the tests)."""
    if mode not in MODES:
        raise PipelineError(f"--hwaccel {mode!r}: choose {' or '.join(MODES)}")
    if mode == "none":
        return Codecs()
    present = set(build_codecs())
    decoders = {src: dec for src, dec in NVDEC.items() if dec in present}
    encoders = {cpu: enc for cpu, enc in NVENC.items() if enc in present}
    if not decoders and not encoders:
        wanted = ", ".join([*NVDEC.values(), *NVENC.values()])
        return Codecs(reason=f"CPU codecs: this FFmpeg build has none of {wanted}")
    if not gpu_present():
        return Codecs(reason="CPU codecs: this FFmpeg build has NVDEC/NVENC but the host has no NVIDIA GPU")
    used = ", ".join([*decoders.values(), *encoders.values()])
    return Codecs(decoders, encoders, reason=f"NVIDIA codecs: {used}")
