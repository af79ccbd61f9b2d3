"""Model declarations, verification, downloads, sessions and the models CLI."""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cli.commands import models as models_command
from facefleet.config.settings import Settings
from pipeline.errors import ModelError, ProviderError
from pipeline.faces.processors import FACE_ENHANCER, FACE_SWAPPER
from pipeline.models import ModelRegistry, ModelStore, load_model
from pipeline.models.registry import BUILTIN_MODELS
from pipeline.models.sessions import check_providers
from pipeline.processors import JobInputs
from pipeline.runtime import Runtime

from .models import ENHANCER, RECOGNIZER, WRONG_SIGNATURE, generated_options

PUBLISHED = {
    "inswapper_128": (554253681, "e4a3f08c753cb72d04e10aa0f7dbe3deebbf39567d4ead6dce08e98aa49e16af"),
    "det_10g": (16923827, "5838f7fe053675b1c7a08b633df49e7af5495cee0493c7dcf6697200b85b5b91"),
    "w600k_r50": (174383860, "4c06341c33c2ca1f86781dab0e829f88ad5b64be9fba56e56bc9ebdefc619e43"),
    "det_500m": (2524817, "5e4447f50245bbd7966bd6c0fa52938c61474a04ec7def48753668a9d8b4ea3a"),
    "yunet": (229738, "ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0"),
}


def _manifest_with(tmp_path: Path, manifest: Path, **changes: dict) -> Path:
    data = json.loads(manifest.read_text())
    for entry in data["models"]:
        entry.update(changes.get(entry["name"], {}))
        entry["path"] = str(manifest.parent / entry["path"]) if entry.get("path") else None
    path = tmp_path / "changed.json"
    path.write_text(json.dumps(data))
    return path


def test_builtin_models_carry_the_published_facts():
    specs = {spec.name: spec for spec in BUILTIN_MODELS}
    for name, (size, sha256) in PUBLISHED.items():
        assert (specs[name].size, specs[name].sha256) == (size, sha256)
        assert all(source.startswith("https://") for source in specs[name].sources)
    assert specs["gfpgan_1.4"].sha256 is None  # no published sha256 we can vouch for


def test_a_wrong_hash_is_a_model_error_before_any_frame(tmp_path, runtime, manifest):
    bad = _manifest_with(tmp_path, manifest, **{ENHANCER: {"sha256": "0" * 64}})
    changed = Runtime(model_dir=runtime.model_dir, model_mirrors=runtime.model_mirrors, model_manifest=bad)
    with pytest.raises(ModelError) as caught:
        FACE_ENHANCER.create(generated_options(), {}, changed)
    message = str(caught.value)
    assert "test_gfpgan.onnx" in message and "0" * 64 in message and "FACEFLEET_MODEL_DIR" in message


def test_a_missing_model_is_a_model_error(tmp_path, runtime, manifest):
    gone = _manifest_with(tmp_path, manifest, **{ENHANCER: {"path": str(tmp_path / "nowhere.onnx")}})
    changed = Runtime(model_dir=runtime.model_dir, model_mirrors=runtime.model_mirrors, model_manifest=gone)
    with pytest.raises(ModelError, match="test_gfpgan.onnx.*missing"):
        FACE_ENHANCER.prepare(generated_options(), JobInputs(), changed)


def test_an_undeclared_hash_cannot_be_loaded(runtime):
    with pytest.raises(ModelError, match="no sha256 is declared for gfpgan_1.4"):
        FACE_ENHANCER.create(generated_options(enhancer_model="gfpgan_1.4"), {}, runtime)


def test_a_wrong_input_signature_is_a_model_error(runtime, astronaut, tmp_path):
    import cv2

    source = tmp_path / "source.png"
    cv2.imwrite(str(source), astronaut)
    with pytest.raises(ModelError, match=r"inputs \[\?,3,64,64\].*needs \[\?,3,112,112\]"):
        FACE_SWAPPER.prepare(
            generated_options(face_recognizer=WRONG_SIGNATURE), JobInputs(sources=(source,)), runtime
        )


def test_a_model_of_the_wrong_kind_is_refused(runtime):
    with pytest.raises(ModelError, match="is of kind arcface, not one of: gfpgan"):
        load_model(runtime, RECOGNIZER, ("gfpgan",))


