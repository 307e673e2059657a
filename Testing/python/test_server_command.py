"""`radassist serve` itself: its options, its refusals, and a real start in its own process."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from radassist.cli import _Formatter
from radassist.commands import serve
from radassist.errors import InputError
from radassist.server.runner import free_port

TOKEN = "command-test-token-0123456789"


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="radassist")
    serve.register(parser.add_subparsers(dest="command", required=True), _Formatter)
    return parser.parse_args(["serve", *argv])


def test_defaults_are_loopback_and_bounded():
    args = parse()
    assert (args.host, args.port, args.queue_size, args.max_upload_mb) == ("127.0.0.1", 8765, 8, 1024.0)
    assert serve.worker_devices("auto") == ("cpu",) or serve.worker_devices("auto")[0].startswith("cuda:")
    assert serve.worker_devices("cpu") == ("cpu",)


def test_bad_token_files_and_devices_are_refused_before_starting(tmp_path: Path):
    with pytest.raises(InputError, match="token file not found"):
        serve.run(parse("--token-file", str(tmp_path / "missing")))
    (tmp_path / "weak").write_text("123")
    with pytest.raises(InputError, match="at least 16"):
        serve.run(parse("--token-file", str(tmp_path / "weak")))
    (tmp_path / "token").write_text(TOKEN)
    with pytest.raises(InputError, match="--queue-size"):
        serve.run(parse("--token-file", str(tmp_path / "token"), "--queue-size", "0"))
    from radassist.runtime.device import DeviceUnavailable

    with pytest.raises(DeviceUnavailable):
        serve.run(parse("--token-file", str(tmp_path / "token"), "--device", "cuda:7"))


def test_serve_starts_answers_and_stops(tmp_path: Path):
    (tmp_path / "token").write_text(TOKEN)
    port = free_port()
    code = ("import sys; from radassist.commands import serve; "
            "sys.exit(serve.run(serve_args))").replace("serve_args", "__import__('argparse').Namespace("
            f"host='127.0.0.1', port={port}, token_file=__import__('pathlib').Path({str(tmp_path / 'token')!r}), "
            f"max_upload_mb=1.0, queue_size=2, device='cpu', keep_jobs=4, "
            f"storage=__import__('pathlib').Path({str(tmp_path / 'storage')!r}))")
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if requests.get(url + "/health", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        assert requests.get(url + "/health", timeout=5).json()["status"] == "ok"
        info = requests.get(url + "/info", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30).json()
        assert info["limits"] == {"max_upload_bytes": 2**20, "queue_size": 2, "zip_max_members": 4000,
                                  "zip_max_total_bytes": 4 * 2**30}
        assert requests.get(url + "/info", timeout=5).status_code == 401
        assert any((tmp_path / "storage").iterdir())  # its private job root
    finally:
        process.terminate()
        process.wait(30)
    assert process.returncode is not None
    assert not any((tmp_path / "storage").iterdir())  # removed on shutdown
