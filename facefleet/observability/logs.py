"""One structured logger for every process, configured once at each entry point.

The code logs through the standard library (``logging.getLogger(__name__)``, with
``extra={...}`` for fields); structlog's ProcessorFormatter turns every record, ours and the
libraries' (Celery, gunicorn, botocore), into one JSON object per line (``json``) or a
readable line (``text``). Fields bound with :func:`bind` (the request id, the task, the
chunk) ride along on every line of the current request or Celery task. Secrets never
appear: the last step before rendering masks URL passwords, presigned URL signatures,
AWS and API keys, and the literal values of secret-bearing settings.

structlog (with what it loads: asyncio, and rich where installed) is imported when the first
line is written, not at start-up: a command that logs nothing, as ``facefleet run`` at its
default level, starts ~0.06 s sooner. The bound fields are therefore kept here, in one
context variable, and merged into each line by a processor of ours.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import structlog

Service = Literal["api", "worker", "cli"]
LogFormat = Literal["json", "text"]
FORMATS: tuple[LogFormat, ...] = ("json", "text")
MASK = "***"

_rendering: list[LogFormat] = []  # what configure chose for this process
# the fields bound in this context (a request, a Celery task, a thread started with a copy of it);
# each bind sets a new dict, so a context copied before it keeps what it had
_bound: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "facefleet_log_fields", default=MappingProxyType({})
)


def bind(**fields: Any) -> None:
    """Add ``fields`` to every line logged from now on in this context."""
    _bound.set(MappingProxyType({**_bound.get(), **fields}))


def clear() -> None:
    """Nothing bound from now on in this context."""
    _bound.set(MappingProxyType({}))


def bound(key: str) -> Any:
    """A field bound to the current context (None when unbound)."""
    return _bound.get().get(key)


def renders_json() -> bool:
    return _rendering[-1:] == ["json"]


@contextlib.contextmanager
def detached() -> Iterator[None]:
    """Nothing bound inside (work done on behalf of others: a dispatch); restored after."""
    saved = _bound.get()
    clear()
    try:
        yield
    finally:
        _bound.set(saved)


def _merge_bound(_logger: Any, _name: str, event_dict: MutableMapping[str, Any]) -> Any:
    """The bound fields, after the line's own (which win where both name a field)."""
    for key, value in _bound.get().items():
        event_dict.setdefault(key, value)
    return event_dict


# patterns of secrets, each with the replacement that keeps what is safe to show
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # a presigned URL: its query (signature, credential, token) goes entirely
    (re.compile(r"(\w+://[^\s?\"'<>]+)\?[^\s\"'<>]*X-Amz-[^\s\"'<>]*", re.I), rf"\1?{MASK}"),
    (re.compile(r"(\w+://[^\s?\"'<>]+)\?[^\s\"'<>]*(?:Signature|AWSAccessKeyId)=[^\s\"'<>]*"), rf"\1?{MASK}"),
    # user:password@ in any URL (database, broker, Redis)
    (re.compile(r"(\w[\w+.-]*://[^\s:/@\"'<>]*:)[^\s@/\"'<>]+@"), rf"\1{MASK}@"),
    (re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"), MASK),  # AWS access key ids
    (re.compile(r"\b(ffk_[A-Za-z0-9]+_)[A-Za-z0-9_-]+"), rf"\1{MASK}"),  # our API keys
    (re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.I), rf"\1 {MASK}"),
    (
        re.compile(
            r"([\w-]*(?:password|secret|token|api_key)[\w-]*[\"']?\s*[:=]\s*b?[\"']?)[^\s\"',}&]+", re.I
        ),
        rf"\1{MASK}",
    ),
)
# environment variables whose values are secrets (masked wherever they appear verbatim)
_SECRET_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|CREDENTIAL|API_KEY|BASIC_AUTH|PRIVATE", re.I)
_URL_PASSWORD = re.compile(r"\w[\w+.-]*://[^\s:/@]*:([^\s@/]+)@")
MIN_SECRET_CHARS = 6  # shorter values ("test") would mask ordinary words


def secret_values(environ: Mapping[str, str]) -> list[str]:
    """The secrets in an environment: values of secret-named variables (and the password
    part of ``user:password``), and passwords inside URLs of any variable."""
    found: set[str] = set()
    for name, value in environ.items():
        if _SECRET_NAME.search(name):
            found.add(value)
            for part in value.split(","):  # user:password[,user:password...]
                found.add(part.partition(":")[2])
        found.update(_URL_PASSWORD.findall(value))
    return sorted((v for v in found if len(v) >= MIN_SECRET_CHARS), key=len, reverse=True)


