"""A job's options, validated the same way for the CLI and the API."""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.errors import PipelineError
from pipeline.faces.mask_names import (
    FaceMaskArea,
    FaceMaskRegion,
    FaceMaskType,
)
from pipeline.faces.selector_names import SelectorMode, SelectorOrder
from pipeline.processors import parse_processor_names


class OptionsError(ValueError):
    """Options a user gave that cannot be used; the message names the field."""


MAX_MODEL_NAME = 100
# who is told what, and where: not the job's work (left out of an embedded job's id)
DELIVERY_OPTIONS = frozenset({"webhook_url", "webhook_events"})
# options of the job's scheduling and chunking, not of its frames
SCHEDULING_OPTIONS = (
    frozenset({"processors", "chunk_frames", "segment_frames", "priority", "deadline_s", "queue_ttl_s"})
    | DELIVERY_OPTIONS
)
# face_selector's values as face_selector_mode's
SELECTOR_ALIAS_MODES = {"all": "many", "largest": "one", "leftmost": "one", "reference": "reference"}
WebhookEventName = Literal["started", "progress", "succeeded", "failed", "cancelled", "batch_completed"]
# the events sent when webhook_events is not given: every one but progress
DEFAULT_WEBHOOK_EVENTS = ("started", "succeeded", "failed", "cancelled", "batch_completed")


class JobOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    processors: list[str] = Field(default_factory=list)
    chunk_frames: int = Field(default=750, ge=1, le=1_000_000)
    segment_frames: int = Field(default=750, ge=1, le=100_000)
    trim_start: int | None = Field(default=None, ge=0)
    trim_end: int | None = Field(default=None, ge=1)
    # output: libx264 / libx265 / libsvtav1; crf 0-51 (av1: 0-63); x264's preset names (for av1
    # mapped onto SVT-AV1's numbers); pix_fmt None: 4:2:0 at the source's bit depth
    codec: Literal["h264", "hevc", "av1"] = "h264"
    crf: int = Field(default=18, ge=0, le=63)
    preset: Literal[
        "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"
    ] = "veryfast"
    pix_fmt: Literal["yuv420p", "yuv420p10le", "yuv422p", "yuv422p10le", "yuv444p", "yuv444p10le"] | None = (
        None
    )
    container: Literal["mp4", "mov", "mkv"] = "mp4"
    faststart: bool = True  # MP4/MOV: the index first, so playback starts before the download ends
    priority: int = Field(default=5, ge=0, le=9)
    # seconds from submission: done by then, or failed with reason "deadline"; started
    # (a first chunk running) by then, or failed with reason "expired"
    deadline_s: float | None = Field(default=None, gt=0, le=30 * 24 * 3600)
    queue_ttl_s: float | None = Field(default=None, gt=0, le=30 * 24 * 3600)
    # face pipeline
    # which faces: FaceFusion's mode, order and filters; face_selector's values are aliases
    # of a mode and an order (README, "Choosing faces")
    face_selector: Literal["all", "largest", "leftmost", "reference"] = "all"
    face_selector_mode: SelectorMode | None = None
    face_selector_order: SelectorOrder | None = None
    # 1 - cosine similarity of ArcFace embeddings (0-2); reference_distance: its older name
    reference_face_distance: float = Field(default=0.6, gt=0, le=2)
    face_selector_age_start: int | None = Field(default=None, ge=0, le=100)
    face_selector_age_end: int | None = Field(default=None, ge=0, le=100)
    face_selector_gender: Literal["female", "male"] | None = None
    face_attribute_model: str | None = Field(default=None, max_length=MAX_MODEL_NAME)
    face_detector: str = Field(default="det_10g", max_length=MAX_MODEL_NAME)
    detector_score: float = Field(default=0.5, gt=0, lt=1)
    detector_nms: float = Field(default=0.4, gt=0, lt=1)
    detector_size: int = Field(default=640, ge=160, le=1280, multiple_of=32)
    face_recognizer: str = Field(default="w600k_r50", max_length=MAX_MODEL_NAME)
    swapper_model: str = Field(default="inswapper_128", max_length=MAX_MODEL_NAME)
    enhancer_model: str = Field(default="gfpgan_1.4", max_length=MAX_MODEL_NAME)
    enhancer_blend: float = Field(default=0.8, ge=0, le=1)
    anonymizer_mode: Literal["blur", "pixelate"] = "blur"
    face_batch: int = Field(default=8, ge=1, le=64)
    # masks of face_swapper and face_enhancer, by FaceFusion's names; combined by their minimum
    face_mask_types: list[FaceMaskType] = Field(default=["box"], min_length=1, max_length=4)
    # the box's feather, a fraction of the crop's side; None: face_swapper 0.1, face_enhancer 0.15
    face_mask_blur: float | None = Field(default=None, ge=0, le=1)
    # percent of the crop cut from the top, right, bottom, left (1-4 values, as CSS expands them)
    face_mask_padding: list[int] = Field(default=[0, 0, 0, 0], min_length=1, max_length=4)
    face_mask_areas: list[FaceMaskArea] = Field(
        default=list(get_args(FaceMaskArea)), min_length=1, max_length=3
    )
    face_mask_regions: list[FaceMaskRegion] = Field(
        default=list(get_args(FaceMaskRegion)), min_length=1, max_length=10
    )
    face_occluder_model: str = Field(default="xseg_1", max_length=MAX_MODEL_NAME)
    face_parser_model: str = Field(default="bisenet_resnet_34", max_length=MAX_MODEL_NAME)
    # webhooks: signed POSTs of these events to this URL (checked by the egress guard at
    # submission and again at each delivery)
    webhook_url: str | None = Field(default=None, max_length=2000)
    webhook_events: list[WebhookEventName] | None = None

    @property
    def webhook_wants(self) -> frozenset[str]:
        """The events to send (none without a webhook_url)."""
        if not self.webhook_url:
            return frozenset()
        return frozenset(self.webhook_events if self.webhook_events is not None else DEFAULT_WEBHOOK_EVENTS)

    @field_validator("processors", mode="before")
    @classmethod
    def _split_processors(cls, value: Any) -> list[str]:
        try:
            return parse_processor_names(value)
        except PipelineError as exc:
            raise ValueError(str(exc)) from exc

    @property
    def selector_mode(self) -> str:
        """many, one or reference: face_selector_mode, else face_selector's."""
        return self.face_selector_mode or SELECTOR_ALIAS_MODES[self.face_selector]

    @property
    def selector_filters(self) -> bool:
        """Whether an age or gender filter is asked for (the attribute model then runs)."""
        return any(
            value is not None
            for value in (self.face_selector_age_start, self.face_selector_age_end, self.face_selector_gender)
        )

    @model_validator(mode="before")
    @classmethod
    def _older_names(cls, data: Any) -> Any:
        if isinstance(data, dict) and "reference_distance" in data:
            if "reference_face_distance" in data:
                raise ValueError("reference_distance: give reference_face_distance only (its new name)")
            data = {**data, "reference_face_distance": data["reference_distance"]}
            del data["reference_distance"]
        return data

    @model_validator(mode="after")
    def _check_selector(self) -> JobOptions:
        if self.face_selector != "all" and self.face_selector_mode is not None:
            raise ValueError(
                f"face_selector_mode: face_selector {self.face_selector} is itself a mode and an "
                "order; give one of the two"
            )
        if self.face_selector in ("largest", "leftmost") and self.face_selector_order is not None:
            raise ValueError(
                f"face_selector_order: face_selector {self.face_selector} has its own order; "
                "use face_selector_mode one with the order"
            )
        start, end = self.face_selector_age_start, self.face_selector_age_end
        if start is not None and end is not None and end < start:
            raise ValueError("face_selector_age_end must not be below face_selector_age_start")
        for name in ("face_selector_age_start", "face_selector_age_end", "face_selector_gender"):
            if getattr(self, name) is not None and not self.face_attribute_model:
                raise ValueError(
                    f"{name}: needs an attribute model, and none is configured: set "
                    "face_attribute_model (genderage, declared with its sha256 in the model manifest)"
                )
        return self

    @field_validator("face_mask_types", "face_mask_areas", "face_mask_regions")
    @classmethod
    def _once_each(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    @field_validator("face_mask_padding")
    @classmethod
    def _four_sides(cls, value: list[int]) -> list[int]:
        if any(p < 0 or p > 100 for p in value):
            raise ValueError("each padding is a percent of the crop, 0-100")
        top, right, bottom, left = {1: value * 4, 2: value * 2, 3: [*value, value[1]], 4: value}[len(value)]
        if top + bottom >= 100 or left + right >= 100:
            raise ValueError("top + bottom and left + right must leave some of the crop (under 100)")
        return [top, right, bottom, left]

    @model_validator(mode="after")
    def _check_trim(self) -> JobOptions:
        if self.trim_start is not None and self.trim_end is not None and self.trim_end <= self.trim_start:
            raise ValueError("trim_end must be greater than trim_start")
        return self

    @model_validator(mode="after")
    def _check_codec(self) -> JobOptions:
        if self.codec != "av1" and self.crf > 51:
            raise ValueError(f"crf: at most 51 for {self.codec} (63 for av1)")
        if self.codec == "av1" and self.pix_fmt not in (None, "yuv420p", "yuv420p10le"):
            raise ValueError("pix_fmt: av1 (SVT-AV1) codes yuv420p or yuv420p10le only")
        return self

    def processor_options(self) -> dict[str, Any]:
        """The options the face processors read (plain JSON types)."""
        return self.model_dump(exclude=set(SCHEDULING_OPTIONS))


def parse_options(data: dict[str, Any], defaults: dict[str, Any] | None = None) -> JobOptions:
    """Validate raw options (``defaults`` fill the fields they leave out: the deployment's
    chunk and segment sizes); errors name the offending field in one line."""
    try:
        # strict: "18" or true is not 18 (an int still stands for a float)
        return JobOptions.model_validate({**(defaults or {}), **data}, strict=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "options"
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = "unknown option"
        if not first["loc"] and message.split(":", 1)[0] in JobOptions.model_fields:
            raise OptionsError(message) from exc  # the message names its field
        raise OptionsError(f"{where}: {message}") from exc


def check_plan_size(options: JobOptions, frames: int, *, max_chunks: int, max_segments: int) -> None:
    """Refuse a task whose chunking of ``frames`` frames would make too many rows and files
    (``chunk_frames: 1`` on an hour of video would be 90,000 rows, messages and files)."""
    chunk, segment = options.chunk_frames, options.segment_frames
    full, rest = divmod(frames, chunk)
    chunks = full + (rest > 0)
    segments = full * -(-chunk // segment) + -(-rest // segment)
    if chunks > max_chunks:
        raise OptionsError(
            f"chunk_frames: {frames} frames in chunks of {chunk} make {chunks} chunks; "
            f"at most {max_chunks} are allowed (raise chunk_frames)"
        )
    if segments > max_segments:
        raise OptionsError(
            f"segment_frames: {frames} frames make {segments} segments; at most "
            f"{max_segments} are allowed (raise segment_frames)"
        )
