"""NVDEC and NVENC, when asked for (``--hwaccel auto``) and when both this FFmpeg build and
this host have them; else the CPU codecs. ``none`` always takes the CPU codecs.

The choice is made once per process and said in its log (and in ``/readyz``).

* Decoding: NVDEC through FFmpeg's hwaccel, that is the ``h264``/``hevc`` decoders given a
  CUDA device (``av.open(..., hwaccel=...)``), not the ``h264_cuvid``/``hevc_cuvid``
  wrapper decoders (their presence in the build only says NVDEC is there). The same
  decoder then parses, reorders and times the frames as on the CPU, so key-frame flags and
  pts, on which frame-exact reading rests, are unchanged; a profile NVDEC lacks (4:4:4,
  4:2:2) is decoded in software by FFmpeg itself; a device that cannot be opened falls back
  to the CPU. H.264 and HEVC decoding is bit-exact by the standards, and the frames are
  brought back to the CPU decoder's pixel format (NVDEC gives NV12/P010), so the frames,
  and the output bytes, are the CPU's.
* Encoding: NVENC codes other bits than x264/x265, and the stitch joins a task's segments
  by stream copy, which needs one set of parameter sets: all segments of a task must come
  from one encoder with one set of options. So NVENC is used only where one host encodes
  every segment of a task: the embedded mode (``facefleet run --hwaccel auto``), whose job
  id then includes the encoder (a rerun with other codecs is another job, never a resume
  mixing encoders). The distributed mode spreads a task's chunks over workers with and
  without NVENC, so its workers decode with NVDEC and encode on the CPU
  (``Codecs.decode_only``). NVENC's options mirror the user's (``nvenc_options``); a pixel
  format NVENC cannot code (10-bit 4:2:0 as yuv420p10le) keeps the CPU encoder, for the
  whole task, since the choice depends only on the task's options and probe.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace

from pipeline.errors import PipelineError

MODES = ("auto", "none")
NVDEC_DEVICE = "cuda"  # FFmpeg's hardware device type for NVDEC
# source codec (as probed) -> the cuvid decoder whose presence says the build has NVDEC for it
NVDEC = {"h264": "h264_cuvid", "hevc": "hevc_cuvid"}
# our CPU encoder -> its NVENC counterpart in FFmpeg
NVENC = {"libx264": "h264_nvenc", "libx265": "hevc_nvenc"}
# the pixel formats of ours that NVENC codes as they are (others keep the CPU encoder)
NVENC_PIX_FMTS = ("yuv420p", "yuv444p")
# x264's preset names as NVENC's p1 (fastest) .. p7 (slowest)
_NVENC_PRESETS = {
    "ultrafast": "p1",
    "superfast": "p2",
    "veryfast": "p3",
    "faster": "p3",
    "fast": "p4",
    "medium": "p4",
    "slow": "p5",
    "slower": "p6",
    "veryslow": "p7",
}
_KEYINT = 250  # x264's default keyframe interval, set explicitly (NVENC's differs)


@dataclass(frozen=True)
class Codecs:
    """The decoding device and encoders to use instead of FFmpeg's CPU defaults (empty: the CPU)."""

    device_decoded: tuple[str, ...] = ()  # source codecs decoded through NVDEC
    encoders: dict[str, str] = field(default_factory=dict)
    reason: str = "CPU codecs (--hwaccel none)"

    def decode_device_for(self, source_codec: str) -> str | None:
        """The hardware device to decode ``source_codec`` on; None: the CPU."""
        return NVDEC_DEVICE if source_codec in self.device_decoded else None

    def encoder_for(self, cpu_encoder: str) -> str:
        return self.encoders.get(cpu_encoder, cpu_encoder)

    def decode_only(self) -> Codecs:
        """The distributed mode's: NVDEC where chosen, the CPU encoders (see the module's docstring)."""
        if not self.encoders:
            return self
        decoding = ", ".join(NVDEC[c] for c in self.device_decoded) or "none"
        return replace(
            self,
            encoders={},
            reason=f"NVDEC for {decoding}; encoding on the CPU (a distributed task's segments "
            "must all come from one encoder, and its chunks may run on hosts without NVENC)",
        )

    def report(self) -> dict[str, str]:
        """What ``/readyz`` and the start-up log show next to the models' providers."""
        decode = ", ".join(f"{c} on NVDEC" for c in self.device_decoded)
        return {
            "video_decoders": decode or "cpu",
            "video_encoders": ", ".join(self.encoders.values()) or "cpu",
        }


def encoder_coding(encoder: str, pix_fmt: str) -> str:
    """``encoder``, or the CPU encoder it stands in for where NVENC does not code ``pix_fmt``
    (the coded one) as it is."""
    cpu = {nvenc: cpu for cpu, nvenc in NVENC.items()}.get(encoder)
    return cpu if cpu is not None and pix_fmt not in NVENC_PIX_FMTS else encoder


def nvenc_options(crf: int, preset: str) -> dict[str, str]:
    """NVENC options mirroring x264's: constant quality at ``crf`` (VBR with a quality target
    and no bitrate cap), the preset's speed, no B-frames (so dts == pts, as for x264) and a
    fixed keyframe interval; all fixed, so every segment has the same parameter sets."""
    return {
        "rc": "vbr",
        "cq": str(crf),
        "b": "0",
        "preset": _NVENC_PRESETS.get(preset, "p4"),
        "tune": "hq",
        "bf": "0",
        "g": str(_KEYINT),
    }


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
    decoded = tuple(src for src, dec in NVDEC.items() if dec in present)
    encoders = {cpu: enc for cpu, enc in NVENC.items() if enc in present}
    if not decoded and not encoders:
        wanted = ", ".join([*NVDEC.values(), *NVENC.values()])
        return Codecs(reason=f"CPU codecs: this FFmpeg build has none of {wanted}")
    if not gpu_present():
        return Codecs(reason="CPU codecs: this FFmpeg build has NVDEC/NVENC but the host has no NVIDIA GPU")
    used = ", ".join([*(f"{src} on NVDEC" for src in decoded), *encoders.values()])
    return Codecs(decoded, encoders, reason=f"NVIDIA codecs: {used}")
