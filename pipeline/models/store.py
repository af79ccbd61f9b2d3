"""Finding, verifying and downloading model files.

Resolution order for a model: its explicit manifest path, the model directory, the
configured mirrors (local folders are used in place, URLs are downloaded into the model
directory), then the model's official sources (downloaded into the model directory). A
file is used only after its sha256 (and size, when declared) match the declaration.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from pipeline.errors import ModelError
from pipeline.models.registry import ModelRegistry, ModelSpec
from pipeline.runtime import Runtime

log = logging.getLogger(__name__)

CHUNK_BYTES = 1024 * 1024
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 60.0

# (path, size, mtime_ns) -> sha256 already computed in this process
_verified: dict[tuple[str, int, int], str] = {}
_verified_lock = threading.Lock()


def sha256_of(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    with _verified_lock:
        known = _verified.get(key)
    if known is not None:
        return known
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(CHUNK_BYTES):
            digest.update(block)
    value = digest.hexdigest()
    with _verified_lock:
        _verified[key] = value
    return value


def how_to_provide(spec: ModelSpec, model_dir: Path | None = None, downloaded: bool = False) -> str:
    """What the user can do; ``downloaded``: a download was just tried (and failed), so it is
    not offered again; ``model_dir``: the folder to name."""
    if spec.sha256 is None:
        return (
            f"no sha256 is declared for {spec.name}; declare your copy of {spec.file} with its sha256 in a "
            "model manifest (FACEFLEET_MODEL_MANIFEST)"
        )
    folder = f"the model directory {model_dir}" if model_dir is not None else "the model directory"
    fix = f"put {spec.file} in {folder} (FACEFLEET_MODEL_DIR) or in a mirror folder (FACEFLEET_MODEL_MIRRORS)"
    if downloaded:
        return f"{fix}; its download failed here, so copy it from a machine that can fetch it"
    return f"{fix}, or run `facefleet models download {spec.name}`"


def check_file(spec: ModelSpec, path: Path) -> str | None:
    """None when the file is the declared model, else why not."""
    if spec.sha256 is None:
        return how_to_provide(spec)
    try:
        size = path.stat().st_size
        if spec.size is not None and size != spec.size:
            return f"{path} has {size} bytes, expected {spec.size}"
        actual = sha256_of(path)
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc}"
    if actual != spec.sha256:
        return f"{path} has sha256 {actual}, expected {spec.sha256}"
    return None


def _is_url(location: str) -> bool:
    return urlparse(location).scheme in ("http", "https", "file")


def _join(location: str, file: str) -> str:
    return location.rstrip("/") + "/" + file


class DownloadError(Exception):
    pass


def _why(exc: BaseException) -> str:
    """A download's failure in a few words (urllib3's own text repeats the URL twice)."""
    import requests

    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"HTTP {exc.response.status_code}"
    if isinstance(exc, requests.ConnectionError):
        text = str(exc)
        if "NameResolution" in text or "resolve" in text:
            return "host not found (no network, or no DNS)"
        return "could not connect"
    if isinstance(exc, requests.Timeout):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__


# hears of a download as it goes: (url, bytes so far, bytes in all or None when unknown)
Progress = Callable[[str, int, int | None], None]


@contextmanager
def _source(url: str) -> Iterator[tuple[int | None, Iterator[bytes]]]:
    """The size (None: unknown) and the bytes, in blocks, at ``url`` (http, https or file)."""
    import requests  # imported here: only a download needs it

    if urlparse(url).scheme == "file":
        path = Path(unquote(urlparse(url).path))
        with path.open("rb") as source:
            yield path.stat().st_size, iter(lambda: source.read(CHUNK_BYTES), b"")
        return
    with requests.get(url, stream=True, timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S)) as response:
        response.raise_for_status()
        length = response.headers.get("Content-Length", "")
        yield (int(length) if length.isdigit() else None), response.iter_content(CHUNK_BYTES)


def download(url: str, destination: Path, spec: ModelSpec, progress: Progress | None = None) -> Path:
    """Stream ``url`` to a temp file next to ``destination``, verify sha256 and size, rename;
    ``progress`` hears of each block."""
    import requests

    destination.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temp_name = tempfile.mkstemp(prefix=f".{spec.file}.", suffix=".part", dir=destination.parent)
    temp = Path(temp_name)
    try:
        digest = hashlib.sha256()
        size = 0
        with os.fdopen(descriptor, "wb") as out, _source(url) as (length, blocks):
            total = spec.size or length
            if progress is not None:
                progress(url, 0, total)
            for block in blocks:
                digest.update(block)
                size += len(block)
                if spec.size is not None and size > spec.size:
                    raise DownloadError(f"{url} sent more than the expected {spec.size} bytes")
                out.write(block)
                if progress is not None:
                    progress(url, size, total)
        if spec.size is not None and size != spec.size:
            raise DownloadError(f"{url} sent {size} bytes, expected {spec.size}")
        if digest.hexdigest() != spec.sha256:
            raise DownloadError(f"{url} sent a file with sha256 {digest.hexdigest()}, expected {spec.sha256}")
        os.replace(temp, destination)
        log.info("downloaded %s from %s", spec.file, url)
        return destination
    except (OSError, requests.RequestException) as exc:
        raise DownloadError(f"{url}: {_why(exc)}") from exc
    finally:
        with suppress(FileNotFoundError):
            temp.unlink()


def copy_verified(source: Path, destination: Path, spec: ModelSpec, progress: Progress | None = None) -> Path:
    """Copy a local file into the model directory the same atomic, verified way."""
    return download(source.resolve().as_uri(), destination, spec, progress)


@dataclass(frozen=True)
class ModelStore:
    """Where a runtime's models live and how to get them."""

    runtime: Runtime
    registry: ModelRegistry

    @classmethod
    def for_runtime(cls, runtime: Runtime) -> ModelStore:
        return cls(runtime, ModelRegistry.load(runtime.model_manifest))

    def spec(self, name: str, kind: tuple[str, ...] | None = None) -> ModelSpec:
        return self.registry.get(name, kind)

    def local_candidates(self, spec: ModelSpec) -> list[Path]:
        candidates = [spec.path] if spec.path is not None else []
        candidates.append(self.runtime.model_dir / spec.file)
        candidates += [Path(m) / spec.file for m in self.runtime.model_mirrors if not _is_url(m)]
        return candidates

    def remote_candidates(self, spec: ModelSpec) -> list[str]:
        mirrors = [_join(m, spec.file) for m in self.runtime.model_mirrors if _is_url(m)]
        return mirrors + list(spec.sources)

    def find(self, spec: ModelSpec) -> tuple[Path | None, list[str]]:
        """The first verified local copy, and why each other candidate was refused."""
        problems: list[str] = []
        for path in self.local_candidates(spec):
            if not path.is_file():
                continue
            problem = check_file(spec, path)
            if problem is None:
                return path, problems
            problems.append(problem)
        return None, problems

    def present(self) -> list[str]:
        """The models with a verified copy here (the model directory, a manifest path or a
        mirror folder; a URL mirror's are not, until downloaded)."""
        return [
            spec.name for spec in self.registry if spec.sha256 is not None and self.find(spec)[0] is not None
        ]

    def resolve(
        self,
        name: str,
        kind: tuple[str, ...] | None = None,
        fetch: bool = True,
        progress: Progress | None = None,
    ) -> Path:
        """A verified local file for ``name``, downloading it when ``fetch`` and needed
        (``progress`` hears of the download)."""
        spec = self.spec(name, kind)
        if spec.sha256 is None:
            raise ModelError(f"model {spec.describe()}: {how_to_provide(spec)}")
        path, problems = self.find(spec)
        if path is not None:
            return path
        if fetch:
            for url in self.remote_candidates(spec):
                try:
                    return download(url, self.runtime.model_dir / spec.file, spec, progress)
                except DownloadError as exc:
                    problems.append(str(exc))
        where = ", ".join(str(p.parent) for p in self.local_candidates(spec))
        tried = f" ({'; '.join(problems)})" if problems else ""
        raise ModelError(
            f"model {spec.describe()} is missing or does not match: looked in {where}{tried}; "
            f"{how_to_provide(spec, self.runtime.model_dir, downloaded=bool(problems) and fetch)}"
        )

    def download(self, name: str, progress: Progress | None = None) -> Path:
        """Make a verified copy of ``name`` in the model directory (the CLI's ``download``)."""
        spec = self.spec(name)
        target = self.runtime.model_dir / spec.file
        path = self.resolve(name, progress=progress)
        if path != target:
            copy_verified(path, target, spec, progress)
        return target
