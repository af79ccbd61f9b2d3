"""`facefleet models download NAME` from a mirror: a bar over bytes on a terminal, plain lines
otherwise, and the file verified against the sha256 its manifest declares."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pty
import struct
import subprocess
import termios
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.harness.cli import REPO, facefleet_cmd, run_cli
from tests.harness.net import free_port

NAME = "my_detector"
SIZE = 5 * 1024 * 1024 + 123  # six blocks of the download's 1 MiB


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A local HTTP mirror serving a generated model, declared with its sha256 in a manifest;
    (the mirror's URL, the environment that names them)."""
    served = tmp_path / "mirror"
    served.mkdir()
    data = hashlib.shake_256(b"a generated model").digest(SIZE)
    (served / f"{NAME}.onnx").write_bytes(data)
    manifest = tmp_path / "manifest.json"
    entry = {
        "name": NAME,
        "kind": "scrfd",
        "file": f"{NAME}.onnx",
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    manifest.write_text(json.dumps({"models": [{**entry, "size": SIZE}]}))

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(served)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    env = {
        "FACEFLEET_MODEL_MANIFEST": str(manifest),
        "FACEFLEET_MODEL_MIRRORS": url,
        "FACEFLEET_MODEL_DIR": str(tmp_path / "models"),
    }
    try:
        yield url, env
    finally:
        server.shutdown()
        server.server_close()


def test_a_download_off_a_terminal_prints_plain_progress_lines_and_verifies(mirror, tmp_path):
    url, env = mirror
    done = run_cli(tmp_path / "home", "models", "download", NAME, env=env)
    assert done.returncode == 0, done.stderr
    target = tmp_path / "models" / f"{NAME}.onnx"
    assert done.stdout.strip() == f"{NAME}\t{target}"  # stdout: for scripts
    lines = done.stderr.splitlines()
    assert lines[0] == f"{NAME}: from {url}{NAME}.onnx (5.0 MiB)", done.stderr
    shares = [line for line in lines if line.startswith(f"{NAME}: ") and "%" in line]
    assert len(shares) >= 5 and shares[-1] == f"{NAME}: 100% (5.0 MiB of 5.0 MiB)", done.stderr
    assert "\r" not in done.stderr  # no bar drawn where no terminal is
    assert lines[-1] == f"{NAME}: sha256 verified, {target}"
    assert target.stat().st_size == SIZE

    listed = run_cli(tmp_path / "home", "models", "verify", NAME, env=env)
    assert listed.returncode == 0 and f"{NAME}\tok\t{target}" in listed.stdout, listed


def test_a_download_on_a_terminal_draws_a_bar_over_bytes(mirror, tmp_path):
    _, env = mirror
    leader, follower = pty.openpty()  # stderr is a terminal, as a user's is: 24 x 100
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    child = subprocess.Popen(
        facefleet_cmd("models", "download", NAME),
        env={**os.environ, "FACEFLEET_HOME": str(tmp_path / "home"), **env},
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=follower,
    )
    os.close(follower)
    drawn = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child is gone and the terminal closed
            break
        if not chunk:
            break
        drawn += chunk
    assert child.wait(120) == 0, drawn
    os.close(leader)
    screen = drawn.decode(errors="replace")
    assert "\r" in screen and f"{NAME}: 100%|" in screen, screen  # the bar: name, percent, bar
    assert "5.00M/5.00M" in screen, screen  # bytes, scaled (tqdm's unit_scale)
    assert f"{NAME}: sha256 verified" in screen
    assert (tmp_path / "models" / f"{NAME}.onnx").stat().st_size == SIZE


def test_a_model_that_cannot_be_fetched_is_named_with_the_folder_to_put_it_in(sample, tmp_path):
    """The user's own machine: the error names the model folder and what each source said,
    and does not offer the download that just failed."""
    manifest = tmp_path / "manifest.json"
    entry = {"name": NAME, "kind": "scrfd", "file": f"{NAME}.onnx", "sha256": "0" * 64, "size": SIZE}
    manifest.write_text(json.dumps({"models": [entry]}))
    closed = f"http://127.0.0.1:{free_port()}/"  # nothing listens: the download cannot connect
    env = {
        "FACEFLEET_MODEL_MANIFEST": str(manifest),
        "FACEFLEET_MODEL_MIRRORS": closed,
        "FACEFLEET_MODEL_DIR": str(tmp_path / "models"),
    }
    out = tmp_path / "out.mp4"
    args = ["--target", str(sample), "--output", str(out), "--no-progress", "--processors", "face_anonymizer"]
    args += ["--face-detector", NAME]
    result = run_cli(tmp_path / "home", "run", *args, env=env)
    assert result.returncode != 0 and not out.exists()
    error = result.stderr
    assert f"model {NAME}" in error and str(tmp_path / "models") in error, error
    assert f"{closed}{NAME}.onnx: could not connect" in error, error
    assert "a work file" not in error and "a service address" not in error, error
    assert "models download" not in error, error  # the download just failed
