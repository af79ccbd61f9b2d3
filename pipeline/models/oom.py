"""A model run that runs out of accelerator memory: a fault of this host, not of the work,
and a smaller batch for this process from then on.

onnxruntime reports an allocation failure as an untyped error whose text names it (CUDA's
``out of memory``, cuBLAS' and cuDNN's ``ALLOC_FAILED``, TensorRT's and the arena's
``Failed to allocate``); ``translated`` turns such an error into ``DeviceMemoryError`` (a
``DeviceError``: the chunk is given back without spending an attempt) and halves the batch
ceiling, so that the next chunk on this worker asks for half the memory.
"""

from __future__ import annotations

import logging
import re
import threading

from pipeline.errors import DeviceError

log = logging.getLogger(__name__)

_OUT_OF_MEMORY = re.compile(
    r"out of memory|CUBLAS_STATUS_ALLOC_FAILED|CUDNN_STATUS_ALLOC_FAILED|Failed to allocate memory|"
    r"cudaErrorMemoryAllocation|OutOfMemory",
    re.IGNORECASE,
)

_ceiling: int | None = None  # the largest batch this process may run (None: no limit yet)
_lock = threading.Lock()


class DeviceMemoryError(DeviceError):
    """The accelerator ran out of memory for a batch (this host's fault; another may do it)."""


def is_out_of_memory(exc: BaseException) -> bool:
    return bool(_OUT_OF_MEMORY.search(str(exc)))


def step_down(batch: int) -> int:
    """After an out-of-memory run of ``batch`` items: the new ceiling, half of it (at least 1)."""
    global _ceiling
    with _lock:
        _ceiling = max(1, min(_ceiling or batch, batch) // 2)
        log.warning(
            "out of accelerator memory with a batch of %d: batches of at most %d from now on", batch, _ceiling
        )
        return _ceiling


def capped(batch: int) -> int:
    """``batch``, no larger than the ceiling an out-of-memory run left."""
    with _lock:
        return batch if _ceiling is None else max(1, min(batch, _ceiling))


def translated(exc: Exception, model: str, batch: int) -> Exception:
    """``exc`` as met running ``model`` on ``batch`` items: a DeviceMemoryError when it is an
    allocation failure (the ceiling stepped down), else ``exc`` itself."""
    if not is_out_of_memory(exc):
        return exc
    ceiling = step_down(batch)
    return DeviceMemoryError(
        f"the accelerator ran out of memory running model {model} on a batch of {batch} "
        f"(this worker now runs batches of at most {ceiling}): {exc}"
    )


def reset() -> None:
    """Forget the ceiling (tests)."""
    global _ceiling
    with _lock:
        _ceiling = None
