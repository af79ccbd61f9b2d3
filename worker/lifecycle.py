"""A worker's life, shared by its processes: warming up before it is ready, and stopping.

Made in the main process before the pool forks, so prefork children share it (shared
memory, not Redis: a child learns of its worker's SIGTERM even while Redis is down).

* Warm-up: each process that runs chunks loads the models named by FACEFLEET_WARM_MODELS
  and runs each once before it takes work; the worker is ready for the chunks queue once
  ``processes`` of them are warm (a replaced child counts again: a slight overcount while it
  warms).
* Stopping: Celery's ``worker_shutting_down`` (sent by SIGTERM's handler, in the main
  process) sets a flag that chunks check between segments: the chunk in hand is handed back
  at the next segment boundary, and the fleet loop withdraws the worker's announcements.
"""

from __future__ import annotations

import ctypes
import json
import logging
import multiprocessing
import threading

from pipeline.errors import PipelineError
from pipeline.hwaccel import Codecs
from pipeline.runtime import Runtime

log = logging.getLogger(__name__)

REASON_BYTES = 400
PROVIDERS_BYTES = 1000


class Lifecycle:
    """The shared flags and counters (see the module's docstring)."""

    def __init__(self, processes: int, models: list[str], codecs: Codecs | None = None) -> None:
        """``processes``: how many processes run chunks (0: a worker without the chunks queue);
        ``codecs``: the video codecs its chunks use, chosen once in the main process."""
        self.processes, self.models = processes, models
        self.codecs = codecs or Codecs()
        self._warm = multiprocessing.Value(ctypes.c_int, 0)
        self._stopping = multiprocessing.RawValue(ctypes.c_bool, False)
        self._problem = multiprocessing.RawArray(ctypes.c_char, REASON_BYTES)
        # model -> the execution provider that took it, as JSON, from the last process warmed
        self._providers = multiprocessing.RawArray(ctypes.c_char, PROVIDERS_BYTES)
        self.woken = threading.Event()  # the main process's fleet loop: act on a change now

    @property
    def warm(self) -> bool:
        return self._warm.value >= self.processes

    @property
    def failed(self) -> bool:
        """A process could not load its models (it stays up, not ready, and says why)."""
        return bool(self._problem.value)

    @property
    def stopping(self) -> bool:
        return bool(self._stopping.value)

    def stop(self) -> None:
        """Safe in a signal handler: a flag in shared memory and an event."""
        self._stopping.value = True
        self.woken.set()

    @property
    def providers(self) -> dict[str, str]:
        """Model -> the execution provider that took it in this worker's processes."""
        text = self._providers.value.decode(errors="replace")
        try:
            found = json.loads(text) if text else {}
        except ValueError:
            return {}
        return found if isinstance(found, dict) else {}

    def not_warm_reason(self) -> str:
        problem = self._problem.value.decode(errors="replace")
        if problem:
            return problem
        done = f"{self._warm.value} of {self.processes} processes done"
        if not self.models:
            return f"starting its processes: {done}"
        return f"loading and warming up models ({', '.join(self.models)}): {done}"

    def warm_up(self, runtime: Runtime) -> None:
        """In each process that runs chunks, before it takes work (none for a worker without
        chunk processes)."""
        if not self.processes:
            return
        if self.models:
            from pipeline.faces.loading import load_models

            try:
                load_models(self.models, runtime)
            except PipelineError as exc:  # stays not ready, and says why (the probe shows it)
                log.error("warm-up failed: %s", exc)
                self._problem.value = f"warm-up failed: {exc}".encode()[: REASON_BYTES - 1]
                return
            from pipeline.models.sessions import chosen_providers

            chosen = chosen_providers()
            self._providers.value = json.dumps(chosen, sort_keys=True).encode()[: PROVIDERS_BYTES - 1]
            log.info(
                "models loaded and warmed up: %s",
                ", ".join(f"{m} on {chosen.get(m, '?')}" for m in self.models),
                extra={"providers": chosen},
            )
        with self._warm.get_lock():
            self._warm.value += 1
        self.woken.set()
