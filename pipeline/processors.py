"""Frame processors and the chain that runs them.

A processor takes a batch of frames and returns the same frames (same count, order and
size) with new pixels. Each processor is made in two steps, so that per-job work happens once:

* ``prepare(options, inputs, runtime)`` runs once per job, at planning time (for example
  the source identity of the swapper). It returns named arrays ("assets") that are stored
  with the job and handed to every chunk.
* ``create(options, assets, runtime)`` runs once per worker process and job; it builds the
  processor (model sessions are cached per process by the face package).

The empty chain (``none``) re-encodes frame for frame.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pipeline.errors import PipelineError
from pipeline.frames import Frame
from pipeline.limits import MediaLimits
from pipeline.runtime import Runtime

if TYPE_CHECKING:
    import numpy as np

Assets = dict[str, "np.ndarray"]


class Processor(Protocol):
    name: str

    def process(self, frames: list[Frame]) -> list[Frame]: ...


@dataclass(frozen=True)
class JobInputs:
    """Local files a job's processors may need at planning time, and the limits on them."""

    sources: tuple[Path, ...] = ()
    reference: Path | None = None
    limits: MediaLimits = MediaLimits()


@dataclass(frozen=True)
class ProcessorFactory:
    name: str
    create: Callable[[Mapping[str, Any], Assets, Runtime], Processor]
    prepare: Callable[[Mapping[str, Any], JobInputs, Runtime], Assets] = field(
        default=lambda options, inputs, runtime: {}
    )


# name -> "module:attribute" of a ProcessorFactory; imported only when used, so the empty
# chain never loads onnxruntime.
_FACTORIES: dict[str, str] = {
    "face_swapper": "pipeline.faces.processors:FACE_SWAPPER",
    "face_enhancer": "pipeline.faces.processors:FACE_ENHANCER",
    "face_anonymizer": "pipeline.faces.processors:FACE_ANONYMIZER",
    "face_debugger": "pipeline.faces.processors:FACE_DEBUGGER",
}

PROCESSOR_NAMES: tuple[str, ...] = tuple(_FACTORIES)


def parse_processor_names(text: str | Sequence[str]) -> list[str]:
    """``"face_swapper,face_enhancer"`` or a list -> validated names; ``none`` is the empty chain."""
    names = [n.strip() for n in text.split(",")] if isinstance(text, str) else [n.strip() for n in text]
    names = [n for n in names if n and n != "none"]
    unknown = [n for n in names if n not in _FACTORIES]
    if unknown:
        close = difflib.get_close_matches(unknown[0], PROCESSOR_NAMES, n=1, cutoff=0.75)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise PipelineError(
            f"unknown processor {unknown[0]!r}{hint}; choose from none, {', '.join(PROCESSOR_NAMES)}"
        )
    if len(set(names)) != len(names):
        raise PipelineError("a processor is listed twice")
    return names


def factory(name: str) -> ProcessorFactory:
    module_name, attribute = _FACTORIES[name].split(":")
    found: ProcessorFactory = getattr(importlib.import_module(module_name), attribute)
    return found


@dataclass
class Chain:
    processors: list[Processor]

    @property
    def empty(self) -> bool:
        return not self.processors

    def process(self, frames: list[Frame]) -> list[Frame]:
        for processor in self.processors:
            count = len(frames)
            frames = processor.process(frames)
            if len(frames) != count:
                raise PipelineError(f"processor {processor.name} returned {len(frames)} of {count} frames")
        return frames


def prepare_chain(
    names: Sequence[str], options: Mapping[str, Any], inputs: JobInputs, runtime: Runtime
) -> Assets:
    """Per-job preparation of every processor; asset names are prefixed with the processor's."""
    assets: Assets = {}
    for name in names:
        for key, value in factory(name).prepare(options, inputs, runtime).items():
            assets[f"{name}.{key}"] = value
    return assets


def build_chain(names: Sequence[str], options: Mapping[str, Any], assets: Assets, runtime: Runtime) -> Chain:
    processors = []
    for name in names:
        prefix = f"{name}."
        own = {k[len(prefix) :]: v for k, v in assets.items() if k.startswith(prefix)}
        processors.append(factory(name).create(options, own, runtime))
    return Chain(processors)
