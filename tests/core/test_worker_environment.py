"""The worker's threads start at ``worker_init`` and connect to PostgreSQL and Redis while
Celery is still setting itself up; a name Celery adds to the environment then reallocates
glibc's array under a ``getenv`` in those threads (seen as a worker dead of SIGSEGV in libc
right after start-up). After ``preset_celery_environment`` Celery's start-up adds no name."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.harness.cli import REPO

# a real Celery worker built as ``celery worker`` builds it (worker_init, its logging set-up,
# its stdout redirection), over an in-memory broker: the names it adds to the environment
STARTUP = """
import json, os, sys
from celery import Celery
if sys.argv[1] == "preset":
    from worker.app import preset_celery_environment
    preset_celery_environment()
before = set(os.environ)
app = Celery("probe", broker="memory://", set_as_current=False)
worker = app.Worker(hostname="probe@test", pool_cls="solo", loglevel="INFO", quiet=True)
app.log.redirect_stdouts("WARNING")
sys.stdout = sys.__stdout__
print(json.dumps(sorted(set(os.environ) - before)))
"""


def _added(mode: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", STARTUP, mode], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_celery_start_up_adds_no_environment_name_after_the_preset():
    assert _added("bare"), "Celery's start-up no longer adds names: the preset may go"
    assert _added("preset") == []
