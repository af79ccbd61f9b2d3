"""Every model FaceFleet can load, declared once; more (or own copies) come from a manifest.

A manifest is a JSON file (``Runtime.model_manifest``, from ``FACEFLEET_MODEL_MANIFEST``)::

    {"models": [{"name": "my_swapper", "kind": "inswapper", "file": "my_swapper.onnx",
                 "sha256": "<64 hex>", "size": 1234,
                 "path": "relative/to/manifest/or/absolute.onnx",
                 "sources": ["https://example.org/my_swapper.onnx"],
                 "inputs": [[1, 3, 128, 128], [1, 512]],
                 "note": "free text"}]}

``name``, ``kind``, ``file`` and ``sha256`` are required; an entry with the name of a
built-in model replaces it. ``inputs`` defaults to the layout of the kind; ``null`` in a
shape means any size (a symbolic dimension).
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from pipeline.errors import ModelError

ModelKind = Literal[
    "scrfd", "yunet", "arcface", "inswapper", "gfpgan", "genderage", "xseg", "bisenet", "nsfw"
]
MODEL_KINDS: tuple[str, ...] = get_args(ModelKind)

Shape = tuple[int | None, ...]

# The input layout each kind of model must have (None: any size, symbolic or not).
DEFAULT_INPUTS: dict[str, tuple[Shape, ...]] = {
    "scrfd": ((1, 3, None, None),),
    "yunet": ((1, 3, None, None),),
    "arcface": ((None, 3, 112, 112),),
    "inswapper": ((None, 3, 128, 128), (None, 512)),
    "gfpgan": ((None, 3, 512, 512),),
    "genderage": ((None, 3, 96, 96),),
    "xseg": ((None, 256, 256, 3),),  # NHWC, BGR in [0, 1]
    "bisenet": ((None, 3, 512, 512),),
    # the content policy's classifier (pipeline.content): BGR, channels last, [safe, unsafe] out
    "nsfw": ((None, 224, 224, 3),),
}

# the job options that name a model: their default and the kinds of model each may name
MODEL_OPTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "face_detector": ("det_10g", ("scrfd", "yunet")),
    "face_recognizer": ("w600k_r50", ("arcface",)),
    "enhancer_model": ("gfpgan_1.4", ("gfpgan",)),
    "swapper_model": ("inswapper_128", ("inswapper",)),
    "face_occluder_model": ("xseg_1", ("xseg",)),
    "face_parser_model": ("bisenet_resnet_34", ("bisenet",)),
}

# which option fields name the models each processor loads
PROCESSOR_MODELS: dict[str, tuple[str, ...]] = {
    "face_swapper": ("face_detector", "face_recognizer", "swapper_model"),
    "face_enhancer": ("face_detector", "enhancer_model"),
    "face_anonymizer": ("face_detector",),
    "face_debugger": ("face_detector",),
}
# which option fields name the models of each face mask type (box needs none)
MASK_MODELS = {"occlusion": "face_occluder_model", "region": "face_parser_model"}
# the anonymiser's quality gate checks with a detector of the other family than the job's
GATE_DETECTOR = {"scrfd": "yunet", "yunet": "det_500m"}

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_FACEFUSION_GITHUB = "https://github.com/facefusion/facefusion-assets/releases/download/models-3.0.0"
_FACEFUSION_HF = "https://huggingface.co/facefusion/models-3.0.0/resolve/main"
_FACEFUSION_GITHUB_31 = "https://github.com/facefusion/facefusion-assets/releases/download/models-3.1.0"
_FACEFUSION_HF_31 = "https://huggingface.co/facefusion/models-3.1.0/resolve/main"
# FaceFusion's own .hash files are CRC32; these sha256 are those of the files in FaceFusion's
# Hugging Face repositories (their LFS pointers), as several independent projects quote them
_HF_LFS_NOTE = "sha256 of the Hugging Face copy (its LFS pointer); FaceFusion itself publishes a CRC32"
_INSIGHTFACE_HF = "https://huggingface.co/public-data/insightface/resolve/main/models"
_OPENCV_ZOO = "https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet"
_OPENCHAVER = "https://pub-43a5d92b0b0b4908a9aec2a745986a23.r2.dev"


@dataclass(frozen=True)
class ModelSpec:
    """One model: what file it is, how to check it, where to get it, what it takes."""

    name: str
    kind: str
    file: str
    sha256: str | None  # None: no published hash is known; a manifest entry must supply it
    size: int | None = None
    sources: tuple[str, ...] = ()
    inputs: tuple[Shape, ...] = ()
    path: Path | None = None  # an explicit copy declared in a manifest
    note: str = ""

    @property
    def input_layout(self) -> tuple[Shape, ...]:
        return self.inputs or DEFAULT_INPUTS[self.kind]

    def describe(self) -> str:
        digest = self.sha256 or "unknown"
        return f"{self.name} ({self.file}, sha256 {digest})"


BUILTIN_MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="det_10g",
        kind="scrfd",
        file="det_10g.onnx",
        sha256="5838f7fe053675b1c7a08b633df49e7af5495cee0493c7dcf6697200b85b5b91",
        size=16923827,
        sources=(f"{_INSIGHTFACE_HF}/buffalo_l/det_10g.onnx",),
        note="InsightFace SCRFD-10G (buffalo_l); non-commercial research use",
    ),
    ModelSpec(
        name="det_500m",
        kind="scrfd",
        file="det_500m.onnx",
        sha256="5e4447f50245bbd7966bd6c0fa52938c61474a04ec7def48753668a9d8b4ea3a",
        size=2524817,
        sources=(f"{_INSIGHTFACE_HF}/buffalo_s/det_500m.onnx",),
        note="InsightFace SCRFD-500M (buffalo_s); non-commercial research use",
    ),
    ModelSpec(
        name="yunet",
        kind="yunet",
        file="face_detection_yunet_2026may.onnx",
        sha256="ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0",
        size=229738,
        sources=(f"{_OPENCV_ZOO}/face_detection_yunet_2026may.onnx",),
        note="OpenCV Zoo YuNet 2026may; MIT",
    ),
    ModelSpec(
        name="w600k_r50",
        kind="arcface",
        file="w600k_r50.onnx",
        sha256="4c06341c33c2ca1f86781dab0e829f88ad5b64be9fba56e56bc9ebdefc619e43",
        size=174383860,
        sources=(f"{_INSIGHTFACE_HF}/buffalo_l/w600k_r50.onnx",),
        note="InsightFace ArcFace R50 WebFace600K (buffalo_l); non-commercial research use",
    ),
    ModelSpec(
        name="inswapper_128",
        kind="inswapper",
        file="inswapper_128.onnx",
        sha256="e4a3f08c753cb72d04e10aa0f7dbe3deebbf39567d4ead6dce08e98aa49e16af",
        size=554253681,
        sources=(f"{_FACEFUSION_GITHUB}/inswapper_128.onnx", f"{_FACEFUSION_HF}/inswapper_128.onnx"),
        note="InsightFace inswapper_128; non-commercial research use",
    ),
    ModelSpec(
        name="gfpgan_1.4",
        kind="gfpgan",
        file="gfpgan_1.4.onnx",
        sha256=None,
        sources=(f"{_FACEFUSION_GITHUB}/gfpgan_1.4.onnx", f"{_FACEFUSION_HF}/gfpgan_1.4.onnx"),
        note=(
            "GFPGAN 1.4 as exported to ONNX by FaceFusion. FaceFusion publishes a CRC32, not a "
            "sha256, and no sha256 could be checked here: declare your copy with its sha256 in "
            "the model manifest before it can be loaded"
        ),
    ),
    ModelSpec(
        name="genderage",
        kind="genderage",
        file="genderage.onnx",
        sha256=None,
        sources=(f"{_INSIGHTFACE_HF}/buffalo_l/genderage.onnx",),
        note=(
            "InsightFace gender and age (buffalo_l), for the face selector's age and gender "
            "filters: input [N,3,96,96], output [N,3] (female, male, age/100); non-commercial "
            "research use. No published sha256 could be checked here: declare your copy with its "
            "sha256 in the model manifest before it can be loaded"
        ),
    ),
    ModelSpec(
        name="xseg_1",
        kind="xseg",
        file="xseg_1.onnx",
        sha256="c4d1498b8a03b5fe2a3a5d2ef2a0402ab03bd51edaf5b2d8d5fb764702a97dd3",
        size=70324286,
        sources=(f"{_FACEFUSION_GITHUB_31}/xseg_1.onnx", f"{_FACEFUSION_HF_31}/xseg_1.onnx"),
        note=f"DeepFaceLab XSeg occlusion mask as exported by FaceFusion (3.1.0); GPL-3.0. {_HF_LFS_NOTE}",
    ),
    ModelSpec(
        name="bisenet_resnet_34",
        kind="bisenet",
        file="bisenet_resnet_34.onnx",
        sha256="4a0b8c958a3c938913bd06a8365dbb3c8761afba6ecbf0d14b3b1f77eb230c96",
        size=93632546,
        sources=(f"{_FACEFUSION_GITHUB}/bisenet_resnet_34.onnx", f"{_FACEFUSION_HF}/bisenet_resnet_34.onnx"),
        note=f"BiSeNet ResNet-34 face parser, 19 CelebAMask-HQ classes (yakhyo, MIT). {_HF_LFS_NOTE}",
    ),
    ModelSpec(
        name="open_nsfw",
        kind="nsfw",
        file="open_nsfw.onnx",
        sha256="864bb37bf8863564b87eb330ab8c785a79a773f4e7c43cb96db52ed8611305fa",
        sources=(f"{_OPENCHAVER}/open-nsfw.onnx",),
        note=(
            "Yahoo Open NSFW (ResNet-50; BSD-2) as ONNX, the content policy's classifier; the URL "
            "and sha256 are those OpenChaver publishes for its copy (FaceFusion's open_nsfw.onnx "
            "has a CRC32 only: declare it in the model manifest with its sha256 to use it)"
        ),
    ),
)


def _shape(value: Any) -> Shape:
    if not isinstance(value, list) or not all(d is None or (isinstance(d, int) and d > 0) for d in value):
        raise ValueError("a shape is a list of positive integers or null")
    return tuple(value)


def _spec_from_entry(entry: Any, base: Path) -> ModelSpec:
    if not isinstance(entry, dict):
        raise ValueError("each model is a JSON object")
    unknown = set(entry) - {"name", "kind", "file", "sha256", "size", "path", "sources", "inputs", "note"}
    if unknown:
        raise ValueError(f"unknown field {sorted(unknown)[0]!r}")
    name, kind, file, sha256 = (entry.get(k) for k in ("name", "kind", "file", "sha256"))
    if not isinstance(name, str) or not name:
        raise ValueError("'name' must be a non-empty string")
    if kind not in MODEL_KINDS:
        raise ValueError(f"model {name}: 'kind' must be one of {', '.join(MODEL_KINDS)}")
    if not isinstance(file, str) or not file or Path(file).name != file:
        raise ValueError(f"model {name}: 'file' must be a plain file name")
    if not isinstance(sha256, str) or not _SHA256.match(sha256.lower()):
        raise ValueError(f"model {name}: 'sha256' must be 64 hex digits")
    size = entry.get("size")
    if size is not None and (not isinstance(size, int) or size < 0):
        raise ValueError(f"model {name}: 'size' must be a byte count")
    sources = entry.get("sources", [])
    if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
        raise ValueError(f"model {name}: 'sources' must be a list of URLs")
    path = entry.get("path")
    inputs = entry.get("inputs")
    return ModelSpec(
        name=name,
        kind=kind,
        file=file,
        sha256=sha256.lower(),
        size=size,
        sources=tuple(sources),
        inputs=tuple(_shape(s) for s in inputs) if inputs else (),
        path=(base / path) if isinstance(path, str) and path else None,
        note=str(entry.get("note", "")),
    )


def read_manifest(path: Path) -> list[ModelSpec]:
    """The models a manifest declares; any problem is a ModelError naming the manifest."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelError(f"cannot read the model manifest {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise ModelError(f"the model manifest {path} is not valid JSON: {exc}") from exc
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, list):
        raise ModelError(f"the model manifest {path} must be an object with a 'models' list")
    specs = []
    for index, entry in enumerate(models):
        try:
            specs.append(_spec_from_entry(entry, path.parent))
        except ValueError as exc:
            raise ModelError(f"the model manifest {path}, entry {index}: {exc}") from exc
    return specs


