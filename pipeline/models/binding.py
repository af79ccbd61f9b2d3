"""IO binding: a model's outputs written where the next step reads them, without a copy
per call through numpy's allocator on the host.

On a GPU provider the inputs are bound from host memory once and the outputs allocated on
the device by onnxruntime (``bind_output(name, "cuda")``) and copied back in one transfer;
on the CPU the same binding runs (the test path) and equals ``session.run``. The API is
onnxruntime's documented ``io_binding()`` / ``run_with_iobinding`` /
``copy_outputs_to_cpu``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pipeline.models import oom

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def device_of(session: Any) -> str:
    """ "cuda" when the session's first provider is a GPU one, else "cpu"."""
    active = session.get_providers()
    return "cuda" if active and active[0] in GPU_PROVIDERS else "cpu"


def run_bound(
    session: Any, outputs: Sequence[str], feeds: Mapping[str, np.ndarray], device: str
) -> list[np.ndarray]:
    """``session.run(outputs, feeds)`` through an IO binding, the outputs allocated on ``device``."""
    binding = session.io_binding()
    for name, value in feeds.items():
        binding.bind_cpu_input(name, np.ascontiguousarray(value))
    for name in outputs:
        binding.bind_output(name, device)
    session.run_with_iobinding(binding)
    found: list[np.ndarray] = binding.copy_outputs_to_cpu()
    return found


def run(
    session: Any, outputs: Sequence[str], feeds: Mapping[str, np.ndarray], model: str = ""
) -> list[np.ndarray]:
    """Bound on a GPU session, plain ``session.run`` on the CPU (where binding gains nothing);
    running out of memory is a ``DeviceMemoryError`` (``oom.py``)."""
    device = device_of(session)
    try:
        if device == "cpu":
            found: list[np.ndarray] = session.run(list(outputs), dict(feeds))
            return found
        return run_bound(session, outputs, feeds, device)
    except Exception as exc:  # onnxruntime's own, untyped errors
        batch = len(next(iter(feeds.values()))) if feeds else 1
        raise oom.translated(exc, model or "?", batch) from exc
