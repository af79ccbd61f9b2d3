"""The execution provider choice per model (TensorRT, then CUDA, then the CPU), its engine
cache key, and IO binding, checked on the CPU (the GPU paths need a GPU host)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import ProviderError
from pipeline.faces.loading import load_swapper
from pipeline.models import binding, load_model
from pipeline.models.providers import CPU, CUDA, TENSORRT, Device, engine_cache_dir, plan
from pipeline.models.sessions import check_providers, chosen_providers, clear_sessions
from pipeline.runtime import Runtime

from .models import SWAPPER, generated_options

H100 = Device("NVIDIA H100 80GB HBM3", "10.9.0")
SHA = "ab" * 32


def _plan(requested, available, device=H100, kind="inswapper"):  # type: ignore[no-untyped-def]
    return plan(
        "m", kind, requested, available, model_folder=Path("/models"), model_sha256=SHA, device=device
    )


def test_auto_takes_tensorrt_then_cuda_then_cpu_where_present():
    assert _plan(["auto"], [TENSORRT, CUDA, CPU]).providers == (TENSORRT, CUDA, CPU)
    assert _plan(["auto"], [CUDA, CPU]).providers == (CUDA, CPU)
    assert _plan(["auto"], [CPU]).providers == (CPU,)
    assert _plan([CUDA, CPU], [TENSORRT, CUDA, CPU]).providers == (CUDA, CPU)  # a list is taken as given
    assert _plan([CUDA], [TENSORRT, CUDA, CPU]).providers == (CUDA, CPU)  # the CPU always closes it


def test_tensorrt_runs_fp16_with_its_engines_cached_by_model_gpu_and_version():
    chosen = _plan(["auto"], [TENSORRT, CUDA, CPU])
    trt = chosen.options[0]
    assert trt["trt_fp16_enable"] == "True" and trt["trt_engine_cache_enable"] == "True"
    assert trt["trt_engine_cache_path"] == str(chosen.engine_cache)
    assert chosen.engine_cache == Path("/models/trt-engines") / f"{SHA[:16]}-nvidia-h100-80gb-hbm3-trt10.9.0"
    keys = {
        engine_cache_dir(Path("/models"), SHA, H100),
        engine_cache_dir(Path("/models"), "cd" * 32, H100),  # another model
        engine_cache_dir(Path("/models"), SHA, Device("NVIDIA H200", "10.9.0")),  # another GPU
        engine_cache_dir(Path("/models"), SHA, Device(H100.gpu_name, "10.13.0")),  # another TensorRT
    }
    assert len(keys) == 4
    assert _plan(["auto"], [CUDA, CPU]).engine_cache is None


def test_a_gpu_provider_asked_by_name_and_missing_is_an_error_unless_fallback_allowed():
    with pytest.raises(ProviderError, match="CUDAExecutionProvider"):
        check_providers([CUDA, CPU], [CPU], allow_cpu_fallback=False)
    check_providers([CUDA, CPU], [CPU], allow_cpu_fallback=True)
    check_providers(["auto"], [CPU], allow_cpu_fallback=False)  # auto: the best present, the CPU included


def test_auto_on_a_cpu_host_loads_and_reports_the_cpu(tmp_path, shared_models, manifest, caplog):
    clear_sessions()
    runtime = Runtime(
        model_dir=tmp_path / "models",
        model_mirrors=(str(shared_models),),
        model_manifest=manifest,
        providers=("auto",),
    )
    caplog.set_level("INFO")
    load_model(runtime, "det_500m", ("scrfd",))
    assert chosen_providers()["det_500m"] == CPU
    assert "model det_500m runs on CPUExecutionProvider" in caplog.text
    clear_sessions()


def test_a_bound_run_equals_a_plain_run(runtime):
    swapper = load_swapper(generated_options(swapper_model=SWAPPER), runtime)
    session = swapper.session
    rng = np.random.default_rng(3)
    feeds = {
        swapper.target_name: rng.random((2, 3, 128, 128), dtype=np.float32),
        swapper.source_name: rng.standard_normal((2, 512), dtype=np.float32),
    }
    plain = session.run([swapper.output_name], feeds)[0]
    bound = binding.run_bound(session, [swapper.output_name], feeds, "cpu")[0]
    assert binding.device_of(session) == "cpu"
    np.testing.assert_array_equal(plain, bound)
