"""Where the processes of one deployment write their metrics (prometheus_client's
multiprocess mode). Kept apart from ``facefleet.observability.metrics``: the mode is chosen when
prometheus_client is first imported, so the directory must be set before that."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def use_private_dir(role: str) -> Path:
    """Give this deployment's processes a fresh directory: under PROMETHEUS_MULTIPROC_DIR
    where set (a volume of the pod), else under the temp dir; emptied at start."""
    if "prometheus_client.values" in sys.modules:
        raise RuntimeError("prometheus_client was imported before its multiprocess directory was set")
    base = os.environ.get(MULTIPROC_ENV)
    if base:
        private = Path(base) / f"{role}-{os.getpid()}"
        shutil.rmtree(private, ignore_errors=True)
        private.mkdir(parents=True)
    else:
        private = Path(tempfile.mkdtemp(prefix=f"facefleet-{role}-metrics-"))
    os.environ[MULTIPROC_ENV] = str(private)
    return private


def remove_private_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
