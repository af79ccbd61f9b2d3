"""What a media file says about its provenance: its C2PA manifest (``pipeline.c2pa_io``) and
the watermark in its frames (``pipeline.watermark``). ``inspect`` runs in the sandboxed
child of ``verify_untrusted``, so a hostile upload costs that child, never the caller."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import av

from pipeline.demux import open_input
from pipeline.errors import InvalidMediaError
from pipeline.limits import MediaLimits
from pipeline.probe import probe
from pipeline.sandbox import _answer, _child_env, _unsafe
from pipeline.watermark import Votes, frame_luma

# votes are tallied every this many frames, and reading stops at the first mark found
CHECK_EVERY = 25
# c2pa's format of each demuxer name FFmpeg reports
_MIME_BY_DEMUXER = {"mov,mp4,m4a,3gp,3g2,mj2": "video/mp4", "matroska,webm": "video/x-matroska"}


def find_watermark(path: Path, max_frames: int, max_pixels: int | None = None) -> dict[str, Any] | None:
    """The watermark of the first ``max_frames`` frames of ``path``: ``{short_id,
    correlation, frames}``, or None when they carry none."""
    votes = Votes()
    with open_input(path, max_pixels=max_pixels) as container:
        for frame in container.decode(video=0):
            votes.add(frame_luma(frame))
            if votes.frames % CHECK_EVERY == 0 and (found := votes.decode()) is not None:
                return asdict(found)
            if votes.frames >= max_frames:
                break
    found = votes.decode()
    return None if found is None else asdict(found)


def _mime(path: Path) -> str:
    with open_input(path, decode_pictures=False) as container:
        name = container.format.name
    if name.startswith("mov"):
        return "video/quicktime" if path.suffix.lower() == ".mov" else "video/mp4"
    return _MIME_BY_DEMUXER.get(name, "application/octet-stream")


def inspect(
    path: Path, limits: MediaLimits, max_frames: int, trust_anchors: Path | None = None
) -> dict[str, Any]:
    """``{"manifest": ..., "watermark": ...}`` of a file (each None when absent); a file that
    is no usable video raises InvalidMediaError."""
    from pipeline.c2pa_io import read_manifest

    video = probe(path, limits)
    anchors = trust_anchors.read_bytes() if trust_anchors else None
    manifest = read_manifest(path, _mime(path), anchors)
    try:
        watermark = find_watermark(path, max_frames, 2 * limits.max_pixels)
    except av.FFmpegError as exc:
        raise InvalidMediaError(f"{path.name}: its frames cannot be decoded ({exc})") from None
    return {"manifest": manifest, "watermark": watermark, "frames_total": video.frame_count}


def verify_untrusted(
    path: Path,
    limits: MediaLimits,
    *,
    max_frames: int,
    trust_anchors: Path | None = None,
    timeout_s: float = 120.0,
    memory_bytes: int = 2 << 30,
) -> dict[str, Any]:
    """``inspect`` in a child process with memory and CPU limits (``pipeline.sandbox``'s)."""
    request = {
        "path": str(Path(path).absolute()),
        "limits": asdict(limits),
        "max_frames": max_frames,
        "trust_anchors": str(trust_anchors) if trust_anchors else None,
        "memory_bytes": memory_bytes,
        "cpu_s": max(1, round(2 * timeout_s)),
    }
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pipeline.verify_child"],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout_s,
            env=_child_env(),
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise _unsafe(Path(path), "timed out") from None
    answer = _answer(done.stdout) if done.returncode == 0 else None
    if answer is None:
        raise _unsafe(Path(path), "timed out" if done.returncode == -signal.SIGXCPU else "crashed")
    if "error" in answer:
        raise InvalidMediaError(str(answer["error"]))
    if "out_of_memory" in answer:
        raise _unsafe(Path(path), "ran out of memory")
    return dict(answer["report"])
