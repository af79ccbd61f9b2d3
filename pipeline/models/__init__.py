"""The model registry, verified model files and onnxruntime sessions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.models.registry import BUILTIN_MODELS, ModelRegistry, ModelSpec, read_manifest
from pipeline.models.sessions import clear_sessions, open_session
from pipeline.models.store import ModelStore
from pipeline.runtime import Runtime

__all__ = [
    "BUILTIN_MODELS",
    "LoadedModel",
    "ModelRegistry",
    "ModelSpec",
    "ModelStore",
    "clear_sessions",
    "load_model",
    "read_manifest",
]


@dataclass(frozen=True)
class LoadedModel:
    spec: ModelSpec
    path: Path
    session: Any


def load_model(runtime: Runtime, name: str, kinds: tuple[str, ...]) -> LoadedModel:
    """Resolve, verify and open ``name`` (one of ``kinds``); every problem is a ModelError."""
    store = ModelStore.for_runtime(runtime)
    spec = store.spec(name, kinds)
    path = store.resolve(name, kinds)
    return LoadedModel(spec, path, open_session(path, spec, runtime))
