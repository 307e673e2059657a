"""`radassist serve`: the inference server for Slicer workstations and `radassist ... --server URL`.

Heavy imports (FastAPI, uvicorn, torch) stay inside the run function so `--help` is fast and the CLI works
without the ``server`` extra.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from pathlib import Path

from radassist.errors import InputError, RadAssistError

DEFAULT_PORT = 8765


def register(commands: argparse._SubParsersAction, formatter: type[argparse.HelpFormatter]) -> None:
    parser = commands.add_parser(
        "serve", help="run the inference server (one per GPU machine)", formatter_class=formatter,
        description="Serve RadAssist tasks over HTTP for Slicer and 'radassist ... --server URL': "
                    "GET /health, GET /info, POST /jobs (a volume, a zipped DICOM series or mammograms), "
                    "GET /jobs/ID (progress), POST /jobs/ID/cancel, GET /jobs/ID/result (the files the CLI "
                    "writes, zipped). The API description is at /docs and /openapi.json. Every request but "
                    "/health needs the bearer token. Jobs run one at a time per device; a full queue answers "
                    "503. Serve plain HTTP on 127.0.0.1 and put a TLS reverse proxy in front to reach it from "
                    "other machines (docs/deployment.md).")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: all interfaces)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port")
    parser.add_argument("--token-file", type=Path, metavar="F",
                        help="file holding the bearer token (default: create a random one in the cache folder "
                             "and print where)")
    parser.add_argument("--max-upload-mb", type=float, default=1024.0, metavar="MB",
                        help="largest accepted upload (one request); larger gets 413")
    parser.add_argument("--queue-size", type=int, default=8, metavar="N", help="jobs that may wait; one more gets 503")
    parser.add_argument("--device", default="auto",
                        help="auto (one worker per CUDA GPU, else one CPU worker), cpu, cuda, cuda:N, or a comma "
                             "list such as cuda:0,cuda:1")
    parser.add_argument("--keep-jobs", type=int, default=64, metavar="N",
                        help="finished jobs kept for download before the oldest are deleted")
    parser.add_argument("--storage", type=Path, metavar="DIR",
                        help="folder under which the server makes its private job folder (default: the system "
                             "temp folder)")
    parser.set_defaults(handler=run)


def worker_devices(preference: str) -> tuple[str, ...]:
    """The devices to start one worker on: every CUDA GPU for 'auto'/'cuda', else what was named."""
    from radassist.runtime.device import choose_device

    names = [name.strip() for name in preference.split(",") if name.strip()]
    if names in (["auto"], ["cuda"]):
        import torch

        if torch.cuda.is_available():
            return tuple(f"cuda:{index}" for index in range(torch.cuda.device_count()))
        if names == ["cuda"]:
            choose_device("cuda")  # raises DeviceUnavailable with what is available
        return (choose_device("auto").device.type,)
    for name in names:
        choose_device(name)  # an unknown or absent device is refused before the server starts
    if not names:
        raise InputError(None, "--device names no device")
    return tuple(names)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def run(args: argparse.Namespace) -> int:
    try:
        from radassist.server.auth import create_token_file, default_token_file, read_token_file
        from radassist.server.runner import serve
        from radassist.server.settings import MIB, ServerSettings
    except ImportError as exc:
        raise RadAssistError(f"the server needs the 'server' extra ({exc.name} is missing): "
                             "pip install 'radassist[server]'") from None
    if args.max_upload_mb <= 0 or args.queue_size < 1 or args.keep_jobs < 1:
        raise InputError(None, "--max-upload-mb, --queue-size and --keep-jobs must be positive")
    if not 0 < args.port < 65536:
        raise InputError(None, f"--port must be 1..65535, got {args.port}")
    if args.token_file is not None:
        token, token_file = read_token_file(args.token_file), args.token_file
    else:
        token_file = default_token_file()
        token = create_token_file(token_file)
    devices = worker_devices(args.device)
    settings = ServerSettings(token=token, max_upload_bytes=int(args.max_upload_mb * MIB),
                              queue_size=args.queue_size, devices=devices, storage_root=args.storage,
                              keep_finished_jobs=args.keep_jobs)
    print(f"RadAssist server on http://{args.host}:{args.port} (API: /docs); workers: {', '.join(devices)}; "
          f"token file: {token_file}", file=sys.stderr)
    if not _is_loopback(args.host):
        print("note: this server speaks plain HTTP; reach it through a TLS reverse proxy or an SSH tunnel, not "
              "across an open network (docs/deployment.md)", file=sys.stderr)
    serve(settings, args.host, args.port)
    return 0
