"""The C2PA manifest of an output, signed once, at the stitch, on the final file.

The deployment's certificate and key (``FACEFLEET_C2PA_CERT``, ``FACEFLEET_C2PA_KEY``) are
checked when a process starts (``load_signer``): unset, outputs go unsigned and a warning
says so; set but unusable, the process stops. Signing adds a box to the container and
changes no byte of the video or audio streams (c2pa hashes the media around its box).
"""

from __future__ import annotations

import logging
import shutil
from importlib import metadata
from pathlib import Path
from typing import Any

from facefleet.config.options import JobOptions
from facefleet.config.settings import Settings
from facefleet.storage.scratch import scratch_file
from pipeline.c2pa_io import COMPOSITE_SYNTHETIC, Credentials, SigningError, can_sign
from pipeline.runtime import Runtime

log = logging.getLogger(__name__)

TOOL = "FaceFleet"
TASK_ASSERTION = "org.facefleet.task"
UNSIGNED = (
    "C2PA signing is off: FACEFLEET_C2PA_CERT and FACEFLEET_C2PA_KEY are unset, so outputs go "
    "unsigned (provenance.signed: false; the watermark still marks processed frames)"
)


class ProvenanceConfigError(ValueError):
    """The C2PA settings cannot be used (the message names the variable)."""


def signing_files(settings: Settings) -> tuple[Path, Path] | None:
    """The certificate chain and key the stitch signs with; None: outputs go unsigned."""
    if settings.c2pa_cert is None or settings.c2pa_key is None:
        return None
    return settings.c2pa_cert, settings.c2pa_key


def check_signing(settings: Settings) -> bool:
    """At the start of a process that stitches: whether outputs will be signed. Unset: a
    warning. Set but unusable (one of the two missing, unreadable, a key that is not the
    certificate's, a chain c2pa refuses): ProvenanceConfigError, naming the variables."""
    cert, key = settings.c2pa_cert, settings.c2pa_key
    if cert is None and key is None:
        log.warning(UNSIGNED)
        return False
    if cert is None or key is None:
        missing = "FACEFLEET_C2PA_CERT" if cert is None else "FACEFLEET_C2PA_KEY"
        raise ProvenanceConfigError(f"{missing} is unset while the other C2PA setting is set")
    try:
        Credentials.load(cert, key)
    except SigningError as exc:
        raise ProvenanceConfigError(f"FACEFLEET_C2PA_CERT / FACEFLEET_C2PA_KEY: {exc}") from None
    return True


def tool_version() -> str:
    try:
        return metadata.version("facefleet")
    except metadata.PackageNotFoundError:
        return "unknown"


def models_used(options: JobOptions, runtime: Runtime) -> list[dict[str, Any]]:
    """The models the task's processors ran, each with its declared (and checked) sha256."""
    names: list[str] = []
    if options.processors:
        names.append(options.face_detector)
    if "face_swapper" in options.processors or options.selector_mode == "reference":
        names.append(options.face_recognizer)
    if "face_swapper" in options.processors:
        names.append(options.swapper_model)
    if "face_enhancer" in options.processors:
        names.append(options.enhancer_model)
    if options.processors and options.face_attribute_model and options.selector_filters:
        names.append(options.face_attribute_model)
    if {"face_swapper", "face_enhancer"} & set(options.processors):
        if "occlusion" in options.face_mask_types:
            names.append(options.face_occluder_model)
        if "region" in options.face_mask_types:
            names.append(options.face_parser_model)
    from pipeline.models.registry import ModelRegistry  # here: pipeline.models loads numpy

    registry = ModelRegistry.load(runtime.model_manifest)
    models = []
    for name in dict.fromkeys(names):
        spec = registry.specs.get(name)
        models.append(
            {"name": name, "file": spec.file if spec else None, "sha256": spec.sha256 if spec else None}
        )
    return models


def manifest(task_id: str, options: JobOptions, runtime: Runtime, watermarked: bool) -> dict[str, Any]:
    version = tool_version()
    described = ", ".join(options.processors) or "none (re-encoded)"
    action = {
        "action": "c2pa.created",
        "digitalSourceType": COMPOSITE_SYNTHETIC,
        "softwareAgent": {"name": TOOL, "version": version},
        "description": f"faces synthesised by FaceFleet ({described}) in a video given by its user",
    }
    task = {
        "task_id": task_id,
        "processors": list(options.processors),
        "models": models_used(options, runtime),
        "watermark": {"scheme": "facefleet-watermark-v1", "short_id": task_id[:16]} if watermarked else None,
    }
    return {
        "claim_generator_info": [{"name": TOOL, "version": version}],
        "title": f"facefleet-{task_id}.{options.container}",
        "assertions": [
            {"label": "c2pa.actions.v2", "data": {"actions": [action]}},
            {"label": TASK_ASSERTION, "data": task},
        ],
    }


def sign_output(
    files: tuple[Path, Path] | None,
    scratch: Path,
    task_id: str,
    options: JobOptions,
    runtime: Runtime,
    watermarked: bool,
    out: Path,
) -> dict[str, Any]:
    """Sign ``out`` in place; returns what the task records: ``signed`` and, when not, why
    (``c2pa``), else the manifest's label. A failure to sign fails the stitch."""
    if files is None:
        return {"signed": False, "c2pa": "no signing certificate configured"}
    if not can_sign(options.container):
        return {"signed": False, "c2pa": f"c2pa-python cannot sign the {options.container} container"}
    document = manifest(task_id, options, runtime, watermarked)
    with scratch_file(scratch, f"signed-{task_id}", out.suffix) as signed:
        label = Credentials.load(*files, trial=False).sign(out, signed, options.container, document)
        shutil.copyfile(signed, out)  # into the held scratch file (a rename would drop its hold)
    return {"signed": True, "manifest": label}
