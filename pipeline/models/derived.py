"""Files derived from a verified model, cached next to it: a symbolic-batch copy and the emap.

The published inswapper declares batch size 1. Its copy with a symbolic batch dimension on
every graph input and output lets faces run in batches; whether that copy computes the same
as the original is checked by the caller (``pipeline.faces.swapper``) at load time.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from contextlib import suppress
from pathlib import Path

import numpy as np

from pipeline.errors import ModelError
from pipeline.models.registry import ModelSpec

log = logging.getLogger(__name__)

BATCH_DIM = "batch"
EMAP_SHAPE = (512, 512)


def _cache_dir(model_path: Path, fallback: Path) -> Path:
    """Next to the model when that folder is writable (a read-only mirror: the model directory)."""
    return model_path.parent if os.access(model_path.parent, os.W_OK) else fallback


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as out:
            out.write(data)
        os.replace(temp, path)
    finally:
        with suppress(FileNotFoundError):
            os.unlink(temp)


def _load_onnx(model_path: Path, spec: ModelSpec):  # type: ignore[no-untyped-def]
    try:
        import onnx
    except ImportError as exc:
        raise ModelError(f"model {spec.name} needs the onnx package to read its graph") from exc
    try:
        return onnx.load(str(model_path))
    except Exception as exc:
        raise ModelError(f"model {spec.name} ({model_path}) is not a readable ONNX graph: {exc}") from exc


def derived_paths(model_path: Path, spec: ModelSpec, fallback_dir: Path) -> tuple[Path, Path]:
    folder = _cache_dir(model_path, fallback_dir)
    stem = f"{Path(spec.file).stem}.{(spec.sha256 or 'unverified')[:16]}"
    return folder / f"{stem}.batch.onnx", folder / f"{stem}.emap.npy"


def _sidecar_ok(path: Path) -> bool:
    sidecar = path.with_name(path.name + ".sha256")
    if not (path.is_file() and sidecar.is_file()):
        return False
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return digest == sidecar.read_text().strip()


def _store(path: Path, data: bytes) -> None:
    _write_atomic(path, data)
    _write_atomic(path.with_name(path.name + ".sha256"), hashlib.sha256(data).hexdigest().encode())


def swapper_files(model_path: Path, spec: ModelSpec, fallback_dir: Path) -> tuple[Path | None, np.ndarray]:
    """(the symbolic-batch copy or None when it cannot be made, the emap matrix), cached."""
    batch_path, emap_path = derived_paths(model_path, spec, fallback_dir)
    if _sidecar_ok(batch_path) and _sidecar_ok(emap_path):
        return batch_path, np.load(emap_path)
    model = _load_onnx(model_path, spec)
    emap = _emap(model, spec)
    try:
        _store(emap_path, _npy_bytes(emap))
        _store(batch_path, _with_symbolic_batch(model).SerializeToString())
        return batch_path, emap
    except (OSError, ValueError) as exc:
        log.warning("model %s: no symbolic-batch copy (%s); faces will run one at a time", spec.name, exc)
        return None, emap


def batch_copy(model_path: Path, spec: ModelSpec, fallback_dir: Path) -> Path | None:
    """The symbolic-batch copy of any model (detectors), cached; None when it cannot be written."""
    batch_path, _ = derived_paths(model_path, spec, fallback_dir)
    if _sidecar_ok(batch_path):
        return batch_path
    try:
        _store(batch_path, _with_symbolic_batch(_load_onnx(model_path, spec)).SerializeToString())
    except (OSError, ValueError) as exc:
        log.warning("model %s: no symbolic-batch copy (%s); one image at a time", spec.name, exc)
        return None
    return batch_path


def _emap(model, spec: ModelSpec) -> np.ndarray:  # type: ignore[no-untyped-def]
    from onnx import numpy_helper

    if not model.graph.initializer:
        raise ModelError(f"model {spec.name} has no emap initializer (it is not an inswapper graph)")
    emap = numpy_helper.to_array(model.graph.initializer[-1]).astype(np.float32)
    if emap.shape != EMAP_SHAPE:
        raise ModelError(
            f"model {spec.name}: the last initializer (the emap) has shape {emap.shape}, expected {EMAP_SHAPE}"
        )
    return emap


def _with_symbolic_batch(model):  # type: ignore[no-untyped-def]
    """A copy whose graph inputs and outputs have a symbolic first dimension."""
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    weights = {init.name for init in copy.graph.initializer}
    for value in [v for v in copy.graph.input if v.name not in weights] + list(copy.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].ClearField("dim_value")
            dims[0].dim_param = BATCH_DIM
    del copy.graph.value_info[:]  # stale batch-1 shapes of intermediate tensors
    return copy


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()
