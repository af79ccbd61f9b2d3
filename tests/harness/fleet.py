"""The fleet's processes: real ``facefleet worker``/``api``/``flower`` processes over
a stack's environment, each logging to a file of its own, and the operator's commands. A
``Fleet`` is a context manager that stops every process it started; ``restore()`` brings it
back to its usual shape (the usual workers) after a test that changed it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

from tests.harness.cli import REPO
from tests.harness.net import free_port, http_ok, wait_for
from tests.harness.stack import SEGMENT_PAUSE_S, WORKERS


class Proc:
    """One process of the fleet (``python -m cli ARGS``) in a process group of its own."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.log = name, log
        self.metrics_url = ""  # a worker's /metrics
        self.usual = False  # a worker as the fleet's usual ones: default settings
        self.spec: dict[str, object] = {}  # how it was started (start_worker's arguments)
        with open(log, "wb") as handle:  # the child keeps its own copy of the descriptor
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "cli", *args],
                env={**os.environ, **env},
                cwd=REPO,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def exit_status(self) -> str:
        """How it ended: its exit code, or the signal that killed it (a crash shows here)."""
        code = self.popen.poll()
        if code is not None and code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exit code {code}"

    def wait_for_log(self, needle: str, timeout: float = 60) -> None:
        def seen() -> bool:
            if not self.alive():
                raise AssertionError(f"{self.name} exited ({self.exit_status()}):\n{self.text()[-3000:]}")
            return needle in self.text()

        wait_for(seen, timeout, f"{needle!r} in {self.name}'s log", interval=0.1)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.alive():
            os.killpg(self.popen.pid, sig)
        self.popen.wait(30)

    def stop(self) -> None:
        if self.alive():
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(10)


class Fleet:
    """The fleet's processes over ``env``, their logs and work folders under ``root``."""

    def __init__(self, env: dict[str, str], root: Path) -> None:
        self.env, self.root = env, root
        self.workers: list[Proc] = []
        self.others: list[Proc] = []
        self.api_url = ""
        self._count = 0
        self.run_id = env["FACEFLEET_QUEUE_PREFIX"].strip("-")  # unique node names per session

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    def _work_env(self, name: str) -> dict[str, str]:
        return {**self.env, "FACEFLEET_WORK_DIR": str(self.root / "work" / name)}

    def work_dir(self, proc: Proc) -> Path:
        return self.root / "work" / proc.name

    def start_worker(
        self,
        pause: float = SEGMENT_PAUSE_S,
        wait: bool = True,
        extra_env: dict[str, str] | None = None,
        pool: str = "solo",
    ) -> Proc:
        self._count += 1
        name = f"w{self._count}"
        port = free_port()
        args = ["worker", "--pool", pool, "--name", f"{name}-{self.run_id}@fftest"]
        args += ["--segment-pause", str(pause), "--metrics-port", str(port)]
        proc = Proc(name, args, {**self._work_env(name), **(extra_env or {})}, self.root / f"{name}.log")
        proc.metrics_url = f"http://127.0.0.1:{port}/metrics"
        proc.usual = pause == SEGMENT_PAUSE_S and not extra_env and pool == "solo"
        proc.spec = {"pause": pause, "extra_env": extra_env, "pool": pool}
        self.workers.append(proc)
        if wait:
            proc.wait_for_log("ready.")
        return proc

    def only_worker(self, extra_env: dict[str, str], work_dir: Path | None = None) -> Proc:
        """Stop every worker and start one with ``extra_env``, so that it takes all the work
        (after the test, ``restored()`` stops it and starts the workers it stopped again)."""
        self.stop_workers()
        env = dict(extra_env)
        if work_dir is not None:
            env["FACEFLEET_WORK_DIR"] = str(work_dir)
        return self.start_worker(extra_env=env)

    def stop_workers(self) -> None:
        for proc in self.live_workers():
            proc.stop()

    def live_workers(self) -> list[Proc]:
        return [w for w in self.workers if w.alive()]

    def ensure_workers(self, count: int = WORKERS, deaths_expected: bool = False) -> None:
        """Start usual workers until ``count`` live; with ``deaths_expected`` (a poison input in
        the queue) one that dies before it is ready is left for the next call, as an
        orchestrator restarts a crashed pod."""
        started = [self.start_worker(wait=False) for _ in range(count - len(self.live_workers()))]
        for proc in started:
            try:
                proc.wait_for_log("ready.")
            except AssertionError:
                if not deaths_expected or proc.alive():
                    raise

    @contextlib.contextmanager
    def restored(self) -> Iterator[None]:
        """The block may stop, kill and start workers; afterwards the workers it started with
        other settings are stopped, and each worker it stopped is back (one started alike)."""
        before = self.live_workers()
        try:
            yield
        finally:
            for proc in self.live_workers():
                if proc not in before and not proc.usual:
                    proc.stop()
            gone = [p for p in before if not p.alive()]
            started = [self.start_worker(**p.spec, wait=False) for p in gone if not p.usual]  # type: ignore[arg-type]
            usual = sum(p.usual for p in before) - sum(p.usual for p in self.live_workers())
            started += [self.start_worker(wait=False) for _ in range(usual)]
            for proc in started:
                proc.wait_for_log("ready.")

    def worker_by_pid(self, pid: int) -> Proc:
        return next(w for w in self.workers if w.pid == pid)

    def start(self, name: str, args: list[str], ready: str, env: dict[str, str] | None = None) -> Proc:
        proc = Proc(name, args, {**self._work_env(name), **(env or {})}, self.root / f"{name}.log")
        self.others.append(proc)
        proc.wait_for_log(ready)
        return proc

    def start_api(
        self, name: str, env: dict[str, str] | None = None, workers: int = 1, threads: int | None = None
    ) -> tuple[Proc, str]:
        """An API deployment over the same services (``env``: its own settings); (process, URL).
        The first one started named ``api`` is the fleet's main API (``api_url``)."""
        port = free_port()
        args = ["api", "--port", str(port), "--workers", str(workers)]
        if threads is not None:
            args += ["--threads", str(threads)]
        proc = self.start(name, args, "Booting worker", env=env)
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: http_ok(f"{url}/healthz"), 30, f"the API {name}")
        if name == "api" and not self.api_url:
            self.api_url = url
        return proc, url

    @contextlib.contextmanager
    def api_deployment(self, name: str, env: dict[str, str], workers: int = 1) -> Iterator[str]:
        """Another API deployment (``env``: its own settings) for the block; its URL."""
        proc, url = self.start_api(name, env, workers=workers)
        try:
            yield url
        finally:
            proc.stop()

    def stop_all(self) -> None:
        for proc in [*self.workers, *self.others]:
            proc.stop()


class Operator:
    """`facefleet` commands with the fleet's settings."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cli", *args],
            env={**os.environ, **self.env},
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def tenant(self, *limits: str) -> str:
        name = f"t{uuid.uuid4().hex[:10]}"
        done = self.run("tenants", "create", name, *limits)
        assert done.returncode == 0, done.stderr
        return name

    def key(self, tenant: str, *flags: str) -> str:
        done = self.run("keys", "create", "--tenant", tenant, *flags)
        assert done.returncode == 0, done.stderr
        secret = done.stdout.strip().splitlines()[-1]
        assert secret.startswith("ffk_") and " " not in secret
        return secret
