"""`radassist info`: versions, compute devices and where models and catalogues are looked for."""

from __future__ import annotations

import argparse
import json

from radassist.runtime import paths
from radassist.runtime.device import available_devices
from radassist.runtime.run_record import package_versions


def register(commands: argparse._SubParsersAction, formatter: type[argparse.HelpFormatter]) -> None:
    parser = commands.add_parser("info", help="versions, devices and model locations", formatter_class=formatter,
                                 description="Show versions, the compute devices RadAssist can use, and where it "
                                             "looks for models and model catalogues.")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.set_defaults(handler=run)


def gather() -> dict:
    return {
        "versions": package_versions(),
        "devices": [device.__dict__ for device in available_devices()],
        "cache_dir": str(paths.cache_dir()),
        "models_dir": str(paths.models_dir()),
        "catalogs": [str(paths.bundled_catalog())] + [str(p) for p in paths.extra_catalogs()],
        "environment": {"cache": paths.CACHE_ENV, "catalogs": paths.CATALOG_ENV},
    }


def run(args: argparse.Namespace) -> int:
    facts = gather()
    if args.json:
        print(json.dumps(facts, indent=2))
        return 0
    print("RadAssist " + facts["versions"].get("radassist", "?"))
    for name, version in facts["versions"].items():
        if name != "radassist":
            print(f"  {name:<12} {version}")
    print("Devices (auto picks the first):")
    for device in facts["devices"]:
        memory = f", {device['memory_total_gb']} GB" if device["memory_total_gb"] else ""
        print(f"  {device['name']:<8} {device['description']}{memory}")
    print(f"Models folder: {facts['models_dir']}   (set ${paths.CACHE_ENV} to move the cache)")
    print("Model catalogues:")
    for catalog in facts["catalogs"]:
        print(f"  {catalog}")
    print(f"  (add your own with ${paths.CATALOG_ENV}=file1{':'}file2)")
    return 0
