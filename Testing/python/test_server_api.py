"""The inference server over real HTTP on 127.0.0.1: authentication, info, the lung task against the CLI, zipped
DICOM, progress and cancel, the bounded queue and the upload limit."""

from __future__ import annotations

import argparse
import filecmp
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import requests

from radassist.cli import _Formatter
from radassist.client import RadAssistClient
from radassist.io import read_volume, write_volume
from server_fixtures import AUTH, TOKEN, Gate, running_server, small_volume, submit, wait_state

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def run_lung_cli(*argv: str) -> int:
    """`radassist lung ...` through the lung command module (registered here whether or not the CLI lists it)."""
    from radassist.commands import lung

    parser = argparse.ArgumentParser(prog="radassist", formatter_class=_Formatter)
    lung.register(parser.add_subparsers(dest="command", required=True), _Formatter)
    args = parser.parse_args(list(argv))
    return int(args.handler(args) or 0)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    gate = Gate()
    with running_server(tmp_path_factory.mktemp("api"), gate=gate, queue_size=2) as (url, app):
        yield url, app, gate


@pytest.fixture(scope="module")
def chest_nrrd(test_data: Path, tmp_path_factory) -> Path:
    """The real chest/abdomen CT of the sample data, as NRRD (3 mm slices: thin enough for the detector)."""
    path = tmp_path_factory.mktemp("chest") / "example_ct.nrrd"
    write_volume(read_volume(test_data / "ct" / "chest_abdomen_example" / "example_ct.nii.gz"), path)
    return path


def test_health_needs_no_token_and_everything_else_does(server):
    url, _, _ = server
    assert requests.get(f"{url}/health", timeout=10).json()["status"] == "ok"
    for method, path in (("GET", "/info"), ("GET", "/jobs/" + "0" * 32), ("POST", "/jobs/" + "0" * 32 + "/cancel"),
                         ("GET", "/jobs/" + "0" * 32 + "/result"), ("DELETE", "/jobs/" + "0" * 32)):
        for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": TOKEN}):
            response = requests.request(method, url + path, headers=headers, timeout=10)
            assert response.status_code == 401, (method, path, headers)
            assert response.headers["www-authenticate"] == "Bearer"
    assert submit(url, "convert", [("a.nrrd", b"x")], headers={}).status_code == 401


def test_info_lists_tasks_options_models_and_versions(server):
    url, _, _ = server
    info = requests.get(f"{url}/info", headers=AUTH, timeout=30).json()
    assert info["version"] == info["versions"]["radassist"]
    assert {"torch", "SimpleITK", "numpy"} <= set(info["versions"])
    tasks = {task["name"]: task for task in info["tasks"]}
    assert {"convert", "lung-detect", "liver-segment", "mammo-classify"} <= set(tasks)
    lung = tasks["lung-detect"]
    assert lung["command"] == "lung detect" and ".nii.gz" in lung["accepts"] and ".zip" in lung["accepts"]
    engine = next(o for o in lung["options"] if o["name"] == "engine")
    assert engine["default"] == "auto" and set(engine["choices"]) == {"auto", "classic", "detr"}
    assert [m["id"] for m in lung["models"]] == ["lung-detr"] and lung["models"][0]["version"]
    assert {m["id"] for m in info["models"]} >= {"lung-detr", "gmic-1"}
    assert info["workers"][0]["device"] == "cpu"
    assert info["limits"]["queue_size"] == 2


def test_lung_classic_on_a_real_ct_gives_the_cli_files(server, chest_nrrd: Path, tmp_path: Path):
    url, _, _ = server
    assert run_lung_cli("lung", "detect", str(chest_nrrd), "--out", str(tmp_path / "local"),
                        "--engine", "classic", "--threshold", "0.3") == 0
    client = RadAssistClient(url, token=TOKEN)
    written = client.run("lung-detect", [chest_nrrd], {"engine": "classic", "threshold": 0.3}, tmp_path / "remote")
    local = sorted(p.name for p in (tmp_path / "local").iterdir())
    assert local == ["nodules.csv", "nodules.mrk.json", "nodules.png", "result.json"]
    assert sorted(p.name for p in written) == local
    for name in ("nodules.csv", "nodules.mrk.json", "nodules.png"):
        assert filecmp.cmp(tmp_path / "local" / name, tmp_path / "remote" / name, shallow=False), name
    local_record = json.loads((tmp_path / "local" / "result.json").read_text())
    remote_record = json.loads((tmp_path / "remote" / "result.json").read_text())
    assert remote_record["summary"] == local_record["summary"]
    assert remote_record["command"] == "lung detect" and remote_record["inputs"] == ["example_ct.nrrd"]
    assert remote_record["arguments"]["threshold"] == 0.3
    assert str(tmp_path) not in json.dumps(remote_record)  # no server path leaks into the result


