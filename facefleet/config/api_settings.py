"""The settings of the API and the webhooks it promises: slow clients, access (keys, the
client commands' API, Flower), webhook delivery. Part of ``facefleet.config.settings.Settings``;
each class reads its own FACEFLEET_* names and can be built alone."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

_PREFIX = SettingsConfigDict(env_prefix="FACEFLEET_", extra="ignore")


class WebhookSettings(BaseSettings):
    """Webhooks (facefleet.events.webhooks): each event retried with exponential backoff and
    jitter (from webhook_retry_base_s, at most webhook_retry_max_s apart) for webhook_retry_s
    after it was written; each attempt has webhook_timeout_s; a worker's deliverer sends at
    most webhook_concurrency at once, webhook_per_receiver of them to one URL. A task's
    ``progress`` event is written at most once per webhook_progress_every_s (the contract says
    10 s; a test lowers it to see several). Delivered (or given up) events are pruned by the
    reaper webhook_keep_days after they were written (0: kept)."""

    model_config = _PREFIX

    webhook_retry_s: float = Field(default=24 * 3600.0, gt=0)
    webhook_retry_base_s: float = Field(default=5.0, gt=0)
    webhook_retry_max_s: float = Field(default=3600.0, gt=0)
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=300)
    webhook_concurrency: int = Field(default=16, ge=1, le=256)
    webhook_per_receiver: int = Field(default=4, ge=1, le=64)
    webhook_poll_s: float = Field(default=0.5, gt=0)
    webhook_progress_every_s: float = Field(default=10.0, gt=0)
    webhook_keep_days: float = Field(default=30.0, ge=0)


class ServingSettings(BaseSettings):
    """The API against slow clients: a request's line and headers must arrive within
    api_header_timeout_s; a body may pause at most upload_read_timeout_s between bytes and
    must arrive within upload_grace_s plus its length at upload_min_bytes_per_s (else 408); a
    tenant may have tenant_max_uploads submissions being received at once, an API process
    api_submit_threads (default: all its write threads but one, kept for cancels and deletes)."""

    model_config = _PREFIX

    api_header_timeout_s: float = Field(default=10.0, gt=0)
    upload_read_timeout_s: float = Field(default=15.0, gt=0)
    upload_min_bytes_per_s: int = Field(default=64 * 1024, ge=1)
    upload_grace_s: float = Field(default=30.0, ge=0)
    tenant_max_uploads: int = Field(default=4, ge=1)
    api_submit_threads: int | None = Field(default=None, ge=1)


class AccessSettings(BaseSettings):
    """Who may call what: API keys, the client commands' API, Flower's password."""

    model_config = _PREFIX

    api_url: str = "http://127.0.0.1:8000"  # where `facefleet submit|status|download` find the API
    api_key: SecretStr | None = None  # the key those commands send (FACEFLEET_API_KEY)
    # every /v1/ request needs a key; "off": one user, everything belongs to the default tenant
    auth: Literal["on", "off"] = "on"
    # `facefleet flower`: user:password (comma-separated for several); needed beyond loopback
    flower_basic_auth: SecretStr | None = None
