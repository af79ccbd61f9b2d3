"""This host's NVIDIA GPUs, as the driver lists them: NVML (the ``nvidia-ml-py`` package)
where it is installed, else ``nvidia-smi``; and their memory and utilisation now.

Nothing here needs CUDA or onnxruntime: a host without GPUs gets a ``NoGpuError`` that
names what is missing, within seconds."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.errors import PipelineError

SMI_TIMEOUT_S = 10
MIB = 2**20


class NoGpuError(PipelineError):
    """No usable NVIDIA GPU (no driver, no NVML, no nvidia-smi, none listed, or not the one asked for)."""


@dataclass(frozen=True)
class Gpu:
    index: str
    name: str
    memory_total_bytes: int = 0


@dataclass(frozen=True)
class GpuUsage:
    memory_used_bytes: int
    utilisation_ratio: float  # 0..1, the share of the last sample period a kernel ran


def _nvml() -> object | None:
    """The pynvml module initialised, or None where it is not installed or the driver is absent."""
    try:
        import pynvml  # type: ignore[import-not-found]
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return None
    return pynvml


def _smi(query: str) -> list[list[str]]:
    """nvidia-smi's CSV rows for ``query``; a NoGpuError saying why there are none."""
    binary = shutil.which("nvidia-smi")
    if binary is None:
        raise NoGpuError(
            "no NVIDIA GPU found: neither the NVML library (pip package nvidia-ml-py with the NVIDIA "
            "driver's libnvidia-ml.so.1) nor nvidia-smi is available on this host"
        )
    try:
        done = subprocess.run(
            [binary, f"--query-gpu={query}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=SMI_TIMEOUT_S,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise NoGpuError(f"no NVIDIA GPU found: nvidia-smi did not answer ({exc})") from exc
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        raise NoGpuError(f"no NVIDIA GPU found: nvidia-smi failed: {said[0] if said else done.returncode}")
    return [[cell.strip() for cell in line.split(",")] for line in done.stdout.splitlines() if line.strip()]


def list_gpus() -> list[Gpu]:
    """The host's GPUs in the driver's order; a NoGpuError when there are none."""
    nvml = _nvml()
    if nvml is not None:
        found = []
        for index in range(nvml.nvmlDeviceGetCount()):  # type: ignore[attr-defined]
            handle = nvml.nvmlDeviceGetHandleByIndex(index)  # type: ignore[attr-defined]
            name = nvml.nvmlDeviceGetName(handle)  # type: ignore[attr-defined]
            memory = nvml.nvmlDeviceGetMemoryInfo(handle).total  # type: ignore[attr-defined]
            found.append(
                Gpu(str(index), name.decode() if isinstance(name, bytes) else str(name), int(memory))
            )
    else:
        found = [
            Gpu(row[0], row[1], _mib(row[2])) for row in _smi("index,name,memory.total") if len(row) >= 3
        ]
    if not found:
        raise NoGpuError("no NVIDIA GPU found: the NVIDIA driver lists none on this host")
    return found


def usage() -> dict[str, GpuUsage]:
    """Memory used and utilisation per GPU index now; empty on a host without GPUs."""
    nvml = _nvml()
    if nvml is not None:
        found = {}
        for index in range(nvml.nvmlDeviceGetCount()):  # type: ignore[attr-defined]
            handle = nvml.nvmlDeviceGetHandleByIndex(index)  # type: ignore[attr-defined]
            used = nvml.nvmlDeviceGetMemoryInfo(handle).used  # type: ignore[attr-defined]
            busy = nvml.nvmlDeviceGetUtilizationRates(handle).gpu  # type: ignore[attr-defined]
            found[str(index)] = GpuUsage(int(used), busy / 100.0)
        return found
    try:
        rows = _smi("index,memory.used,utilization.gpu")
    except NoGpuError:
        return {}
    found = {}
    for row in rows:
        with contextlib.suppress(ValueError, IndexError):
            found[row[0]] = GpuUsage(_mib(row[1]), float(row[2]) / 100.0)
    return found


def _mib(text: str) -> int:
    try:
        return int(float(text)) * MIB
    except ValueError:  # "[N/A]" on some boards
        return 0


def choose_gpus(wanted: str, present: Sequence[str]) -> list[str]:
    """The device ids ``--gpus`` names (``all`` or ``0,1,...``) among ``present``, in order."""
    if wanted.strip() == "all":
        return list(present)
    chosen = [item.strip() for item in wanted.split(",") if item.strip()]
    if not chosen or any(not item.isdigit() for item in chosen):
        raise NoGpuError(f"--gpus {wanted!r}: give all or GPU indices such as 0,1")
    if len(set(chosen)) != len(chosen):
        raise NoGpuError(f"--gpus {wanted!r}: a GPU is named twice")
    missing = [item for item in chosen if item not in present]
    if missing:
        raise NoGpuError(
            f"--gpus {wanted!r}: no GPU {', '.join(missing)} on this host (it has {', '.join(present)})"
        )
    return chosen
