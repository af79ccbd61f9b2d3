"""The content policy's settings (``FACEFLEET_CONTENT_POLICY*``), a concern of its own mixed
into ``Settings`` (``facefleet.config.settings``); the classifier is ``pipeline.content``."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.content import Policy, PolicyMode


class ContentPolicySettings(BaseSettings):
    """What a worker does with the input frames it samples (the quality gate's cadence,
    FACEFLEET_QUALITY_SAMPLE_EVERY, and each chunk's first frame): ``off`` (no classifier is
    loaded, nothing costs), ``flag`` (the task says it was flagged, a metric counts it) or
    ``block`` (the task fails with reason ``content_policy`` and none of its files are kept)."""

    model_config = SettingsConfigDict(env_prefix="FACEFLEET_", extra="ignore")

    content_policy: PolicyMode = "off"
    # a classifier of kind nsfw in the model registry (built in, or the model manifest's)
    content_policy_model: str = "open_nsfw"
    # a sampled frame whose unsafe probability is at least this is flagged (or blocks)
    content_policy_threshold: float = Field(default=0.8, ge=0.0, le=1.0)

    def content_policy_rule(self) -> Policy:
        return Policy(self.content_policy, self.content_policy_model, self.content_policy_threshold)
