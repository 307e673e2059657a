"""GMIC in one click: `radassist models install gmic-N` shows the AGPL terms, asks for consent, downloads the
published checkpoint from its pinned upstream commit and checks its git blob id.

The real checkpoints cannot be fetched here (no internet), so the tests serve files they make, on a real HTTP
server on 127.0.0.1, through a site catalogue ($RADASSIST_CATALOGS) that overrides the shipped gmic-N entries
with the loopback url and the blob id of the served file, computed here with `git hash-object`.
"""

from __future__ import annotations

import copy
import io
import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from http_fixtures import LoopbackServer, http_server, unused_port  # noqa: F401 (http_server is a fixture)
from radassist.cli import main
from radassist.errors import DownloadError
from radassist.runtime.catalog import GIT_BLOB_SHA1, installed_path, load_catalog
from radassist.runtime.download import (CONSENT_RECORD, LicenceConsentRequired, check_model_file,
                                        file_git_blob_id, install_model, licence_terms, partial_path)
from radassist.runtime.paths import bundled_catalog
from radassist.runtime.progress import Cancelled, Progress

PROJECT_ROOT = Path(__file__).resolve().parents[2]
COMMIT = "594029efe6184bcca3a151fa1dd46c5fd620cb25"
UPSTREAM_BLOBS = {1: "04e473379a8313daa426c38e69bad392fc0be769", 2: "98074a24bbebdbf030eb2bd9c27e96f4683d336b",
                  3: "9304d4b3224ecd4b9bd6717095ef819c779efae5", 4: "4e87f6453d71e9e9be01504ee8b64ff077c254ee",
                  5: "ec942dd65a99aaa3fce8cf00bcd10bdb0ee40e2c"}


def git_blob(data: bytes) -> str:
    """The blob id git itself gives ``data`` (an independent reference for file_git_blob_id)."""
    return subprocess.run(["git", "hash-object", "--stdin"], input=data, capture_output=True,
                          check=True).stdout.decode().strip()


