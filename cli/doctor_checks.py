"""What ``facefleet doctor`` checks: each check answers a Check with what it found and, when
it failed, the fix. The checks reach the services the settings name (with short timeouts)
and never change anything, except ``fix_bucket`` when asked to."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from facefleet.fleet.queues import QUEUES

if TYPE_CHECKING:
    from facefleet.config.settings import Settings

OK, WARN, FAIL = "ok", "warn", "FAIL"
TIMEOUT_S = 3
MIN_FREE_BYTES = 2 * 1024**3  # a chunk's scratch and a film's output need room


OUTAGE_FIX = "start PostgreSQL or fix FACEFLEET_DATABASE_URL"  # a database that may come back


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok, warn, FAIL
    detail: str
    fix: str = ""

    def as_json(self) -> dict[str, str]:
        return asdict(self)


def models_for(processors: list[str], options: dict[str, object]) -> list[str]:
    """The models a chain needs with the given options (the JobOptions' defaults fill in)."""
    from facefleet.config.options import JobOptions
    from pipeline.models.registry import models_needed

    return models_needed(processors, JobOptions.model_validate(options).model_dump())


def check_python() -> Check:
    version = ".".join(map(str, sys.version_info[:3]))
    if sys.version_info[:2] == (3, 11):
        return Check("python", OK, f"{version} ({sys.executable})")
    return Check(
        "python", WARN, f"{version}: the locked dependencies are for 3.11", "make PYTHON=python3.11 install"
    )


def check_settings(settings: Settings, mode: str) -> Check:
    if mode == "embedded":
        return Check("settings", OK, f"embedded: FACEFLEET_HOME={settings.home}")
    missing = [
        n
        for n, v in (
            ("FACEFLEET_DATABASE_URL", settings.database_url),
            ("FACEFLEET_S3_BUCKET", settings.s3_bucket),
        )
        if not v
    ]
    if missing:
        return Check(
            "settings",
            FAIL,
            f"service mode needs {' and '.join(missing)}",
            f"export {missing[0]}=... (see README: running it as a service)",
        )
    return Check(
        "settings",
        OK,
        f"service: bucket {settings.s3_bucket}, Redis and broker from FACEFLEET_REDIS_URL/FACEFLEET_BROKER_URL",
    )


def check_ffmpeg() -> list[Check]:
    import av

    wanted = {
        "libx264": "h264 output",
        "libx265": "hevc output",
        "libsvtav1": "av1 output",
        "aac": "audio of a trim",
    }
    missing = []
    for codec, use in wanted.items():
        try:
            av.codec.Codec(codec, "w")
        except Exception:  # noqa: BLE001 - PyAV raises UnknownCodecError (a ValueError) or FFmpegError
            missing.append(f"{codec} ({use})")
    library = f"PyAV {av.__version__}, FFmpeg {av.library_versions['libavcodec']}"
    checks = [
        Check(
            "ffmpeg codecs",
            FAIL,
            f"{library}: no {', '.join(missing)}",
            "pip install the av wheel from constraints.txt (it bundles them)",
        )
        if missing
        else Check("ffmpeg codecs", OK, f"{library}: libx264, libx265, libsvtav1, aac")
    ]
    cli = shutil.which("ffmpeg")
    checks.append(
        Check("ffmpeg CLI", OK, cli)
        if cli
        else Check(
            "ffmpeg CLI", WARN, "not on PATH (only the tests and the bench use it)", "apt-get install ffmpeg"
        )
    )
    return checks


def check_models(settings: Settings, names: list[str], why: str) -> list[Check]:
    from pipeline.errors import ModelError
    from pipeline.models.store import ModelStore, how_to_provide

    try:
        store = ModelStore.for_runtime(settings.runtime())
    except ModelError as exc:
        return [Check("model manifest", FAIL, str(exc), "fix FACEFLEET_MODEL_MANIFEST")]
    checks = []
    for name in names:
        label = f"model {name}"
        try:
            spec = store.spec(name)
        except ModelError as exc:
            checks.append(Check(label, FAIL, str(exc), "choose a model `facefleet models list` shows"))
            continue
        path, problems = store.find(spec)
        if path is not None:
            checks.append(Check(label, OK, f"{path} (sha256 verified; {why})"))
            continue
        detail = (
            "; ".join(problems) or f"no verified copy in {settings.runtime().model_dir} or a mirror folder"
        )
        fix = how_to_provide(spec)
        checks.append(Check(label, FAIL, f"missing: {detail} ({why})", fix))
    return checks


def check_providers(settings: Settings) -> Check:
    wanted = list(settings.providers)
    try:
        import onnxruntime
    except ImportError:
        return Check("execution providers", FAIL, "onnxruntime is not installed", "make install")
    available = onnxruntime.get_available_providers()
    missing = [p for p in wanted if p not in available]
    if missing:
        fallback = settings.allow_cpu_fallback and "CPUExecutionProvider" in available
        return Check(
            "execution providers",
            WARN if fallback else FAIL,
            f"{', '.join(missing)} not available (this onnxruntime has {', '.join(available)})",
            "install the gpu extra (onnxruntime-gpu) and the CUDA libraries, or set FACEFLEET_PROVIDERS",
        )
    return Check("execution providers", OK, ", ".join(wanted))


def check_disk(name: str, folder: Path) -> Check:
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    detail = f"{free / 1024**3:.1f} GiB free at {folder}"
    if free < MIN_FREE_BYTES:
        return Check(name, FAIL, detail, f"free space on that disk, or point {_disk_setting(name)} elsewhere")
    return Check(name, OK, detail)


def _disk_setting(name: str) -> str:
    return "FACEFLEET_HOME" if name.startswith("home") else "FACEFLEET_WORK_DIR"


def check_embedded_database(settings: Settings) -> Check:
    from sqlalchemy import text

    from facefleet.records.engine import make_engine
    from facefleet.records.local_schema import SCHEMA_REVISION

    path = settings.home / "facefleet.db"
    if not path.exists():
        return Check("database", OK, f"{path} is made by the first run")
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            revision = conn.execute(text("PRAGMA user_version")).scalar()
    finally:
        engine.dispose()
    if revision is not None and revision > SCHEMA_REVISION:
        return Check(
            "database",
            FAIL,
            f"{path} is of a newer release (schema {revision} > {SCHEMA_REVISION})",
            "upgrade facefleet",
        )
    return Check("database", OK, f"{path} (schema {revision}; a run grows it to {SCHEMA_REVISION})")


def check_database(settings: Settings) -> Check:
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    from cli.commands.migrate import alembic_config
    from facefleet.records.engine import normalize_url

    assert settings.database_url
    head = ScriptDirectory.from_config(alembic_config(settings.database_url)).get_current_head()
    engine = create_engine(
        normalize_url(settings.database_url), connect_args=_connect_timeout(settings.database_url)
    )
    try:
        with engine.connect() as conn:
            current = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        if "alembic_version" in reason:
            return Check("database", FAIL, "reachable, but no schema", "facefleet migrate")
        fix = "createdb the database, then facefleet migrate" if "does not exist" in reason else OUTAGE_FIX
        return Check("database", FAIL, f"unreachable: {_redact(reason)}", fix)
    finally:
        engine.dispose()
    if current != head:
        return Check("database", FAIL, f"schema at {current}, the code needs {head}", "facefleet migrate")
    return Check("database", OK, f"reachable, schema at head ({head})")


def database_misconfigured(settings: Settings) -> str | None:
    """What ``check_database`` says of a database that does not exist, has no schema or an
    older one, for a process that stops at start-up with doctor's words; None when it is
    ready or only unreachable (an outage is waited out, not a reason to stop)."""
    check = check_database(settings)
    if check.status == OK or check.fix == OUTAGE_FIX:
        return None
    return f"database: {check.detail}; fix: {check.fix}"


def _connect_timeout(url: str) -> dict[str, object]:
    return {"connect_timeout": TIMEOUT_S} if url.startswith("postgresql") else {}


def _redact(text: str) -> str:
    import os

    from facefleet.observability.logs import Redactor, secret_values

    return Redactor(secret_values(os.environ)).text(text)


def check_redis(settings: Settings) -> Check:
    import redis

    try:
        redis.Redis.from_url(
            settings.redis_url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S
        ).ping()
    except redis.RedisError as exc:
        return Check(
            "redis", FAIL, f"unreachable: {type(exc).__name__}", "start Redis or fix FACEFLEET_REDIS_URL"
        )
    return Check("redis", OK, "answers PING (checkpoints, progress, leases)")


def check_broker(settings: Settings) -> Check:
    from kombu import Connection

    try:
        with Connection(settings.effective_broker_url, connect_timeout=TIMEOUT_S) as conn:
            conn.ensure_connection(max_retries=1, timeout=TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - kombu raises the transport's own errors
        return Check(
            "broker",
            FAIL,
            f"unreachable: {type(exc).__name__}",
            "start RabbitMQ/Redis or fix FACEFLEET_BROKER_URL",
        )
    return Check("broker", OK, f"accepts connections; queues {', '.join(QUEUES)}")


def _bucket(settings: Settings):  # type: ignore[no-untyped-def]
    from facefleet.storage.s3 import S3Storage

    assert settings.s3_bucket
    return S3Storage(
        settings.s3_bucket,
        cache_dir=settings.scratch_dir / "cache",
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
    )


def check_bucket(settings: Settings) -> Check:
    from facefleet.storage.base import Misconfigured, StorageError

    try:
        _bucket(settings).ping()
    except Misconfigured as exc:  # the words the API's 503, /readyz and a worker's start-up use
        detail, _, fix = str(exc).partition(": ")
        return Check("bucket", FAIL, detail, fix)
    except StorageError as exc:
        fix = (
            "set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
            if exc.local
            else "start the S3 server or fix FACEFLEET_S3_ENDPOINT_URL"
        )
        return Check("bucket", FAIL, str(exc), fix)
    return Check("bucket", OK, f"{settings.s3_bucket} answers")


def fix_bucket(settings: Settings) -> str:
    """Create the bucket; returns what was done."""
    _bucket(settings).create_bucket()
    return f"created bucket {settings.s3_bucket}"


CheckFn = Callable[[], Check | list[Check]]
