"""One typed settings object, read from FACEFLEET_* variables, built at each entry point.

``Settings`` is made of one class per concern (database, storage, services, scheduling,
limits, retention, access, observability, models); each reads its own FACEFLEET_* names and
can be built alone (the API's serving, access and webhook classes are in
``facefleet.config.api_settings``). Lists are comma-separated in the environment and lists here."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BeforeValidator, Field
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from facefleet.config.api_settings import AccessSettings, ServingSettings, WebhookSettings
from facefleet.config.content_policy import ContentPolicySettings
from facefleet.records.engine import DatabaseTimeouts
from pipeline.limits import MediaLimits
from pipeline.quality import Thresholds
from pipeline.runtime import Runtime

if TYPE_CHECKING:
    from facefleet.egress import EgressPolicy


def _split(value: object) -> object:
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


# "a,b, c" in the environment (never JSON), a tuple of names here
CommaList = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_split)]
_PREFIX = SettingsConfigDict(env_prefix="FACEFLEET_", extra="ignore")


def clone_mirrors() -> tuple[str, ...]:
    """Without FACEFLEET_MODEL_MIRRORS: the ``shared/models`` folder beside the project's
    clone, where there is one (the models a checkout's tests and demo use), else none."""
    beside = Path(__file__).resolve().parents[3] / "shared" / "models"
    return (str(beside),) if beside.is_dir() else ()


def _default_home() -> Path:
    return Path.home() / ".local" / "share" / "facefleet"


class TestHooks(BaseSettings):
    """Test-only switches (FACEFLEET_TEST_*): each makes a fault happen on purpose, so that a
    test can watch the service meet it. All off in a deployment."""

    __test__ = False  # not a test class
    model_config = SettingsConfigDict(env_prefix="FACEFLEET_TEST_", extra="ignore")

    poison_name: str | None = None  # a chunk of a target so named kills its worker at its first frame
    kill_at_dead_letter: bool = False  # a worker kills itself inside its first dead letter's transaction
    scratch_full: bool = False  # a worker's scratch writes fail as a full disk's do
    prober_crash: bool = False  # the sandboxed prober aborts on every file
    anonymizer_leaves_faces: bool = False  # the anonymiser hides nothing (its quality gate must say so)
    # "0,1": the GPUs `facefleet worker --gpus` finds, on a host without any (tests of the supervisor)
    fake_gpus: str | None = None


class ProvenanceSettings(BaseSettings):
    """What every output says it is (facefleet.provenance): the invisible watermark in each
    processed frame, the C2PA manifest signed at the stitch, and ``facefleet verify``."""

    model_config = _PREFIX

    # "off": processed frames go unmarked (a --processors none job is never marked); a task
    # keeps what was decided when it was submitted, so its resumes give the same bytes
    watermark: Literal["on", "off"] = "on"
    # the deployment's C2PA signing certificate chain (PEM, the signer's first) and its
    # private key (PEM); unset: outputs go unsigned (a warning at start-up); set but
    # unusable: the command stops at start-up
    c2pa_cert: Path | None = None
    c2pa_key: Path | None = None
    # PEM roots whose signers `facefleet verify` calls trusted (unset: valid, not trusted)
    c2pa_trust_anchors: Path | None = None
    # the sandboxed reading of a file `verify` is given: wall-clock seconds and frames read
    verify_timeout_s: float = Field(default=120.0, gt=0)
    verify_max_frames: int = Field(default=750, ge=1)


class QualitySettings(BaseSettings):
    """The quality gate (issue 27): how often a chunk samples a frame, and the thresholds a
    task's figures must meet (a task under one still succeeds, with ``passed: false``)."""

    model_config = _PREFIX

    # every N-th frame of the source is measured, decoded back from its stored segment; 0: off.
    # Every 50th: the gate's own CPU time is 2.8-2.9 % of a face_swapper job's with a cheap
    # generated swapper (bench/bench_quality.py, 200 frames of 640x360; the real inswapper
    # costs more per frame, so less); every 30th measured 5.1 % (job against job, 100 frames)
    quality_sample_every: int = Field(default=50, ge=0)
    quality_min_id_similarity: float = Field(default=0.85, ge=-1.0, le=1.0)
    quality_min_psnr_db: float = Field(default=30.0, ge=0)

    def quality_thresholds(self) -> Thresholds:
        return Thresholds(self.quality_min_id_similarity, self.quality_min_psnr_db)


class DatabaseSettings(BaseSettings):
    """PostgreSQL (distributed mode) and its timeouts, in seconds (0 turns one off)."""

    model_config = _PREFIX

    database_url: str | None = None
    db_connect_timeout_s: float = Field(default=10.0, ge=0)
    db_statement_timeout_s: float = Field(default=120.0, ge=0)
    db_idle_in_transaction_timeout_s: float = Field(default=300.0, ge=0)
    db_lock_timeout_s: float = Field(default=60.0, ge=0)
    db_keepalive_idle_s: float = Field(default=30.0, ge=0)  # TCP keepalive (0: off)
    db_tcp_user_timeout_s: float = Field(default=60.0, ge=0)  # unacknowledged data (0: off)

    def database_timeouts(self) -> DatabaseTimeouts:
        return DatabaseTimeouts(
            connect_s=self.db_connect_timeout_s,
            statement_s=self.db_statement_timeout_s,
            idle_in_transaction_s=self.db_idle_in_transaction_timeout_s,
            lock_s=self.db_lock_timeout_s,
            keepalive_idle_s=self.db_keepalive_idle_s,
            tcp_user_timeout_s=self.db_tcp_user_timeout_s,
        )


class StorageSettings(BaseSettings):
    """Where bytes live: the embedded home, the S3 bucket, the workers' scratch."""

    model_config = _PREFIX

    # embedded mode: everything lives under home (SQLite + a folder as the bucket)
    home: Path = Field(default_factory=_default_home)
    s3_endpoint_url: str | None = None
    s3_bucket: str | None = None
    s3_region: str = "us-east-1"
    s3_multipart_threshold: int = 16 * 1024 * 1024
    # the address users reach the bucket at, for download links (defaults to s3_endpoint_url)
    s3_public_endpoint_url: str | None = None
    presign_ttl_s: int = Field(default=3600, ge=60, le=7 * 24 * 3600)
    work_dir: Path | None = None  # scratch space for workers (defaults under home)
    cache_max_bytes: int = 20 * 1024**3
    keep_work_files: bool = False

    @property
    def scratch_dir(self) -> Path:
        return self.work_dir or self.home / "work"


class ServiceSettings(BaseSettings):
    """Redis and the Celery broker, shared by the API and the workers."""

    model_config = _PREFIX

    redis_url: str = "redis://127.0.0.1:6379/0"
    broker_url: str | None = None  # defaults to redis_url
    redis_namespace: str = "facefleet"  # prefix of every Redis key (checkpoints, leases, flags)
    queue_prefix: str = ""  # prefix of the Celery queue names (isolates deployments on one broker)

    @property
    def effective_broker_url(self) -> str:
        return self.broker_url or self.redis_url


class SchedulingSettings(BaseSettings):
    """What runs when: the fleet's loops, leases, retries, deadlines and admission control."""

    model_config = _PREFIX

    # every worker runs the reaper (expired leases, lost messages, deadlines) and the
    # dispatcher (releases queued chunks to the broker), one worker at a time (a Redis lock)
    reaper_interval_s: float = Field(default=2.0, gt=0)
    dispatch_interval_s: float = Field(default=1.0, gt=0)
    # chunks released per worker slot, its running one included (1: none waits in the broker
    # behind a busy worker, so a new high-priority task takes the next free one)
    dispatch_per_slot: int = Field(default=1, ge=1)
    # a released chunk nobody started this long, while the broker holds fewer messages than
    # there are such chunks, has lost its message: it is released again
    release_timeout_s: float = Field(default=5.0, gt=0)
    # deadlines: defaults of the deadline_s / queue_ttl_s task options (unset: none)
    default_deadline_s: float | None = Field(default=None, gt=0)
    default_queue_ttl_s: float | None = Field(default=None, gt=0)
    # admission control: when the backlog would take the ready workers longer than this to
    # finish, submissions below admission_min_priority get 429 (unset: off)
    admission_horizon_s: float | None = Field(default=None, gt=0)
    admission_min_priority: int = Field(default=7, ge=0, le=10)
    # frames per second one worker slot is assumed to do until throughput has been measured
    admission_nominal_fps: float = Field(default=25.0, gt=0)
    chunk_max_attempts: int = 3  # attempts a chunk's work may fail (the input, a model)
    # infrastructure failures (storage, database, Redis, broker) spend time, not attempts
    infra_retry_s: float = Field(default=900.0, gt=0)
    lost_worker_budget: int = Field(default=10, ge=1)  # times a chunk's worker may be lost
    # a killed worker's chunk moves again within lease_ttl_s + reaper_interval_s: 15 s renewed
    # every 5 s survives two missed renewals (a Redis blip, a GC pause) and recovers in < 30 s
    lease_ttl_s: float = Field(default=15.0, gt=0)
    # a chunk whose frames stop moving this long gives up its lease (planning and stitching too)
    chunk_stall_s: float = 900.0
    # a worker whose chunks of this many different tasks fail in a row (or that meets one
    # fault of its own: full disk, device, refused credentials) stops taking chunks, and
    # checks itself every worker_breaker_recheck_s to take them again (worker.breaker)
    worker_breaker_failures: int = Field(default=3, ge=1, le=50)
    worker_breaker_recheck_s: float = Field(default=60.0, gt=0)


class LimitsSettings(BaseSettings):
    """What a submission may be: media limits, upload sizes, a job's shape, URL fetches."""

    model_config = _PREFIX

    # media limits: a target or image past one is refused (422 at submission, else the task fails)
    max_pixels: int = Field(default=7680 * 4320, ge=1)
    max_frames: int | None = Field(default=None, ge=1)
    max_duration_s: float | None = Field(default=None, gt=0)
    max_image_pixels: int = Field(default=50_000_000, ge=1)
    probe_timeout_s: float = Field(default=30.0, gt=0)  # the sandboxed probe of a submission's target
    probe_memory_bytes: int = Field(default=2 * 1024**3, ge=64 * 1024**2)
    max_upload_bytes: int = 4 * 1024**3
    max_source_bytes: int = 32 * 1024**2
    # a whole number of segments: a chunk of 600 ended in a 100-frame segment, one more
    # keyframe and encoder start per chunk (750 against 600 on a 60 s 720p input: 2 % fewer
    # bits, ~4 % less time)
    chunk_frames: int = Field(default=750, ge=1)
    # a segment is one encoder's run, and a resumed or cancelled chunk redoes or finishes at
    # most one. A chunk in one segment by default: x264 gives a stream's first keyframe a
    # coarser quantiser than a mid-stream one and cannot carry MB-tree past a stream's end, so
    # at the same CRF each segment start costs ~0.4 % of a minute's bits and ~0.008 dB (at
    # equal bits the PSNR is the CLI's): on 60 s of 720p footage 250-frame segments wrote 0.98x
    # the CLI's bytes at 0.04 dB less, 750 0.996x at 0.008 dB less (60: ~5 % more CPU, ~10 % more bits)
    segment_frames: int = Field(default=750, ge=1)
    max_chunks_per_task: int = Field(default=5000, ge=1)
    max_chunk_s: float = Field(default=600.0, gt=0)  # seconds of video a chunk may hold at most
    max_segments_per_task: int = Field(default=50000, ge=1)
    # inputs by URL: the guard for every outbound fetch (http:// only inside egress_allow)
    egress_allow: CommaList = ()  # CIDRs opened to fetches (tests, private deployments)
    egress_s3_buckets: CommaList = ()  # buckets that s3:// inputs may name
    egress_timeout_s: float = Field(default=120.0, gt=0)

    def egress_policy(self, max_bytes: int) -> EgressPolicy:
        from facefleet.egress import EgressPolicy, parse_allow  # here: urllib3 only for fetches

        return EgressPolicy(
            max_bytes=max_bytes,
            allow=parse_allow(",".join(self.egress_allow)),
            timeout_s=self.egress_timeout_s,
            allowed_s3_buckets=frozenset(self.egress_s3_buckets),
        )

    def media_limits(self) -> MediaLimits:
        return MediaLimits(
            max_pixels=self.max_pixels,
            max_frames=self.max_frames,
            max_duration_s=self.max_duration_s,
            max_image_pixels=self.max_image_pixels,
        )


class RetentionSettings(BaseSettings):
    """How long what a task leaves behind is kept."""

    model_config = _PREFIX

    # the reaper removes outputs / inputs this many days after the task ended (0: never)
    retention_output_days: float = Field(default=0, ge=0)
    retention_input_days: float = Field(default=0, ge=0)
    # bucket prefixes of tasks with no row (an API killed mid-upload, a late writer after a
    # DELETE) are removed once this old; the longest upload must take less
    orphan_grace_s: float = Field(default=3600.0, gt=0)


class ObservabilitySettings(BaseSettings):
    """Logs and metrics."""

    model_config = _PREFIX

    # unset: JSON lines for services, text for commands (--log-format / --log-level win)
    log_format: Literal["json", "text"] | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] | None = None
    # where each worker serves /metrics for its pool (0: not served)
    metrics_port: int = Field(default=9101, ge=0, le=65535)


