"""`facefleet doctor` on this machine (embedded mode): a line per check, a fix for each
failure, exit status 1 while one fails; a model made present by `facefleet models download`
from a mirror turns it to 0. `facefleet models list` is a table that says how to make a
missing model present."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.harness.cli import run_cli
from tests.harness.cli import shared_models as shared_models_folder


@pytest.fixture
def url_mirror() -> str:
    """The real detectors as a URL mirror: a URL mirror is downloaded from, not used in place."""
    folder = shared_models_folder()
    if not (folder / "det_500m.onnx").is_file():
        pytest.skip(f"the real detector det_500m.onnx is missing from {folder}")
    return folder.resolve().as_uri()


def test_doctor_names_a_missing_model_with_its_fix_and_passes_once_it_is_downloaded(tmp_path, url_mirror):
    home, models = tmp_path / "home", tmp_path / "models"
    env = {"FACEFLEET_MODEL_DIR": str(models), "FACEFLEET_MODEL_MIRRORS": url_mirror}

    sick = run_cli(home, "doctor", env=env)
    assert sick.returncode == 1, sick.stdout + sick.stderr
    lines = sick.stdout.splitlines()
    failed = [line for line in lines if line.split()[:1] == ["FAIL"]]
    assert len(failed) == 1 and "model det_500m" in failed[0] and "missing" in failed[0], sick.stdout
    fix = lines[lines.index(failed[0]) + 1]
    assert "fix:" in fix and "facefleet models download det_500m" in fix
    assert "1 check(s) failed" in sick.stdout
    for name in ("python", "ffmpeg codecs", "execution providers", "database", "home disk", "scratch disk"):
        assert any(line.split()[:1] == ["ok"] and f" {name} " in line for line in lines), (name, sick.stdout)

    listed = run_cli(home, "models", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[0].split() == ["NAME", "KIND", "SIZE", "PRESENT", "(WHERE)", "VERIFIED"]
    row = next(line for line in listed.stdout.splitlines() if line.startswith("det_500m "))
    assert "missing" in row
    assert "to make a missing model present: `facefleet models download NAME`" in listed.stdout

    fetched = run_cli(home, "models", "download", "det_500m", env=env)
    assert fetched.returncode == 0, fetched.stderr
    assert (models / "det_500m.onnx").is_file()

    well = run_cli(home, "doctor", "--json", env=env)
    assert well.returncode == 0, well.stdout
    report = json.loads(well.stdout)
    assert report["ok"] is True and report["mode"] == "embedded"
    model = next(c for c in report["checks"] if c["name"] == "model det_500m")
    assert model["status"] == "ok" and str(models / "det_500m.onnx") in model["detail"]
    listed = run_cli(home, "models", "list", env=env)
    row = next(line for line in listed.stdout.splitlines() if line.startswith("det_500m "))
    assert str(models / "det_500m.onnx") in row and "sha256 ok" in row


def test_doctor_checks_the_models_of_the_processors_asked_for(tmp_path):
    env = {"FACEFLEET_MODEL_DIR": str(tmp_path / "models"), "FACEFLEET_MODEL_MIRRORS": str(tmp_path / "none")}
    result = run_cli(
        tmp_path / "home", "doctor", "--processors", "face_swapper", "--face-detector", "yunet", env=env
    )
    assert result.returncode == 1
    failed = {line.split()[2] for line in result.stdout.splitlines() if line.startswith("  FAIL")}
    assert failed == {"yunet", "w600k_r50", "inswapper_128"}, result.stdout
    typo = run_cli(tmp_path / "home", "doctor", "--processors", "face_swaper", env=env)
    assert typo.returncode == 1 and "did you mean face_swapper" in typo.stderr


def test_models_are_found_beside_the_clone_without_a_setting(tmp_path):
    """No FACEFLEET_MODEL_MIRRORS (outside make): the shared/models folder beside the clone."""
    folder = Path(__file__).resolve().parents[3] / "shared" / "models"
    if not (folder / "det_500m.onnx").is_file():
        pytest.skip(f"no shared/models beside this clone ({folder})")
    env = {"FACEFLEET_MODEL_DIR": str(tmp_path / "models"), "FACEFLEET_MODEL_MIRRORS": ""}
    listed = run_cli(tmp_path / "home", "models", "list", env=env)
    row = next(line for line in listed.stdout.splitlines() if line.startswith("det_500m "))
    assert str(folder / "det_500m.onnx") in row and "sha256 ok" in row


def test_run_picks_a_present_detector_when_the_default_is_missing_and_says_so(sample, tmp_path):
    mirror = shared_models_folder()
    if not (mirror / "det_500m.onnx").is_file():
        pytest.skip(f"the real detector det_500m.onnx is missing from {mirror}")
    env = {"FACEFLEET_MODEL_DIR": str(tmp_path / "models"), "FACEFLEET_MODEL_MIRRORS": str(mirror)}
    out = tmp_path / "out.mp4"
    result = run_cli(
        tmp_path / "home",
        "run",
        "--target",
        str(sample),
        "--output",
        str(out),
        "--processors",
        "face_anonymizer",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "the default detector det_10g is not here; using det_500m" in result.stderr
    assert "facefleet models download det_10g" in result.stderr and out.is_file()
