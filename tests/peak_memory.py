"""A command's peak memory as the kernel reports it when the command is reaped: the
high-water mark of the largest process of its tree (wait4 folds every reaped descendant in).
Nothing is sampled, so no short-lived peak is missed or caught by chance, and pages a child
shares with its parent between fork and exec count once."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def peak_mib(command: list[str], env: dict[str, str], cwd: Path) -> float:
    """Run ``command`` to its end and return its peak in MiB; a failure raises with its stderr."""
    child = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    stderr = child.stderr.read().decode() if child.stderr else ""
    assert code == 0, stderr
    return usage.ru_maxrss / 1024  # KiB on Linux