def test_cli_server_option_writes_the_same_files(server, chest_nrrd: Path, tmp_path: Path, capsys):
    url, _, _ = server
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    assert run_lung_cli("lung", "detect", str(chest_nrrd), "--out", str(tmp_path / "remote"), "--engine",
                        "classic", "--server", url, "--token-file", str(token_file)) == 0
    assert f"ran lung-detect on {url}" in capsys.readouterr().out
    assert run_lung_cli("lung", "detect", str(chest_nrrd), "--out", str(tmp_path / "local"), "--engine",
                        "classic") == 0
    for name in ("nodules.csv", "nodules.mrk.json", "nodules.png"):
        assert filecmp.cmp(tmp_path / "local" / name, tmp_path / "remote" / name, shallow=False), name


def test_zipped_dicom_series_is_read_like_the_folder(server, test_data: Path, tmp_path: Path):
    url, _, _ = server
    series = test_data / "ct" / "chest_abdomen_example" / "dicom"
    client = RadAssistClient(url, token=TOKEN)
    client.run("convert", [series], {"name": "ct"}, tmp_path / "remote")
    remote = read_volume(tmp_path / "remote" / "ct.nrrd")
    local = read_volume(series)
    np.testing.assert_array_equal(remote.array, local.array)
    np.testing.assert_allclose(remote.geometry.ijk_to_ras, local.geometry.ijk_to_ras, atol=1e-4)
    record = json.loads((tmp_path / "remote" / "result.json").read_text())
    source = record["summary"]["source"]
    assert source["path"] == "dicom"  # the folder's name, never where the server unpacked it
    assert source["modality"] == local.source.modality == "CT"
    assert source["frame_of_reference_uid"] == local.source.frame_of_reference_uid


def test_progress_is_reported_and_a_running_job_cancels(server, tmp_path: Path):
    url, app, gate = server
    gate.opened.clear()
    job = submit(url, "gated", [("scan.nrrd", b"0123")]).json()
    gate.wait_started()
    seen = wait_state(url, job["id"], ("running",))
    for _ in range(200):
        seen = requests.get(f"{url}/jobs/{job['id']}", headers=AUTH, timeout=10).json()
        if seen["progress"] > 0.01:
            break
    assert seen["state"] == "running" and seen["progress"] > 0.01 and seen["message"].startswith("step ")
    cancelled = requests.post(f"{url}/jobs/{job['id']}/cancel", headers=AUTH, timeout=10).json()
    assert cancelled["state"] in ("running", "cancelled")
    final = wait_state(url, job["id"], ("cancelled", "succeeded", "failed"))
    assert final["state"] == "cancelled" and final["files"] == []
    assert requests.get(f"{url}/jobs/{job['id']}/result", headers=AUTH, timeout=10).status_code == 409


def test_full_queue_answers_503_and_loses_nothing(server, tmp_path: Path):
    url, app, gate = server
    gate.opened.clear()
    running = submit(url, "gated", [("a.nrrd", b"1")]).json()
    gate.wait_started()
    waiting = [submit(url, "gated", [(f"w{i}.nrrd", b"12" * (i + 1))]) for i in range(2)]
    assert [r.status_code for r in waiting] == [202, 202]
    assert [r.json()["queue_position"] for r in waiting] == [0, 1]
    refused = submit(url, "gated", [("late.nrrd", b"123")])
    assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
    assert "queue is full" in refused.json()["detail"]
    gate.opened.set()
    sizes = []
    for job in [running] + [r.json() for r in waiting]:
        done = wait_state(url, job["id"], ("succeeded", "failed", "cancelled"))
        assert done["state"] == "succeeded", done
        archive = requests.get(f"{url}/jobs/{job['id']}/result", headers=AUTH, timeout=10)
        with zipfile.ZipFile(io.BytesIO(archive.content)) as zipped:
            assert sorted(zipped.namelist()) == ["result.json", "size.txt"]
            sizes.append(int(zipped.read("size.txt")))
    assert sizes == [1, 2, 4]  # each job ran on its own upload
    assert submit(url, "gated", [("again.nrrd", b"1")]).status_code == 202  # room again once drained


