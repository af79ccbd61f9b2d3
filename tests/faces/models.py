"""Small ONNX models with the real signatures (ArcFace, inswapper, GFPGAN, XSeg, BiSeNet, Open
NSFW), and their manifest.

Shared by the tests (and benches) that need the swapper, recogniser or enhancer without the
real weights: ``write_test_models(folder)`` writes the models and a manifest declaring them
with their sha256, and returns the manifest's path; point ``Runtime.model_manifest`` (or
``FACEFLEET_MODEL_MANIFEST``) at it and name the models in the job options. Only numpy and
onnx are needed, so other test suites can import this file as it is.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
SEED = 7
RECOGNIZER = "test_arcface"
SWAPPER = "test_inswapper"
SWAPPER_FIXED = "test_inswapper_fixed"  # a batch-1 graph the symbolic-batch rewrite cannot batch
ENHANCER = "test_gfpgan"
FAITHFUL_SWAPPER = "test_inswapper_faithful"  # pastes one fixed face: the source's, when given its crop
UNCHANGED_SWAPPER = "test_inswapper_unchanged"  # returns the target face as it came
WRONG_SIGNATURE = "test_arcface_wrong_input"
ATTRIBUTES = "test_genderage"  # gender from red against blue, age from green (see attribute_model)
OCCLUDER = "test_xseg"  # XSeg's signature: visible where the colour is skin-like
PARSER = "test_bisenet"  # BiSeNet's signature: 19 classes from colour and place in the crop
CLASSIFIER_UNSAFE = "test_nsfw_unsafe"  # the content policy's classifier, scoring every frame unsafe
CLASSIFIER_SAFE = "test_nsfw_safe"  # ... and every frame safe
CLASSIFIER_BRIGHT = "test_nsfw_bright"  # ... unsafe when the frame is bright, safe when dark
MANIFEST_NAME = "test-models.json"
EMBEDDING = 512


def _weights(rng: np.random.Generator, *shape: int, scale: float = 0.1) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def _model(nodes, inputs, outputs, initializers) -> onnx.ModelProto:  # type: ignore[no-untyped-def]
    graph = helper.make_graph(nodes, "generated", inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def recognizer_model(side: int = 112, seed: int = SEED) -> onnx.ModelProto:
    """ArcFace-shaped: input.1 [N,3,side,side] -> [N,512] (strided conv, flatten, dense)."""
    rng = np.random.default_rng(seed)
    cells = side // 8
    inits = [
        numpy_helper.from_array(_weights(rng, 8, 3, 8, 8), "conv_w"),
        numpy_helper.from_array(_weights(rng, cells * cells * 8, EMBEDDING, scale=0.02), "dense_w"),
    ]
    nodes = [
        helper.make_node("Conv", ["input.1", "conv_w"], ["features"], strides=[8, 8]),
        helper.make_node("Relu", ["features"], ["relu"]),
        helper.make_node("Flatten", ["relu"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "dense_w"], ["683"]),
    ]
    inputs = [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["None", 3, side, side])]
    outputs = [helper.make_tensor_value_info("683", TensorProto.FLOAT, ["None", EMBEDDING])]
    return _model(nodes, inputs, outputs, inits)


def swapper_model(
    seed: int = SEED, channels: int = 8, blocks: int = 0, fixed_batch: bool = False
) -> onnx.ModelProto:
    """inswapper-shaped: target [1,3,128,128] + source [1,512] -> output [1,3,128,128] in [0,1].

    The source modulates the features (a dense layer per channel); ``blocks`` 3x3 convolutions
    of ``channels`` channels at 32x32 add compute (the bench uses them for realistic FLOPs).
    The last initializer is the emap [512,512], as in the published model. ``fixed_batch``
    reshapes the style with a literal batch of 1, which a symbolic batch cannot run.
    """
    rng = np.random.default_rng(seed)
    inits = [
        numpy_helper.from_array(_weights(rng, channels, 3, 4, 4), "down_w"),
        numpy_helper.from_array(_weights(rng, EMBEDDING, channels, scale=0.05), "style_w"),
        numpy_helper.from_array(np.array([2, 3], dtype=np.int64), "style_axes"),
        numpy_helper.from_array(np.array([1, channels, 1, 1], dtype=np.int64), "style_shape"),
        numpy_helper.from_array(_weights(rng, channels, 3, 4, 4), "up_w"),
    ]
    nodes = [
        helper.make_node("Conv", ["target", "down_w"], ["down"], strides=[4, 4]),
        helper.make_node("MatMul", ["source", "style_w"], ["style_flat"]),
    ]
    if fixed_batch:
        nodes.append(helper.make_node("Reshape", ["style_flat", "style_shape"], ["style"]))
    else:
        nodes.append(helper.make_node("Unsqueeze", ["style_flat", "style_axes"], ["style"]))
    nodes.append(helper.make_node("Add", ["down", "style"], ["h0"]))
    for index in range(blocks):
        weight = f"block{index}_w"
        inits.append(
            numpy_helper.from_array(
                _weights(rng, channels, channels, 3, 3, scale=1.0 / (3 * channels**0.5)), weight
            )
        )
        nodes.append(helper.make_node("Conv", [f"h{index}", weight], [f"c{index}"], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Relu", [f"c{index}"], [f"r{index}"]))
        nodes.append(helper.make_node("Add", [f"h{index}", f"r{index}"], [f"h{index + 1}"]))
    nodes += [
        helper.make_node("ConvTranspose", [f"h{blocks}", "up_w"], ["up"], strides=[4, 4]),
        helper.make_node("Sigmoid", ["up"], ["output"]),
    ]
    inits.append(numpy_helper.from_array(_weights(rng, EMBEDDING, EMBEDDING, scale=0.05), "emap"))
    inputs = [
        helper.make_tensor_value_info("target", TensorProto.FLOAT, [1, 3, 128, 128]),
        helper.make_tensor_value_info("source", TensorProto.FLOAT, [1, EMBEDDING]),
    ]
    outputs = [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 128, 128])]
    return _model(nodes, inputs, outputs, inits)


def _fixed_output_swapper(nodes, initializers) -> onnx.ModelProto:  # type: ignore[no-untyped-def]
    """inswapper's signature around ``nodes`` that make ``output`` from ``target`` (the source
    is taken and ignored); the emap is the last initializer, as in the published model."""
    rng = np.random.default_rng(SEED)
    initializers = [*initializers, numpy_helper.from_array(_weights(rng, EMBEDDING, EMBEDDING), "emap")]
    inputs = [
        helper.make_tensor_value_info("target", TensorProto.FLOAT, [1, 3, 128, 128]),
        helper.make_tensor_value_info("source", TensorProto.FLOAT, [1, EMBEDDING]),
    ]
    outputs = [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 128, 128])]
    return _model(nodes, inputs, outputs, initializers)


def unchanged_swapper_model() -> onnx.ModelProto:
    """A swapper that returns the target face unchanged: the gate must see no identity moved."""
    return _fixed_output_swapper([helper.make_node("Identity", ["target"], ["output"])], [])


def faithful_swapper_model(face_bgr: np.ndarray) -> onnx.ModelProto:
    """A swapper whose every output is ``face_bgr`` (a 128x128 crop aligned as inswapper aligns):
    given the source's own crop, a perfectly faithful swap of that source."""
    face = (face_bgr[:, :, ::-1].astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
    nodes = [
        helper.make_node("Mul", ["target", "zero"], ["nothing"]),
        helper.make_node("Add", ["nothing", "face"], ["output"]),
    ]
    weights = [
        numpy_helper.from_array(np.zeros((1, 1, 1, 1), np.float32), "zero"),
        numpy_helper.from_array(np.ascontiguousarray(face), "face"),
    ]
    return _fixed_output_swapper(nodes, weights)


def enhancer_model(seed: int = SEED) -> onnx.ModelProto:
    """GFPGAN-shaped: input [1,3,512,512] in [-1,1] -> output [1,3,512,512] (conv + tanh)."""
    rng = np.random.default_rng(seed)
    identity = np.zeros((3, 3, 3, 3), dtype=np.float32)
    identity[np.arange(3), np.arange(3), 1, 1] = 1.0
    weights = identity * 0.8 + _weights(rng, 3, 3, 3, 3, scale=0.02)
    nodes = [
        helper.make_node("Conv", ["input", "w"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("Tanh", ["conv"], ["output"]),
    ]
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 512, 512])]
    outputs = [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 512, 512])]
    return _model(nodes, inputs, outputs, [numpy_helper.from_array(weights, "w")])