def published_file(seed: int) -> bytes:
    """A state dict with the published GMIC names and shapes, saved as upstream's sample_model_N.p are."""
    from test_mammo_mapping import published_state

    buffer = io.BytesIO()
    torch.save(published_state(seed), buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def checkpoints() -> dict[int, bytes]:
    return {number: published_file(number) for number in range(1, 6)}


@pytest.fixture(autouse=True)
def private_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("RADASSIST_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("RADASSIST_CATALOGS", raising=False)
    return tmp_path / "cache"


def site_catalogue(folder: Path, files: dict[int, tuple[str, str]], monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shipped gmic-N entries with the url and blob id of ``files`` (number -> (url, blob id))."""
    shipped = json.loads(bundled_catalog().read_text(encoding="utf-8"))["models"]
    entries = []
    for entry in shipped:
        if entry["id"].startswith("gmic-") and entry["id"][-1].isdigit() and int(entry["id"][-1]) in files:
            entry = copy.deepcopy(entry)
            url, blob = files[int(entry["id"][-1])]
            entry["files"][0].update(url=url, gitBlobSha1=blob)
            entries.append(entry)
    path = folder / "site-gmic.json"
    path.write_text(json.dumps({"catalogueVersion": 1, "models": entries}))
    monkeypatch.setenv("RADASSIST_CATALOGS", str(path))
    return path


def serve(server: LoopbackServer, checkpoints: dict[int, bytes], numbers=range(1, 6), **misbehaviour):
    return {n: (server.add_file(f"sample_model_{n}.p", checkpoints[n], **misbehaviour), git_blob(checkpoints[n]))
            for n in numbers}


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- the catalogue -------------------------------------------------------------------------------------------------

def test_git_blob_ids_are_the_ones_git_computes(tmp_path: Path) -> None:
    for data in (b"", b"hello\n", published_file(0)[:70_000]):
        path = tmp_path / "file.bin"
        path.write_bytes(data)
        assert file_git_blob_id(path) == git_blob(data)
    assert file_git_blob_id(tmp_path / "file.bin") != git_blob(b"hello\n")
    (tmp_path / "empty").write_bytes(b"")
    assert file_git_blob_id(tmp_path / "empty") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"  # git's empty blob


def test_the_shipped_entries_pin_the_upstream_commit_and_blob_ids() -> None:
    catalog = load_catalog()
    for number, blob in UPSTREAM_BLOBS.items():
        entry = catalog.get(f"gmic-{number}")
        (model_file,) = entry.files
        assert model_file.url == (f"https://raw.githubusercontent.com/nyukat/GMIC/{COMMIT}/models/"
                                  f"sample_model_{number}.p")
        assert model_file.hashes == {GIT_BLOB_SHA1: blob}
        assert entry.status == "available" and entry.consent_required
        assert entry.licence["name"] == "AGPL-3.0-only" and COMMIT in entry.licence["url"]
    ensemble = catalog.get("gmic-ensemble")
    assert ensemble.members == tuple(f"gmic-{n}" for n in range(1, 6)) and ensemble.combine == "mean"
    assert ensemble.files == () and ensemble.consent_required


def test_licence_terms_are_what_a_panel_shows() -> None:
    terms = licence_terms(load_catalog().get("gmic-2"))
    assert terms.consent_required and terms.name == "AGPL-3.0-only" and terms.model == "gmic-2 1.0.0"
    assert terms.url == f"https://github.com/nyukat/GMIC/blob/{COMMIT}/LICENSE"
    assert "GNU Affero General Public License" in terms.text and terms.url in terms.text
    assert not licence_terms(load_catalog().get("liver-unet")).consent_required


# -- consent -------------------------------------------------------------------------------------------------------

def test_without_consent_nothing_is_downloaded(http_server: LoopbackServer, checkpoints, tmp_path, monkeypatch,
                                               capsys) -> None:
    site_catalogue(tmp_path, serve(http_server, checkpoints, [1]), monkeypatch)
    entry = load_catalog().get("gmic-1")
    with pytest.raises(LicenceConsentRequired) as refused:
        install_model(entry)
    assert refused.value.terms.name == "AGPL-3.0-only" and "--accept-license" in str(refused.value)
    code, _, err = run(capsys, "models", "install", "gmic-1")  # pytest's stdin is not a terminal
    assert code == 2 and "GNU Affero General Public License" in err
    assert "radassist models install: error: model gmic-1 1.0.0 is installed only once you accept" in err
    assert "--accept-license" in err
    assert http_server.requests_for("sample_model_1.p") == []
    assert not installed_path(entry).exists()


def answer_on_a_terminal(answer: str, cache: Path, catalogue: str) -> subprocess.CompletedProcess:
    """Run `radassist models install gmic-1` with a pseudo-terminal as stdin, typing ``answer``."""
    controller, terminal = pty.openpty()
    os.write(controller, answer.encode() + b"\n")
    env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT), RADASSIST_CACHE_DIR=str(cache),
               RADASSIST_CATALOGS=catalogue, NO_PROXY="127.0.0.1")
    try:
        return subprocess.run([sys.executable, "-m", "radassist.cli", "models", "install", "gmic-1"],
                              stdin=terminal, capture_output=True, text=True, timeout=300, env=env, cwd=PROJECT_ROOT)
    finally:
        os.close(terminal)
        os.close(controller)


def test_a_person_at_a_terminal_is_asked(http_server: LoopbackServer, checkpoints, tmp_path, monkeypatch,
                                         private_cache) -> None:
    catalogue = str(site_catalogue(tmp_path, serve(http_server, checkpoints, [1]), monkeypatch))
    declined = answer_on_a_terminal("n", private_cache, catalogue)
    assert declined.returncode == 2 and "Do you accept the licence of gmic-1 1.0.0 (AGPL-3.0-only)?" in declined.stderr
    assert "its licence was not accepted" in declined.stderr
    assert http_server.requests_for("sample_model_1.p") == []
    accepted = answer_on_a_terminal("yes", private_cache, catalogue)
    assert accepted.returncode == 0, accepted.stderr
    folder = private_cache / "models" / "gmic-1" / "1.0.0"
    assert (folder / "sample_model_1.p").read_bytes() == checkpoints[1]
    record = json.loads((folder / CONSENT_RECORD).read_text())
    assert record["licence"] == "AGPL-3.0-only" and record["model"] == "gmic-1" and record["accepted"]


# -- downloads: right, corrupted, truncated, no network ------------------------------------------------------------

def test_a_right_file_is_installed_verified_and_runs(http_server: LoopbackServer, checkpoints, tmp_path, monkeypatch,
                                                     capsys, private_cache) -> None:
    site_catalogue(tmp_path, serve(http_server, checkpoints, [2]), monkeypatch)
    code, out, err = run(capsys, "models", "install", "gmic-2", "--accept-license")
    assert code == 0, err
    assert "GNU Affero General Public License" in err and "Licence accepted with --accept-license" in err
    folder = private_cache / "models" / "gmic-2" / "1.0.0"
    assert out.strip() == f"installed gmic-2 1.0.0 in {folder}"
    assert sorted(p.name for p in folder.iterdir()) == [CONSENT_RECORD, "sample_model_2.p"]
    code, out, _ = run(capsys, "models", "verify", "gmic-2")
    assert code == 0 and "sample_model_2.p: ok, git blob id matches" in out
    from radassist.mammo.pipeline import load_gmic

    runner = load_gmic("gmic-2")  # blob id checked again, then fitted strictly to the published architecture
    assert runner.model_id == "gmic-2" and runner.config.top_t_percent == 3
    code, _, _ = run(capsys, "models", "install", "gmic-2")  # installed: no second licence question, no download
    assert code == 0 and len(http_server.requests_for("sample_model_2.p")) == 1


def test_a_corrupted_download_is_refused_and_deleted(http_server: LoopbackServer, checkpoints, tmp_path,
                                                     monkeypatch) -> None:
    files = serve(http_server, checkpoints, [3], corrupt=True)  # same length, bytes flipped on the way
    site_catalogue(tmp_path, files, monkeypatch)
    entry = load_catalog().get("gmic-3")
    with pytest.raises(DownloadError) as failed:
        install_model(entry, accept_licence=True, retries=0)
    assert f"git blob id mismatch for {files[3][0]}: expected {files[3][1]}" in str(failed.value)
    target = installed_path(entry) / "sample_model_3.p"
    assert not target.exists() and not partial_path(target).exists()


def test_a_truncated_file_is_refused(http_server: LoopbackServer, checkpoints, tmp_path, monkeypatch) -> None:
    """The server sends fewer bytes than the published file has (and says so in Content-Length)."""
    url = http_server.add_file("sample_model_4.p", checkpoints[4][:-4096])
    site_catalogue(tmp_path, {4: (url, git_blob(checkpoints[4]))}, monkeypatch)
    entry = load_catalog().get("gmic-4")
    with pytest.raises(DownloadError, match="git blob id mismatch"):
        install_model(entry, accept_licence=True, retries=0)
    assert not (installed_path(entry) / "sample_model_4.p").exists()


def test_a_connection_cut_in_the_middle_resumes_and_is_verified(http_server: LoopbackServer, checkpoints, tmp_path,
                                                                 monkeypatch) -> None:
    files = serve(http_server, checkpoints, [4], drop_after=1_000_000, drop_times=1)
    site_catalogue(tmp_path, files, monkeypatch)
    entry = load_catalog().get("gmic-4")
    target = installed_path(entry) / "sample_model_4.p"
    with pytest.raises(DownloadError, match="broke off"):
        install_model(entry, accept_licence=True, retries=0)
    arrived = partial_path(target).stat().st_size
    assert 0 < arrived <= 1_000_000  # kept for the next try
    install_model(entry, accept_licence=True, retries=0)
    assert target.read_bytes() == checkpoints[4]
    assert http_server.requests_for("sample_model_4.p")[-1].header("Range") == f"bytes={arrived}-"


def test_no_network_says_where_to_put_the_file_and_how_to_import_it(tmp_path, monkeypatch, capsys,
                                                                    private_cache) -> None:
    url = f"http://127.0.0.1:{unused_port()}/sample_model_5.p"
    site_catalogue(tmp_path, {5: (url, UPSTREAM_BLOBS[5])}, monkeypatch)
    code, _, err = run(capsys, "models", "install", "gmic-5", "--accept-license")
    assert code == 2
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"radassist models install: error: could not download {url}: the server could not be "
                           f"reached (connection refused)")
    folder = private_cache / "models" / "gmic-5" / "1.0.0"
    assert f"put it at {folder / 'sample_model_5.p'} (git blob id {UPSTREAM_BLOBS[5]})" in line
    assert "radassist models import gmic-5 FILE" in line
    assert not folder.exists()  # no empty folder left behind


def test_a_cancelled_download_keeps_what_arrived(http_server: LoopbackServer, checkpoints, tmp_path,
                                                 monkeypatch) -> None:
    """The panel's Cancel: install_model's Progress is cancelled from another thread while bytes arrive."""
    site_catalogue(tmp_path, serve(http_server, checkpoints, [1]), monkeypatch)
    entry = load_catalog().get("gmic-1")
    progress = Progress(lambda fraction, message: progress.cancel() if fraction > 0 else None)
    with pytest.raises(Cancelled):
        install_model(entry, progress, accept_licence=True)
    assert not (installed_path(entry) / "sample_model_1.p").exists()


# -- the ensemble, and files fetched by hand -----------------------------------------------------------------------

def test_the_ensemble_installs_all_five_and_runs_them_averaged(http_server: LoopbackServer, checkpoints, tmp_path,
                                                               monkeypatch, capsys, private_cache) -> None:
    site_catalogue(tmp_path, serve(http_server, checkpoints), monkeypatch)
    code, out, err = run(capsys, "models", "install", "gmic-ensemble", "--accept-license")
    assert code == 0, err
    assert out.startswith("installed gmic-ensemble 1.0.0: gmic-1 1.0.0, gmic-2 1.0.0")
    for number in range(1, 6):
        folder = private_cache / "models" / f"gmic-{number}" / "1.0.0"
        assert (folder / f"sample_model_{number}.p").read_bytes() == checkpoints[number]
        assert (folder / CONSENT_RECORD).is_file()
    rows = {row["id"]: row for row in json.loads(run(capsys, "models", "list", "--json")[1])}
    assert rows["gmic-ensemble"]["status"] == "installed"
    assert rows["gmic-ensemble"]["size"] == sum(len(c) for c in checkpoints.values())
    from radassist.mammo.pipeline import expand_models, installed_models

    assert expand_models(["gmic-ensemble"]) == [f"gmic-{n}" for n in range(1, 6)]
    assert installed_models() == [f"gmic-{n}" for n in range(1, 6)]  # the members once, not the ensemble too
    code, out, _ = run(capsys, "models", "path", "gmic-ensemble")
    assert code == 0 and len(out.split()) == 5


def test_models_import_checks_the_blob_id_of_a_file_fetched_by_hand(checkpoints, tmp_path, monkeypatch, capsys,
                                                                    private_cache) -> None:
    fetched = tmp_path / "sample_model_3.p"
    fetched.write_bytes(checkpoints[3])
    code, _, err = run(capsys, "models", "import", "gmic-3", str(fetched))  # the upstream blob id: refused
    assert code == 2 and "git blob id mismatch" in err and UPSTREAM_BLOBS[3] in err
    assert not (private_cache / "models" / "gmic-3" / "1.0.0" / "sample_model_3.p").exists()
    site_catalogue(tmp_path, {3: ("https://example.invalid/sample_model_3.p", git_blob(checkpoints[3]))},
                   monkeypatch)
    code, _, err = run(capsys, "models", "import", "gmic-3", str(fetched))
    assert code == 0, err
    installed = private_cache / "models" / "gmic-3" / "1.0.0" / "sample_model_3.p"
    assert installed.read_bytes() == checkpoints[3]
    installed.write_bytes(checkpoints[3][:-1] + bytes([checkpoints[3][-1] ^ 0xFF]))  # damaged after install
    with pytest.raises(Exception, match="git blob id .* does not match the catalogue"):
        check_model_file(installed, load_catalog().get("gmic-3").files[0])
