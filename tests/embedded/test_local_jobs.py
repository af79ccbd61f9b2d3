"""`facefleet jobs list|show|clean`: a job kept by `facefleet run --keep-work` is listed with
its size, shown, and removed by `clean` (rows and files); a run ends with its summary line."""

from __future__ import annotations

from pathlib import Path

from tests.harness.cli import run_cli


def _kept_job(sample: Path, home: Path, out: Path) -> None:
    result = run_cli(home, "run", "--target", str(sample), "--output", str(out), "--keep-work")
    assert result.returncode == 0, result.stderr
    # the end of a run says where the output is, how many frames, how long, how fast
    assert "done: 100 frames in" in result.stderr and f"-> {out}" in result.stderr, result.stderr
    assert "frame/s" in result.stderr


def test_jobs_list_shows_a_kept_job_and_clean_removes_it(sample, tmp_path):
    home = tmp_path / "home"
    _kept_job(sample, home, tmp_path / "out.mp4")

    listed = run_cli(home, "jobs", "list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["ID", "STATE", "FRAMES", "SIZE", "CREATED", "(UTC)", "INPUT"]
    row = lines[1].split()
    job_id, state, frames = row[0], row[1], row[2]
    assert state == "succeeded" and frames == "100/100" and row[-1] == sample.name
    assert "KiB" in lines[1] or "MiB" in lines[1]  # its size
    folders = list((home / "bucket" / "tasks").iterdir())
    assert len(folders) == 1 and folders[0].name.startswith(job_id)

    shown = run_cli(home, "jobs", "show", job_id[:6])
    assert shown.returncode == 0, shown.stderr
    assert f"id:       {folders[0].name}" in shown.stdout and "100 of 100 done" in shown.stdout

    kept = run_cli(home, "jobs", "clean", "--older-than", "1d")  # made just now: stays
    assert kept.returncode == 0 and "0 job(s) removed" in kept.stdout, kept.stdout

    cleaned = run_cli(home, "jobs", "clean")
    assert cleaned.returncode == 0, cleaned.stderr
    assert f"removed {job_id}" in cleaned.stdout and "1 job(s) removed" in cleaned.stdout
    assert not folders[0].exists()
    after = run_cli(home, "jobs", "list")
    assert after.returncode == 0 and after.stdout.startswith("no jobs kept in"), after.stdout
    assert (tmp_path / "out.mp4").is_file()  # the user's output is theirs: never touched


def test_jobs_commands_on_a_fresh_home_and_bad_input(tmp_path):
    home = tmp_path / "never-used"
    listed = run_cli(home, "jobs", "list")
    assert listed.returncode == 0 and "no jobs kept in" in listed.stdout
    assert not (home / "facefleet.db").exists()  # listing creates nothing
    shown = run_cli(home, "jobs", "show", "abc")
    assert shown.returncode == 1 and "no job 'abc'" in shown.stderr
    bad_age = run_cli(home, "jobs", "clean", "--older-than", "week")
    assert bad_age.returncode == 1 and "--older-than 'week'" in bad_age.stderr


def test_an_input_the_chain_does_not_use_is_named_as_ignored(sample, tmp_path):
    from PIL import Image

    face = tmp_path / "face.png"
    Image.new("RGB", (64, 64), "gray").save(face)
    out = tmp_path / "out.mp4"
    result = run_cli(
        tmp_path / "home",
        "run",
        "--target",
        str(sample),
        "--output",
        str(out),
        "--source",
        str(face),
        "--trim-end",
        "10",
    )
    assert result.returncode == 0, result.stderr
    assert "warning: --source is used only by face_swapper; it is ignored" in result.stderr