def attribute_model() -> onnx.ModelProto:
    """genderage-shaped: data [N,3,96,96] RGB 0-255 -> fc1 [N,3] (female, male, age/100).

    Each output is the brightest value of one channel over the crop, / 255: female from red,
    male from blue, age / 100 from green. A face painted (BGR) ``(0, 2.55 * age, 200)`` is a
    woman of that age, ``(200, 2.55 * age, 0)`` a man, on a black background.
    """
    mix = np.zeros((3, 3), np.float32)
    mix[0, 0] = mix[2, 1] = mix[1, 2] = 1.0 / 255.0  # R -> female, B -> male, G -> age / 100
    nodes = [
        helper.make_node("ReduceMax", ["data"], ["brightest"], axes=[2, 3], keepdims=0),
        helper.make_node("MatMul", ["brightest", "mix"], ["fc1"]),
    ]
    inputs = [helper.make_tensor_value_info("data", TensorProto.FLOAT, ["None", 3, 96, 96])]
    outputs = [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, ["None", 3])]
    return _model(nodes, inputs, outputs, [numpy_helper.from_array(mix, "mix")])


def occluder_model(batch: int | str = "N") -> onnx.ModelProto:
    """XSeg-shaped: input [N,256,256,3] BGR in [0,1] -> output [N,256,256,1], higher where the
    face is visible: skin-like colour (red well above blue), smoothed over 9x9 pixels."""
    weights = np.array([-12.0, 0.0, 12.0], dtype=np.float32).reshape(1, 3, 1, 1)  # B, G, R
    nodes = [
        helper.make_node("Transpose", ["input"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "w", "b"], ["skin"]),
        helper.make_node("AveragePool", ["skin"], ["smooth"], kernel_shape=[9, 9], pads=[4, 4, 4, 4]),
        helper.make_node("Sigmoid", ["smooth"], ["visible"]),
        helper.make_node("Transpose", ["visible"], ["output"], perm=[0, 2, 3, 1]),
    ]
    inits = [
        numpy_helper.from_array(weights, "w"),
        numpy_helper.from_array(np.array([-1.2], dtype=np.float32), "b"),
    ]
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 256, 256, 3])]
    outputs = [helper.make_tensor_value_info("output", TensorProto.FLOAT, [batch, 256, 256, 1])]
    return _model(nodes, inputs, outputs, inits)


