"""The requests-based client the CLI (--server) and Slicer share: clear messages for every way a server can fail,
progress and cancel through a Progress, downloads that are all-or-nothing and never escape their folder."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from http_fixtures import LoopbackServer, unused_port
from radassist.cli import main
from radassist.client import JobFailed, RadAssistClient, ServerError, ServerUnavailable, read_token_file
from radassist.errors import InputError
from radassist.io import write_volume
from radassist.runtime.progress import Cancelled, Progress
from server_fixtures import TOKEN, Gate, running_server, small_volume


@pytest.fixture
def volume_file(tmp_path: Path) -> Path:
    path = tmp_path / "case.nrrd"
    write_volume(small_volume(7), path)
    return path


def test_no_server_is_a_clear_offline_message(volume_file: Path, tmp_path: Path):
    client = RadAssistClient(f"http://127.0.0.1:{unused_port()}", token=TOKEN, timeout_s=5)
    with pytest.raises(ServerUnavailable, match="cannot reach the RadAssist server .* is it running"):
        client.health()
    with pytest.raises(ServerUnavailable):
        client.run("convert", [volume_file], {}, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_addresses_and_token_files_are_checked(tmp_path: Path):
    with pytest.raises(InputError, match="http:// or https://"):
        RadAssistClient("127.0.0.1:8765", token=TOKEN)
    with pytest.raises(InputError, match="token file not found"):
        RadAssistClient("http://127.0.0.1:1", token_file=tmp_path / "missing")
    (tmp_path / "short").write_text("abc\n")
    with pytest.raises(InputError, match="at least 16 characters"):
        read_token_file(tmp_path / "short")
    (tmp_path / "good").write_text(f"  {TOKEN}\n")
    assert read_token_file(tmp_path / "good") == TOKEN


def test_wrong_token_too_large_and_busy_say_what_to_do(volume_file: Path, tmp_path: Path):
    gate = Gate()
    with running_server(tmp_path, gate=gate, queue_size=1, max_upload_bytes=volume_file.stat().st_size + 2000) \
            as (url, _):
        with pytest.raises(ServerError, match="refused the token \\(401\\)"):
            RadAssistClient(url, token="not-the-right-token-0000").info()
        big = tmp_path / "big.nrrd"
        big.write_bytes(b"\0" * 20_000)
        client = RadAssistClient(url, token=TOKEN)
        with pytest.raises(ServerError, match="too large .*413"):
            client.submit("convert", [big])
        running = client.submit("gated", [volume_file])
        gate.wait_started()
        waiting = client.submit("gated", [volume_file])
        with pytest.raises(ServerError, match="busy, its queue is full \\(503\\)"):
            client.submit("gated", [volume_file])
        with pytest.raises(ServerError, match="refused the request: unknown option"):
            client.submit("convert", [volume_file], {"colour": "red"})
        gate.opened.set()
        for job in (running, waiting):
            assert client.wait(job["id"], timeout_s=30)["state"] == "succeeded"


def test_progress_follows_the_job_and_cancel_stops_it_on_the_server(volume_file: Path, tmp_path: Path):
    gate = Gate()
    with running_server(tmp_path, gate=gate) as (url, _):
        client = RadAssistClient(url, token=TOKEN)
        seen: list[tuple[float, str]] = []
        progress = Progress(lambda fraction, message: seen.append((fraction, message)))

        def cancel_when_running(fraction: float, message: str) -> None:
            seen.append((fraction, message))
            if message.startswith("step "):
                progress.cancel()

        progress = Progress(cancel_when_running)
        job = client.submit("gated", [volume_file])
        with pytest.raises(Cancelled):
            client.wait(job["id"], progress, poll_interval_s=0.02)
        assert any(message.startswith("step ") for _, message in seen)
        final = client.status(job["id"])
        for _ in range(200):
            if final["state"] != "running":
                break
            final = client.status(job["id"])
        assert final["state"] == "cancelled"


def test_a_failed_job_raises_the_servers_message(tmp_path: Path):
    (tmp_path / "broken.nrrd").write_bytes(b"NRRD0004\ntype: nonsense\n")
    with running_server(tmp_path) as (url, _):
        client = RadAssistClient(url, token=TOKEN)
        with pytest.raises(JobFailed, match="^broken.nrrd: .*on the server at http://127.0.0.1"):
            client.run("convert", [tmp_path / "broken.nrrd"], {}, tmp_path / "out")
        assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_a_result_with_unsafe_names_writes_nothing(tmp_path: Path):
    job = "a" * 32
    with LoopbackServer() as fake:
        fake.add_file(f"jobs/{job}/result", _zip({"good.csv": b"1", "../escaped.txt": b"x"}))
        client = RadAssistClient(fake.url().rstrip("/"), token=TOKEN)
        with pytest.raises(ServerError, match="unsafe file name"):
            client.download(job, tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists()
    assert not (tmp_path / "out").exists()  # all or nothing: good.csv was not published, nor the folder made


def test_liver_and_mammo_commands_run_remotely_and_report_server_errors(tmp_path: Path, capsys, test_data: Path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    with running_server(tmp_path) as (url, _):
        views = sorted((test_data / "mammo" / "gmic_exam0").glob("*.png"))[:1]
        code = main(["mammo", "classify", *map(str, views), "--out", str(tmp_path / "mammo"), "--server", url,
                     "--token-file", str(token_file)])
        error = capsys.readouterr().err
        # without GMIC weights on the server the job fails with the engine's own advice, not a traceback
        assert code == 2 and "gmic-1" in error and "Traceback" not in error
        code = main(["liver", "segment", str(test_data / "ct" / "chest_abdomen_example" / "example_ct_sm.nii.gz"),
                     "--out", str(tmp_path / "liver"), "--server", url, "--token-file", str(token_file)])
        error = capsys.readouterr().err
        assert code == 2 and "liver" in error and "Traceback" not in error
        code = main(["liver", "segment", "x.nii.gz", "--out", str(tmp_path / "liver"), "--server", url,
                     "--model", str(tmp_path)])
        assert code == 2 and "--model cannot be used with --server" in capsys.readouterr().err


def test_in_memory_volumes_run_remotely_under_their_own_names(tmp_path: Path):
    """A panel's volumes go to the server as NRRD under their own name only (no local path), through a job."""
    import dataclasses
    import sys

    from radassist.io import read_volume
    from radassist.slicer.task_requests import TaskRequest, run_request
    from radassist.volume import SourceInfo

    volume = dataclasses.replace(small_volume(11), source=SourceInfo(path="/data/patient 7/scan.nii.gz"))
    request = TaskRequest([volume], {}, lambda folder: sorted(p.name for p in folder.iterdir()), "convert")
    with running_server(tmp_path / "server") as (url, _):
        written = run_request(request, tmp_path / "job", sys.executable, "cpu", server_url=url, token=TOKEN)
    assert written == ["result.json", "volume.nrrd"]
    out = tmp_path / "job" / "output"
    np.testing.assert_array_equal(read_volume(out / "volume.nrrd").array, volume.array)
    assert '"scan.nrrd"' in (out / "result.json").read_text()  # sent under its own name only

def test_consent_text_names_images_server_and_risks():
    from radassist.client import upload_consent_text

    text = upload_consent_text("http://gpu.example.org:8765", ["CT chest"])
    assert "CT chest" in text and "http://gpu.example.org:8765" in text and "unencrypted" in text
    assert "unencrypted" not in upload_consent_text("https://gpu.example.org", ["CT"])
    assert "unencrypted" not in upload_consent_text("http://127.0.0.1:8765", ["CT"])
