"""One typed settings object, read from FACEFLEET_* variables, built at each entry point."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.runtime import Runtime


def _default_home() -> Path:
    return Path.home() / ".local" / "share" / "facefleet"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FACEFLEET_", extra="ignore")

    # embedded mode: everything lives under home (SQLite + a folder as the bucket)
    home: Path = Field(default_factory=_default_home)

    # distributed mode
    database_url: str | None = None
    redis_url: str = "redis://127.0.0.1:6379/0"
    broker_url: str | None = None  # defaults to redis_url
    s3_endpoint_url: str | None = None
    s3_bucket: str | None = None
    s3_region: str = "us-east-1"
    s3_multipart_threshold: int = 16 * 1024 * 1024
    api_secret_key: SecretStr | None = None
    api_public_url: str = "http://127.0.0.1:8000"
    redis_namespace: str = "facefleet"  # prefix of every Redis key (checkpoints, leases, flags)
    queue_prefix: str = ""  # prefix of the Celery queue names (isolates deployments on one broker)
    reaper_interval_s: float = 10.0  # how often expired chunk leases are looked for
    api_url: str = "http://127.0.0.1:8000"  # where `facefleet submit|status|download` find the API

    # jobs
    chunk_frames: int = 600
    segment_frames: int = 60
    max_upload_bytes: int = 4 * 1024**3
    max_source_bytes: int = 32 * 1024**2
    chunk_max_attempts: int = 3
    lease_ttl_s: int = 60
    chunk_stall_s: float = 900.0  # a chunk whose frames stop moving this long gives up its lease
    keep_work_files: bool = False
    work_dir: Path | None = None  # scratch space for workers (defaults under home)
    cache_max_bytes: int = 20 * 1024**3
    encoder_threads: int = 4

    # models and inference
    model_dir: Path | None = None
    model_mirrors: str = ""  # comma-separated folders or URLs
    model_manifest: Path | None = None
    providers: str = "CPUExecutionProvider"  # comma-separated onnxruntime providers, in order
    allow_cpu_fallback: bool = False

    @property
    def effective_broker_url(self) -> str:
        return self.broker_url or self.redis_url

    @property
    def scratch_dir(self) -> Path:
        return self.work_dir or self.home / "work"

    def runtime(self) -> Runtime:
        defaults = Runtime()
        return Runtime(
            model_dir=self.model_dir or defaults.model_dir,
            model_mirrors=tuple(m.strip() for m in self.model_mirrors.split(",") if m.strip()),
            model_manifest=self.model_manifest,
            providers=tuple(p.strip() for p in self.providers.split(",") if p.strip()),
            allow_cpu_fallback=self.allow_cpu_fallback,
        )