# where each class is likely in an aligned 128 crop (inswapper's): (class, centre u, v, radii u, v)
_PARSER_PLACES = (
    (1, 0.50, 0.55, 0.36, 0.46),  # skin
    (2, 0.35, 0.31, 0.09, 0.03),  # left eyebrow
    (3, 0.65, 0.31, 0.09, 0.03),  # right eyebrow
    (4, 0.36, 0.40, 0.06, 0.03),  # left eye
    (5, 0.64, 0.40, 0.06, 0.03),  # right eye
    (10, 0.50, 0.53, 0.07, 0.10),  # nose
    (11, 0.50, 0.72, 0.08, 0.012),  # mouth
    (12, 0.50, 0.69, 0.12, 0.025),  # upper lip
    (13, 0.50, 0.76, 0.11, 0.03),  # lower lip
    (17, 0.50, 0.02, 0.50, 0.12),  # hair
)
_PARSER_GRID = 64


def _parser_prior() -> np.ndarray:
    """[1,19,64,64] logits by place: each class's ellipse, the background outside the face."""
    v, u = np.mgrid[0:_PARSER_GRID, 0:_PARSER_GRID].astype(np.float32) / (_PARSER_GRID - 1)
    prior = np.full((19, _PARSER_GRID, _PARSER_GRID), -4.0, dtype=np.float32)
    prior[0] = 1.0
    for index, (cls, cu, cv, ru, rv) in enumerate(_PARSER_PLACES):
        inside = ((u - cu) / ru) ** 2 + ((v - cv) / rv) ** 2
        prior[cls] = np.where(inside < 1.0, 2.0 + index * 0.5, -4.0)
    return prior[None]


