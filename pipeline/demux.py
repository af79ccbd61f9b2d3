"""Opening an input for demuxing: local files only, read by the demuxers of plain media only.

Some FFmpeg demuxers follow references inside the file: an HLS playlist or a concat script
names other files or URLs, and FFmpeg opens them. ``format_whitelist`` refuses any other
demuxer before it reads a byte (FFmpeg answers EINVAL), and ``protocol_whitelist`` keeps
every open, nested ones included, to local files. ``max_pixels`` makes the decoders refuse
a larger picture instead of allocating it, also those that ``avformat_find_stream_info``
runs while opening; a stream it refused reports a size of 0x0. ``hw_device`` (``"cuda"``)
decodes on that device (see ``pipeline.hwaccel``), with FFmpeg's software fallback for
the profiles the device lacks; the frames come back to system memory.
"""

from __future__ import annotations

from pathlib import Path

import av
from av.codec.hwaccel import HWAccel
from av.container import InputContainer

DEMUXERS = (
    "mov,mp4,m4a,3gp,3g2,mj2",
    "matroska,webm",
    "avi",
    "mpegts",
    "mpeg",
    "flv",
    "ogg",
    "wav",
    "mp3",
    "aac",
    # still images, so that probe can say "an image, not a video"; each reads one file
    "png_pipe",
    "jpeg_pipe",
    "webp_pipe",
    "bmp_pipe",
)
_CONTAINER_OPTIONS = {"protocol_whitelist": "file", "format_whitelist": ",".join(DEMUXERS)}


def open_input(
    path: Path, *, max_pixels: int | None = None, decode_pictures: bool = True, hw_device: str | None = None
) -> InputContainer:
    """Open ``path`` for reading; FFmpeg's errors pass through for the caller to word.
    The path is made absolute so that no part of its name can be read as a protocol.

    ``decode_pictures=False`` for a reader of packets, tags and time bases only (the stitch):
    while opening, FFmpeg then learns the video from the container and the bitstream's
    headers instead of decoding its first pictures (seven of them for H.264, ~15 ms at 720p).
    The video's pixel format is then left unknown, and packets buffered while probing may
    lack a dts (Matroska's do; MP4's, as our segments, keep theirs); decoding is not
    affected."""
    decoder = {} if max_pixels is None else {"max_pixels": str(max_pixels)}
    container = av.open(
        str(Path(path).absolute()),
        options=decoder if decode_pictures else {**decoder, "skip_frame": "nonkey"},
        container_options=_CONTAINER_OPTIONS,
        metadata_errors="ignore",
        hwaccel=None if hw_device is None else HWAccel(device_type=hw_device, allow_software_fallback=True),
    )
    for stream in container.streams.video:
        if stream.codec_context is not None:
            stream.codec_context.options = {**stream.codec_context.options, **decoder}
    return container
