"""Which onnxruntime execution providers a model runs on, and with which options.

``FACEFLEET_PROVIDERS=auto`` asks for the fastest this host has, per model: TensorRT (FP16,
its engines cached under the model folder, keyed by the model's hash, the GPU's name and the
TensorRT version, so an engine is never reused on another GPU or TensorRT), then CUDA, then
the CPU. An explicit list (``CUDAExecutionProvider,CPUExecutionProvider``) is taken as
given, in order, with the same options. onnxruntime falls back to the next provider of the
list for the nodes a provider cannot run; the first provider that took the model is the one
reported (log lines at start-up, the worker's readiness report).

The options are onnxruntime's documented provider options (TensorRT and CUDA execution
provider pages): ``trt_fp16_enable``, ``trt_engine_cache_enable``, ``trt_engine_cache_path``,
``trt_timing_cache_enable``, ``device_id``, ``cudnn_conv_algo_search``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

AUTO = "auto"
TENSORRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
PREFERENCE = (TENSORRT, CUDA, CPU)
ENGINE_FOLDER = "trt-engines"
SHORT_HASH = 16

# model kinds whose graphs TensorRT does not take whole (none known today; a kind listed
# here starts at CUDA)
NOT_FOR_TENSORRT: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Device:
    """What the engine cache key needs to know of the host: unknown parts are named so."""

    gpu_name: str = "unknown-gpu"
    tensorrt_version: str = "unknown-trt"


@dataclass(frozen=True)
class ProviderPlan:
    """The providers handed to onnxruntime for one model, in order, with their options."""

    model: str
    providers: tuple[str, ...]
    options: tuple[dict[str, str], ...]
    engine_cache: Path | None = None

    @property
    def first(self) -> str:
        return self.providers[0]

    def for_session(self) -> tuple[list[str], list[dict[str, str]]]:
        """``providers`` and ``provider_options`` for ``onnxruntime.InferenceSession``."""
        return list(self.providers), [dict(o) for o in self.options]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-").lower() or "unknown"


def engine_cache_dir(model_folder: Path, model_sha256: str | None, device: Device) -> Path:
    """``<model folder>/trt-engines/<model hash>-<gpu>-trt<version>``."""
    key = f"{(model_sha256 or 'unverified')[:SHORT_HASH]}-{_slug(device.gpu_name)}-trt{_slug(device.tensorrt_version)}"
    return model_folder / ENGINE_FOLDER / key


def wanted(requested: Sequence[str], kind: str) -> list[str]:
    """The providers asked for a model of ``kind``, in order (``auto``: the preference order)."""
    names = list(PREFERENCE) if list(requested) in ([AUTO], []) else [p for p in requested if p != AUTO]
    if kind in NOT_FOR_TENSORRT:
        names = [p for p in names if p != TENSORRT]
    return names


def plan(
    model: str,
    kind: str,
    requested: Sequence[str],
    available: Sequence[str],
    *,
    model_folder: Path,
    model_sha256: str | None,
    device: Device,
) -> ProviderPlan:
    """The providers of ``requested`` that this onnxruntime has, with their options; the CPU
    always closes the list (onnxruntime needs it for the nodes a GPU provider leaves)."""
    names = [p for p in wanted(requested, kind) if p in available]
    if CPU not in names:
        names.append(CPU)
    options, cache = [], None
    for name in names:
        if name == TENSORRT:
            cache = engine_cache_dir(model_folder, model_sha256, device)
            options.append(
                {
                    "device_id": "0",  # the one GPU CUDA_VISIBLE_DEVICES leaves this process
                    "trt_fp16_enable": "True",
                    "trt_engine_cache_enable": "True",
                    "trt_engine_cache_path": str(cache),
                    "trt_timing_cache_enable": "True",
                    "trt_timing_cache_path": str(cache),
                }
            )
        elif name == CUDA:
            options.append({"device_id": "0", "cudnn_conv_algo_search": "EXHAUSTIVE"})
        else:
            options.append({})
    return ProviderPlan(model, tuple(names), tuple(options), cache)


def gpu_requested(requested: Sequence[str]) -> bool:
    return any(p in (AUTO, TENSORRT, CUDA) for p in requested)


def host_device(gpu: str | None = None) -> Device:
    """The name of GPU ``gpu`` (the index this process is pinned to; None: the first) and the
    TensorRT version, as far as they can be read; never raises."""
    name = "unknown-gpu"
    try:
        from pipeline.devices import list_gpus

        found = list_gpus()
        name = next((g.name for g in found if g.index == gpu), found[0].name)
    except Exception:  # no GPU, no driver: the key says unknown
        pass
    version = "unknown-trt"
    try:
        import tensorrt  # type: ignore[import-not-found]

        version = str(tensorrt.__version__)
    except Exception:
        pass
    return Device(name, version)


def active_provider(session: Any) -> str:
    """The provider that took the model: the first of the session's active list."""
    active = session.get_providers()
    return str(active[0]) if active else CPU
