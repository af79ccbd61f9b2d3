"""Test-only faults, armed from ``Settings.test_hooks`` (the FACEFLEET_TEST_* variables), so
that a test can watch a worker meet them; none is armed in a deployment."""

from __future__ import annotations

import errno
import os
import signal
from collections.abc import Callable

from facefleet.config.settings import TestHooks
from facefleet.modes.distributed import Services
from facefleet.task import chunk_outcomes
from facefleet.task.jobs import get_task


def poisoned(svc: Services, task_id: str) -> Callable[[], None] | None:
    """A task whose target has the poison name kills its worker at its first frame, as an
    input that crashes a decoder would."""
    poison = svc.settings.test_hooks.poison_name
    if not poison or get_task(svc.ctx, task_id).target_name != poison:
        return None
    return lambda: os.kill(os.getpid(), signal.SIGKILL)


def scratch_full(hooks: TestHooks) -> Callable[[], None] | None:
    """The worker's scratch writes fail as a full disk's do (ENOSPC), from the first frame
    of every chunk and in the breaker's check of the host."""
    return _no_space if hooks.scratch_full else None


def _no_space() -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def arm_process(hooks: TestHooks) -> None:
    """This process kills itself inside its first dead letter's transaction, between the
    chunk's failure and its task's, as a crash or an OOM kill at the worst moment would."""
    if hooks.kill_at_dead_letter:
        chunk_outcomes.hooks.dead_lettered = lambda _task_id, _index: os.kill(os.getpid(), signal.SIGKILL)