def parser_model(batch: int | str = "N") -> onnx.ModelProto:
    """BiSeNet-shaped: input [N,3,512,512] RGB normalised with ImageNet's mean and deviation ->
    output [N,19,512,512] logits: a prior by place in the aligned crop plus a colour term (skin
    likes red over blue, the background the reverse, eyes and brows dark), smoothed 5x5."""
    colour = np.zeros((19, 3), dtype=np.float32)
    colour[1] = (1.5, 0.0, -1.5)
    colour[0] = (-1.5, 0.0, 1.5)
    for dark in (2, 3, 4, 5):
        colour[dark] = (-0.7, -0.7, -0.7)
    nodes = [
        helper.make_node("Conv", ["input", "colour_w"], ["by_colour"]),
        helper.make_node("Resize", ["prior", "", "scales"], ["by_place"], mode="linear"),
        helper.make_node("Add", ["by_colour", "by_place"], ["logits"]),
        helper.make_node("AveragePool", ["logits"], ["output"], kernel_shape=[5, 5], pads=[2, 2, 2, 2]),
    ]
    scale = 512 / _PARSER_GRID
    inits = [
        numpy_helper.from_array(colour.reshape(19, 3, 1, 1), "colour_w"),
        numpy_helper.from_array(_parser_prior(), "prior"),
        numpy_helper.from_array(np.array([1, 1, scale, scale], dtype=np.float32), "scales"),
    ]
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, 512, 512])]
    outputs = [helper.make_tensor_value_info("output", TensorProto.FLOAT, [batch, 19, 512, 512])]
    return _model(nodes, inputs, outputs, inits)


def classifier_model(unsafe: bool) -> onnx.ModelProto:
    """Open-NSFW-shaped: input [N,224,224,3] (BGR less the Caffe means, channels last) ->
    [N,2] softmax [safe, unsafe]; every image gets the same scores (``unsafe``: 0.99995, else
    0.00005), computed through the input so the runtime runs a real graph on each frame."""
    logits = np.array([[0.0, 10.0]] if unsafe else [[10.0, 0.0]], dtype=np.float32)
    inits = [
        numpy_helper.from_array(np.zeros((1, 2), np.float32), "zero"),
        numpy_helper.from_array(logits, "logits"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
    ]
    nodes = [
        helper.make_node("ReduceMean", ["input"], ["mean"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Unsqueeze", ["mean", "axis1"], ["column"]),
        helper.make_node("Mul", ["column", "zero"], ["nothing"]),
        helper.make_node("Add", ["nothing", "logits"], ["scores"]),
        helper.make_node("Softmax", ["scores"], ["prob"], axis=1),
    ]
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["None", 224, 224, 3])]
    outputs = [helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["None", 2])]
    return _model(nodes, inputs, outputs, inits)


