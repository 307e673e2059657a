"""``PythonSlicer -m pip`` inside the stand-in. It cannot install into the test environment, so it answers as pip
would for a Slicer that already had the wheels: a requirement the test environment satisfies is "installed" (logged
for the stand-in's package rules), anything else fails with pip's own error lines. It refuses, loudly, any request
that would install, upgrade or downgrade a package the release bundles, and any install without a constraints file
that pins every package Slicer already has.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version


def _bundled(release: str) -> dict[str, str]:
    data = json.loads((Path(__file__).resolve().parents[1] / "slicer_api" / f"slicer-{release}.json").read_text())
    return {name: record["version"] for name, record in data["packages"].items()}


def _read_requirements(args: list[str]) -> tuple[list[str], list[Path], set[str]]:
    requirements, constraints, flags = [], [], set()
    items = iter(args)
    for item in items:
        if item in ("-c", "--constraint"):
            constraints.append(Path(next(items)))
        elif item.startswith("--constraint="):
            constraints.append(Path(item.split("=", 1)[1]))
        elif item in ("-r", "--requirement"):
            requirements += [line.strip() for line in Path(next(items)).read_text().splitlines()
                             if line.strip() and not line.startswith("#")]
        elif item in ("--index-url", "--extra-index-url", "--progress-bar", "--report", "-i"):
            next(items)
        elif item.startswith("-"):
            flags.add(item)
        else:
            requirements.append(item)
    return requirements, constraints, flags


def _with_dependencies(names: list[str]) -> set[str]:
    """The distributions pip would have installed: the requested ones and what they require (no extras)."""
    from importlib.metadata import PackageNotFoundError, requires

    found, pending = set(), list(names)
    while pending:
        name = canonicalize_name(pending.pop())
        if name in found:
            continue
        found.add(name)
        try:
            needs = requires(name) or []
        except PackageNotFoundError:
            continue
        for text in needs:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return found


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "install":
        print("ERROR: the stand-in's pip only answers 'install'", file=sys.stderr)
        return 2
    release = os.environ["RADASSIST_STANDIN_RELEASE"]
    bundled = _bundled(release)
    requirements, constraints, flags = _read_requirements(argv[1:])
    pins: dict[str, str] = {}
    for path in constraints:
        for line in path.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if "==" in line:
                name, version = line.split("==", 1)
                pins[canonicalize_name(name)] = version.strip()
    from importlib.metadata import PackageNotFoundError, version as installed_version

    def present(name: str) -> bool:
        try:
            installed_version(name)
        except PackageNotFoundError:
            return False
        return True

    unpinned = sorted(name for name in bundled if present(name) and name not in pins)
    if unpinned:
        print(f"ERROR: (stand-in) pip was run without pinning what Slicer {release} bundles: {unpinned}")
        return 3
    fail = os.environ.get("RADASSIST_STANDIN_PIP_FAIL", "")
    installed = []
    for text in requirements:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        if name in bundled:
            print(f"ERROR: (stand-in) refusing to install {text}: Slicer {release} bundles {name}=={bundled[name]}")
            return 3
        if name == "torch":
            print("ERROR: (stand-in) torch must come from Slicer's PyTorch extension, not from pip")
            return 3
        try:
            have = installed_version(requirement.name)
        except PackageNotFoundError:
            have = None
        if name == canonicalize_name(fail) or have is None or not requirement.specifier.contains(
                Version(have), prereleases=True):
            print(f"ERROR: Could not find a version that satisfies the requirement {text} (from versions: none)")
            print(f"ERROR: No matching distribution found for {requirement.name}")
            return 1
        installed.append(f"{requirement.name}-{have}")
    if "--dry-run" not in flags:
        with open(os.environ["RADASSIST_STANDIN_PIP_LOG"], "a", encoding="utf-8") as log:
            requested = [n.rsplit("-", 1)[0] for n in installed]
            log.write(json.dumps({"installed": sorted(_with_dependencies(requested)), "args": argv}) + "\n")
    print("Successfully installed " + " ".join(installed))
    return 0