def test_upload_larger_than_the_limit_gets_413_and_nothing_is_stored(tmp_path: Path):
    with running_server(tmp_path, max_upload_bytes=50_000) as (url, app):
        big = submit(url, "convert", [("big.nrrd", b"\0" * 60_000)])
        assert big.status_code == 413 and "larger than" in big.json()["detail"]

        def chunked():  # no Content-Length: counted while it streams. A well-formed multipart body, so only the
            # size can stop it (a malformed one may be refused by the parser with 400 before the limit is reached).
            yield (b'--xyz\r\nContent-Disposition: form-data; name="task"\r\n\r\nconvert\r\n'
                   b'--xyz\r\nContent-Disposition: form-data; name="files"; filename="big.nrrd"\r\n'
                   b"Content-Type: application/octet-stream\r\n\r\n")
            for _ in range(20):
                yield b"\0" * 10_000
            yield b"\r\n--xyz--\r\n"
        streamed = requests.post(f"{url}/jobs", data=chunked(), timeout=30, headers=AUTH | {
            "Content-Type": "multipart/form-data; boundary=xyz"})
        assert streamed.status_code == 413
        storage = app.state.storage.root
        assert not any(storage.iterdir())
        assert submit(url, "convert", [("ok.nrrd", b"\0" * 1000)]).status_code == 202


def test_uploaded_names_never_become_paths(server, tmp_path: Path):
    url, app, _ = server
    volume = small_volume(3)
    write_volume(volume, tmp_path / "v.nrrd")
    data = (tmp_path / "v.nrrd").read_bytes()
    for name in ("../../../../tmp/evil.nrrd", "/etc/evil.nrrd", "..\\..\\evil.nrrd", "C:\\evil.nrrd"):
        job = submit(url, "convert", [(name, data)]).json()
        done = wait_state(url, job["id"], ("succeeded", "failed"))
        assert done["state"] == "succeeded", done
        stored = sorted(p.name for p in (app.state.storage.root / job["id"] / "inputs").iterdir())
        assert stored == ["input-0.nrrd"]
    assert not Path("/tmp/evil.nrrd").exists() and not (tmp_path.parent / "evil.nrrd").exists()
    refused = submit(url, "convert", [("scan.exe", data)])
    assert refused.status_code == 400 and "scan.exe" in refused.json()["detail"]


def _zip(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize("members, expected", [
    ({"../../evil.dcm": b"x"}, "climbs out"),
    ({"/abs/evil.dcm": b"x"}, "absolute path"),
    ({"C:/evil.dcm": b"x"}, "absolute path"),
    ({"bomb.dcm": b"\0" * 5_000_000}, "zip bomb"),
    ({}, "holds no files"),
])
def test_hostile_zips_are_refused_with_a_400(server, members, expected):
    url, app, _ = server
    before = set(app.state.storage.root.iterdir())
    response = submit(url, "convert", [("series.zip", _zip(members))])
    assert response.status_code == 400 and expected in response.json()["detail"]
    assert response.json()["detail"].startswith("series.zip: ")
    assert set(app.state.storage.root.iterdir()) == before  # the job folder went with the refusal


def test_bad_options_and_unknown_tasks_are_400_or_422(server):
    url, _, _ = server
    assert submit(url, "lung-detect", [("a.nrrd", b"1")], options='{"threshold": 2}').status_code == 400
    assert "unknown option" in submit(url, "convert", [("a.nrrd", b"1")], options='{"x": 1}').json()["detail"]
    assert submit(url, "convert", [("a.nrrd", b"1")], options="not json").status_code == 400
    assert submit(url, "convert", [("a.nrrd", b"1")], options='{"name": "../x"}').status_code == 400
    assert submit(url, "no-such-task", [("a.nrrd", b"1")]).status_code == 422
    assert requests.get(f"{url}/jobs/not-an-id", headers=AUTH, timeout=10).status_code == 422
    assert requests.get(f"{url}/jobs/{'f' * 32}", headers=AUTH, timeout=10).status_code == 404


def test_a_failed_job_names_the_users_file_not_a_server_path(server):
    url, app, _ = server
    job = submit(url, "convert", [("damaged.nrrd", b"NRRD0004\nnot really\n")]).json()
    done = wait_state(url, job["id"], ("succeeded", "failed"))
    assert done["state"] == "failed" and done["error"].startswith("damaged.nrrd: ")
    assert str(app.state.storage.root) not in done["error"]


def test_deleting_a_job_removes_its_files(server, tmp_path: Path):
    url, app, _ = server
    write_volume(small_volume(1), tmp_path / "v.nrrd")
    job = submit(url, "convert", [("v.nrrd", (tmp_path / "v.nrrd").read_bytes())]).json()
    wait_state(url, job["id"], ("succeeded",))
    assert (app.state.storage.root / job["id"]).is_dir()
    assert requests.delete(f"{url}/jobs/{job['id']}", headers=AUTH, timeout=10).status_code == 204
    assert not (app.state.storage.root / job["id"]).exists()
    assert requests.get(f"{url}/jobs/{job['id']}", headers=AUTH, timeout=10).status_code == 404