def test_a_broken_manifest_names_itself(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(
        json.dumps({"models": [{"name": "x", "kind": "arcface", "file": "x.onnx", "sha256": "12"}]})
    )
    with pytest.raises(ModelError, match=r"m.json, entry 0: model x: 'sha256' must be 64 hex"):
        ModelRegistry.load(path)


def test_model_dir_comes_before_mirrors(tmp_path, shared_models):
    model_dir = tmp_path / "dir"
    model_dir.mkdir()
    (model_dir / "det_500m.onnx").write_bytes(b"not the model")
    store = ModelStore.for_runtime(Runtime(model_dir=model_dir, model_mirrors=(str(shared_models),)))
    assert (
        store.resolve("det_500m", fetch=False) == shared_models / "det_500m.onnx"
    )  # the bad copy is refused
    (model_dir / "det_500m.onnx").write_bytes((shared_models / "det_500m.onnx").read_bytes())
    assert store.resolve("det_500m", fetch=False) == model_dir / "det_500m.onnx"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(served))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _served_manifest(tmp_path: Path, name: str, data: bytes, sha256: str, url: str) -> Path:
    entry = {
        "name": name,
        "kind": "gfpgan",
        "file": f"{name}.onnx",
        "sha256": sha256,
        "size": len(data),
        "sources": [url],
    }
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"models": [entry]}))
    return path


def test_download_from_a_url_mirror_streams_verifies_and_renames(tmp_path, http_server, manifest):
    served, base = http_server
    data = (manifest.parent / "test_gfpgan.onnx").read_bytes()
    (served / "served_gfpgan.onnx").write_bytes(data)
    declared = _served_manifest(
        tmp_path, "served_gfpgan", data, hashlib.sha256(data).hexdigest(), "https://invalid.invalid/x"
    )
    runtime = Runtime(model_dir=tmp_path / "models", model_mirrors=(base,), model_manifest=declared)
    path = ModelStore.for_runtime(runtime).download("served_gfpgan")
    assert path == runtime.model_dir / "served_gfpgan.onnx" and path.read_bytes() == data
    assert not list(runtime.model_dir.glob("*.part"))
    assert load_model(runtime, "served_gfpgan", ("gfpgan",)).session is not None


def test_a_download_with_the_wrong_hash_leaves_nothing(tmp_path, http_server):
    served, base = http_server
    (served / "tampered.onnx").write_bytes(b"x" * 64)
    declared = _served_manifest(tmp_path, "tampered", b"x" * 64, "f" * 64, f"{base}/tampered.onnx")
    runtime = Runtime(model_dir=tmp_path / "models", model_manifest=declared)
    with pytest.raises(ModelError, match=f"tampered.onnx sent a file with sha256 .*, expected {'f' * 64}"):
        ModelStore.for_runtime(runtime).resolve("tampered")
    assert not (runtime.model_dir / "tampered.onnx").exists()
    assert not list(runtime.model_dir.glob("*"))


def test_a_gpu_provider_that_is_not_active_is_an_error():
    with pytest.raises(ProviderError, match="CUDAExecutionProvider"):
        check_providers(["CUDAExecutionProvider", "CPUExecutionProvider"], ["CPUExecutionProvider"], False)
    check_providers(["CUDAExecutionProvider", "CPUExecutionProvider"], ["CPUExecutionProvider"], True)


def test_a_session_asked_for_cuda_fails_on_a_cpu_only_box(runtime):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("CUDA is available here")
    cuda = Runtime(
        model_dir=runtime.model_dir,
        model_mirrors=runtime.model_mirrors,
        model_manifest=runtime.model_manifest,
        providers=("CUDAExecutionProvider", "CPUExecutionProvider"),
    )
    with pytest.raises(ProviderError, match="CUDAExecutionProvider was asked for but is not active"):
        load_model(cuda, RECOGNIZER, ("arcface",))
    fallback = Runtime(**{**cuda.__dict__, "allow_cpu_fallback": True})
    assert load_model(fallback, RECOGNIZER, ("arcface",)).session.get_providers() == ["CPUExecutionProvider"]


def test_sessions_are_built_once_per_process(runtime):
    first = load_model(runtime, RECOGNIZER, ("arcface",)).session
    assert load_model(runtime, RECOGNIZER, ("arcface",)).session is first


def _cli(*argv: str, settings: Settings) -> int:
    parser = argparse.ArgumentParser(prog="facefleet")
    models_command.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return int(args.handler(args, settings))


def test_cli_list_download_verify(tmp_path, shared_models, manifest, capsys):
    settings = Settings(
        model_dir=tmp_path / "models", model_mirrors=str(shared_models), model_manifest=manifest
    )
    assert _cli("models", "list", settings=settings) == 0
    listing = capsys.readouterr().out
    assert "inswapper_128" in listing and "missing" in listing and "gfpgan_1.4" in listing
    assert _cli("models", "download", "det_500m", settings=settings) == 0
    assert (tmp_path / "models" / "det_500m.onnx").is_file()
    assert _cli("models", "verify", "det_500m", "yunet", settings=settings) == 0
    (tmp_path / "models" / "det_500m.onnx").write_bytes(b"corrupt")
    assert _cli("models", "verify", "det_500m", settings=settings) == 1
    assert _cli("models", "verify", "no_such_model", settings=settings) == 1
    error = capsys.readouterr().err
    assert "unknown model 'no_such_model'" in error and error.strip().splitlines()[-1].startswith(
        "facefleet: "
    )
