"""A job's provenance from start-up to output: resumes keep the marked bytes, signing leaves
the streams byte-identical, unsigned outputs say so, an unusable certificate stops the run,
Matroska goes unsigned with the reason, and what is not to be marked is not."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from tests.harness.cli import run_and_kill, run_cli
from tests.harness.provenance import FACE_JOB, run_job, stored_provenance, tiny_clip, verify

CHUNKS = ["--chunk-frames", "25", "--segment-frames", "5"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return tiny_clip(tmp_path_factory.mktemp("clip"))


def _signing(chain) -> dict[str, str]:
    return {"FACEFLEET_C2PA_CERT": str(chain.chain), "FACEFLEET_C2PA_KEY": str(chain.key)}


def _packets(path: Path) -> list[tuple[int, int | None, bytes]]:
    with av.open(str(path)) as container:
        return [
            (p.stream.index, p.pts, bytes(p))
            for p in container.demux()
            if p.size  # not the flush packets
        ]


def test_a_resumed_run_gives_the_bytes_of_an_uninterrupted_one_with_the_watermark_on(
    clip, tmp_path, face_env, monkeypatch
):
    reference = tmp_path / "reference.mp4"
    result = run_job(tmp_path / "one", clip, reference, *FACE_JOB, *CHUNKS, env=face_env)
    assert result.returncode == 0, result.stderr
    assert "outputs go unsigned" in result.stderr  # the start-up warning

    home, out = tmp_path / "resumed", tmp_path / "out.mp4"
    args = ["run", "--target", str(clip), "--output", str(out), "--no-progress", *FACE_JOB, *CHUNKS]
    for name, value in face_env.items():  # the killed run inherits this process's environment
        monkeypatch.setenv(name, value)
    run_and_kill(home, args, after_segments=4)
    assert not out.exists()
    result = run_cli(home, *args, env={**face_env, "FACEFLEET_KEEP_WORK_FILES": "1"})
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == reference.read_bytes()
    status, report = verify(home, out)
    assert status == 0 and report["watermark"] is not None and report["manifest"] is None
    assert stored_provenance(home) == {
        "watermark": True,
        "signed": False,
        "c2pa": "no signing certificate configured",
    }


def test_signing_changes_no_byte_of_the_streams(clip, tmp_path, face_env, chain):
    unsigned, signed = tmp_path / "unsigned.mp4", tmp_path / "signed.mp4"
    assert run_job(tmp_path / "a", clip, unsigned, *FACE_JOB, env=face_env).returncode == 0
    result = run_job(tmp_path / "b", clip, signed, *FACE_JOB, env={**face_env, **_signing(chain)})
    assert result.returncode == 0, result.stderr
    assert "unsigned" not in result.stderr
    assert signed.read_bytes() != unsigned.read_bytes()  # the container gained the manifest
    assert _packets(signed) == _packets(unsigned)  # video and audio, packet for packet
    assert {s.type for s in av.open(str(signed)).streams} == {"video", "audio"}


def test_matroska_is_not_signed_and_the_task_says_why(clip, tmp_path, face_env, chain):
    home, out = tmp_path / "home", tmp_path / "out.mkv"
    result = run_job(home, clip, out, *FACE_JOB, "--keep-work", env={**face_env, **_signing(chain)})
    assert result.returncode == 0, result.stderr
    provenance = stored_provenance(home)
    assert provenance["signed"] is False and "mkv" in provenance["c2pa"], provenance
    status, report = verify(home, out)
    assert status == 0 and report["manifest"] is None and report["watermark"] is not None


@pytest.mark.parametrize("which", ["ca_as_signer", "key_of_another", "cert_alone", "missing_file"])
def test_an_unusable_certificate_stops_the_run_at_start_up(clip, tmp_path, face_env, chain, which):
    settings = {
        "ca_as_signer": {"FACEFLEET_C2PA_CERT": str(chain.root), "FACEFLEET_C2PA_KEY": str(chain.root_key)},
        "key_of_another": {
            "FACEFLEET_C2PA_CERT": str(chain.chain),
            "FACEFLEET_C2PA_KEY": str(chain.root_key),
        },
        "cert_alone": {"FACEFLEET_C2PA_CERT": str(chain.chain)},
        "missing_file": {
            "FACEFLEET_C2PA_CERT": str(tmp_path / "nope.pem"),
            "FACEFLEET_C2PA_KEY": str(chain.key),
        },
    }[which]
    out = tmp_path / "out.mp4"
    result = run_job(tmp_path / "home", clip, out, *FACE_JOB, env={**face_env, **settings})
    assert result.returncode != 0
    assert "FACEFLEET_C2PA_" in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert not out.exists() and not (tmp_path / "home" / "bucket").exists()


def test_a_worker_with_an_unusable_certificate_does_not_start(tmp_path, chain):
    env = {"FACEFLEET_C2PA_CERT": str(chain.root), "FACEFLEET_C2PA_KEY": str(chain.root_key)}
    result = run_cli(tmp_path, "worker", env=env, timeout=60)
    assert result.returncode == 2 and "FACEFLEET_C2PA_CERT" in result.stderr, result.stderr


@pytest.mark.parametrize("how", ["watermark_off", "processors_none"])
def test_what_is_not_to_be_marked_is_not(clip, tmp_path, face_env, how):
    job, env = (
        (FACE_JOB, {**face_env, "FACEFLEET_WATERMARK": "off"})
        if how == "watermark_off"
        else (
            ["--processors", "none"],
            face_env,
        )
    )
    home, out = tmp_path / "home", tmp_path / "out.mp4"
    assert run_job(home, clip, out, *job, "--keep-work", env=env).returncode == 0
    assert stored_provenance(home)["watermark"] is False
    status, report = verify(home, out)
    assert status == 1 and report["watermark"] is None