class Redactor:
    """A structlog processor that masks secrets in every string of the event (the message,
    the fields, a rendered traceback)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = [s for s in secrets if s]

    def text(self, value: str) -> str:
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, MASK)
        for pattern, replacement in _PATTERNS:
            value = pattern.sub(replacement, value)
        return value

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        if value is None or isinstance(value, bool | int | float):
            return value
        return self.text(str(value))  # bytes, exceptions, objects: as the renderer would show them

    def __call__(self, _logger: Any, _name: str, event_dict: MutableMapping[str, Any]) -> Any:
        for key, value in event_dict.items():
            if key != "_record":
                event_dict[key] = self.value(value)
        return event_dict


def _service(service: Service) -> structlog.types.Processor:
    def add(_logger: Any, _name: str, event_dict: MutableMapping[str, Any]) -> Any:
        event_dict.setdefault("service", service)
        return event_dict

    return add


def _error_from_exception(_logger: Any, _name: str, event_dict: MutableMapping[str, Any]) -> Any:
    """An exception's last line becomes ``error`` (where none was given); the traceback
    stays in ``exception``."""
    rendered = event_dict.get("exception")
    if rendered and "error" not in event_dict:
        event_dict["error"] = str(rendered).strip().splitlines()[-1]
    return event_dict


def resolve_format(service: Service, given: str | None = None) -> LogFormat:
    """``given`` (``--log-format``, else FACEFLEET_LOG_FORMAT), else JSON for services, text for people."""
    chosen = given or ("text" if service == "cli" else "json")
    if chosen not in FORMATS:
        raise ValueError(f"log format {chosen!r}: expected json or text")
    return chosen  # type: ignore[return-value]


def resolve_level(service: Service, given: str | None = None) -> int:
    """``given`` (``--log-level``, else FACEFLEET_LOG_LEVEL), else INFO for services, ERROR for commands."""
    name = (given or ("ERROR" if service == "cli" else "INFO")).upper()
    level = logging.getLevelName(name)
    if not isinstance(level, int):
        raise ValueError(f"log level {name!r}: expected DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return level


def configure(
    service: Service,
    log_format: str | None = None,
    level: str | int | None = None,
    secrets: Iterable[str] = (),
) -> None:
    """Route every logger of this process to one handler on stderr, rendered as ``log_format``,
    with ``secrets`` (see ``secret_values``) masked wherever they appear."""
    fmt = resolve_format(service, log_format)
    numeric = level if isinstance(level, int) else resolve_level(service, level)
    _rendering.append(fmt)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(service, fmt, list(secrets)))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(numeric)
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = lambda args: _log_uncaught(
        args.exc_type, args.exc_value, args.exc_traceback, args.thread.name if args.thread else None
    )


class _Formatter(logging.Formatter):
    """structlog's ProcessorFormatter, built (and structlog imported) for the first line.
    A handler formats under its own lock, so it is built once."""

    def __init__(self, service: Service, fmt: LogFormat, secrets: list[str]) -> None:
        super().__init__()
        self._service, self._format, self._secrets = service, fmt, secrets
        self._built: logging.Formatter | None = None
        self._building = False

    def format(self, record: logging.LogRecord) -> str:
        if self._built is None:
            if self._building:  # a line logged while structlog loads (a warning): plain text
                return super().format(record)
            self._building = True
            try:
                self._built = _processor_formatter(self._service, self._format, self._secrets)
            finally:
                self._building = False
        return self._built.format(record)


def _processor_formatter(service: Service, fmt: LogFormat, secrets: list[str]) -> logging.Formatter:
    import structlog

    shared: list[structlog.types.Processor] = [
        _merge_bound,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
        _service(service),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer(default=str)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False, timestamp_key="ts")
    )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _error_from_exception,
            Redactor(secrets),
            renderer,
        ],
    )


def _log_uncaught(kind: Any, value: Any, traceback: Any, thread: str | None = None) -> None:
    """An exception nobody caught (a process's or a thread's end) as a line like the others."""
    if kind is not None and issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, traceback)
        return
    where = f" in thread {thread}" if thread else ""
    logging.getLogger("facefleet").critical("uncaught exception%s", where, exc_info=(kind, value, traceback))
