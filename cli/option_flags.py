"""The job options as command-line flags, each with its help, default and choices.

The same names are the fields of ``facefleet.config.options.JobOptions`` (the API's ``options``
and its OpenAPI document); ``tests/core/test_cli_help.py`` checks that names, defaults and
choices agree. They are written here rather than read from JobOptions so that ``--help``
loads no pydantic model.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, NamedTuple

from pipeline.faces.mask_names import FACE_MASK_AREAS, FACE_MASK_REGIONS, FACE_MASK_TYPES
from pipeline.faces.selector_names import SELECTOR_ORDERS

if TYPE_CHECKING:
    from collections.abc import Callable

    from facefleet.config.options import JobOptions
    from facefleet.config.settings import Settings


class Flag(NamedTuple):  # not a dataclass: `--help` would import inspect for it
    kind: Callable[[str], Any]
    help: str
    default: object = None  # JobOptions' default, shown in the help (None: none)
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    aliases: tuple[str, ...] = ()  # older spellings of the flag, still accepted
    many: bool = False  # one or more values, space-separated (a list option)


PROCESSOR_CHOICES = ("face_swapper", "face_enhancer", "face_anonymizer", "face_debugger")
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
PIX_FMTS = ("yuv420p", "yuv420p10le", "yuv422p", "yuv422p10le", "yuv444p", "yuv444p10le")
DETECTORS = ("det_10g", "det_500m", "yunet")

# option field -> its flag; the plain values of JobOptions a job on one machine uses
JOB_FLAGS: dict[str, Flag] = {
    "chunk_frames": Flag(
        int, "frames per chunk, the unit processed in parallel (FACEFLEET_CHUNK_FRAMES)", 750, metavar="N"
    ),
    "segment_frames": Flag(
        int,
        "frames per stored segment; a resumed chunk redoes at most one (FACEFLEET_SEGMENT_FRAMES)",
        750,
        metavar="K",
    ),
    "trim_start": Flag(
        int, "first frame to process, a 0-based frame index (inclusive); default: the first", metavar="FRAME"
    ),
    "trim_end": Flag(
        int,
        "frame index to stop before (exclusive: --trim-start 0 --trim-end 25 is the first 25 "
        "frames); default: the end of the video",
        metavar="FRAME",
    ),
    "codec": Flag(
        str, "video codec of the output (libx264, libx265, SVT-AV1)", "h264", ("h264", "hevc", "av1")
    ),
    "crf": Flag(int, "constant quality: lower is better and bigger; 0-51 (av1: 0-63)", 18, metavar="Q"),
    "preset": Flag(str, "encoder speed against size (x264's names; mapped for av1)", "veryfast", PRESETS),
    "pix_fmt": Flag(
        str, "pixel format of the output; default: 4:2:0 at the source's bit depth", None, PIX_FMTS
    ),
    "container": Flag(
        str, "file format; default: from an .mov/.mkv --output name, else mp4", None, ("mp4", "mov", "mkv")
    ),
    "faststart": Flag(
        bool, "MP4/MOV: put the index first, so playback starts before the download ends", True
    ),
    "face_selector": Flag(
        str,
        "which faces to process: all, the largest, the leftmost, or those like --reference "
        "(aliases of a mode and an order: all = many as detected, largest = one large-small, "
        "leftmost = one left-right)",
        "all",
        ("all", "largest", "leftmost", "reference"),
    ),
    "face_selector_mode": Flag(
        str,
        "FaceFusion's selector: many (every face), one (the first in --face-selector-order), "
        "reference (those like --reference); default: from --face-selector",
        None,
        ("many", "one", "reference"),
    ),
    "face_selector_order": Flag(
        str,
        "the order faces are taken in (box x, box y, box area, detector score); default: "
        "large-small with --face-selector-mode, else --face-selector's",
        None,
        SELECTOR_ORDERS,
    ),
    "reference_face_distance": Flag(
        float,
        "reference mode: how unlike the reference a face may be, as 1 - cosine similarity of "
        "the recogniser's embeddings (0-2)",
        0.6,
        metavar="D",
        aliases=("--reference-distance",),
    ),
    "face_selector_age_start": Flag(
        int, "keep faces at least this old (0-100; needs --face-attribute-model)", metavar="AGE"
    ),
    "face_selector_age_end": Flag(
        int, "keep faces at most this old (0-100; needs --face-attribute-model)", metavar="AGE"
    ),
    "face_selector_gender": Flag(
        str, "keep faces of this gender (needs --face-attribute-model)", None, ("female", "male")
    ),
    "face_attribute_model": Flag(
        str,
        "gender and age model for the selector's filters (genderage, declared in the model manifest)",
        metavar="MODEL",
    ),
    "face_detector": Flag(
        str,
        f"face detector model ({', '.join(DETECTORS)}, or one of the model manifest's)",
        "det_10g",
        metavar="MODEL",
    ),
    "detector_score": Flag(float, "lowest detection score a face needs (0-1)", 0.5, metavar="S"),
    "detector_nms": Flag(float, "overlap above which two detections are one face (0-1)", 0.4, metavar="T"),
    "face_recognizer": Flag(
        str, "face recognition model (for swapping and --reference)", "w600k_r50", metavar="MODEL"
    ),
    "detector_size": Flag(
        int, "detector input size in pixels (160-1280, a multiple of 32)", 640, metavar="PX"
    ),
    "swapper_model": Flag(str, "face_swapper's model", "inswapper_128", metavar="MODEL"),
    "enhancer_model": Flag(
        str, "face_enhancer's model (declare GFPGAN in a manifest)", "gfpgan_1.4", metavar="MODEL"
    ),
    "enhancer_blend": Flag(
        float, "face_enhancer: share of the enhanced face in the result (0-1)", 0.8, metavar="B"
    ),
    "anonymizer_mode": Flag(str, "face_anonymizer: how faces are hidden", "blur", ("blur", "pixelate")),
    "face_batch": Flag(int, "faces sent to the model at once (1-64)", 8, metavar="N"),
    "face_mask_types": Flag(
        str,
        "face_swapper/face_enhancer: the masks a face is pasted through, combined by their minimum "
        "(box: the crop's square; occlusion: where XSeg sees the face; area: landmark areas; "
        "region: face-parser regions)",
        ["box"],
        FACE_MASK_TYPES,
        many=True,
    ),
    "face_mask_blur": Flag(
        float,
        "the box's feather, a fraction of the crop's side (0-1); default: 0.1 for face_swapper, "
        "0.15 for face_enhancer",
        metavar="B",
    ),
    "face_mask_padding": Flag(
        int,
        "percent of the crop cut from the box's top, right, bottom, left (1-4 values, as CSS expands them)",
        [0, 0, 0, 0],
        metavar="PCT",
        many=True,
    ),
    "face_mask_areas": Flag(
        str,
        f"--face-mask-types area: the landmark areas kept, of {', '.join(FACE_MASK_AREAS)}",
        list(FACE_MASK_AREAS),
        FACE_MASK_AREAS,
        metavar="AREA",
        many=True,
    ),
    "face_mask_regions": Flag(
        str,
        f"--face-mask-types region: the face-parser regions kept, of {', '.join(FACE_MASK_REGIONS)}",
        list(FACE_MASK_REGIONS),
        FACE_MASK_REGIONS,
        metavar="REGION",
        many=True,
    ),
    "face_occluder_model": Flag(
        str, "--face-mask-types occlusion: the XSeg occluder model", "xseg_1", metavar="MODEL"
    ),
    "face_parser_model": Flag(
        str, "--face-mask-types region: the BiSeNet face parser model", "bisenet_resnet_34", metavar="MODEL"
    ),
}


def _names(value: str) -> list[str]:
    return [name.strip() for name in value.split(",") if name.strip()]


# options only the service has (facefleet submit): a queue's, and who is told when the task moves
SCHEDULING_FLAGS: dict[str, Flag] = {
    "priority": Flag(int, "0-9; 9 goes first", 5, metavar="P"),
    "deadline_s": Flag(float, "fail the task when not done this many seconds after submission", metavar="S"),
    "queue_ttl_s": Flag(
        float, "fail the task when no frame of it started this many seconds after submission", metavar="S"
    ),
    "webhook_url": Flag(str, "POST signed events of the task to this URL (Standard Webhooks)", metavar="URL"),
    "webhook_events": Flag(
        _names,
        "comma-separated events to send: started, progress, succeeded, failed, cancelled, "
        "batch_completed (default: all but progress)",
        metavar="LIST",
    ),
}

PROCESSORS_HELP = (
    f"comma-separated chain of {', '.join(PROCESSOR_CHOICES)}; none: no face processing "
    "(the video is re-encoded)"
)


def flag_name(field: str) -> str:
    return f"--{field.replace('_', '-')}"


def add_option_flags(parser: argparse.ArgumentParser, flags: dict[str, Flag]) -> None:
    """``--name VALUE`` per option (None when not given); a yes/no one is the pair
    ``--name`` / ``--no-name``."""
    group = parser.add_argument_group("output and face options (the API's option names)")
    for name, flag in flags.items():
        shown = "" if flag.default is None else f" (default: {_shown(flag.default)})"
        if flag.kind is bool:
            group.add_argument(
                flag_name(name),
                dest=name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=flag.help + shown,
            )
        else:
            # choices are shown, and checked by JobOptions as the API checks them: a wrong
            # value is the same refusal (exit status 1) whichever way it came
            metavar = flag.metavar or ("{" + ",".join(flag.choices) + "}" if flag.choices else None)
            group.add_argument(
                flag_name(name),
                *flag.aliases,
                dest=name,
                type=flag.kind,
                nargs="+" if flag.many else None,
                default=None,
                metavar=metavar,
                help=flag.help + shown,
            )


def _shown(value: object) -> str:
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return ("on" if value else "off") if isinstance(value, bool) else str(value)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogues keep their lines."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


def suggest(word: str, known: list[str] | tuple[str, ...]) -> str:
    """`` (did you mean X?)`` for a near miss, else nothing."""
    import difflib

    close = difflib.get_close_matches(word, known, n=1, cutoff=0.75)
    return f" (did you mean {close[0]}?)" if close else ""


def with_flag(message: str) -> str:
    """An option error (``"crf: at most 51 ..."``, the API's words) with the flag the user
    typed: ``"crf: at most 51 ... (--crf)"``."""
    field = message.split(":", 1)[0]
    if field in JOB_FLAGS or field in SCHEDULING_FLAGS or field == "processors":
        return f"{message} ({flag_name(field)})"
    return message


def options_from_args(args: argparse.Namespace, settings: Settings) -> JobOptions:
    """The job options of ``facefleet run``'s flags, over the settings' defaults."""
    from facefleet.config.options import parse_options

    raw: dict[str, Any] = {"processors": args.processors}
    raw.update({name: getattr(args, name) for name in JOB_FLAGS if getattr(args, name) is not None})
    return parse_options(raw, settings.job_defaults())
