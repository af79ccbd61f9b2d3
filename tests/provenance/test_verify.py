"""Must show (issue 26): `facefleet verify` on a face job's output finds the C2PA manifest,
valid and signed by the test's own certificate, and the watermark with the task id; the
watermark is still found after an ffmpeg re-encode at CRF 23 with a downscale to 75 %, and
after a 10 s cut from the middle; an untouched input has neither and exits 1."""

from __future__ import annotations

import subprocess

import av
import pytest

from facefleet.modes.demo import make_sample_video
from tests.harness.provenance import FACE_JOB, run_job, stored_provenance, verify
from tests.provenance.certificates import SIGNER_NAME

# 12 s at 10 frames per second: long enough to cut 10 s from its middle, short enough to run
SECONDS, FPS = 12, 10


@pytest.fixture(scope="module")
def job(tmp_path_factory, chain, face_env):
    """One signed, watermarked face job (its row kept, so verify can name the task)."""
    tmp = tmp_path_factory.mktemp("job")
    clip = make_sample_video(tmp / "clip.mp4", seconds=SECONDS, width=512, height=288, fps=FPS)
    env = {**face_env, "FACEFLEET_C2PA_CERT": str(chain.chain), "FACEFLEET_C2PA_KEY": str(chain.key)}
    home, out = tmp / "home", tmp / "out.mp4"
    result = run_job(home, clip, out, *FACE_JOB, "--keep-work", env=env)
    assert result.returncode == 0, result.stderr
    provenance = stored_provenance(home)
    assert provenance["watermark"] is True and provenance["signed"] is True, provenance
    return {"home": home, "clip": clip, "out": out, "env": env, "tmp": tmp}


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True, timeout=300)


def test_verify_finds_the_signed_manifest_and_the_watermark(job, chain):
    status, report = verify(job["home"], job["out"])
    assert status == 0 and report["provenance"] is True
    manifest, watermark = report["manifest"], report["watermark"]
    assert manifest["valid"] is True and manifest["facefleet"] is True
    assert manifest["signer"]["common_name"] == SIGNER_NAME
    assert manifest["trusted"] is False  # the test's root is no trust anchor of this run
    task_id = manifest["task_id"]
    assert watermark["task_id"] == task_id and watermark["short_id"] == task_id[:16]
    task = manifest["assertions"]["org.facefleet.task"]
    assert task["processors"] == ["face_anonymizer"]
    assert task["models"][0]["name"] == "yunet" and len(task["models"][0]["sha256"]) == 64
    actions = manifest["assertions"]["c2pa.actions.v2"]["actions"]
    assert actions[0]["digitalSourceType"].endswith("/compositeSynthetic")

    trusting = {"FACEFLEET_C2PA_TRUST_ANCHORS": str(chain.root)}
    status, report = verify(job["home"], job["out"], env=trusting)
    assert status == 0 and report["manifest"]["trusted"] is True


def test_the_watermark_survives_a_reencode_at_crf_23_downscaled_to_75_percent(job):
    attacked = job["tmp"] / "reencoded.mp4"
    _ffmpeg(
        "-i", str(job["out"]), "-vf", "scale=trunc(iw*3/8)*2:trunc(ih*3/8)*2",
        "-c:v", "libx264", "-crf", "23", "-c:a", "aac", str(attacked),
    )  # fmt: skip
    with av.open(str(attacked)) as container:
        assert (container.streams.video[0].width, container.streams.video[0].height) == (384, 216)
    status, report = verify(job["home"], attacked)
    assert status == 0 and report["manifest"] is None  # the re-encode dropped the manifest
    assert report["watermark"]["task_id"] == _task_id(job)


def test_the_watermark_survives_a_10_s_cut_from_the_middle(job):
    cut = job["tmp"] / "cut.mp4"
    start = (SECONDS - 10) / 2
    _ffmpeg("-ss", str(start), "-i", str(job["out"]), "-t", "10", "-c:v", "libx264", "-crf", "23", str(cut))
    with av.open(str(cut)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    assert frames == 10 * FPS
    status, report = verify(job["home"], cut)
    assert status == 0 and report["watermark"]["task_id"] == _task_id(job)


def test_the_watermark_is_found_in_an_odd_size_coded_a_pixel_larger(job):
    """511x287 in, coded in 4:2:0 as 512x288 (the last column and row repeated): the mark,
    made on the 511x287 picture, is found in the padded one (the detector averages the frame
    onto a 128x128 grid, which one more pixel moves by a 500th of a cell)."""
    tmp = job["tmp"] / "odd"
    tmp.mkdir()
    odd = tmp / "odd.mp4"
    _ffmpeg(
        "-i",
        str(job["clip"]),
        "-vf",
        "format=yuv444p,crop=511:287:0:0:exact=1",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv444p",
        str(odd),
    )
    out = tmp / "out.mp4"
    result = run_job(tmp / "home", odd, out, *FACE_JOB, "--keep-work", env=job["env"])
    assert result.returncode == 0, result.stderr
    assert "511x287 coded as 512x288" in result.stderr
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height, stream.codec_context.pix_fmt) == (512, 288, "yuv420p")
    status, report = verify(tmp / "home", out)
    assert status == 0 and report["manifest"]["valid"] is True
    assert report["watermark"]["task_id"] == report["manifest"]["task_id"]


def test_an_untouched_input_has_neither_and_exits_1(job):
    status, report = verify(job["home"], job["clip"])
    assert status == 1
    assert report == {**report, "provenance": False, "manifest": None, "watermark": None}


def _task_id(job) -> str:
    return str(verify(job["home"], job["out"])[1]["manifest"]["task_id"])