class ModelSettings(BaseSettings):
    """Models, inference and encoding on a worker."""

    model_config = _PREFIX

    model_dir: Path | None = None
    model_mirrors: CommaList = ()  # folders or URLs
    model_manifest: Path | None = None
    # onnxruntime providers, in order; "auto": TensorRT, then CUDA, then the CPU, as present
    providers: CommaList = ("CPUExecutionProvider",)
    allow_cpu_fallback: bool = False
    # models a chunk worker loads and runs once before it says it is ready (e.g.
    # "det_10g,w600k_r50,inswapper_128"; empty: ready once its services answer)
    warm_models: CommaList = ()
    encoder_threads: int = 4
    # frames per inference call on this worker: detection over them at once and all their
    # faces swapped in one call (unset: each job's face_batch); the output does not depend on it
    inference_batch: int | None = Field(default=None, ge=1, le=64)
    # NVDEC/NVENC where the FFmpeg build and the host have them (auto), or the CPU codecs (none)
    hwaccel: Literal["auto", "none"] = "none"
    # the GPU `facefleet worker --gpus` pinned this process to (CUDA's own variable)
    cuda_visible_devices: str | None = Field(default=None, validation_alias="CUDA_VISIBLE_DEVICES")

    def runtime(self) -> Runtime:
        defaults = Runtime()
        return Runtime(
            model_dir=self.model_dir or defaults.model_dir,
            model_mirrors=self.model_mirrors or clone_mirrors(),
            model_manifest=self.model_manifest,
            providers=self.providers,
            allow_cpu_fallback=self.allow_cpu_fallback,
            inference_batch=self.inference_batch or 0,
            gpu=self.cuda_visible_devices.split(",")[0] if self.cuda_visible_devices else None,
        )


class Settings(
    DatabaseSettings,
    StorageSettings,
    ServiceSettings,
    SchedulingSettings,
    LimitsSettings,
    WebhookSettings,
    RetentionSettings,
    AccessSettings,
    ServingSettings,
    ObservabilitySettings,
    ModelSettings,
    QualitySettings,
    ProvenanceSettings,
    ContentPolicySettings,
):
    """Every setting of a deployment, one field per FACEFLEET_* variable."""

    model_config = _PREFIX

    # test-only fault switches, read from their own FACEFLEET_TEST_* variables
    test_hooks: TestHooks = Field(default_factory=TestHooks)

    def job_defaults(self) -> dict[str, float]:
        """Option defaults that come from the deployment rather than JobOptions itself."""
        defaults: dict[str, float] = {
            "chunk_frames": self.chunk_frames,
            "segment_frames": self.segment_frames,
        }
        if self.default_deadline_s:
            defaults["deadline_s"] = self.default_deadline_s
        if self.default_queue_ttl_s:
            defaults["queue_ttl_s"] = self.default_queue_ttl_s
        return defaults
