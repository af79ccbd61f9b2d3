"""`facefleet --help` answers at once: neither building the CLI's parser nor printing its help
loads any of the heavy libraries (media, arrays, inference, database, queue, cloud); the
commands load them."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("av", "numpy", "cv2", "onnxruntime", "sqlalchemy", "celery", "boto3", "redis", "flask", "requests")


def test_building_the_parser_imports_nothing_heavy() -> None:
    script = (
        "import json, sys\n"
        "from cli.main import build_parser\n"
        "build_parser()\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert json.loads(result.stdout) == []


def test_help_imports_nothing_heavy() -> None:
    """The whole ``facefleet --help`` path, not the parser alone (its time is printed by
    ``bench/bench_video.py``; a timed assertion here would measure the machine's load)."""
    script = (
        "import json, sys\n"
        "from cli.main import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)), file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert "usage:" in result.stdout and "run" in result.stdout
    assert json.loads(result.stderr.strip().splitlines()[-1]) == []
