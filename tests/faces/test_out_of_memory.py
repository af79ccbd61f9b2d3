"""A model run that runs out of accelerator memory: a fault of the host (no attempt spent),
and the batch steps down for the worker's next chunks."""

from __future__ import annotations

import numpy as np
import pytest

from facefleet.task.failures import local_fault
from pipeline.models import binding, oom


class _OutOfMemorySession:
    """A session whose runs fail as onnxruntime's CUDA provider reports an allocation failure."""

    def get_providers(self):  # type: ignore[no-untyped-def]
        return ["CPUExecutionProvider"]

    def run(self, outputs, feeds):  # type: ignore[no-untyped-def]
        raise RuntimeError(
            "[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : CUDA failure 2: out of memory ; GPU=0"
        )


@pytest.fixture(autouse=True)
def _reset():
    oom.reset()
    yield
    oom.reset()


def test_out_of_memory_is_a_host_fault_and_halves_the_batch():
    with pytest.raises(oom.DeviceMemoryError) as caught:
        binding.run(_OutOfMemorySession(), ["out"], {"in": np.zeros((8, 3, 4, 4), np.float32)}, "swapper")
    assert oom.capped(8) == 4 and oom.capped(16) == 4 and oom.capped(2) == 2
    fault = local_fault(caught.value)
    assert fault is not None and "ran out of memory" in fault  # given back, no attempt spent
    oom.step_down(4)
    assert oom.capped(8) == 2
    oom.step_down(1)
    assert oom.capped(8) == 1  # never below one


def test_other_errors_stay_what_they_are():
    class Broken(_OutOfMemorySession):
        def run(self, outputs, feeds):  # type: ignore[no-untyped-def]
            raise RuntimeError("Invalid rank for input: in")

    with pytest.raises(RuntimeError, match="Invalid rank"):
        binding.run(Broken(), ["out"], {"in": np.zeros((2, 3), np.float32)}, "swapper")
    assert oom.capped(8) == 8
