"""`facefleet --help` answers at once: building the CLI's parser loads none of the heavy
libraries (media, arrays, inference, database, queue, cloud); the commands load them."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

HEAVY = ("av", "numpy", "cv2", "onnxruntime", "sqlalchemy", "celery", "boto3", "redis", "flask", "requests")
BIN = Path(sys.executable).parent


def test_building_the_parser_imports_nothing_heavy() -> None:
    script = (
        "import json, sys\n"
        "from cli.main import build_parser\n"
        "build_parser()\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert json.loads(result.stdout) == []


def test_help_answers_quickly() -> None:
    best = float("inf")
    for _ in range(3):  # best of three: the machine may be busy with other work
        began = time.perf_counter()
        result = subprocess.run([str(BIN / "facefleet"), "--help"], capture_output=True, text=True)
        best = min(best, time.perf_counter() - began)
        assert result.returncode == 0 and "run" in result.stdout
    assert best < 0.3, f"facefleet --help took {best:.2f}s"