@dataclass(frozen=True)
class ModelRegistry:
    """The built-in models, overridden and extended by a manifest's."""

    specs: dict[str, ModelSpec] = field(default_factory=dict)

    @classmethod
    def load(cls, manifest: Path | None = None) -> ModelRegistry:
        specs = {spec.name: spec for spec in BUILTIN_MODELS}
        if manifest is not None:
            specs.update({spec.name: spec for spec in read_manifest(manifest)})
        return cls(specs)

    def get(self, name: str, kind: tuple[str, ...] | None = None) -> ModelSpec:
        spec = self.specs.get(name)
        if spec is None:
            close = difflib.get_close_matches(name, list(self.specs), n=1, cutoff=0.75)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ModelError(
                f"unknown model {name!r}{hint}; known: {', '.join(sorted(self.specs))} "
                "(declare more in the model manifest, FACEFLEET_MODEL_MANIFEST)"
            )
        if kind is not None and spec.kind not in kind:
            raise ModelError(f"model {name!r} is of kind {spec.kind}, not one of: {', '.join(kind)}")
        return spec

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(sorted(self.specs.values(), key=lambda s: s.name))


def model_names(options: Any) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Each model option's value in ``options`` (a mapping; its default where absent) and
    the kinds of model it may name."""
    return {
        name: (str(options.get(name, default)), kinds) for name, (default, kinds) in MODEL_OPTIONS.items()
    }


def check_model_options(options: Any, registry: ModelRegistry) -> None:
    """Raise ModelError naming the option when one names no model of its kinds."""
    for option, (name, kinds) in model_names(options).items():
        spec = registry.specs.get(name)
        if spec is None or spec.kind not in kinds:
            known = sorted(s.name for s in registry.specs.values() if s.kind in kinds)
            raise ModelError(f"{option}: unknown model {name[:100]!r}; known: {', '.join(known)}")
    attribute = options.get("face_attribute_model")
    if attribute:
        spec = registry.specs.get(str(attribute))
        if spec is None or spec.kind != "genderage":
            known = sorted(s.name for s in registry.specs.values() if s.kind == "genderage")
            raise ModelError(
                f"face_attribute_model: unknown model {str(attribute)[:100]!r}; known: {', '.join(known)}"
            )


def models_needed(processors: list[str], options: Any, registry: ModelRegistry | None = None) -> list[str]:
    """The models a chain of ``processors`` loads with ``options`` (a mapping, every model
    option filled in), in the order they name them; with ``registry``, the quality gate's
    too (the anonymiser's checks with a detector of the other family)."""
    names = [str(options[f]) for p in processors for f in PROCESSOR_MODELS.get(p, ())]
    if processors and "reference" in (options.get("face_selector"), options.get("face_selector_mode")):
        names.append(str(options["face_recognizer"]))
    filters = ("face_selector_age_start", "face_selector_age_end", "face_selector_gender")
    if (
        processors
        and options.get("face_attribute_model")
        and any(options.get(f) is not None for f in filters)
    ):
        names.append(str(options["face_attribute_model"]))
    if {"face_swapper", "face_enhancer"} & set(processors):
        chosen = options.get("face_mask_types") or ()
        names += [str(options[f]) for kind, f in MASK_MODELS.items() if kind in chosen]
    if registry is not None and "face_anonymizer" in processors:
        job = registry.specs.get(str(options["face_detector"]))
        if job is not None and job.kind in GATE_DETECTOR:
            names.append(GATE_DETECTOR[job.kind])
    return list(dict.fromkeys(names))
