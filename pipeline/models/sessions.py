"""onnxruntime sessions: one per model file and provider list per process, built once, warmed up."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import DeviceError, ModelError, ProviderError
from pipeline.models import providers as eps
from pipeline.models.registry import ModelSpec, Shape
from pipeline.runtime import Runtime

log = logging.getLogger(__name__)

CPU_PROVIDER = "CPUExecutionProvider"
# the size a symbolic spatial dimension gets for the warm-up run
WARMUP_SPATIAL = 640

_sessions: dict[tuple[str, tuple[str, ...]], Any] = {}
_sessions_lock = threading.Lock()
_chosen: dict[str, str] = {}  # model name -> the provider that took it, in this process


def _session_options(runtime: Runtime) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    # idle intra-op threads sleep instead of spinning: the decoder's, the encoder's and the
    # other chunks' threads share the cores (spinning took the demo's anonymiser a third more
    # CPU time on a 2-core host, and as much more wall time)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if runtime.intra_op_threads:
        options.intra_op_num_threads = runtime.intra_op_threads
    return options


def check_providers(requested: Sequence[str], active: Sequence[str], allow_cpu_fallback: bool) -> None:
    """A GPU provider asked for and not active is a ProviderError unless CPU fallback is allowed."""
    missing = [p for p in requested if p not in (CPU_PROVIDER, eps.AUTO) and p not in active]
    if missing and not allow_cpu_fallback:
        raise ProviderError(
            f"execution provider {missing[0]} was asked for but is not active (active: {', '.join(active)}); "
            "install onnxruntime-gpu with a working CUDA/TensorRT, or allow CPU fallback "
            "(FACEFLEET_ALLOW_CPU_FALLBACK=true)"
        )
    if missing:
        log.warning("providers %s not active; falling back to %s", ", ".join(missing), ", ".join(active))


def check_signature(spec: ModelSpec, session: Any) -> None:
    """The session's inputs must have the layout the model's kind needs (a ModelError if not)."""
    actual = [tuple(d if isinstance(d, int) else None for d in i.shape) for i in session.get_inputs()]
    expected = spec.input_layout
    problem = len(actual) != len(expected) or any(
        len(a) != len(e)
        or any(ed is not None and ad is not None and ad != ed for ad, ed in zip(a, e, strict=True))
        for a, e in zip(actual, expected, strict=False)
    )
    if problem:
        raise ModelError(
            f"model {spec.name} ({spec.file}) has inputs {_show(actual)}, but a {spec.kind} model needs "
            f"{_show(expected)}"
        )


def _show(shapes: Sequence[Shape]) -> str:
    return ", ".join("[" + ",".join("?" if d is None else str(d) for d in s) + "]" for s in shapes)


def _warm_up(session: Any) -> None:
    feeds = {}
    for item in session.get_inputs():
        dims = [
            d if isinstance(d, int) else (1 if i == 0 else WARMUP_SPATIAL) for i, d in enumerate(item.shape)
        ]
        feeds[item.name] = np.zeros(dims, dtype=np.float32)
    session.run(None, feeds)


def open_session(path: Path, spec: ModelSpec, runtime: Runtime) -> Any:
    """The process's session for ``path`` on ``runtime.providers``: checked, logged, warm."""
    key = (str(path.resolve()), tuple(runtime.providers))
    with _sessions_lock:
        found = _sessions.get(key)
        if found is not None:
            return found
        session = _build(path, spec, runtime)
        _sessions[key] = session
        return session


def _build(path: Path, spec: ModelSpec, runtime: Runtime) -> Any:
    import onnxruntime

    plan = _plan(path, spec, runtime, onnxruntime.get_available_providers())
    providers, options = plan.for_session()
    try:
        session = onnxruntime.InferenceSession(
            str(path), sess_options=_session_options(runtime), providers=providers, provider_options=options
        )
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise DeviceError(f"model {spec.name} ({path}) cannot be loaded by onnxruntime: {exc}") from exc
    active = session.get_providers()
    _report(spec, plan, active, runtime)
    check_providers(runtime.providers, active, runtime.allow_cpu_fallback)
    check_signature(spec, session)
    try:
        _warm_up(session)
    except Exception as exc:
        raise DeviceError(f"model {spec.name} ({path}) fails on a warm-up run: {exc}") from exc
    return session


def _plan(path: Path, spec: ModelSpec, runtime: Runtime, available: Sequence[str]) -> eps.ProviderPlan:
    """The model's providers; TensorRT's engine cache under the model's folder (the model
    directory where that folder is a read-only mirror)."""
    wants_trt = eps.TENSORRT in eps.wanted(runtime.providers, spec.kind) and eps.TENSORRT in available
    device = eps.host_device(runtime.gpu) if wants_trt else eps.Device()
    folder = path.parent if os.access(path.parent, os.W_OK) else runtime.model_dir
    plan = eps.plan(
        spec.name,
        spec.kind,
        runtime.providers,
        available,
        model_folder=folder,
        model_sha256=spec.sha256,
        device=device,
    )
    if plan.engine_cache is not None:
        plan.engine_cache.mkdir(parents=True, exist_ok=True)
    return plan


def _report(spec: ModelSpec, plan: eps.ProviderPlan, active: Sequence[str], runtime: Runtime) -> None:
    """Loudly: which provider took the model (a warning when a GPU was asked for and the CPU took it)."""
    first = str(active[0]) if active else CPU_PROVIDER
    _chosen[spec.name] = first
    detail = f" (FP16, engines in {plan.engine_cache})" if first == eps.TENSORRT else ""
    fields = {"model": spec.name, "provider": first, "providers_active": list(active)}
    if first == CPU_PROVIDER and eps.gpu_requested(runtime.providers):
        log.warning(
            "model %s runs on %s: no GPU provider took it (asked for %s)",
            spec.name, first, ", ".join(runtime.providers), extra=fields,
        )  # fmt: skip
    else:
        log.info("model %s runs on %s%s", spec.name, first, detail, extra=fields)


def chosen_providers() -> dict[str, str]:
    """Model name -> the provider that took it, for the models this process has loaded."""
    with _sessions_lock:
        return dict(_chosen)


def clear_sessions() -> None:
    """Forget cached sessions (tests; a worker that changes its runtime)."""
    with _sessions_lock:
        _sessions.clear()
        _chosen.clear()
