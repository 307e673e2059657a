"""Downloads against a real HTTP server on 127.0.0.1: resume, retries, hash checks, offline messages, install."""

from __future__ import annotations

import copy
import hashlib
import json
import random
from pathlib import Path

import pytest
import requests

from http_fixtures import LoopbackServer, http_server, unused_port  # noqa: F401 (http_server is a fixture)
from radassist.errors import DownloadError
from radassist.runtime.catalog import installed_path, load_catalog
from radassist.runtime.download import (ModelUnavailable, fetch_file, import_model_file, install_model,
                                        partial_path)
from radassist.runtime.paths import bundled_catalog
from radassist.runtime.progress import Cancelled, Progress

PAYLOAD = random.Random(20240917).randbytes(1024 * 1024 + 123)
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture(autouse=True)
def no_proxy_for_loopback(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Loopback tests must not go through a developer's proxy; models land in a private cache."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("RADASSIST_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("RADASSIST_CATALOGS", raising=False)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_plain_download_is_verified_and_reported(http_server: LoopbackServer, tmp_path: Path) -> None:
    url = http_server.add_file("weights.bin", PAYLOAD)
    seen: list[tuple[float, str]] = []
    target = fetch_file(url, tmp_path / "models" / "weights.bin", sha256=PAYLOAD_SHA, size=len(PAYLOAD),
                        progress=Progress(lambda f, m: seen.append((f, m))))
    assert target.read_bytes() == PAYLOAD
    assert leftovers(tmp_path / "models") == ["weights.bin"]
    assert seen[-1][0] == pytest.approx(1.0) and "weights.bin" in seen[-1][1]
    assert [f for f, _ in seen] == sorted(f for f, _ in seen)
    request = http_server.requests_for("weights.bin")[0]
    assert request.header("Range") is None and request.header("User-Agent").startswith("radassist/")


def test_already_present_file_with_right_hash_is_not_fetched_again(http_server: LoopbackServer,
                                                                    tmp_path: Path) -> None:
    url = http_server.add_file("weights.bin", PAYLOAD)
    fetch_file(url, tmp_path / "weights.bin", sha256=PAYLOAD_SHA)
    fetch_file(url, tmp_path / "weights.bin", sha256=PAYLOAD_SHA)
    assert len(http_server.requests_for("weights.bin")) == 1


def test_dropped_connection_is_resumed_with_a_range_request(http_server: LoopbackServer, tmp_path: Path) -> None:
    url = http_server.add_file("weights.bin", PAYLOAD, drop_after=len(PAYLOAD) // 2)
    target = fetch_file(url, tmp_path / "weights.bin", sha256=PAYLOAD_SHA, retries=2, backoff=0)
    assert target.read_bytes() == PAYLOAD
    first, second = http_server.requests_for("weights.bin")
    assert first.header("Range") is None
    resumed_at = int(second.header("Range").removeprefix("bytes=").removesuffix("-"))
    assert 0 < resumed_at <= len(PAYLOAD) // 2
    assert not partial_path(target).exists()


def test_partial_file_survives_a_failed_run_and_the_next_run_resumes(http_server: LoopbackServer,
                                                                      tmp_path: Path) -> None:
    url = http_server.add_file("weights.bin", PAYLOAD, drop_after=300_000)
    target = tmp_path / "weights.bin"
    with pytest.raises(DownloadError, match="broke off"):
        fetch_file(url, target, sha256=PAYLOAD_SHA, retries=0)
    assert not target.exists() and 0 < partial_path(target).stat().st_size <= 300_000
    kept = partial_path(target).stat().st_size
    fetch_file(url, target, sha256=PAYLOAD_SHA, retries=0)
    assert target.read_bytes() == PAYLOAD
    assert http_server.requests_for("weights.bin")[-1].header("Range") == f"bytes={kept}-"


def test_server_that_ignores_range_makes_the_download_start_over(http_server: LoopbackServer,
                                                                 tmp_path: Path) -> None:
    url = http_server.add_file("weights.bin", PAYLOAD, ignore_range=True)
    target = tmp_path / "weights.bin"
    partial_path(target).write_bytes(b"stale bytes from somewhere else" * 1000)
    fetch_file(url, target, sha256=PAYLOAD_SHA, size=len(PAYLOAD))
    assert target.read_bytes() == PAYLOAD  # appending to the stale bytes would have failed the hash
    assert http_server.requests_for("weights.bin")[0].header("Range") == "bytes=31000-"


def test_corrupted_file_is_rejected_and_nothing_is_left(http_server: LoopbackServer, tmp_path: Path) -> None:
    url = http_server.add_file("weights.bin", PAYLOAD, corrupt=True)
    target = tmp_path / "out" / "weights.bin"
    with pytest.raises(DownloadError) as caught:
        fetch_file(url, target, sha256=PAYLOAD_SHA)
    message = str(caught.value)
    assert f"expected {PAYLOAD_SHA}" in message and "got " in message and url in message
    assert leftovers(tmp_path / "out") == []


def test_wrong_size_is_rejected(http_server: LoopbackServer, tmp_path: Path) -> None:
    url = http_server.add_file("weights.bin", PAYLOAD)
    with pytest.raises(DownloadError, match=f"expected {len(PAYLOAD) + 1} bytes, got {len(PAYLOAD)}"):
        fetch_file(url, tmp_path / "weights.bin", size=len(PAYLOAD) + 1, retries=0)
    assert leftovers(tmp_path) == []


def test_server_down_gives_the_offline_message(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{unused_port()}/models/weights.bin"
    target = tmp_path / "models" / "weights.bin"
    with pytest.raises(DownloadError) as caught:
        fetch_file(url, target, sha256=PAYLOAD_SHA, retries=1, backoff=0)
    message = str(caught.value)
    assert message.startswith(f"could not download {url}: the server could not be reached")
    assert f"Download it by hand and put it at {target} (sha256 {PAYLOAD_SHA})" in message
    assert "tried 2 times" in message
    assert caught.value.url == url and not target.exists()


def test_missing_file_is_not_retried(http_server: LoopbackServer, tmp_path: Path) -> None:
    url = http_server.url("nothing-here.bin")
    with pytest.raises(DownloadError, match="404"):
        fetch_file(url, tmp_path / "weights.bin", retries=3, backoff=0)
    assert len(http_server.requests_for("nothing-here.bin")) == 1
    assert leftovers(tmp_path) == []


def test_one_503_is_retried(http_server: LoopbackServer, tmp_path: Path) -> None:
    url = http_server.add_file("weights.bin", PAYLOAD, status=503)
    fetch_file(url, tmp_path / "weights.bin", sha256=PAYLOAD_SHA, retries=2, backoff=0)
    assert (tmp_path / "weights.bin").read_bytes() == PAYLOAD
    assert len(http_server.requests_for("weights.bin")) == 2


def test_503_every_time_gives_up_with_the_status(http_server: LoopbackServer, tmp_path: Path) -> None:
    url = http_server.add_file("weights.bin", PAYLOAD, status=503, status_times=10)
    with pytest.raises(DownloadError, match="503"):
        fetch_file(url, tmp_path / "weights.bin", retries=2, backoff=0)
    assert len(http_server.requests_for("weights.bin")) == 3


def test_slow_first_byte_times_out_and_the_retry_succeeds(http_server: LoopbackServer, tmp_path: Path) -> None:
    url = http_server.add_file("weights.bin", PAYLOAD, first_byte_delay=1.5)
    fetch_file(url, tmp_path / "weights.bin", sha256=PAYLOAD_SHA, timeout=(2.0, 0.3), retries=1, backoff=0)
    assert (tmp_path / "weights.bin").read_bytes() == PAYLOAD
    assert len(http_server.requests_for("weights.bin")) == 2


def test_cancel_mid_download_keeps_the_partial_file_for_resume(http_server: LoopbackServer,
                                                               tmp_path: Path) -> None:
    url = http_server.add_file("weights.bin", PAYLOAD)
    target = tmp_path / "weights.bin"
    progress = Progress(lambda fraction, message: progress.cancel() if fraction > 0 else None)
    with pytest.raises(Cancelled):
        fetch_file(url, target, sha256=PAYLOAD_SHA, progress=progress)
    kept = partial_path(target).stat().st_size
    assert not target.exists() and 0 < kept < len(PAYLOAD)
    fetch_file(url, target, sha256=PAYLOAD_SHA)
    assert target.read_bytes() == PAYLOAD
    assert http_server.requests_for("weights.bin")[-1].header("Range") == f"bytes={kept}-"


def test_proxy_from_the_environment_is_used(http_server: LoopbackServer, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    http_server.add_file("weights.bin", PAYLOAD)
    monkeypatch.setenv("HTTP_PROXY", http_server.url())
    monkeypatch.setenv("http_proxy", http_server.url())
    monkeypatch.delenv("NO_PROXY")
    monkeypatch.delenv("no_proxy")
    url = "http://models.radassist.invalid/weights.bin"  # .invalid never resolves: only the proxy can answer
    fetch_file(url, tmp_path / "weights.bin", sha256=PAYLOAD_SHA, retries=0)
    assert (tmp_path / "weights.bin").read_bytes() == PAYLOAD
    assert http_server.requests_for("weights.bin")[0].request_line.startswith(f"GET {url} ")


def test_a_given_session_keeps_its_own_settings(http_server: LoopbackServer, tmp_path: Path) -> None:
    url = http_server.add_file("weights.bin", PAYLOAD)
    with requests.Session() as session:
        session.headers["X-Site-Token"] = "abc"
        fetch_file(url, tmp_path / "weights.bin", sha256=PAYLOAD_SHA, session=session)
    assert http_server.requests_for("weights.bin")[0].header("X-Site-Token") == "abc"


@pytest.mark.parametrize("as_url", [False, True], ids=["path", "file-url"])
def test_local_files_are_copied_and_checked(tmp_path: Path, as_url: bool) -> None:
    source = tmp_path / "my weights.bin"
    source.write_bytes(PAYLOAD)
    url = source.as_uri() if as_url else str(source)
    target = fetch_file(url, tmp_path / "out" / "weights.bin", sha256=PAYLOAD_SHA)
    assert target.read_bytes() == PAYLOAD
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        fetch_file(url, tmp_path / "bad" / "weights.bin", sha256="0" * 64)
    assert leftovers(tmp_path / "bad") == []
    with pytest.raises(DownloadError, match="no such file"):
        fetch_file(str(tmp_path / "absent.bin"), tmp_path / "out" / "other.bin")


# -- install_model -----------------------------------------------------------------------------------------------

def write_catalogue(folder: Path, server: LoopbackServer) -> Path:
    """A user catalogue with one available model: one file over HTTP, one next to the catalogue file."""
    config = PAYLOAD[:5000]
    (folder / "config.json").write_bytes(config)
    entry = copy.deepcopy(json.loads(bundled_catalog().read_text())["models"][0])
    entry.update(id="site-nodules", version="2.0.0", status="available", files=[
        {"name": "weights.bin", "format": "safetensors", "url": server.add_file("weights.bin", PAYLOAD),
         "sha256": PAYLOAD_SHA, "size": len(PAYLOAD)},
        {"name": "config.json", "format": "json", "url": "config.json",
         "sha256": hashlib.sha256(config).hexdigest(), "size": len(config)}])
    path = folder / "site-models.json"
    path.write_text(json.dumps({"catalogueVersion": 1, "models": [entry]}))
    return path


def test_install_model_fetches_every_file_into_the_cache(http_server: LoopbackServer, tmp_path: Path) -> None:
    entry = load_catalog([write_catalogue(tmp_path, http_server)]).get("site-nodules")
    seen: list[tuple[float, str]] = []
    folder = install_model(entry, Progress(lambda f, m: seen.append((f, m))))
    assert folder == tmp_path / "cache" / "models" / "site-nodules" / "2.0.0" == installed_path(entry)
    assert (folder / "weights.bin").read_bytes() == PAYLOAD
    assert (folder / "config.json").read_bytes() == PAYLOAD[:5000]
    assert seen[-1][0] == pytest.approx(1.0)
    install_model(entry)  # everything present with the right hash: no second request
    assert len(http_server.requests_for("weights.bin")) == 1


def test_install_model_replaces_a_damaged_installed_file(http_server: LoopbackServer, tmp_path: Path) -> None:
    entry = load_catalog([write_catalogue(tmp_path, http_server)]).get("site-nodules")
    folder = install_model(entry)
    (folder / "weights.bin").write_bytes(b"damaged")
    install_model(entry)
    assert (folder / "weights.bin").read_bytes() == PAYLOAD
    assert len(http_server.requests_for("weights.bin")) == 2


def test_planned_model_says_it_is_not_published() -> None:
    entry = load_catalog().get("lung-detr")
    with pytest.raises(ModelUnavailable, match="not yet published: train your own"):
        install_model(entry)
    assert not installed_path(entry).exists()


def test_user_import_model_explains_where_to_get_it_and_accepts_an_import(tmp_path: Path) -> None:
    entry = copy.deepcopy(json.loads(bundled_catalog().read_text())["models"][0])
    entry.update(id="site-import", status="user-import", obtain="Ask the lab for weights.bin.",
                 files=[{"name": "weights.bin", "format": "safetensors", "sha256": PAYLOAD_SHA}])
    catalogue = tmp_path / "site.json"
    catalogue.write_text(json.dumps({"catalogueVersion": 1, "models": [entry]}))
    entry = load_catalog([catalogue]).get("site-import")
    with pytest.raises(ModelUnavailable) as caught:
        install_model(entry)
    message = str(caught.value)
    assert "Ask the lab for weights.bin." in message and str(installed_path(entry)) in message
    checkpoint = tmp_path / "weights.bin"
    checkpoint.write_bytes(PAYLOAD)
    imported = import_model_file(entry, checkpoint)
    assert imported == installed_path(entry) / "weights.bin"
    assert install_model(entry) == installed_path(entry)
