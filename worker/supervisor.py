"""``facefleet worker --gpus``: one worker process per GPU, each pinned to its device, supervised.

Each child is a whole ``facefleet worker`` (its own Celery pool, fleet loop, sessions and
announcement of its slots), started with ``CUDA_VISIBLE_DEVICES`` set to its one GPU, so
that inside it the GPU is device 0 and onnxruntime's providers need no device id. The
supervisor restarts a child that dies (with a capped backoff, so a child that cannot start
does not spin), and passes SIGTERM/SIGINT to every child: each hands its chunk back at the
next segment boundary as a lone worker does, and the supervisor exits once all have.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType

log = logging.getLogger(__name__)

POLL_S = 0.2
FIRST_RESTART_DELAY_S = 1.0
MAX_RESTART_DELAY_S = 30.0
STEADY_AFTER_S = 60.0  # a child that lived this long restarts without delay


@dataclass
class Child:
    """One GPU's worker: how to start it, and the process now running it."""

    gpu: str
    argv: list[str]
    env: dict[str, str]
    popen: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    delay_s: float = FIRST_RESTART_DELAY_S
    due_at: float = 0.0  # when a dead child is started again
    exits: list[int] = field(default_factory=list)

    def start(self) -> None:
        self.popen = subprocess.Popen(self.argv, env=self.env)
        self.started_at = time.monotonic()
        log.info(
            "worker for GPU %s started (pid %d)",
            self.gpu,
            self.popen.pid,
            extra={"gpu": self.gpu, "child_pid": self.popen.pid, "restarts": self.restarts},
        )

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None


def child_env(base: dict[str, str], gpu: str) -> dict[str, str]:
    """The child's environment: its one GPU, in PCI bus order (the order nvidia-smi lists)."""
    return {**base, "CUDA_VISIBLE_DEVICES": gpu, "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}


class Supervisor:
    """Runs ``children`` until SIGTERM/SIGINT; see the module's docstring."""

    def __init__(self, children: Sequence[Child]) -> None:
        self.children = list(children)
        self.stopping = False
        self._signal = signal.SIGTERM
        self._told: set[int] = set()  # the pids that got the signal

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.stopping, self._signal = True, signal.Signals(signum)
        self._pass_on()

    def _pass_on(self) -> None:
        """The signal, once, to every child alive (one started as it came gets it after)."""
        for child in self.children:
            if child.alive() and child.popen is not None and child.popen.pid not in self._told:
                self._told.add(child.popen.pid)
                child.popen.send_signal(self._signal)

    def run(self) -> int:
        """0 when every child stopped cleanly after the signal, else 1."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        log.info(
            "supervising %d worker processes, one per GPU: %s",
            len(self.children),
            ", ".join(c.gpu for c in self.children),
        )
        for child in self.children:
            child.start()
        while not self.stopping:
            self._tend(time.monotonic())
            time.sleep(POLL_S)
        return self._wait_all()

    def _tend(self, now: float) -> None:
        for child in self.children:
            if child.alive() or self.stopping:
                continue
            if child.popen is not None:  # it just died: note it and schedule its restart
                code = child.popen.returncode
                child.exits.append(code)
                child.popen = None
                if now - child.started_at >= STEADY_AFTER_S:
                    child.delay_s = FIRST_RESTART_DELAY_S
                child.due_at = now + child.delay_s
                log.warning(
                    "worker for GPU %s exited with status %s; restarting it in %.0f s",
                    child.gpu,
                    code,
                    child.delay_s,
                    extra={"gpu": child.gpu, "exit_status": code},
                )
                child.delay_s = min(MAX_RESTART_DELAY_S, child.delay_s * 2)
            elif now >= child.due_at:
                child.restarts += 1
                child.start()

    def _wait_all(self) -> int:
        self._pass_on()
        log.info("%s: waiting for every GPU's worker to hand its chunk back", self._signal.name)
        clean = True
        for child in self.children:
            if child.popen is None:
                continue
            code = child.popen.wait()
            clean = clean and code == 0
            log.info("worker for GPU %s stopped with status %d", child.gpu, code, extra={"gpu": child.gpu})
        return 0 if clean else 1


def supervise(child_args: Mapping[str, Sequence[str]], metrics_port: int) -> int:
    """One ``facefleet worker`` per GPU (``child_args``: GPU index -> that worker's arguments;
    each serves /metrics on ``metrics_port`` plus its position), until SIGTERM."""
    children = []
    for position, (gpu, args) in enumerate(child_args.items()):
        port = metrics_port + position if metrics_port else 0
        argv = [sys.executable, "-m", "cli", "worker", *args, "--metrics-port", str(port)]
        children.append(Child(gpu, argv, child_env(dict(os.environ), gpu)))
    return Supervisor(children).run()