def bright_classifier_model(steepness: float = 0.1) -> onnx.ModelProto:
    """Open-NSFW-shaped, scoring by the picture: the input's mean (BGR less the Caffe means,
    so 0 is a frame of mean value about 115) times ``steepness`` is the unsafe logit, its
    negative the safe one. A dark frame (mean value 30: input mean about -85) scores under
    1e-7 unsafe, a bright one (mean value 220: about +105) over 0.9999999; the default
    threshold 0.8 is crossed at a mean value of about 122."""
    inits = [
        numpy_helper.from_array(np.array([[-steepness, steepness]], dtype=np.float32), "slope"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
    ]
    nodes = [
        helper.make_node("ReduceMean", ["input"], ["mean"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Unsqueeze", ["mean", "axis1"], ["column"]),
        helper.make_node("MatMul", ["column", "slope"], ["scores"]),
        helper.make_node("Softmax", ["scores"], ["prob"], axis=1),
    ]
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["None", 224, 224, 3])]
    outputs = [helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["None", 2])]
    return _model(nodes, inputs, outputs, inits)


def _entry(folder: Path, name: str, kind: str, model: onnx.ModelProto) -> dict[str, object]:
    file = f"{name}.onnx"
    data = model.SerializeToString()
    (folder / file).write_bytes(data)
    return {
        "name": name,
        "kind": kind,
        "file": file,
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "path": file,
        "note": "generated by tests/faces/models.py",
    }


def write_test_models(
    folder: Path, swapper_blocks: int = 0, swapper_channels: int = 8, faithful_face: np.ndarray | None = None
) -> Path:
    """Write the generated models and their manifest into ``folder``; return the manifest path.
    ``faithful_face``: the 128x128 crop the faithful swapper pastes (default: mid-grey)."""
    face = faithful_face if faithful_face is not None else np.full((128, 128, 3), 128, np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    entries = [
        _entry(folder, RECOGNIZER, "arcface", recognizer_model()),
        _entry(folder, SWAPPER, "inswapper", swapper_model(channels=swapper_channels, blocks=swapper_blocks)),
        _entry(folder, SWAPPER_FIXED, "inswapper", swapper_model(fixed_batch=True)),
        _entry(folder, ENHANCER, "gfpgan", enhancer_model()),
        _entry(folder, WRONG_SIGNATURE, "arcface", recognizer_model(side=64)),
        _entry(folder, UNCHANGED_SWAPPER, "inswapper", unchanged_swapper_model()),
        _entry(folder, FAITHFUL_SWAPPER, "inswapper", faithful_swapper_model(face)),
        _entry(folder, ATTRIBUTES, "genderage", attribute_model()),
        _entry(folder, OCCLUDER, "xseg", occluder_model()),
        _entry(folder, PARSER, "bisenet", parser_model()),
        _entry(folder, CLASSIFIER_UNSAFE, "nsfw", classifier_model(unsafe=True)),
        _entry(folder, CLASSIFIER_SAFE, "nsfw", classifier_model(unsafe=False)),
        _entry(folder, CLASSIFIER_BRIGHT, "nsfw", bright_classifier_model()),
    ]
    manifest = folder / MANIFEST_NAME
    manifest.write_text(json.dumps({"models": entries}, indent=2), encoding="utf-8")
    return manifest


def generated_options(**overrides: object) -> dict[str, object]:
    """Processor options that use the generated models (and the real YuNet detector)."""
    options: dict[str, object] = {
        "face_selector": "all",
        "reference_face_distance": 0.6,
        "face_detector": "yunet",
        "detector_score": 0.5,
        "detector_nms": 0.4,
        "detector_size": 640,
        "face_recognizer": RECOGNIZER,
        "swapper_model": SWAPPER,
        "enhancer_model": ENHANCER,
        "enhancer_blend": 0.8,
        "anonymizer_mode": "blur",
        "face_batch": 8,
        "face_occluder_model": OCCLUDER,
        "face_parser_model": PARSER,
    }
    options.update(overrides)
    return options
